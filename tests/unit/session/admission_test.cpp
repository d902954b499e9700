// The overload caps' pure parts (per-source counts, token buckets with a fake clock, the
// rejection log's rate limit), Admission's tickets, and the handshake queue on a real
// io_context with short waits.
#include "gateway/session/admission.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pggw {
namespace {

using namespace std::chrono_literals;

asio::ip::address addr(const char* s) {
    return asio::ip::make_address(s);
}
SourceKey key(const char* s) {
    return source_key(addr(s));
}

TEST(SourceKey, Ipv4AndMappedIpv6AreOneSource) {
    EXPECT_EQ(key("192.0.2.7"), key("::ffff:192.0.2.7"));
    EXPECT_NE(key("192.0.2.7"), key("192.0.2.8"));
    EXPECT_NE(key("2001:db8::1"), key("2001:db8::2"));
}

TEST(SourceCounts, CapsEachSourceAndForgetsSourcesAtZero) {
    SourceCounts c(100);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(c.acquire(key("10.0.0.1"), 3));
    EXPECT_FALSE(c.acquire(key("10.0.0.1"), 3));
    EXPECT_EQ(c.count(key("10.0.0.1")), 3u);
    EXPECT_TRUE(c.acquire(key("10.0.0.2"), 3));  // another source is not affected
    EXPECT_EQ(c.size(), 2u);
    c.release(key("10.0.0.1"));
    EXPECT_TRUE(c.acquire(key("10.0.0.1"), 3));
    for (int i = 0; i < 3; ++i) c.release(key("10.0.0.1"));
    c.release(key("10.0.0.2"));
    EXPECT_EQ(c.size(), 0u);     // nothing kept for sources with nothing in negotiation
    c.release(key("10.0.0.3"));  // unknown: ignored
    EXPECT_EQ(c.count(key("10.0.0.3")), 0u);
}

TEST(SourceCounts, TableSizeIsBounded) {
    SourceCounts c(2);
    EXPECT_TRUE(c.acquire(key("10.0.0.1"), 5));
    EXPECT_TRUE(c.acquire(key("10.0.0.2"), 5));
    EXPECT_FALSE(c.acquire(key("10.0.0.3"), 5));  // full: a new source is refused
    EXPECT_TRUE(c.acquire(key("10.0.0.2"), 5));   // known ones still count
    EXPECT_EQ(c.size(), 2u);
    c.release(key("10.0.0.1"));
    EXPECT_TRUE(c.acquire(key("10.0.0.3"), 5));
}

TEST(TokenBucket, BurstThenRate) {
    const Clock::time_point t0{};
    TokenBucket b(20, 40, t0);
    for (int i = 0; i < 40; ++i) EXPECT_TRUE(b.take(t0)) << i;
    EXPECT_FALSE(b.take(t0));
    EXPECT_FALSE(b.take(t0 + 49ms));  // 0.98 of a token
    EXPECT_TRUE(b.take(t0 + 50ms));   // one token per 50 ms at 20/s
    EXPECT_FALSE(b.take(t0 + 50ms));
    EXPECT_FALSE(b.full(t0 + 1s));
    EXPECT_TRUE(b.full(t0 + 50ms + 2s));  // 40 tokens in 2 s
    // A clock that went back (never with steady_clock, but): no tokens from it.
    TokenBucket c(1, 1, t0 + 10s);
    EXPECT_TRUE(c.take(t0 + 10s));
    EXPECT_FALSE(c.take(t0));
    EXPECT_FALSE(c.take(t0 + 10s + 999ms));
    EXPECT_TRUE(c.take(t0 + 11s));
}

TEST(CancelRates, PerSourceAndBounded) {
    const Clock::time_point t0{};
    CancelRates r(20, 40, 2);
    int allowed = 0;
    for (int i = 0; i < 100; ++i) allowed += r.allow(key("10.0.0.1"), t0);
    EXPECT_EQ(allowed, 40);
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(r.allow(key("10.0.0.2"), t0));  // its own bucket
    // Full table: a third source is refused while no bucket can be forgotten...
    EXPECT_FALSE(r.allow(key("10.0.0.3"), t0 + 100ms));
    EXPECT_EQ(r.size(), 2u);
    // ...and admitted once full buckets (refilled, so forgetting them changes nothing) go.
    EXPECT_TRUE(r.allow(key("10.0.0.3"), t0 + 3s));
    EXPECT_EQ(r.size(), 1u);
    CancelRates off(0, 0, 1);
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(off.allow(key("10.0.0.1"), t0));
    EXPECT_EQ(off.size(), 0u);
}

TEST(RejectionLog, OneLinePerReasonPerInterval) {
    RejectionLog log(10s);
    const Clock::time_point t0{};
    auto d = log.log(Rejection::cancel_rate, t0);
    EXPECT_TRUE(d.write);
    EXPECT_EQ(d.suppressed, 0u);
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(log.log(Rejection::cancel_rate, t0 + 1s).write);
    EXPECT_TRUE(log.log(Rejection::negotiating_total, t0 + 1s).write);  // its own limit
    EXPECT_FALSE(log.log(Rejection::cancel_rate, t0 + 9999ms).write);
    d = log.log(Rejection::cancel_rate, t0 + 10s);
    EXPECT_TRUE(d.write);
    EXPECT_EQ(d.suppressed, 6u);
    d = log.log(Rejection::cancel_rate, t0 + 20s);
    EXPECT_TRUE(d.write);
    EXPECT_EQ(d.suppressed, 0u);
}

TEST(Admission, TotalAndPerSourceCapsWithTickets) {
    AdmissionLimits caps;
    caps.negotiating_total = 4;
    caps.negotiating_per_source = 2;
    Admission a(caps);
    metrics::Registry reg(1, {"t", "boringssl"});
    std::vector<Admission::Ticket> held;
    for (int i = 0; i < 2; ++i) {
        held.push_back(a.enter(&reg.worker(0)));
        ASSERT_TRUE(held.back());
        EXPECT_TRUE(held.back().count_source(addr("10.0.0.1")));
    }
    Admission::Ticket third = a.enter(&reg.worker(0));
    ASSERT_TRUE(third);
    EXPECT_FALSE(third.count_source(addr("::ffff:10.0.0.1")));  // the same source, at its cap
    EXPECT_TRUE(third.count_source(addr("10.0.0.2")));          // moved, as by a PROXY header
    EXPECT_EQ(a.negotiating_from(addr("10.0.0.2")), 1u);
    Admission::Ticket fourth = a.enter(nullptr);
    ASSERT_TRUE(fourth);
    EXPECT_FALSE(a.enter(nullptr));  // the total
    EXPECT_EQ(a.negotiating(), 4u);
    EXPECT_NE(reg.scrape().find("pggw_connections_negotiating 3\n"), std::string::npos);

    held.clear();  // destructors give everything back
    EXPECT_EQ(a.negotiating(), 2u);
    EXPECT_EQ(a.negotiating_from(addr("10.0.0.1")), 0u);
    third.release();
    third.release();  // once only
    EXPECT_EQ(a.negotiating(), 1u);
    EXPECT_EQ(a.negotiating_from(addr("10.0.0.2")), 0u);
    Admission::Ticket moved = std::move(fourth);
    EXPECT_FALSE(fourth);  // NOLINT(bugprone-use-after-move): moved-from holds nothing
    EXPECT_EQ(a.negotiating(), 1u);
    moved = Admission::Ticket{};
    EXPECT_EQ(a.negotiating(), 0u);
    EXPECT_NE(reg.scrape().find("pggw_connections_negotiating 0\n"), std::string::npos);
}

TEST(Admission, NoPerSourceCapAndCancelRate) {
    AdmissionLimits caps;
    caps.negotiating_total = 1000;
    caps.negotiating_per_source = 0;
    caps.cancel_rate = 5;
    caps.cancel_burst = 10;
    Admission a(caps);
    std::vector<Admission::Ticket> held;
    for (int i = 0; i < 500; ++i) {
        held.push_back(a.enter(nullptr));
        ASSERT_TRUE(held.back().count_source(addr("10.0.0.1")));
    }
    const Clock::time_point t0{};
    int allowed = 0;
    for (int i = 0; i < 30; ++i) allowed += a.allow_cancel(addr("10.0.0.1"), t0);
    EXPECT_EQ(allowed, 10);
    EXPECT_TRUE(a.allow_cancel(addr("10.0.0.1"), t0 + 200ms));
    EXPECT_TRUE(a.allow_cancel(addr("10.0.0.9"), t0));
}

// ---- the handshake queue ----

struct GateRun {
    asio::io_context io{1};
    HandshakeGate gate{2};  // after io: destroyed first, as in a Worker
    std::vector<std::string> events;
};

awaitable<void> handshake(GateRun& r, std::string name, Clock::duration patience,
                          Clock::duration hold) {
    HandshakeGate::Pass p = co_await r.gate.enter(patience);
    r.events.push_back(name + (p ? " in" : " refused"));
    if (!p) co_return;
    co_await sleep_for(hold);
    r.events.push_back(name + " out");
}

TEST(HandshakeGate, QueuesBeyondCapacityInOrderThenRefuses) {
    GateRun r;
    asio::co_spawn(r.io, handshake(r, "a", 1s, 100ms), asio::detached);
    asio::co_spawn(r.io, handshake(r, "b", 1s, 400ms), asio::detached);
    asio::co_spawn(r.io, handshake(r, "c", 2s, 10ms), asio::detached);   // a's place
    asio::co_spawn(r.io, handshake(r, "d", 2s, 10ms), asio::detached);   // then c's
    asio::co_spawn(r.io, handshake(r, "e", 30ms, 0ms), asio::detached);  // gives up first
    r.io.run_for(5s);
    // c's place, when c is done, goes to d (still waiting) while b holds the other.
    const std::vector<std::string> want{"a in",  "b in", "e refused", "a out", "c in",
                                        "c out", "d in", "d out",     "b out"};
    EXPECT_EQ(r.events, want);
    EXPECT_EQ(r.gate.in_progress(), 0u);
    EXPECT_EQ(r.gate.waiting(), 0u);
}

TEST(HandshakeGate, CancelledWaiterLeavesTheLine) {
    GateRun r;
    asio::co_spawn(r.io, handshake(r, "a", 1s, 100ms), asio::detached);
    asio::co_spawn(r.io, handshake(r, "b", 1s, 400ms), asio::detached);
    // c's wait is cut short by a deadline, as --handshake-timeout does in the session.
    asio::co_spawn(r.io, handshake(r, "c", 10s, 0ms) || sleep_for(20ms), asio::detached);
    asio::co_spawn(r.io, handshake(r, "d", 10s, 0ms), asio::detached);
    r.io.run_for(5s);
    const std::vector<std::string> want{"a in", "b in",  "c refused", "a out",
                                        "d in", "d out", "b out"};
    EXPECT_EQ(r.events, want);
    EXPECT_EQ(r.gate.in_progress(), 0u);
    EXPECT_EQ(r.gate.waiting(), 0u);
}

TEST(HandshakeGate, WaiterDestroyedWithTheLoopLeavesNothingBehind) {
    auto r = std::make_unique<GateRun>();
    asio::co_spawn(r->io, handshake(*r, "a", 1s, 10s), asio::detached);
    asio::co_spawn(r->io, handshake(*r, "b", 1s, 10s), asio::detached);
    asio::co_spawn(r->io, handshake(*r, "c", 10s, 0ms), asio::detached);
    r->io.run_for(50ms);
    EXPECT_EQ(r->gate.waiting(), 1u);
    EXPECT_EQ(r->gate.in_progress(), 2u);
    // As in a worker, the gate goes first (GateRun declares it after the loop), then the loop
    // and its frames (two passes, a waiter), which must then touch nothing of it: ASan builds
    // would report a use after free, and a waiter's timer cancelled mid-shutdown could crash.
    r.reset();
    EXPECT_EQ(r, nullptr);
}

}  // namespace
}  // namespace pggw
