// A worker: one thread, one io_context, one SO_REUSEPORT listening socket per --listen
// address, and the sessions the kernel hands it. Workers share nothing on the per-connection
// path but the connection count (one atomic add per session) and read-only settings.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>

#include "gateway/asio.hpp"
#include "gateway/config.hpp"
#include "metrics/metrics.hpp"
#include "tls_backends/tls.hpp"

namespace pggw {

// TLS state of one generation of certificates; replaced whole on SIGHUP.
struct TlsContexts {
    std::shared_ptr<tls::Context> client;  // null when --client-tls disable
    std::shared_ptr<tls::Context> server;  // null when --server-tls disable
};

// Process-wide, set up before workers start; read-only afterwards except the atomics.
struct Shared {
    Config cfg;
    TlsMode client_tls = TlsMode::disable;
    unsigned max_connections = 0;
    tls::Backend* backend = nullptr;  // null only if no TLS is configured on either leg
    metrics::Registry* metrics = nullptr;
    std::atomic<unsigned> connections{0};
    std::atomic<bool> draining{false};
};

class Worker {
  public:
    Worker(Shared& shared, std::size_t index, TlsContexts tls);
    ~Worker();

    // Binds this worker's listening sockets (throws on failure), then starts the thread.
    void start();
    // Stops accepting and tells every session to end at its next idle moment (between
    // transactions). Safe from any thread.
    void begin_drain();
    // Worker thread only: whether a drain started, and a timer that never expires but is
    // cancelled when it does, for sessions to wait on.
    bool draining() const { return draining_; }
    asio::steady_timer& drain_signal() { return drain_signal_; }
    // Replaces the TLS contexts for new sessions. Safe from any thread.
    void set_tls(TlsContexts tls);
    // Ends the event loop (cancels remaining sessions) and joins the thread.
    void stop_and_join();

    asio::io_context& io() { return io_; }
    std::size_t index() const { return index_; }
    Shared& shared() { return shared_; }
    metrics::WorkerMetrics& metrics() { return metrics_; }
    const TlsContexts& tls() const { return tls_; }  // worker thread only
    std::size_t live_sessions() const { return live_sessions_.load(std::memory_order_relaxed); }

    void session_opened() { live_sessions_.fetch_add(1, std::memory_order_relaxed); }
    void session_closed() { live_sessions_.fetch_sub(1, std::memory_order_relaxed); }

  private:
    awaitable<void> accept_loop(tcp::acceptor& acceptor);

    Shared& shared_;
    std::size_t index_;
    asio::io_context io_{1};  // one thread: Asio may skip locking
    // Keeps the loop running with no listener and no session (during a drain), so that
    // /healthz's probe still finds it answering.
    asio::executor_work_guard<asio::io_context::executor_type> keep_running_{io_.get_executor()};
    std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
    TlsContexts tls_;
    metrics::WorkerMetrics& metrics_;
    bool draining_ = false;
    asio::steady_timer drain_signal_{io_, asio::steady_timer::time_point::max()};
    std::atomic<std::size_t> live_sessions_{0};
    std::thread thread_;
};

// Sets TCP_NODELAY and keepalive (idle 60 s, then every 10 s, 6 probes): cloud load balancers
// drop flows that are idle for a few minutes.
void tune_socket(tcp::socket& s);

}  // namespace pggw
