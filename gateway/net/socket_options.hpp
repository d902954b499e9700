// Socket options pggw sets: on listeners (SO_REUSEPORT, one per worker, and the TCP options
// their accepted sockets inherit) and on every connected socket (the server leg).
#pragma once

#include <memory>

#include "gateway/net/asio.hpp"

namespace pggw {

// Sets TCP_NODELAY and keepalive (idle 60 s, then every 10 s, 6 probes): cloud load balancers
// drop flows that are idle for a few minutes. For connected sockets (the server leg); accepted
// ones inherit the same options from their listener.
void tune_socket(tcp::socket& s);

// A listening socket with SO_REUSEPORT: every worker binds its own socket to the same address
// and the kernel spreads new connections over them, so accepting takes no lock shared between
// workers. Port 0 binds a port the kernel chooses (local_endpoint() tells which); the kernel
// never hands out a port another SO_REUSEPORT socket holds. Accepted sockets come with
// tune_socket()'s options already set. Throws on failure.
std::unique_ptr<tcp::acceptor> bind_reuseport_listener(asio::io_context& io,
                                                       const tcp::endpoint& ep);

}  // namespace pggw
