#include "gateway/auth/constant_time.hpp"

namespace pggw::auth {

bool constant_time_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
    if (a.size() != b.size()) return false;
    // volatile: the compiler may not stop at the first difference.
    volatile std::uint8_t diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff = diff | (a[i] ^ b[i]);
    return diff == 0;
}

}  // namespace pggw::auth
