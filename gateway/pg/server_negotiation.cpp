#include "gateway/pg/server_negotiation.hpp"

#include <array>

#include "gateway/pg/protocol.hpp"

namespace pggw::server_negotiation {

SslAnswer classify_ssl_answer(std::uint8_t byte) {
    switch (byte) {
        case 'S':
            return SslAnswer::tls;
        case 'N':
            return SslAnswer::plaintext;
        case 'E':
            return SslAnswer::error;
        default:
            return SslAnswer::unknown;
    }
}

Plan plan_for(TlsMode mode, bool have_ca) {
    Plan p;
    switch (mode) {
        case TlsMode::disable:
            break;
        case TlsMode::allow:
            p.tls_retry_on_error = true;
            break;
        case TlsMode::prefer:
            p.try_tls_first = true;
            p.plaintext_fallback = true;
            break;
        case TlsMode::require:
            p.try_tls_first = true;
            p.verify = have_ca ? tls::Verify::chain : tls::Verify::none;
            break;
        case TlsMode::verify_ca:
            p.try_tls_first = true;
            p.verify = tls::Verify::chain;
            break;
        case TlsMode::verify_full:
            p.try_tls_first = true;
            p.verify = tls::Verify::chain_and_hostname;
            break;
    }
    return p;
}

std::string tls_hostname(const Config& cfg) {
    return cfg.server_sni.empty() ? cfg.server.host : cfg.server_sni;
}

std::span<const std::uint8_t> ssl_request() {
    static constexpr std::array<std::uint8_t, 8> kPacket = {0,
                                                            0,
                                                            0,
                                                            8,
                                                            std::uint8_t(pg::kSslRequestCode >> 24),
                                                            std::uint8_t(pg::kSslRequestCode >> 16),
                                                            std::uint8_t(pg::kSslRequestCode >> 8),
                                                            std::uint8_t(pg::kSslRequestCode)};
    return kPacket;
}

bool is_cancel_request(std::span<const std::uint8_t> packet) {
    return packet.size() >= 8 && pg::read_u32(packet.data() + 4) == pg::kCancelRequestCode;
}

std::string unverified_text(std::span<const std::uint8_t> bytes, std::size_t max_len) {
    std::span<const std::uint8_t> text = bytes;
    // 'E', int32 length, then type-tagged NUL-terminated fields: keep the M field if present.
    if (bytes.size() > 5 && bytes[0] == 'E') {
        std::size_t i = 5;
        while (i < bytes.size() && bytes[i] != 0) {
            std::uint8_t type = bytes[i++];
            std::size_t end = i;
            while (end < bytes.size() && bytes[end] != 0) ++end;
            if (type == 'M') {
                text = bytes.subspan(i, end - i);
                break;
            }
            i = end + 1;
        }
    }
    std::string out;
    static constexpr char kHex[] = "0123456789abcdef";
    for (std::uint8_t c : text) {
        if (out.size() >= max_len) {
            out += "...";
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += char(c);
        } else {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

}  // namespace pggw::server_negotiation
