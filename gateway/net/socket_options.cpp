#include "gateway/net/socket_options.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace pggw {

namespace {

void set_int_option(int fd, int level, int name, int value) {
    ::setsockopt(fd, level, name, &value, sizeof(value));
}

void set_tcp_options(int fd) {
    set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    set_int_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    set_int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE, 60);
    set_int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL, 10);
    set_int_option(fd, IPPROTO_TCP, TCP_KEEPCNT, 6);
}

}  // namespace

void tune_socket(tcp::socket& s) {
    set_tcp_options(s.native_handle());
}

std::unique_ptr<tcp::acceptor> bind_reuseport_listener(asio::io_context& io,
                                                       const tcp::endpoint& ep) {
    auto a = std::make_unique<tcp::acceptor>(io);
    a->open(ep.protocol());
    a->set_option(tcp::acceptor::reuse_address(true));
    set_int_option(a->native_handle(), SOL_SOCKET, SO_REUSEPORT, 1);
    if (ep.address().is_v6()) set_int_option(a->native_handle(), IPPROTO_IPV6, IPV6_V6ONLY, 1);
    // Linux copies the listening socket's options into every connection it accepts (the
    // keepalive timer is started for it too): set once here, not five setsockopt() calls per
    // accepted connection.
    set_tcp_options(a->native_handle());
    a->bind(ep);
    a->listen(asio::socket_base::max_listen_connections);
    return a;
}

}  // namespace pggw
