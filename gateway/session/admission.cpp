#include "gateway/session/admission.hpp"

#include <algorithm>
#include <cstring>

namespace pggw {

std::string_view rejection_name(Rejection r) {
    return metrics::detail::RejectionReasonDim::values[static_cast<std::size_t>(r)];
}

SourceKey source_key(const asio::ip::address& a) {
    if (a.is_v4()) return asio::ip::make_address_v6(asio::ip::v4_mapped, a.to_v4()).to_bytes();
    return a.to_v6().to_bytes();  // an IPv4-mapped IPv6 address is already in this form
}

std::size_t SourceKeyHash::operator()(const SourceKey& k) const noexcept {
    std::uint64_t hi, lo;
    std::memcpy(&hi, k.data(), 8);
    std::memcpy(&lo, k.data() + 8, 8);
    // Connections come from addresses the peers chose: a multiply-xorshift mix so that no
    // simple pattern of addresses lands in one bucket.
    std::uint64_t h = (hi ^ (lo * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    return std::size_t(h ^ (h >> 31));
}

// ---- SourceCounts ----

bool SourceCounts::acquire(const SourceKey& key, unsigned limit) {
    auto it = counts_.find(key);
    if (it == counts_.end()) {
        if (limit == 0 || counts_.size() >= max_entries_) return false;
        counts_.emplace(key, 1u);
        return true;
    }
    if (it->second >= limit) return false;
    ++it->second;
    return true;
}

void SourceCounts::release(const SourceKey& key) {
    auto it = counts_.find(key);
    if (it == counts_.end()) return;
    if (--it->second == 0) counts_.erase(it);
}

unsigned SourceCounts::count(const SourceKey& key) const {
    auto it = counts_.find(key);
    return it == counts_.end() ? 0 : it->second;
}

// ---- TokenBucket, CancelRates ----

double TokenBucket::level(Clock::time_point now) const {
    const double elapsed = std::chrono::duration<double>(now - at_).count();
    return std::min(burst_, tokens_ + std::max(0.0, elapsed) * rate_);
}

bool TokenBucket::take(Clock::time_point now) {
    tokens_ = level(now);
    at_ = std::max(at_, now);
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
}

bool CancelRates::allow(const SourceKey& key, Clock::time_point now) {
    if (rate_ <= 0) return true;
    auto it = buckets_.find(key);
    if (it == buckets_.end()) {
        if (buckets_.size() >= max_entries_)
            std::erase_if(buckets_, [now](const auto& kv) { return kv.second.full(now); });
        if (buckets_.size() >= max_entries_) return false;
        it = buckets_.emplace(key, TokenBucket(rate_, burst_, now)).first;
    }
    return it->second.take(now);
}

// ---- Admission ----

Admission::Admission(AdmissionLimits limits) : limits_(limits) {
    // Every counted source holds a connection in negotiation, so the total bounds the count
    // tables; the cancel tables have their own bound.
    for (auto& s : stripes_) {
        s.counts = SourceCounts(limits_.negotiating_total);
        s.cancels = CancelRates(limits_.cancel_rate, limits_.cancel_burst,
                                std::max<std::size_t>(1, limits_.cancel_sources / kStripes));
    }
}

Admission::Stripe& Admission::stripe(const SourceKey& k) {
    // Not the table's hash: the low bits of the last byte spread neighbouring addresses.
    return stripes_[(SourceKeyHash{}(k) >> 7) % kStripes];
}

unsigned Admission::negotiating_from(const asio::ip::address& source) const {
    const SourceKey k = source_key(source);
    auto& s = const_cast<Admission*>(this)->stripe(k);
    std::lock_guard lock(s.mu);
    return s.counts.count(k);
}

Admission::Ticket Admission::enter(metrics::WorkerMetrics* m) {
    Ticket t;
    unsigned n = total_.load(std::memory_order_relaxed);
    do {
        if (n >= limits_.negotiating_total) return t;  // exact: no transient overshoot
    } while (!total_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    t.a_ = this;
    t.m_ = m;
    if (m) m->negotiating(1);
    return t;
}

void Admission::release_source(const SourceKey& k) {
    auto& s = stripe(k);
    std::lock_guard lock(s.mu);
    s.counts.release(k);
}

bool Admission::allow_cancel(const asio::ip::address& source, Clock::time_point now) {
    if (limits_.cancel_rate <= 0) return true;
    const SourceKey k = source_key(source);
    auto& s = stripe(k);
    std::lock_guard lock(s.mu);
    return s.cancels.allow(k, now);
}

Admission::Ticket& Admission::Ticket::operator=(Ticket&& o) noexcept {
    if (this != &o) {
        release();
        a_ = std::exchange(o.a_, nullptr);
        m_ = std::exchange(o.m_, nullptr);
        source_ = std::exchange(o.source_, std::nullopt);
    }
    return *this;
}

bool Admission::Ticket::count_source(const asio::ip::address& source) {
    if (!a_) return false;
    if (source_) a_->release_source(*std::exchange(source_, std::nullopt));
    const unsigned limit = a_->limits_.negotiating_per_source;
    if (limit == 0) return true;  // no per-source cap: nothing to keep
    const SourceKey k = source_key(source);
    auto& s = a_->stripe(k);
    std::lock_guard lock(s.mu);
    if (!s.counts.acquire(k, limit)) return false;
    source_ = k;
    return true;
}

void Admission::Ticket::release() {
    if (!a_) return;
    if (source_) a_->release_source(*source_);
    source_.reset();
    a_->total_.fetch_sub(1, std::memory_order_relaxed);
    if (m_) m_->negotiating(-1);
    a_ = nullptr;
    m_ = nullptr;
}

// ---- HandshakeGate ----

namespace {
struct Waiter {
    asio::steady_timer timer;
    bool granted = false;  // leave() handed this waiter its place
};
}  // namespace

struct HandshakeGate::State {
    unsigned capacity;
    unsigned in_progress = 0;
    std::deque<Waiter*> line;
    bool closed = false;  // the gate is gone (worker shutdown): nothing more to hand over

    void leave() {
        if (closed) return;
        if (!line.empty()) {  // the place goes to the first in line, never back to the pool
            Waiter* w = line.front();
            line.pop_front();
            w->granted = true;
            w->timer.cancel();
            return;
        }
        --in_progress;
    }
};

HandshakeGate::HandshakeGate(unsigned capacity) : s_(std::make_shared<State>()) {
    s_->capacity = capacity;
}

HandshakeGate::~HandshakeGate() {
    s_->closed = true;
}

HandshakeGate::Pass::~Pass() {
    if (s_) s_->leave();
}

unsigned HandshakeGate::in_progress() const {
    return s_->in_progress;
}

std::size_t HandshakeGate::waiting() const {
    return s_->line.size();
}

awaitable<HandshakeGate::Pass> HandshakeGate::enter(Clock::duration patience) {
    std::shared_ptr<State> s = s_;
    if (s->in_progress < s->capacity) {
        ++s->in_progress;
        co_return Pass(std::move(s));
    }
    Waiter w{asio::steady_timer(co_await asio::this_coro::executor, patience)};
    s->line.push_back(&w);
    // Leaves the line however the wait ends (timeout, cancellation, or the frame destroyed
    // with the event loop); a place granted but never claimed is passed on.
    struct Unlink {
        State& s;
        Waiter& w;
        bool claimed = false;
        ~Unlink() {
            if (!w.granted) {
                std::erase(s.line, &w);
            } else if (!claimed) {
                s.leave();
            }
        }
    } unlink{*s, w};
    co_await w.timer.async_wait(use_nothrow);
    if (!w.granted) co_return Pass{};
    unlink.claimed = true;
    co_return Pass(s);
}

// ---- RejectionLog ----

RejectionLog::Decision RejectionLog::log(Rejection r, Clock::time_point now) {
    Slot& s = slots_[static_cast<std::size_t>(r)];
    if (s.last && now - *s.last < interval_) {
        ++s.suppressed;
        return {};
    }
    s.last = now;
    return {true, std::exchange(s.suppressed, 0)};
}

}  // namespace pggw
