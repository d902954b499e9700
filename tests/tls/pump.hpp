// In-memory pump for TLS conformance tests: shuttles one engine's output() into the other's
// input, the way the socket driver would, but with no sockets (optionally a few bytes at a
// time, to split records at every possible boundary).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "tls_backends/tls.hpp"

namespace pggw::tls::test {

constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();

// Moves up to `limit` bytes of from.output() into to's input space; returns bytes moved.
inline std::size_t transfer(Engine& from, Engine& to, std::size_t limit = kAll) {
    std::size_t moved = 0;
    while (moved < limit) {
        auto out = from.output();
        if (out.empty()) break;
        auto space = to.input_space();
        std::size_t n = std::min({out.size(), space.size(), limit - moved});
        if (n == 0) break;
        std::memcpy(space.data(), out.data(), n);
        to.commit_input(n);
        from.consume_output(n);
        moved += n;
    }
    return moved;
}

struct HandshakeOutcome {
    Result server = Result::want_input;
    Result client = Result::want_input;
    bool ok() const { return server == Result::ok && client == Result::ok; }
};

// Drives both handshakes to their end, moving `piece` bytes per direction per step. When one
// side has failed and its last output (the alert) is delivered, the other side is told that the
// transport reached EOF, as a driver closing the socket would make it.
inline HandshakeOutcome run_handshake(Engine& server, Engine& client, std::size_t piece = kAll) {
    HandshakeOutcome r;
    bool server_eof = false, client_eof = false;
    for (long step = 0; step < 10'000'000; ++step) {
        if (r.client == Result::want_input) r.client = client.handshake();
        if (r.server == Result::want_input) r.server = server.handshake();
        std::size_t moved = transfer(client, server, piece) + transfer(server, client, piece);
        bool client_done = r.client != Result::want_input;
        bool server_done = r.server != Result::want_input;
        if (client_done && server_done) break;
        if (moved > 0) continue;
        if (server_done && r.server != Result::ok && !client_eof) {
            client.input_eof();
            client_eof = true;
        } else if (client_done && r.client != Result::ok && !server_eof) {
            server.input_eof();
            server_eof = true;
        } else {
            break;  // both wait for the other: a stall, reported as want_input
        }
    }
    return r;
}

struct Received {
    Result result = Result::want_input;  // last read() answer: want_input once all was read
    std::string data;
};

// Delivers from's output to `to` `piece` bytes at a time, reading all plaintext after each piece.
inline Received deliver(Engine& from, Engine& to, std::size_t piece = kAll) {
    Received got;
    std::vector<std::uint8_t> buf(16 * 1024 + 1);
    for (;;) {
        std::size_t moved = transfer(from, to, piece);
        for (;;) {
            std::size_t n = 0;
            got.result = to.read(buf, n);
            if (got.result != Result::ok) break;
            got.data.append(reinterpret_cast<const char*>(buf.data()), n);
        }
        if (got.result != Result::want_input) return got;
        if (moved == 0) return got;
    }
}

inline std::span<const std::uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// write() on `from`, then deliver(): the plaintext `to` read.
inline Received send(Engine& from, Engine& to, std::string_view data, std::size_t piece = kAll) {
    Result w = from.write(bytes(data));
    if (w != Result::ok) return {w, {}};
    return deliver(from, to, piece);
}

}  // namespace pggw::tls::test
