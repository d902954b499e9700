// One client session, one coroutine on its worker's thread: negotiate the startup
// (pg/client_negotiation.hpp, TLS through leg_tls.hpp) within --handshake-timeout, then
// forward a CancelRequest, or open the server leg (server_connection.hpp) and relay
// (relay.hpp) until either side ends; then one log line (session_record.hpp). From the relay's
// start the session is owned by its relay, and its coroutine has returned.
#pragma once

#include "gateway/net/asio.hpp"
#include "gateway/session/session_env.hpp"

namespace pggw {

// Spawns the session coroutine on the socket's executor (the worker's io_context); it owns
// the socket from here on. peer: the client's address as accept(2) returned it. env outlives
// every session it started.
void start_session(SessionEnv& env, tcp::socket socket, const tcp::endpoint& peer);

}  // namespace pggw
