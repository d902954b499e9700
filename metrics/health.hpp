// Liveness of the worker event loops, for /healthz.
//
// Chosen mechanism: probing. The gateway calls add_worker(worker_io_context.get_executor())
// once per worker before the admin server starts; nothing else. Each /healthz request posts a
// no-op to every registered executor and waits up to a timeout (1 s) for all of them to run:
// a worker stuck in a long handler, or whose io_context has stopped, makes /healthz answer 503.
// During a drain the loops keep running, so /healthz stays 200.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <mutex>
#include <vector>

#include "metrics/metrics.hpp"

namespace pggw::metrics {

class Health {
  public:
    void add_worker(boost::asio::any_io_executor ex);

    // True when every worker answered within `timeout`. Runs on the caller's executor, which
    // must be driven by a single thread (the admin server's io_context).
    boost::asio::awaitable<bool> check(
        std::chrono::steady_clock::duration timeout = std::chrono::seconds(1));

  private:
    std::mutex mutex_;
    std::vector<boost::asio::any_io_executor> executors_;
};

}  // namespace pggw::metrics
