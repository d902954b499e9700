#include "gateway/channel_binding.hpp"

namespace pggw {

namespace {
constexpr std::string_view kPlus = "SCRAM-SHA-256-PLUS";
}

const std::string_view kChannelBindingRefusal =
    "SCRAM channel binding (SCRAM-SHA-256-PLUS) cannot pass through pggw: the client is bound "
    "to pggw's certificate, which is not the PostgreSQL server's, so the server would reject "
    "the proof; connect with channel_binding=disable, or configure pggw to present the "
    "server's own certificate and key";

bool channel_binding_can_pass(const tls::Context* client_leg,
                              const std::vector<std::uint8_t>& server_der) {
    if (server_der.empty()) return true;
    if (!client_leg || client_leg->certificates().empty()) return false;
    return client_leg->certificates().front().der == server_der;
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

}  // namespace pggw
