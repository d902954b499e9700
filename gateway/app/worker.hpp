// A worker: one thread, one io_context, one SO_REUSEPORT listening socket per --listen
// address, and the sessions the kernel hands it. The worker owns the loop and the listeners;
// what its sessions use (settings, TLS contexts, metrics shard, drain) it hands them as one
// SessionEnv. Workers share nothing on the per-connection path but the connection budget
// (one atomic add per session) and read-only settings.
#pragma once

#include <atomic>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>

#include "gateway/net/asio.hpp"
#include "gateway/session/session_env.hpp"

namespace pggw {

// Process-wide, set up before workers start; read-only afterwards but for the budget.
struct Shared {
    Config cfg;
    TlsMode client_tls = TlsMode::disable;
    std::string_view library = "other";   // the loaded TLS library's name ("other": none)
    const tls::Crypto* crypto = nullptr;  // the loaded TLS library's (null: none loaded)
    metrics::Registry* metrics = nullptr;
    ConnectionBudget* connections = nullptr;
    Admission* admission = nullptr;
};

class Worker {
  public:
    Worker(Shared& shared, std::size_t index, TlsContexts tls,
           std::shared_ptr<const auth::AuthTable> auth);
    ~Worker();

    // Binds this worker's listening sockets, one per endpoint (throws on failure), then starts
    // the thread.
    void start(const std::vector<tcp::endpoint>& listen);
    // The addresses bound (with the kernel's port where 0 was asked for).
    std::vector<tcp::endpoint> local_endpoints() const;
    // Stops accepting and tells every session to end at its next idle moment (between
    // transactions). Safe from any thread.
    void begin_drain();
    // Closes this worker's listeners, on its thread; the future is ready once they are closed.
    std::future<void> close_listeners();
    // The drain timeout: every session still open ends now (FATAL 57P01 where the stream
    // allows, then close). Implies begin_drain(). Safe from any thread.
    void force_drain();
    // Replaces the TLS contexts for new sessions. Safe from any thread.
    void set_tls(TlsContexts tls);
    // Replaces --auth-file's users for new logins. Safe from any thread.
    void set_auth(std::shared_ptr<const auth::AuthTable> auth);
    // Ends the event loop (cancels remaining sessions) and joins the thread.
    void stop_and_join();

    asio::io_context& io() { return io_; }
    std::size_t live_sessions() const { return live_sessions_.load(std::memory_order_relaxed); }

  private:
    awaitable<void> accept_loop(tcp::acceptor& acceptor);

    std::size_t index_;
    asio::io_context io_{1};  // one thread: Asio may skip locking
    // Keeps the loop running with no listener and no session (during a drain), so that
    // /healthz's probe still finds it answering.
    asio::executor_work_guard<asio::io_context::executor_type> keep_running_{io_.get_executor()};
    std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
    TlsContexts tls_;
    std::shared_ptr<const auth::AuthTable> auth_;
    DrainSignal drain_{io_};
    std::atomic<std::size_t> live_sessions_{0};
    HandshakeGate handshakes_;
    RejectionLog rejections_;
    SessionEnv env_;
    std::thread thread_;
};

}  // namespace pggw
