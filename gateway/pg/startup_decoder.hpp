// A pure decoder for the packets a client sends before the session starts (the server side of
// README.SSL): SSLRequest, GSSENCRequest, CancelRequest, StartupMessage, or the first byte of a
// direct TLS ClientHello. It owns no I/O: give it the bytes buffered so far, it answers
// need_more, a packet (and how many bytes it used), or invalid. Length caps are checked before
// anything else, so an oversized packet is refused without waiting for its body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "gateway/pg/startup_kind.hpp"

namespace pggw {

struct StartupPacket {
    StartupKind kind{};
    std::uint32_t code = 0;               // protocol version or request code
    std::span<const std::uint8_t> bytes;  // the whole packet, length word included
    std::string user;                     // StartupMessage only
    std::string database;                 // StartupMessage only (defaults to user, as libpq)
    std::string application_name;         // StartupMessage only
};

struct DecodeResult {
    enum Status { need_more, complete, invalid } status = need_more;
    std::size_t consumed = 0;  // bytes of the input the packet used (status == complete)
    StartupPacket packet;      // valid when status == complete; spans point into the input
    std::string error;         // status == invalid: why, for the log line
    // status == invalid because of the protocol version (PostgreSQL answers it with 0A000).
    bool unsupported_protocol = false;
};

// first_packet: whether this is the first thing on the connection (direct TLS is only
// recognised there). Never reads beyond input.
DecodeResult decode_startup(std::span<const std::uint8_t> input, bool first_packet);

}  // namespace pggw
