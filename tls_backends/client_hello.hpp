// A pre-parser for the ClientHello: what a server can learn from the first handshake record
// before its TLS library reads it. The wolfSSL engine uses it to refuse, as BoringSSL does, a
// client with no common version or group, or without ALPN where direct TLS requires it
// (wolfssl_engine.cpp, early()). Pure: bytes in, an answer out; no TLS library.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace pggw::tls {

struct ClientHello {
    bool alpn = false;                    // the client offered ALPN
    std::vector<std::uint16_t> groups;    // supported_groups, empty if absent
    std::vector<std::uint16_t> versions;  // supported_versions, empty if absent
    std::uint16_t legacy_version = 0;
};

enum class HelloParse {
    ok,         // hello is filled in
    need_more,  // the first record is not complete yet: feed more input, then call again
    unparsed,   // not a ClientHello in one record (not TLS, fragmented, malformed, truncated
                // by EOF): leave it to the library
};

// in: the peer's first bytes, from the start of the stream; eof: no more will come.
HelloParse parse_client_hello(std::span<const std::uint8_t> in, bool eof, ClientHello& hello);

}  // namespace pggw::tls
