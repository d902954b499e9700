#include "gateway/pg/channel_binding.hpp"

#include "gateway/pg/protocol.hpp"

namespace pggw {

namespace {
constexpr std::string_view kPlus = "SCRAM-SHA-256-PLUS";
constexpr std::uint32_t kAuthSasl = 10;           // AuthenticationSASL
constexpr std::uint32_t kMaxFirstMessage = 8192;  // larger: not an auth request; pass it on
}  // namespace

const std::string_view kChannelBindingRefusal =
    "SCRAM channel binding (SCRAM-SHA-256-PLUS) cannot pass through pggw: the client is bound "
    "to pggw's certificate, which is not the PostgreSQL server's, so the server would reject "
    "the proof; connect with channel_binding=disable, or configure pggw to present the "
    "server's own certificate and key";

bool channel_binding_can_pass(const tls::Context* client_leg,
                              const tls::CertificateHash& server_certificate) {
    if (!client_leg || client_leg->certificates().empty()) return false;
    return client_leg->certificates().front().sha256 == server_certificate;
}

SaslMechanismWatch::Verdict SaslMechanismWatch::feed(std::span<const std::uint8_t> data) {
    // The first message: type byte (0), int32 length (1..4), body (5..): the mechanism name
    // and its NUL come first.
    constexpr std::size_t kNameEnd = 5 + kPlus.size();  // index of the NUL after the name
    for (std::uint8_t b : data) {
        if (verdict_ != undecided) break;
        const std::size_t i = seen_++;
        if (i == 0) {
            if (b != 'p') verdict_ = other;
        } else if (i <= 4) {
            length_ = (length_ << 8) | b;
            if (i == 4 && length_ < 4 + kPlus.size() + 1) verdict_ = other;
        } else if (i < kNameEnd) {
            if (b != std::uint8_t(kPlus[i - 5])) verdict_ = other;
        } else {
            verdict_ = b == 0 ? plus : other;
        }
    }
    return verdict_;
}

std::span<const std::uint8_t> SaslOfferFilter::feed(std::span<const std::uint8_t> in) {
    if (done_) {
        if (!held_.empty()) std::vector<std::uint8_t>().swap(held_);
        return in;
    }
    held_.insert(held_.end(), in.begin(), in.end());
    std::size_t pos = 0;
    for (;;) {
        if (held_.size() - pos < 5) return {};
        const std::uint8_t type = held_[pos];
        const std::uint32_t len = pg::read_u32(&held_[pos + 1]);
        if (len < 4 || len > kMaxFirstMessage) break;
        if (held_.size() - pos - 1 < len) return {};
        // NegotiateProtocolVersion comes before authentication, once: a second one ends the
        // filter like any other message (otherwise a stream of them would be held forever).
        if (type == 'v' && pos == 0) {
            pos += 1 + std::size_t(len);
            continue;
        }
        if (type == 'R' && len >= 8 && pg::read_u32(&held_[pos + 5]) == kAuthSasl) strip(pos, len);
        break;
    }
    done_ = true;
    return held_;
}

void SaslOfferFilter::strip(std::size_t pos, std::uint32_t len) {
    // R, int32 length, int32 10, then NUL-terminated mechanism names and a final NUL.
    const std::size_t begin = pos + 9, end = pos + 1 + len;
    std::vector<std::uint8_t> msg{'R', 0, 0, 0, 0};
    pg::append_u32(msg, kAuthSasl);
    std::size_t i = begin;
    while (i < end && held_[i] != 0) {
        std::size_t j = i;
        while (j < end && held_[j] != 0) ++j;
        std::string_view name(reinterpret_cast<const char*>(&held_[i]), j - i);
        if (name == kPlus) {
            stripped_ = true;
        } else {
            msg.insert(msg.end(), held_.begin() + std::ptrdiff_t(i),
                       held_.begin() + std::ptrdiff_t(j));
            msg.push_back(0);
        }
        i = j + 1;
    }
    if (!stripped_) return;
    msg.push_back(0);
    const std::uint32_t new_len = std::uint32_t(msg.size() - 1);
    msg[1] = std::uint8_t(new_len >> 24);
    msg[2] = std::uint8_t(new_len >> 16);
    msg[3] = std::uint8_t(new_len >> 8);
    msg[4] = std::uint8_t(new_len);
    held_.erase(held_.begin() + std::ptrdiff_t(pos), held_.begin() + std::ptrdiff_t(end));
    held_.insert(held_.begin() + std::ptrdiff_t(pos), msg.begin(), msg.end());
}

}  // namespace pggw
