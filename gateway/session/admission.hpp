// Overload caps that hold before the expensive part of a connection (issue 12): how many
// connections may be in negotiation (accept until a complete StartupMessage or CancelRequest),
// in total and per source address; how many client TLS handshakes run at once on a worker
// (the rest wait briefly in line); how fast one source may have CancelRequests forwarded.
// Beyond a cap the connection is closed at once: before a StartupMessage the protocol has
// no way to say why (and an 'N' to an SSLRequest would be a downgrade).
//
// Who holds what: Admission is process-wide (the totals and per-source counts are exact across
// workers, whatever the kernel's SO_REUSEPORT hash does with one source's connections), striped
// by source so that workers rarely meet on a lock, and touched twice per connection (accept,
// end of negotiation) and once per CancelRequest, never on the relay path. HandshakeGate and
// RejectionLog are per worker, used on its thread only. The pure parts (SourceCounts,
// TokenBucket, CancelRates, RejectionLog) take the time as an argument, for tests.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "gateway/net/asio.hpp"
#include "gateway/session/clock.hpp"
#include "metrics/metrics.hpp"

namespace pggw {

using metrics::Rejection;
std::string_view rejection_name(Rejection r);

// A source address as a key: IPv4 and IPv4-mapped IPv6 are the same source.
using SourceKey = std::array<std::uint8_t, 16>;
SourceKey source_key(const asio::ip::address& a);
struct SourceKeyHash {
    std::size_t operator()(const SourceKey& k) const noexcept;
};

// Connections per source; not thread-safe. An entry goes away when its count drops to 0, and
// the table never holds more than max_entries sources.
class SourceCounts {
  public:
    explicit SourceCounts(std::size_t max_entries) : max_entries_(max_entries) {}
    // Counts one more for key; false (nothing counted) when key already has limit, or when
    // the table is full and key is not in it.
    bool acquire(const SourceKey& key, unsigned limit);
    void release(const SourceKey& key);
    unsigned count(const SourceKey& key) const;
    std::size_t size() const { return counts_.size(); }

  private:
    std::size_t max_entries_;
    std::unordered_map<SourceKey, unsigned, SourceKeyHash> counts_;
};

// rate tokens per second, at most burst; starts full.
class TokenBucket {
  public:
    TokenBucket(double rate, double burst, Clock::time_point now)
        : rate_(rate), burst_(burst), tokens_(burst), at_(now) {}
    bool take(Clock::time_point now);
    // Refilled to the brim: forgetting the bucket would change nothing.
    bool full(Clock::time_point now) const { return level(now) >= burst_; }

  private:
    double level(Clock::time_point now) const;
    double rate_, burst_, tokens_;
    Clock::time_point at_;
};

// A TokenBucket per source; not thread-safe. Full buckets are forgotten when the table is
// full (max_entries); a new source that still finds no room is refused.
class CancelRates {
  public:
    CancelRates(double rate, double burst, std::size_t max_entries)
        : rate_(rate), burst_(burst), max_entries_(max_entries) {}
    // rate 0: always true.
    bool allow(const SourceKey& key, Clock::time_point now);
    std::size_t size() const { return buckets_.size(); }

  private:
    double rate_, burst_;
    std::size_t max_entries_;
    std::unordered_map<SourceKey, TokenBucket, SourceKeyHash> buckets_;
};

struct AdmissionLimits {
    unsigned negotiating_total = 4096;    // --max-negotiating
    unsigned negotiating_per_source = 0;  // --max-negotiating-per-source; 0: no cap
    double cancel_rate = 20;              // --cancel-rate-per-source, per second; 0: no cap
    double cancel_burst = 40;
    std::size_t cancel_sources = 65536;  // sources with a cancel bucket, at most
};

// Process-wide; thread-safe.
class Admission {
  public:
    explicit Admission(AdmissionLimits limits);
    const AdmissionLimits& limits() const { return limits_; }
    unsigned negotiating() const { return total_.load(std::memory_order_relaxed); }
    unsigned negotiating_from(const asio::ip::address& source) const;

    // One connection in negotiation: counted in the total from enter(), and against its
    // source once count_source() succeeds; everything is given back by release() or the
    // destructor, whatever ends the connection.
    class Ticket {
      public:
        Ticket() = default;
        Ticket(Ticket&& o) noexcept { *this = std::move(o); }
        Ticket& operator=(Ticket&& o) noexcept;
        ~Ticket() { release(); }
        // Admitted into the total (false: --max-negotiating was reached; nothing is held).
        explicit operator bool() const { return a_ != nullptr; }
        // Counts the connection against source (once; a second call moves it there, as when
        // the PROXY protocol names the client). false: the source is at its cap, and the
        // connection is counted against no source.
        bool count_source(const asio::ip::address& source);
        void release();

      private:
        friend class Admission;
        Admission* a_ = nullptr;
        metrics::WorkerMetrics* m_ = nullptr;  // pggw_connections_negotiating
        std::optional<SourceKey> source_;
    };
    // m (may be null): the worker's metrics, whose negotiating gauge the ticket keeps.
    Ticket enter(metrics::WorkerMetrics* m);

    // A CancelRequest from source may be forwarded now (its token bucket had a token).
    bool allow_cancel(const asio::ip::address& source, Clock::time_point now);

  private:
    struct alignas(64) Stripe {
        std::mutex mu;
        SourceCounts counts{0};
        CancelRates cancels{0, 0, 0};
    };
    Stripe& stripe(const SourceKey& k);
    void release_source(const SourceKey& k);

    static constexpr std::size_t kStripes = 16;
    AdmissionLimits limits_;
    std::atomic<unsigned> total_{0};
    std::array<Stripe, kStripes> stripes_;
};

// Client TLS handshakes in progress on one worker, at most capacity; later ones wait in line
// (first come, first served) for a place. One worker's thread only. Passes and waiters share
// the gate's state, so that the gate may go before the event loop's frames do (a worker's
// members are destroyed before its io_context): once the gate is gone they touch nothing.
class HandshakeGate {
    struct State;

  public:
    explicit HandshakeGate(unsigned capacity);
    ~HandshakeGate();
    HandshakeGate(const HandshakeGate&) = delete;
    HandshakeGate& operator=(const HandshakeGate&) = delete;

    class Pass {
      public:
        Pass() = default;
        Pass(Pass&& o) noexcept = default;
        Pass& operator=(Pass&&) = delete;
        ~Pass();
        explicit operator bool() const { return s_ != nullptr; }

      private:
        friend class HandshakeGate;
        explicit Pass(std::shared_ptr<State> s) : s_(std::move(s)) {}
        std::shared_ptr<State> s_;
    };

    // A place at once when one is free, else after waiting in line at most patience; an empty
    // Pass when none came in time or the wait was cancelled.
    awaitable<Pass> enter(Clock::duration patience);
    unsigned in_progress() const;
    std::size_t waiting() const;

  private:
    std::shared_ptr<State> s_;
};

// At most one log line per reason per interval (per worker): log() says whether to write one
// now and how many were left out since the last.
class RejectionLog {
  public:
    explicit RejectionLog(Clock::duration interval = std::chrono::seconds(10))
        : interval_(interval) {}
    struct Decision {
        bool write = false;
        std::uint64_t suppressed = 0;  // left out before this one
    };
    Decision log(Rejection r, Clock::time_point now);

  private:
    struct Slot {
        std::optional<Clock::time_point> last;
        std::uint64_t suppressed = 0;
    };
    Clock::duration interval_;
    std::array<Slot, metrics::kRejectionCount> slots_{};
};

}  // namespace pggw
