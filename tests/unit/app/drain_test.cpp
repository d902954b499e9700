// The process drain's steps (delay, drain, forced end) on a real io_context with short times,
// and the worker-side DrainSignal that sessions wait on.
#include "gateway/app/drain.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "gateway/session/session_env.hpp"

namespace pggw {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Recorder {
    std::size_t live = 0;
    Clock::time_point t0 = Clock::now();
    std::vector<std::pair<std::string, Clock::duration>> calls;
    bool force_ends_sessions = true;

    void note(std::string what) { calls.emplace_back(std::move(what), Clock::now() - t0); }
    DrainHooks hooks(asio::io_context& io) {
        return DrainHooks{
            .stop_accepting = [this] { note("stop_accepting"); },
            .force =
                [this] {
                    note("force");
                    if (force_ends_sessions) live = 0;
                },
            .live = [this] { return live; },
            .done =
                [this, &io] {
                    note("done");
                    io.stop();
                },
        };
    }
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& c : calls) out.push_back(c.first);
        return out;
    }
    Clock::duration at(const std::string& what) const {
        for (const auto& c : calls)
            if (c.first == what) return c.second;
        return Clock::duration::max();
    }
};

DrainSettings settings(Clock::duration delay, Clock::duration timeout,
                       Clock::duration grace = 200ms) {
    DrainSettings s;
    s.delay = delay;
    s.timeout = timeout;
    s.grace = grace;
    s.poll = 10ms;
    return s;
}

TEST(Drain, WithoutDelayOrSessionsEndsAtOnce) {
    asio::io_context io;
    Recorder r;
    Drain d(io, settings({}, 5s), r.hooks(io));
    d.start();
    io.run_for(2s);
    EXPECT_EQ(r.names(), (std::vector<std::string>{"stop_accepting", "done"}));
    EXPECT_LT(r.at("done"), 500ms);
    EXPECT_EQ(d.phase(), Drain::Phase::done);
}

TEST(Drain, DelayKeepsListenersOpenThenSessionsEndingEndIt) {
    asio::io_context io;
    Recorder r;
    Drain d(io, settings(300ms, 5s), r.hooks(io));
    d.start();
    EXPECT_EQ(d.phase(), Drain::Phase::delay);
    d.start();  // a repeat does nothing
    io.run_for(150ms);
    EXPECT_TRUE(r.calls.empty());  // no session yet, but the delay is served whole
    r.live = 2;
    io.run_for(300ms);
    ASSERT_EQ(r.names(), (std::vector<std::string>{"stop_accepting"}));
    EXPECT_GE(r.at("stop_accepting"), 300ms);
    EXPECT_EQ(d.phase(), Drain::Phase::draining);
    r.live = 0;
    io.run_for(2s);
    EXPECT_EQ(r.names(), (std::vector<std::string>{"stop_accepting", "done"}));
}

TEST(Drain, TimeoutForcesTheRemainingSessions) {
    asio::io_context io;
    Recorder r;
    r.live = 1;
    Drain d(io, settings(100ms, 300ms), r.hooks(io));
    d.start();
    io.run_for(3s);
    EXPECT_EQ(r.names(), (std::vector<std::string>{"stop_accepting", "force", "done"}));
    EXPECT_GE(r.at("force") - r.at("stop_accepting"), 300ms);  // the timeout follows the delay
    EXPECT_LT(r.at("force") - r.at("stop_accepting"), 600ms);
    EXPECT_LT(r.at("done") - r.at("force"), 150ms);  // sessions gone: no need for the grace
}

TEST(Drain, SessionsThatDoNotCloseAfterForceEndAfterTheGrace) {
    asio::io_context io;
    Recorder r;
    r.live = 1;
    r.force_ends_sessions = false;
    Drain d(io, settings({}, 100ms, 300ms), r.hooks(io));
    d.start();
    io.run_for(3s);
    EXPECT_EQ(r.names(), (std::vector<std::string>{"stop_accepting", "force", "done"}));
    EXPECT_GE(r.at("done") - r.at("force"), 300ms);
    EXPECT_LT(r.at("done") - r.at("force"), 800ms);
}

TEST(Drain, SettingsFromSeconds) {
    auto s = DrainSettings::from_seconds(0, 30);
    EXPECT_EQ(s.delay, Clock::duration::zero());
    EXPECT_EQ(s.timeout, std::chrono::duration_cast<Clock::duration>(30s));
    s = DrainSettings::from_seconds(2.5, 0.25);
    EXPECT_EQ(s.delay, std::chrono::duration_cast<Clock::duration>(2500ms));
    EXPECT_EQ(s.timeout, std::chrono::duration_cast<Clock::duration>(250ms));
}

// ---- DrainSignal ----

TEST(DrainSignal, ForceWakesBothWaitsAndImpliesBegin) {
    asio::io_context io;
    DrainSignal drain(io);
    int woke_begin = 0, woke_force = 0;
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
            co_await drain.wait();
            ++woke_begin;
        },
        asio::detached);
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
            co_await drain.wait_forced();
            ++woke_force;
        },
        asio::detached);
    io.run_for(50ms);
    EXPECT_EQ(woke_begin + woke_force, 0);
    io.restart();
    drain.force();
    EXPECT_TRUE(drain.active());
    EXPECT_TRUE(drain.forced());
    io.run_for(50ms);
    EXPECT_EQ(woke_begin, 1);
    EXPECT_EQ(woke_force, 1);
    // Once forced, a new wait completes at once.
    io.restart();
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
            co_await drain.wait_forced();
            ++woke_force;
        },
        asio::detached);
    io.run_for(50ms);
    EXPECT_EQ(woke_force, 2);
}

TEST(DrainSignal, BeginDoesNotForce) {
    asio::io_context io;
    DrainSignal drain(io);
    bool forced = false;
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
            co_await drain.wait_forced();
            forced = true;
        },
        asio::detached);
    drain.begin();
    io.run_for(50ms);
    EXPECT_TRUE(drain.active());
    EXPECT_FALSE(drain.forced());
    EXPECT_FALSE(forced);
    io.stop();
}

}  // namespace
}  // namespace pggw
