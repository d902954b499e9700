#include "tls_backends/client_hello.hpp"

#include <algorithm>
#include <cstddef>

namespace pggw::tls {
namespace {

constexpr std::uint8_t kRecordHandshake = 22, kHandshakeClientHello = 1;
constexpr std::size_t kMaxRecord = 16 * 1024 + 256;  // a plaintext record, with slack
constexpr std::uint16_t kExtAlpn = 0x0010, kExtGroups = 0x000a, kExtVersions = 0x002b;

}  // namespace

HelloParse parse_client_hello(std::span<const std::uint8_t> in, bool eof, ClientHello& hello) {
    // Record header (type, version, length), then the handshake header (type, 24-bit length).
    if (in.empty()) return eof ? HelloParse::unparsed : HelloParse::need_more;
    if (in[0] != kRecordHandshake) return HelloParse::unparsed;
    if (in.size() < 9) return eof ? HelloParse::unparsed : HelloParse::need_more;
    std::size_t record_len = std::size_t{in[3]} << 8 | in[4];
    if (in[1] != 3 || in[5] != kHandshakeClientHello) return HelloParse::unparsed;
    std::size_t msg_len = std::size_t{in[6]} << 16 | std::size_t{in[7]} << 8 | in[8];
    if (record_len > kMaxRecord || msg_len + 4 > record_len) {
        return HelloParse::unparsed;  // oversized, or fragmented over records: the library's job
    }
    if (in.size() < 5 + record_len) return eof ? HelloParse::unparsed : HelloParse::need_more;

    // The ClientHello body: every read is bounds-checked against it.
    std::span<const std::uint8_t> p = in.subspan(9, msg_len);
    std::size_t at = 0;
    auto u8 = [&](std::size_t& v) {
        return at + 1 <= p.size() ? (v = p[at], at += 1, true) : false;
    };
    auto u16 = [&](std::size_t& v) {
        return at + 2 <= p.size() ? (v = std::size_t{p[at]} << 8 | p[at + 1], at += 2, true)
                                  : false;
    };
    auto skip = [&](std::size_t n) { return at + n <= p.size() ? (at += n, true) : false; };
    std::size_t v = 0, n = 0;
    if (!u16(v) || !skip(32)) return HelloParse::unparsed;  // legacy_version, random
    hello.legacy_version = static_cast<std::uint16_t>(v);
    // legacy_session_id, cipher_suites, legacy_compression_methods
    if (!u8(n) || !skip(n) || !u16(n) || !skip(n) || !u8(n) || !skip(n)) {
        return HelloParse::unparsed;
    }
    std::size_t ext_total = 0;
    if (!u16(ext_total)) return HelloParse::ok;  // no extensions
    std::size_t end = std::min(p.size(), at + ext_total);
    while (at + 4 <= end) {
        std::size_t type = 0, len = 0;
        u16(type);
        u16(len);
        if (at + len > end) return HelloParse::unparsed;
        std::span<const std::uint8_t> ext = p.subspan(at, len);
        if (type == kExtAlpn) {
            hello.alpn = true;
        } else if (type == kExtGroups && len >= 2) {  // u16 list length, then u16 groups
            for (std::size_t i = 2; i + 1 < len; i += 2) {
                hello.groups.push_back(static_cast<std::uint16_t>(ext[i] << 8 | ext[i + 1]));
            }
        } else if (type == kExtVersions && len >= 1) {  // u8 list length, then u16 versions
            for (std::size_t i = 1; i + 1 < len; i += 2) {
                hello.versions.push_back(static_cast<std::uint16_t>(ext[i] << 8 | ext[i + 1]));
            }
        }
        at += len;
    }
    return HelloParse::ok;
}

}  // namespace pggw::tls
