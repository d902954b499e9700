// The admin HTTP endpoint (Boost.Beast): GET /metrics, /healthz, /readyz.
//
//   /metrics  200, text/plain; version=0.0.4 (Registry::scrape)
//   /healthz  200 while every worker registered with Health answers within 1 s, else 503;
//             stays 200 during a drain
//   /readyz   200 when registry.readiness().ready && !registry.readiness().draining, else 503
//   other     404; a method other than GET/HEAD: 405
// HTTP/1.1 keep-alive; requests are bounded (8 KiB of headers, 1 KiB of body).
//
// Probes must get through while someone holds connections open (a crowd of idle clients, a
// slow scraper, a port scan): a request must arrive whole within 5 s of the connection
// opening or of the previous response (else the connection is closed), a response must be
// taken within 10 s, and connections are capped per source address (16) and in all (256), so
// one source can hold at most a sixteenth of the slots. A connection over either cap is
// closed as soon as it is accepted. The kubelet opens a fresh connection per probe, Prometheus
// keeps one per target: both far below the caps.
//
// Wiring (gateway/app/gateway.cpp): the admin server runs on the main thread's io_context,
// the one that also waits for signals; the workers have their own.
//   metrics::Health health;
//   for (auto& w : workers) health.add_worker(w.io().get_executor());
//   metrics::AdminServer admin(main_io, endpoint_of("--metrics-listen"), registry, health);
//   admin.start();       // throws std::system_error if the address cannot be bound
//   main_io.run();       // ... until drained: admin.stop(), then the workers stop
// registry and health must outlive the io_context's run. The io_context must be driven by a
// single thread (Health::check counts answers on it without a lock).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <memory>

#include "metrics/health.hpp"
#include "metrics/metrics.hpp"

namespace pggw::metrics {

struct AdminOptions {
    // To receive one whole request, from the connection's start or the previous response.
    std::chrono::steady_clock::duration request_timeout = std::chrono::seconds(5);
    // To send one response.
    std::chrono::steady_clock::duration write_timeout = std::chrono::seconds(10);
    std::chrono::steady_clock::duration health_timeout = std::chrono::seconds(1);
    std::size_t header_limit = 8 * 1024;
    std::size_t body_limit = 1024;
    std::size_t max_connections = 256;
    std::size_t max_connections_per_source = 16;
};

class AdminServer {
  public:
    AdminServer(boost::asio::io_context& ioc, boost::asio::ip::tcp::endpoint endpoint,
                Registry& registry, Health& health, AdminOptions options = {});
    ~AdminServer();
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    // Binds and listens (logs and throws std::system_error on failure), then accepts on the
    // io_context. Callable from any thread before or while the io_context runs.
    void start();
    // Closes the listener and every open connection (asynchronously, on the io_context).
    void stop();
    // The bound address (the real port when started on port 0).
    boost::asio::ip::tcp::endpoint local_endpoint() const;

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace pggw::metrics
