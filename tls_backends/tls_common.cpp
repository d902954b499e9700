// Code shared by every backend module and by the gateway: compiled into each of them.
#include "tls_backends/tls.hpp"

#include <algorithm>
#include <cstring>

namespace pggw::tls {

std::string_view failure_name(Failure f) {
    switch (f) {
        case Failure::none:
            return "none";
        case Failure::unknown_ca:
            return "unknown_ca";
        case Failure::bad_certificate:
            return "bad_certificate";
        case Failure::certificate_expired:
            return "certificate_expired";
        case Failure::hostname_mismatch:
            return "hostname_mismatch";
        case Failure::no_alpn:
            return "no_alpn";
        case Failure::protocol_version:
            return "protocol_version";
        case Failure::handshake_failure:
            return "handshake_failure";
        case Failure::not_tls:
            return "not_tls";
        case Failure::eof:
            return "eof";
        case Failure::other:
            return "other";
    }
    return "other";
}

void Engine::feed(std::span<const std::uint8_t> data) {
    while (!data.empty()) {
        auto space = input_space();
        std::size_t n = std::min(space.size(), data.size());
        if (n == 0) return;  // engine full: caller must run an operation first
        std::memcpy(space.data(), data.data(), n);
        commit_input(n);
        data = data.subspan(n);
    }
}

}  // namespace pggw::tls
