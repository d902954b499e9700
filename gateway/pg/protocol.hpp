// PostgreSQL wire-protocol constants and the few messages pggw itself writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pggw::pg {

constexpr std::uint32_t kSslRequestCode = (1234u << 16) | 5679u;     // 80877103
constexpr std::uint32_t kGssEncRequestCode = (1234u << 16) | 5680u;  // 80877104
constexpr std::uint32_t kCancelRequestCode = (1234u << 16) | 5678u;  // 80877102
constexpr std::uint32_t kProtocol30 = 3u << 16;                      // 196608
constexpr std::uint32_t kProtocol32 = (3u << 16) | 2u;               // 196610

// PostgreSQL's MAX_STARTUP_PACKET_LENGTH: the body after the length word.
constexpr std::uint32_t kMaxStartupPacketBody = 10000;
// CancelRequest: length 16 in protocol 3.0; the secret key may be up to 256 bytes in 3.2.
constexpr std::uint32_t kMaxCancelKey = 256;

// NAMEDATALEN - 1: PostgreSQL truncates user and database names to this many bytes.
constexpr std::size_t kMaxIdentifierLength = 63;

constexpr std::uint8_t kTlsHandshakeRecord = 0x16;  // first byte of a direct TLS ClientHello

// SQLSTATEs pggw uses (PostgreSQL's errcodes.txt names in comments).
namespace sqlstate {
constexpr std::string_view invalid_authorization_specification = "28000";
constexpr std::string_view invalid_password = "28P01";
constexpr std::string_view protocol_violation = "08P01";
constexpr std::string_view feature_not_supported = "0A000";
constexpr std::string_view too_many_connections = "53300";
constexpr std::string_view connection_failure = "08006";
constexpr std::string_view cannot_connect_now = "57P03";
constexpr std::string_view admin_shutdown = "57P01";
}  // namespace sqlstate

// ErrorResponse 'E' with S, V (FATAL), C, M (and D when detail is given) fields: what libpq
// prints before startup.
std::vector<std::uint8_t> error_response(std::string_view sqlstate, std::string_view message,
                                         std::string_view severity = "FATAL",
                                         std::string_view detail = {});

inline std::uint32_t read_u32(const std::uint8_t* p) {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
           std::uint32_t(p[3]);
}
inline void append_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    out.push_back(std::uint8_t(v >> 24));
    out.push_back(std::uint8_t(v >> 16));
    out.push_back(std::uint8_t(v >> 8));
    out.push_back(std::uint8_t(v));
}

}  // namespace pggw::pg
