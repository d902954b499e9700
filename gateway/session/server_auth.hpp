// The server leg of SCRAM in the gateway (--auth-file): pggw logs in to PostgreSQL on behalf
// of a client it has authenticated, with the ClientKey recovered from the client's proof (or
// the plaintext password of the auth file). SCRAM-SHA-256-PLUS bound to PostgreSQL's
// certificate when the server leg is TLS and PostgreSQL offers it, SCRAM-SHA-256 otherwise;
// PostgreSQL's server signature is checked with ServerKey, so pggw knows it reached the real
// server before anything is relayed. What follows the server's SASLFinal (AuthenticationOk,
// ParameterStatus, BackendKeyData, ReadyForQuery) is relayed unchanged.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/auth/scram_client.hpp"
#include "gateway/net/stream.hpp"
#include "gateway/pg/refusal.hpp"
#include "gateway/session/session_env.hpp"
#include "gateway/session/session_record.hpp"

namespace pggw {

struct ServerAuthOutcome {
    bool ok = false;
    // ok: server bytes from the message after its SASLFinal on (AuthenticationOk first; or,
    // when the server asked for no password, from its AuthenticationOk), for the relay.
    std::vector<std::uint8_t> pending;
    // What the server leg used: a SCRAM mechanism, "password", "trust" (none asked), or
    // "none" (failed before choosing one).
    std::string_view mechanism = "none";
    // !ok: what the client is sent (the server's own ErrorResponse, relayed, or pggw's), and
    // the log line's text.
    std::vector<std::uint8_t> client_error;
    Refusal refusal = Refusal::server_auth;
    std::string log_error;
};

// Runs the server's side of authentication on a connection whose StartupMessage is sent.
// pending: server bytes already read by the connect (--server-tls allow).
awaitable<ServerAuthOutcome> authenticate_server(SessionEnv& env, SessionRecord& rec,
                                                 Stream& server,
                                                 std::span<const std::uint8_t> pending,
                                                 auth::ScramCredentials credentials,
                                                 std::string_view user);

}  // namespace pggw
