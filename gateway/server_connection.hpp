// The server leg: a TCP connection to PostgreSQL (the --backend name resolved anew for every
// session, so a Kubernetes Service or failover DNS works), with the client side of README.SSL's
// negotiation when --server-tls asks for it.
#pragma once

#include <optional>
#include <string>

#include "gateway/asio.hpp"
#include "gateway/stream.hpp"

namespace pggw {

class Worker;

struct ServerConnection {
    std::optional<Stream> stream;  // set on success
    std::string log_error;         // for the log only: may name the server's address
    std::string metric_reason;     // pggw_server_connect_errors_total{reason}
};

// Connects within --server-connect-timeout and negotiates TLS per --server-tls.
awaitable<ServerConnection> connect_server(Worker& w);

}  // namespace pggw
