#include "metrics/health.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>

namespace pggw::metrics {

namespace asio = boost::asio;

void Health::add_worker(asio::any_io_executor ex) {
    std::lock_guard lock(mutex_);
    executors_.push_back(std::move(ex));
}

asio::awaitable<bool> Health::check(std::chrono::steady_clock::duration timeout) {
    std::vector<asio::any_io_executor> executors;
    {
        std::lock_guard lock(mutex_);
        executors = executors_;
    }
    if (executors.empty()) co_return true;

    // Every answer is counted on our own (single-threaded) executor; the last one cancels the
    // timer. State is shared: late answers may arrive after this coroutine has returned.
    struct Probe {
        explicit Probe(asio::any_io_executor ex, std::size_t n) : timer(ex), pending(n) {}
        asio::steady_timer timer;
        std::size_t pending;
    };
    const auto self = co_await asio::this_coro::executor;
    auto probe = std::make_shared<Probe>(self, executors.size());
    probe->timer.expires_after(timeout);
    for (auto& ex : executors) {
        // The worker hands its reference over to the admin executor, so the Probe (and its
        // timer) is always destroyed on the admin thread.
        asio::post(ex, [probe, self]() mutable {
            asio::post(self, [probe = std::move(probe)] {
                if (probe->pending > 0 && --probe->pending == 0) probe->timer.cancel();
            });
        });
    }
    co_await probe->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return probe->pending == 0;
}

}  // namespace pggw::metrics
