// Why pggw refused a client with an ErrorResponse: one enum, one name table. The names are the
// `reason` label of pggw_client_refusals_total and appear in the session's close reason.
#pragma once

#include <string_view>

namespace pggw {

enum class Refusal {
    protocol_violation,       // unsupported protocol version, a second SSLRequest, ...
    tls_required,             // plaintext StartupMessage while --client-tls require or stronger
    certificate_cn_mismatch,  // --client-tls verify-full: CN is not the user name
    too_many_connections,     // --max-connections reached
    server_unreachable,       // the server leg could not be opened
    server_tls,               // the server leg's TLS policy failed
    channel_binding,  // SCRAM-SHA-256-PLUS chosen where it cannot pass (channel_binding.hpp)
    auth_failed,      // --auth-file: wrong password (or a user refused by --auth-unknown-users)
    server_auth,      // --auth-file: the server refused pggw's login on the user's behalf
};

constexpr std::string_view refusal_name(Refusal r) {
    switch (r) {
        case Refusal::protocol_violation:
            return "protocol_violation";
        case Refusal::tls_required:
            return "tls_required";
        case Refusal::certificate_cn_mismatch:
            return "certificate_cn_mismatch";
        case Refusal::too_many_connections:
            return "too_many_connections";
        case Refusal::server_unreachable:
            return "server_unreachable";
        case Refusal::server_tls:
            return "server_tls";
        case Refusal::channel_binding:
            return "channel_binding";
        case Refusal::auth_failed:
            return "auth_failed";
        case Refusal::server_auth:
            return "server_auth";
    }
    return "other";
}

}  // namespace pggw
