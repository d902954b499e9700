#include "gateway/pg/startup_decoder.hpp"

#include <cstring>

#include "gateway/pg/protocol.hpp"

namespace pggw {
namespace {

DecodeResult invalid(std::string why) {
    DecodeResult r;
    r.status = DecodeResult::invalid;
    r.error = std::move(why);
    return r;
}

// StartupMessage body after the version: name\0value\0 ... \0, checked as PostgreSQL's
// ProcessStartupPacket does: the final terminator must be the last byte.
bool parse_parameters(std::span<const std::uint8_t> body, StartupPacket& p, std::string& error) {
    const char* s = reinterpret_cast<const char*>(body.data());
    const std::size_t n = body.size();
    std::size_t off = 0;
    while (off < n && s[off] != '\0') {
        std::string_view name(s + off, strnlen(s + off, n - off));
        std::size_t value_off = off + name.size() + 1;
        if (value_off >= n) break;  // missing value
        std::string_view value(s + value_off, strnlen(s + value_off, n - value_off));
        off = value_off + value.size() + 1;
        if (name == "user")
            p.user = value;
        else if (name == "database")
            p.database = value;
        else if (name == "application_name")
            p.application_name = value;
    }
    if (n == 0 || off != n - 1 || s[n - 1] != '\0') {
        error = "invalid startup packet layout: expected terminator as last byte";
        return false;
    }
    if (p.database.empty()) p.database = p.user;
    return true;
}

}  // namespace

DecodeResult decode_startup(std::span<const std::uint8_t> in, bool first_packet) {
    DecodeResult r;
    if (in.empty()) return r;
    if (first_packet && in[0] == pg::kTlsHandshakeRecord) {
        // A length word starting with 0x16 would be over 369 MB: it can only be a TLS record.
        r.status = DecodeResult::complete;
        r.consumed = 0;  // the engine takes every byte
        r.packet.kind = StartupKind::direct_tls;
        r.packet.bytes = in;
        return r;
    }
    if (in.size() < 4) return r;
    std::uint32_t len = pg::read_u32(in.data());
    if (len < 8) return invalid("invalid length of startup packet");
    if (len - 4 > pg::kMaxStartupPacketBody) return invalid("invalid length of startup packet");
    if (in.size() < 8) return r;
    std::uint32_t code = pg::read_u32(in.data() + 4);

    // Fixed-size requests are judged by their length before their body arrives.
    if ((code == pg::kSslRequestCode || code == pg::kGssEncRequestCode) && len != 8)
        return invalid("invalid length of SSL/GSSENC request");
    if (code == pg::kCancelRequestCode && (len < 16 || len > 12 + pg::kMaxCancelKey))
        return invalid("invalid length of cancel request");
    bool is_startup = (code >> 16) == 3;
    if (code != pg::kSslRequestCode && code != pg::kGssEncRequestCode &&
        code != pg::kCancelRequestCode && !is_startup) {
        DecodeResult bad = invalid("unsupported frontend protocol " + std::to_string(code >> 16) +
                                   "." + std::to_string(code & 0xffff));
        bad.unsupported_protocol = true;
        return bad;
    }
    if (in.size() < len) return r;

    r.status = DecodeResult::complete;
    r.consumed = len;
    r.packet.code = code;
    r.packet.bytes = in.first(len);
    switch (code) {
        case pg::kSslRequestCode:
            r.packet.kind = StartupKind::ssl_request;
            return r;
        case pg::kGssEncRequestCode:
            r.packet.kind = StartupKind::gssenc_request;
            return r;
        case pg::kCancelRequestCode:
            r.packet.kind = StartupKind::cancel_request;
            return r;
        default:
            break;
    }
    r.packet.kind = StartupKind::startup_message;
    std::string error;
    if (!parse_parameters(in.subspan(8, len - 8), r.packet, error)) return invalid(error);
    return r;
}

}  // namespace pggw
