// The PROXY protocol (HAProxy's spec, versions 1 and 2) as a pure decoder: a load balancer
// that terminates TCP sends one header before the client's bytes, carrying the client's
// address. Give decode() the bytes buffered so far; it answers need_more, a header (and how
// many bytes it used: the rest belong to PostgreSQL's startup), or an error. No I/O; tested
// byte by byte and with random input (tests/unit/net/proxy_protocol_test.cpp).
//
//   v1  "PROXY TCP4|TCP6|UNKNOWN ... \r\n", at most 107 bytes
//   v2  a 12-byte signature, version/command, family, a 16-bit length, the addresses and TLVs
//       (skipped); LOCAL (a balancer's own health check) and families other than TCP over
//       IPv4/IPv6 carry no client address: the connection's own peer stands.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/ip/address.hpp>

namespace pggw::proxy_protocol {

// --proxy-protocol: which versions a trusted source must send (auto: either, told apart by
// their first bytes).
enum class Mode { off, v1, v2, any };
std::string_view mode_name(Mode m);
bool parse_mode(std::string_view s, Mode& out);

// Why a header was refused: the `result` label of pggw_proxy_protocol_headers_total.
enum class Error {
    none,
    missing,    // the first bytes are not a PROXY header (of an accepted version)
    malformed,  // a header that breaks the spec
    oversized,  // longer than the spec allows (v1: 107 bytes; v2: kMaxV2Length)
};
std::string_view error_name(Error e);

// v2's length field is 16 bits; real balancers send well under this (AWS adds a few TLVs).
constexpr std::size_t kMaxV2Length = 1024;
constexpr std::size_t kMaxV1Length = 107;

struct Result {
    enum Status { need_more, complete, invalid } status = need_more;
    std::size_t consumed = 0;  // complete: header bytes
    int version = 0;           // 1 or 2
    // complete: whether the header names the client (PROXY TCP4/TCP6); false for LOCAL and
    // UNKNOWN, where the connection's own peer address stands.
    bool has_address = false;
    boost::asio::ip::address source;
    std::uint16_t source_port = 0;
    Error error = Error::none;  // invalid
    std::string detail;         // invalid: for the log
};

// mode must not be off. Never reads beyond input.
Result decode(std::span<const std::uint8_t> input, Mode mode);

}  // namespace pggw::proxy_protocol
