// The server leg: a TCP connection to PostgreSQL (a --server name through the worker's
// ResolverCache: a Kubernetes Service or failover DNS works, and a slow DNS server cannot hold
// a session beyond its deadline), with the client side of README.SSL's
// negotiation when --server-tls asks for it (libpq's sslmode semantics; see
// pg/server_negotiation.hpp for what each mode does).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gateway/net/asio.hpp"
#include "gateway/net/stream.hpp"
#include "gateway/pg/protocol.hpp"
#include "gateway/pg/refusal.hpp"
#include "gateway/session/session_env.hpp"

namespace pggw {

// Why a server connection failed: the `reason` label of pggw_server_connect_errors_total.
enum class ConnectError {
    none,
    resolve,            // the --server name did not resolve
    refused,            // connection refused
    unreachable,        // any other connect error
    write,              // sending the SSLRequest or the client's packet failed
    tls_config,         // no server TLS context
    ssl_negotiation,    // the server closed or answered nonsense to the SSLRequest
    tls_handshake,      // the TLS handshake failed (or unencrypted bytes behind 'S')
    tls_not_supported,  // 'N' where --server-tls requires TLS
    ssl_request_error,  // 'E' where --server-tls requires TLS
    timeout,            // --server-connect-timeout
};
std::string_view connect_error_name(ConnectError e);

struct ServerConnection {
    std::optional<Stream> stream;  // set on success; first_packet has been sent on it
    // Server bytes already read (allow mode reads the first reply to the StartupMessage): the
    // session relays them to the client before anything else.
    std::vector<std::uint8_t> pending;
    // False when the server leg is TLS and pggw's client-leg certificate is not the server's:
    // a client choosing SCRAM-SHA-256-PLUS cannot succeed (see channel_binding.hpp).
    bool channel_binding_ok = true;

    // On failure. log_error is for the log only: it may name the server's address. What the
    // client is told never does.
    std::string log_error;
    ConnectError error = ConnectError::none;
    std::string_view client_sqlstate = pg::sqlstate::connection_failure;
    std::string client_message = "pggw could not connect to the PostgreSQL server";
    Refusal refusal = Refusal::server_unreachable;
};

// Connects within --server-connect-timeout, negotiates TLS per --server-tls and sends
// first_packet (the client's StartupMessage or CancelRequest) to the server. Counts
// pggw_server_connect_* and the server leg's handshake.
awaitable<ServerConnection> connect_server(SessionEnv& env,
                                           std::span<const std::uint8_t> first_packet);

}  // namespace pggw
