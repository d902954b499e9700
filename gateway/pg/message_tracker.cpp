#include "gateway/pg/message_tracker.hpp"

#include <algorithm>

#include "gateway/pg/protocol.hpp"

namespace pggw {

bool MessageTracker::feed(std::span<const std::uint8_t> bytes) {
    std::size_t i = 0;
    while (i < bytes.size()) {
        if (body_left_ > 0) {
            if (want_status_) {
                status_ = char(bytes[i]);
                want_status_ = false;
            }
            std::size_t n = std::min<std::size_t>(body_left_, bytes.size() - i);
            body_left_ -= std::uint32_t(n);
            i += n;
            continue;
        }
        std::size_t n = std::min<std::size_t>(5 - header_have_, bytes.size() - i);
        std::copy_n(bytes.begin() + std::ptrdiff_t(i), n, header_ + header_have_);
        header_have_ += n;
        i += n;
        if (header_have_ < 5) break;
        header_have_ = 0;
        std::uint32_t len = pg::read_u32(header_ + 1);
        if (len < 4) return false;
        ++messages_;
        if (int k = slot(char(header_[0])); k >= 0) ++counts_[k];
        body_left_ = len - 4;
        want_status_ = header_[0] == 'Z' && body_left_ > 0;
    }
    return true;
}

}  // namespace pggw
