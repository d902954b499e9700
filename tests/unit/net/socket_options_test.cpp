// Socket options: an accepted socket inherits TCP_NODELAY and keepalive from its listener
// (bind_reuseport_listener), which is why the accept loop sets none itself.
#include "gateway/net/socket_options.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

namespace pggw {
namespace {

int int_option(int fd, int level, int name) {
    int value = -1;
    socklen_t len = sizeof value;
    EXPECT_EQ(::getsockopt(fd, level, name, &value, &len), 0);
    return value;
}

void expect_tuned(int fd) {
    EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE), 60);
    EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL), 10);
    EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_KEEPCNT), 6);
}

TEST(SocketOptions, AcceptedSocketsInheritTheListenersOptions) {
    asio::io_context io;
    auto listener =
        bind_reuseport_listener(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket client(io);
    client.connect(listener->local_endpoint());
    tcp::socket accepted = listener->accept();
    expect_tuned(accepted.native_handle());
    // A plain connected socket has none of them until tune_socket().
    EXPECT_EQ(int_option(client.native_handle(), SOL_SOCKET, SO_KEEPALIVE), 0);
    tune_socket(client);
    expect_tuned(client.native_handle());
}

}  // namespace
}  // namespace pggw
