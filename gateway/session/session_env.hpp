// What a session needs from the process and from its worker, and nothing more: the worker
// owns the event loop and the listeners; everything a session reads or counts comes through
// here. One SessionEnv per worker, used on that worker's thread only.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string_view>

#include "gateway/app/config.hpp"
#include "gateway/auth/auth_file.hpp"
#include "gateway/auth/auth_query.hpp"
#include "gateway/net/asio.hpp"
#include "gateway/net/resolver_cache.hpp"
#include "gateway/session/admission.hpp"
#include "metrics/metrics.hpp"
#include "tls_backends/tls.hpp"

namespace pggw {

// TLS state of one generation of certificates; replaced whole on reload.
struct TlsContexts {
    std::shared_ptr<tls::Context> client;  // null when --client-tls disable
    std::shared_ptr<tls::Context> server;  // null when --server-tls disable
};

// --max-connections, counted across every worker (one atomic add per session). A slot is
// taken at the StartupMessage (connections still negotiating are bounded by Admission, and
// never take the place of a session) and given back when the session's Slot goes away,
// whatever ends it.
class ConnectionBudget {
  public:
    explicit ConnectionBudget(unsigned max) : max_(max) {}
    unsigned max() const { return max_; }

    class Slot {
      public:
        explicit Slot(ConnectionBudget& b)
            : b_(&b), over_(b.used_.fetch_add(1, std::memory_order_relaxed) >= b.max_) {}
        Slot(const Slot&) = delete;
        Slot& operator=(const Slot&) = delete;
        ~Slot() { b_->used_.fetch_sub(1, std::memory_order_relaxed); }
        // Taken beyond --max-connections: the session is refused with 53300.
        bool over_limit() const { return over_; }

      private:
        ConnectionBudget* b_;
        bool over_;
    };

  private:
    const unsigned max_;
    std::atomic<unsigned> used_{0};
};

// A worker's drain: set on the worker's thread. begin(): sessions end at their first idle
// moment. force() (the drain timeout): sessions still open end now, idle or not. Relays are
// told through Listener (a callback: an idle relay is no coroutine that could wait); other
// stages wait with wait() / wait_forced().
class DrainSignal {
  public:
    // Told on the worker's thread when begin() and when force() first happen. Intrusive, so
    // that listening costs a session no allocation.
    class Listener {
      public:
        virtual void drain_changed() = 0;

      protected:
        Listener() = default;
        Listener(const Listener&) = delete;
        Listener& operator=(const Listener&) = delete;
        ~Listener() { DrainSignal::unlisten(*this); }

      private:
        friend class DrainSignal;
        DrainSignal* owner_ = nullptr;
        Listener* prev_ = nullptr;
        Listener* next_ = nullptr;
    };

    explicit DrainSignal(asio::io_context& io)
        : signal_(io, asio::steady_timer::time_point::max()),
          force_signal_(io, asio::steady_timer::time_point::max()) {}
    DrainSignal(const DrainSignal&) = delete;
    DrainSignal& operator=(const DrainSignal&) = delete;
    // The worker's io_context outlives its DrainSignal, and with it the frames of sessions
    // still open: their listeners are left detached.
    ~DrainSignal() {
        for (Listener* l = head_; l;) {
            Listener* next = l->next_;
            l->owner_ = nullptr;
            l->prev_ = l->next_ = nullptr;
            l = next;
        }
    }
    bool active() const { return active_; }
    bool forced() const { return forced_; }
    void begin() {
        if (active_) return;
        active_ = true;
        signal_.cancel();
        notify();
    }
    // Implies begin().
    void force() {
        begin();
        if (forced_) return;
        forced_ = true;
        force_signal_.cancel();
        notify();
    }
    // Completes when begin() is called (at once if it was), or when the waiter is cancelled.
    awaitable<void> wait() {
        if (!active_) co_await signal_.async_wait(use_nothrow);
    }
    // Completes when force() is called (at once if it was), or when the waiter is cancelled.
    awaitable<void> wait_forced() {
        if (!forced_) co_await force_signal_.async_wait(use_nothrow);
    }
    void listen(Listener& l) {
        unlisten(l);
        l.owner_ = this;
        l.next_ = head_;
        if (head_) head_->prev_ = &l;
        head_ = &l;
    }
    static void unlisten(Listener& l) {
        if (!l.owner_) return;
        if (l.prev_)
            l.prev_->next_ = l.next_;
        else
            l.owner_->head_ = l.next_;
        if (l.next_) l.next_->prev_ = l.prev_;
        l.owner_ = nullptr;
        l.prev_ = l.next_ = nullptr;
    }

  private:
    // A listener may unlisten itself while told (a relay that ends at once), not others.
    void notify() {
        for (Listener* l = head_; l;) {
            Listener* next = l->next_;
            l->drain_changed();
            l = next;
        }
    }

    bool active_ = false;
    bool forced_ = false;
    asio::steady_timer signal_;        // never expires: cancel() is the wake-up
    asio::steady_timer force_signal_;  // likewise, for force()
    Listener* head_ = nullptr;
};

struct SessionEnv {
    const Config& cfg;
    TlsMode client_tls;         // cfg.effective_client_tls()
    std::string_view library;   // TLS library name, as metrics label it ("other": none)
    const TlsContexts& tls;     // the worker's current generation
    const tls::Crypto* crypto;  // the TLS library's, for SCRAM (null: no library loaded)
    // --auth-file's users, the worker's current generation (null: no --auth-file). A session
    // copies the pointer once, so a reload never changes a login half-way.
    const std::shared_ptr<const auth::AuthTable>& auth;
    metrics::WorkerMetrics& metrics;  // this worker's shard
    DrainSignal& drain;
    ConnectionBudget& connections;
    Admission& admission;                     // process-wide overload caps before the startup
    HandshakeGate& handshakes;                // this worker's client TLS handshakes in progress
    RejectionLog& rejections;                 // this worker's rate limit on rejection log lines
    std::atomic<std::size_t>& live_sessions;  // this worker's, read by the drain
    std::size_t worker;                       // index, for logs
    // --auth-query's cache and lookups in flight, this worker's (gateway/session/auth_lookup).
    auth::AuthQueryState auth_query{};
    // The --server name's addresses, this worker's (looked up at most once at a time).
    ResolverCache server_addresses{};
};

}  // namespace pggw
