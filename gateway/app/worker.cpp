#include "gateway/app/worker.hpp"

#include <spdlog/spdlog.h>

#include "gateway/net/socket_options.hpp"
#include "gateway/session/session.hpp"

namespace pggw {

namespace {

bool is_resource_exhaustion(const error_code& ec) {
    return ec == asio::error::no_descriptors || ec.value() == ENFILE || ec.value() == ENOBUFS ||
           ec.value() == ENOMEM;
}

}  // namespace

Worker::Worker(Shared& shared, std::size_t index, TlsContexts tls,
               std::shared_ptr<const auth::AuthTable> auth)
    : index_(index),
      tls_(std::move(tls)),
      auth_(std::move(auth)),
      handshakes_(shared.cfg.max_handshakes_per_worker),
      env_{shared.cfg,
           shared.client_tls,
           shared.library,
           tls_,
           shared.crypto,
           auth_,
           shared.metrics->worker(index),
           drain_,
           *shared.connections,
           *shared.admission,
           handshakes_,
           rejections_,
           live_sessions_,
           index} {}

Worker::~Worker() {
    stop_and_join();
}

void Worker::start(const std::vector<tcp::endpoint>& listen) {
    for (const auto& ep : listen) acceptors_.push_back(bind_reuseport_listener(io_, ep));
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

std::vector<tcp::endpoint> Worker::local_endpoints() const {
    std::vector<tcp::endpoint> out;
    for (const auto& a : acceptors_) out.push_back(a->local_endpoint());
    return out;
}

void Worker::begin_drain() {
    asio::post(io_, [this] {
        for (auto& a : acceptors_) {
            error_code ignored;
            a->close(ignored);
        }
        drain_.begin();
    });
}

std::future<void> Worker::close_listeners() {
    auto done = std::make_shared<std::promise<void>>();
    auto f = done->get_future();
    asio::post(io_, [this, done] {
        for (auto& a : acceptors_) {
            error_code ignored;
            a->close(ignored);
        }
        done->set_value();
    });
    return f;
}

void Worker::force_drain() {
    begin_drain();
    asio::post(io_, [this] { drain_.force(); });
}

void Worker::set_tls(TlsContexts tls) {
    asio::post(io_, [this, tls = std::move(tls)]() mutable { tls_ = std::move(tls); });
}

void Worker::set_auth(std::shared_ptr<const auth::AuthTable> auth) {
    asio::post(io_, [this, auth = std::move(auth)]() mutable { auth_ = std::move(auth); });
}

void Worker::stop_and_join() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
}

awaitable<void> Worker::accept_loop(tcp::acceptor& acceptor) {
    asio::steady_timer backoff(io_);
    tcp::endpoint peer;  // filled by accept(2) itself: no getpeername per connection
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(peer, use_nothrow);
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
        env_.metrics.connection_accepted();  // TCP options: inherited from the listener
        start_session(env_, std::move(socket), peer);
    }
}

}  // namespace pggw
