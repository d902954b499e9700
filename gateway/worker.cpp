#include "gateway/worker.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include "gateway/session.hpp"

namespace pggw {

namespace {

void set_int_option(int fd, int level, int name, int value) {
    ::setsockopt(fd, level, name, &value, sizeof(value));
}

// SO_REUSEPORT: every worker binds its own socket to the same address and the kernel spreads
// new connections over them, so accepting takes no lock shared between workers.
std::unique_ptr<tcp::acceptor> bind_listener(asio::io_context& io, const HostPort& hp) {
    tcp::endpoint ep(asio::ip::make_address(hp.host), hp.port);
    auto a = std::make_unique<tcp::acceptor>(io);
    a->open(ep.protocol());
    a->set_option(tcp::acceptor::reuse_address(true));
    set_int_option(a->native_handle(), SOL_SOCKET, SO_REUSEPORT, 1);
    if (ep.address().is_v6()) set_int_option(a->native_handle(), IPPROTO_IPV6, IPV6_V6ONLY, 1);
    a->bind(ep);
    a->listen(asio::socket_base::max_listen_connections);
    return a;
}

bool is_resource_exhaustion(const error_code& ec) {
    return ec == asio::error::no_descriptors || ec.value() == ENFILE || ec.value() == ENOBUFS ||
           ec.value() == ENOMEM;
}

}  // namespace

void tune_socket(tcp::socket& s) {
    int fd = s.native_handle();
    set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    set_int_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    set_int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE, 60);
    set_int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL, 10);
    set_int_option(fd, IPPROTO_TCP, TCP_KEEPCNT, 6);
}

Worker::Worker(Shared& shared, std::size_t index, TlsContexts tls)
    : shared_(shared),
      index_(index),
      tls_(std::move(tls)),
      metrics_(shared.metrics->worker(index)) {}

Worker::~Worker() {
    stop_and_join();
}

void Worker::start() {
    for (const auto& hp : shared_.cfg.listen) acceptors_.push_back(bind_listener(io_, hp));
    for (auto& a : acceptors_) {
        asio::co_spawn(io_, accept_loop(*a), [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);  // a bug: let it be seen
        });
    }
    thread_ = std::thread([this] {
        pthread_setname_np(pthread_self(), ("pggw-w" + std::to_string(index_)).c_str());
        io_.run();
    });
}

void Worker::begin_drain() {
    asio::post(io_, [this] {
        for (auto& a : acceptors_) {
            error_code ignored;
            a->close(ignored);
        }
        draining_ = true;
        drain_signal_.cancel();
    });
}

void Worker::set_tls(TlsContexts tls) {
    asio::post(io_, [this, tls = std::move(tls)]() mutable { tls_ = std::move(tls); });
}

void Worker::stop_and_join() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
}

awaitable<void> Worker::accept_loop(tcp::acceptor& acceptor) {
    asio::steady_timer backoff(io_);
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        if (ec) {
            // Out of descriptors or memory: the pending connection stays in the backlog.
            // Back off instead of spinning; sessions ending will free descriptors.
            if (is_resource_exhaustion(ec))
                spdlog::warn("worker {}: accept failed: {} (open sessions: {}); retrying in 100 ms",
                             index_, ec.message(), live_sessions());
            else
                spdlog::warn("worker {}: accept failed: {}", index_, ec.message());
            backoff.expires_after(std::chrono::milliseconds(100));
            co_await backoff.async_wait(use_nothrow);
            continue;
        }
        metrics_.connection_accepted();
        tune_socket(socket);
        start_session(*this, std::move(socket));
    }
}

}  // namespace pggw
