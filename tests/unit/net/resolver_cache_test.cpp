// ResolverCache against the system resolver, with "localhost" (answered from /etc/hosts: no
// network needed).
#include "gateway/net/resolver_cache.hpp"

#include <gtest/gtest.h>

namespace pggw {
namespace {

// Runs fn(cache) as a coroutine on a fresh loop until it returns. The cache is made after the
// loop and destroyed before it, as in a worker (its entries hold timers of the loop: a cache
// that outlived its io_context would destroy them after their service).
template <class F>
void run(F fn) {
    asio::io_context io;
    ResolverCache cache;
    bool done = false;
    asio::co_spawn(io, fn(cache), [&](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
        done = true;
    });
    io.run();
    ASSERT_TRUE(done);
}

TEST(ResolverCache, ConcurrentSessionsShareOneLookupAndReuseItsAnswer) {
    run([](ResolverCache& c) -> awaitable<void> {
        auto [a, b] = co_await (c.resolve("localhost", 5432) && c.resolve("localhost", 5432));
        EXPECT_FALSE(a.error) << a.error.message();
        EXPECT_FALSE(b.error) << b.error.message();
        EXPECT_FALSE(a.endpoints.empty());
        if (a.endpoints.empty()) co_return;
        EXPECT_EQ(a.endpoints, b.endpoints);
        for (const auto& ep : a.endpoints) {
            EXPECT_EQ(ep.port(), 5432);
            EXPECT_TRUE(ep.address().is_loopback()) << ep.address().to_string();
        }
        EXPECT_EQ(c.lookups(), 1u);
        auto again = co_await c.resolve("localhost", 5432);  // fresh: no lookup
        EXPECT_EQ(again.endpoints, a.endpoints);
        EXPECT_EQ(c.lookups(), 1u);
        auto other = co_await c.resolve("localhost", 6432);  // another port is another name
        EXPECT_FALSE(other.endpoints.empty());
        if (!other.endpoints.empty()) {
            EXPECT_EQ(other.endpoints.front().port(), 6432);
        }
        EXPECT_EQ(c.lookups(), 2u);
    });
}

TEST(ResolverCache, ForgetMakesTheNextSessionWaitForAFreshLookup) {
    run([](ResolverCache& c) -> awaitable<void> {
        auto first = co_await c.resolve("localhost", 5432);
        EXPECT_FALSE(first.error);
        c.forget("localhost", 5432);
        auto second = co_await c.resolve("localhost", 5432);
        EXPECT_FALSE(second.error);
        EXPECT_EQ(second.endpoints, first.endpoints);
        EXPECT_EQ(c.lookups(), 2u);
        c.forget("nowhere", 1);  // unknown names: nothing to forget
        EXPECT_EQ(c.lookups(), 2u);
    });
}

// A session whose deadline comes first stops waiting; the lookup finishes in the background
// and serves the next session without another lookup.
TEST(ResolverCache, ADeadlineEndsTheWaitNotTheLookup) {
    run([](ResolverCache& c) -> awaitable<void> {
        auto r = co_await (c.resolve("localhost", 5432) || sleep_for(std::chrono::seconds(0)));
        if (r.index() == 0) {
            // The lookup won the race (rare): it must then be a complete answer.
            EXPECT_FALSE(std::get<0>(r).error);
        }
        auto later = co_await c.resolve("localhost", 5432);
        EXPECT_FALSE(later.error) << later.error.message();
        EXPECT_FALSE(later.endpoints.empty());
        EXPECT_EQ(c.lookups(), 1u);
    });
}

}  // namespace
}  // namespace pggw
