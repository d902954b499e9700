// One client session: negotiate the startup (SSLRequest / GSSENCRequest / direct TLS /
// CancelRequest / StartupMessage) as PostgreSQL does, connect to the server, then relay both
// directions until either ends. One coroutine per session, on its worker's thread.
#pragma once

#include "gateway/asio.hpp"

namespace pggw {

class Worker;

// Spawns the session coroutine on the worker's io_context; it owns the socket from here on.
void start_session(Worker& w, tcp::socket socket);

}  // namespace pggw
