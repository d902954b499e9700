// Comparison whose duration does not depend on where the inputs differ (proofs, signatures,
// channel-binding data, nonces): CRYPTO_memcmp's contract, without a TLS-library header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace pggw::auth {

// Equal sizes and equal bytes. The size is not secret: a size mismatch returns at once.
bool constant_time_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);
inline bool constant_time_equal(std::string_view a, std::string_view b) {
    return constant_time_equal(
        std::span(reinterpret_cast<const std::uint8_t*>(a.data()), a.size()),
        std::span(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()));
}

}  // namespace pggw::auth
