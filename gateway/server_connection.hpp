// The server leg: a TCP connection to PostgreSQL (the --backend name resolved anew for every
// session, so a Kubernetes Service or failover DNS works), with the client side of README.SSL's
// negotiation when --server-tls asks for it (libpq's sslmode semantics; see
// server_negotiation.hpp for what each mode does).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gateway/asio.hpp"
#include "gateway/protocol.hpp"
#include "gateway/stream.hpp"

namespace pggw {

class Worker;

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
    std::string metric_reason;  // pggw_server_connect_errors_total{reason}
    std::string_view client_sqlstate = pg::sqlstate::connection_failure;
    std::string client_message = "pggw could not connect to the PostgreSQL server";
    std::string refuse_reason = "server_unreachable";  // pggw_client_refusals_total{reason}
};

// Connects within --server-connect-timeout, negotiates TLS per --server-tls and sends
// first_packet (the client's StartupMessage or CancelRequest) to the server.
awaitable<ServerConnection> connect_server(Worker& w, std::span<const std::uint8_t> first_packet);

}  // namespace pggw
