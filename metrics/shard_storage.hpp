// Per-worker metric storage: single-writer relaxed atomics, summed by the scraper.
//
// Every cell is written by exactly one thread (the worker that owns the shard) with a relaxed
// load + relaxed store: no lock prefix, no contended cache line, and no data race with the
// scraper, which only does relaxed loads. Label sets are either fixed enumerations (a flat
// array indexed by enum values) or a small capped table of strings published with
// release/acquire (Capped), so label cardinality per shard is bounded.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pggw::metrics::detail {

// String equality for short label values, inlined (no memcmp call): word-wise, with
// overlapping loads for the tail.
[[gnu::always_inline]] inline bool same(std::string_view a, std::string_view b) noexcept {
    const std::size_t n = a.size();
    if (n != b.size()) return false;
    const char* p = a.data();
    const char* q = b.data();
    auto word = [](const char* s, auto tag) {
        decltype(tag) v;
        std::memcpy(&v, s, sizeof v);
        return v;
    };
    if (n >= 8) {
        for (std::size_t i = 0; i + 8 <= n; i += 8) {
            if (word(p + i, std::uint64_t{}) != word(q + i, std::uint64_t{})) return false;
        }
        return word(p + n - 8, std::uint64_t{}) == word(q + n - 8, std::uint64_t{});
    }
    if (n >= 4) {
        return word(p, std::uint32_t{}) == word(q, std::uint32_t{}) &&
               word(p + n - 4, std::uint32_t{}) == word(q + n - 4, std::uint32_t{});
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (p[i] != q[i]) return false;
    }
    return true;
}

// What the scrape needs to know to decide which zero-valued series to pre-create.
struct ScrapeContext {
    std::uint32_t library_mask = ~0u;  // bit i: LibraryDim::values[i] is compiled in
};

template <class T>
class Cell {
  public:
    static_assert(std::atomic<T>::is_always_lock_free);
    void add(T n) noexcept {
        v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void set(T n) noexcept { v_.store(n, std::memory_order_relaxed); }
    T load() const noexcept { return v_.load(std::memory_order_relaxed); }

  private:
    std::atomic<T> v_{};
};

// One series' contribution to a scrape; shards' samples of the same label set are merged.
struct Sample {
    double value = 0;                    // counter, gauge
    std::vector<std::uint64_t> buckets;  // histogram: per bucket (not cumulative), last is +Inf
    double sum = 0;                      // histogram

    std::uint64_t count() const {
        std::uint64_t n = 0;
        for (auto b : buckets) n += b;
        return n;
    }
    bool nonzero() const { return value != 0 || count() != 0; }
    void merge(const Sample& o) {
        value += o.value;
        sum += o.sum;
        if (buckets.size() < o.buckets.size()) buckets.resize(o.buckets.size());
        for (std::size_t i = 0; i < o.buckets.size(); ++i) buckets[i] += o.buckets[i];
    }
};

// ---- value types: what one series holds ----

class Count {
  public:
    void inc(std::uint64_t n = 1) noexcept { c_.add(n); }
    Sample sample() const { return Sample{static_cast<double>(c_.load()), {}, 0}; }
    static std::span<const double> bounds() { return {}; }

  private:
    Cell<std::uint64_t> c_;
};

class Level {
  public:
    void add(std::int64_t d) noexcept { c_.add(d); }
    Sample sample() const { return Sample{static_cast<double>(c_.load()), {}, 0}; }
    static std::span<const double> bounds() { return {}; }

  private:
    Cell<std::int64_t> c_;
};

// Buckets: a type with `static constexpr std::array<double, N> bounds` (ascending upper bounds;
// +Inf is implicit). observe() is a branch-light binary search over N doubles plus two cells.
template <class Buckets>
class Histogram {
  public:
    static constexpr std::size_t n_bounds = Buckets::bounds.size();

    void observe(double v) noexcept {
        if (!(v >= 0)) v = 0;  // negative or NaN durations: clamp, never poison the sum
        counts_[bucket_of(v)].add(1);
        sum_.add(v);
    }
    // Index of the first bound >= v (n_bounds for +Inf): a binary search, 5 steps for 19
    // bounds. (A compile-time-unrolled branchless variant measured no faster on random
    // durations and slower on predictable ones: its steps form a serial load chain.)
    static std::size_t bucket_of(double v) noexcept {
        const double* base = Buckets::bounds.data();
        std::size_t n = n_bounds;
        while (n > 1) {
            const std::size_t half = n / 2;
            base = base[half - 1] < v ? base + half : base;
            n -= half;
        }
        return static_cast<std::size_t>(base - Buckets::bounds.data()) + (*base < v ? 1 : 0);
    }
    Sample sample() const {
        Sample s;
        s.buckets.resize(n_bounds + 1);
        for (std::size_t i = 0; i <= n_bounds; ++i) s.buckets[i] = counts_[i].load();
        s.sum = sum_.load();
        return s;
    }
    static std::span<const double> bounds() { return Buckets::bounds; }

  private:
    std::array<Cell<std::uint64_t>, n_bounds + 1> counts_{};
    Cell<double> sum_;
};

// Exponential bounds start * factor^i, computed at compile time.
template <std::size_t N>
constexpr std::array<double, N> exponential_bounds(double start, double factor) {
    std::array<double, N> b{};
    double v = start;
    for (auto& x : b) {
        x = v;
        v *= factor;
    }
    return b;
}

// ---- label storage: how a metric's series are laid out in a shard ----

using Labels = std::span<const std::string_view>;

// No labels: one series, always exported.
template <class V>
class Scalar {
  public:
    using value_type = V;
    V& get() noexcept { return v_; }
    static std::vector<std::string_view> label_names() { return {}; }
    template <class F>
    void visit(F&& f, const ScrapeContext&) const {
        f(Labels{}, true, v_.sample());
    }

  private:
    V v_;
};

// Labels drawn from fixed enumerations. A Dim is a type with
//   static constexpr std::string_view name;
//   static constexpr std::array<std::string_view, N> values;
//   static bool precreate(std::size_t index, const ScrapeContext&);  // export even when zero
// A series is exported when non-zero or when every one of its values is pre-created.
template <class V, class... Dims>
class Fixed {
  public:
    using value_type = V;
    static constexpr std::size_t rank = sizeof...(Dims);
    static constexpr std::array<std::size_t, rank> extents{Dims::values.size()...};
    static constexpr std::size_t size = (Dims::values.size() * ... * 1);

    template <class... I>
    V& at(I... idx) noexcept {
        static_assert(sizeof...(I) == rank);
        const std::array<std::size_t, rank> ix{static_cast<std::size_t>(idx)...};
        std::size_t flat = 0;
        for (std::size_t k = 0; k < rank; ++k) flat = flat * extents[k] + ix[k];
        return cells_[flat];
    }
    static std::vector<std::string_view> label_names() { return {Dims::name...}; }
    template <class F>
    void visit(F&& f, const ScrapeContext& ctx) const {
        static constexpr std::array<std::span<const std::string_view>, rank> values{
            std::span<const std::string_view>(Dims::values)...};
        static constexpr std::array<bool (*)(std::size_t, const ScrapeContext&), rank> pre{
            &Dims::precreate...};
        std::array<std::string_view, rank> labels{};
        for (std::size_t flat = 0; flat < size; ++flat) {
            bool keep = true;
            std::size_t rest = flat;
            for (std::size_t k = rank; k-- > 0;) {
                const std::size_t i = rest % extents[k];
                rest /= extents[k];
                labels[k] = values[k][i];
                keep = keep && pre[k](i, ctx);
            }
            f(Labels(labels), keep, cells_[flat].sample());
        }
    }

  private:
    std::array<V, size> cells_{};
};

// Free-form label values (TLS versions, ciphers, reasons chosen by the caller): at most Cap
// distinct label sets per shard; later ones are counted under all-"other" values. A Names type
// has `static constexpr std::array<std::string_view, K> names` and
// `static constexpr std::array<std::array<std::string_view, K>, D> defaults` (exported at zero).
// The writer appends a slot, filling its strings before publishing `used_` with release; the
// scraper reads `used_` with acquire and never sees a half-written slot. Strings are stored
// raw (matched exactly on the hot path) and sanitized at scrape.
template <class V, class Names, std::size_t Cap = 32>
class Capped {
  public:
    using value_type = V;
    static constexpr std::size_t rank = Names::names.size();
    static constexpr std::size_t capacity = Cap;
    static constexpr std::size_t max_value_size = 128;
    using Key = std::array<std::string_view, rank>;

    V& find(const Key& key) {
        const std::size_t n = used_.load(std::memory_order_relaxed);  // we are the only writer
        if (last_ < n && slots_[last_].matches(key)) return slots_[last_].value;
        for (std::size_t i = 0; i < n; ++i) {
            if (slots_[i].matches(key)) {
                last_ = i;
                return slots_[i].value;
            }
        }
        return insert(key, n);
    }
    // Cold: a label set this shard has not seen yet.
    [[gnu::noinline]] V& insert(const Key& key, std::size_t n) {
        if (n == Cap) return overflow_;
        for (auto v : key) {
            if (v.size() > max_value_size) return overflow_;
        }
        for (std::size_t k = 0; k < rank; ++k) slots_[n].key[k].assign(key[k]);
        used_.store(n + 1, std::memory_order_release);
        last_ = n;
        return slots_[n].value;
    }
    std::size_t used() const noexcept { return used_.load(std::memory_order_acquire); }
    static std::vector<std::string_view> label_names() {
        return {Names::names.begin(), Names::names.end()};
    }
    template <class F>
    void visit(F&& f, const ScrapeContext&) const {
        const Sample zero = V{}.sample();
        for (const auto& d : Names::defaults) f(Labels(d), true, zero);
        const std::size_t n = used_.load(std::memory_order_acquire);
        std::array<std::string, rank> clean;
        std::array<std::string_view, rank> labels{};
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t k = 0; k < rank; ++k) {
                clean[k] = sanitize(slots_[i].key[k]);
                labels[k] = clean[k];
            }
            f(Labels(labels), false, slots_[i].value.sample());
        }
        labels.fill("other");
        f(Labels(labels), false, overflow_.sample());
    }

    // Printable ASCII only, bounded length, never empty (an empty value means "no label").
    static std::string sanitize(std::string_view v) {
        if (v.empty()) return "unknown";
        std::string out(v.substr(0, 64));
        for (auto& c : out) {
            if (c < 0x20 || c > 0x7e) c = '_';
        }
        return out;
    }

  private:
    struct Slot {
        std::array<std::string, rank> key;
        V value;
        bool matches(const Key& k) const noexcept {
            for (std::size_t i = 0; i < rank; ++i) {
                if (!same(key[i], k[i])) return false;
            }
            return true;
        }
    };
    std::array<Slot, Cap> slots_{};
    std::atomic<std::size_t> used_{0};
    std::size_t last_ = 0;  // the writer's last hit, tried first; never read by the scraper
    V overflow_;
};

// Turns `(T)` into `T`, so that a table row can hold a template-id with commas.
template <class T>
struct unparen;
template <class T>
struct unparen<void(T)> {
    using type = T;
};

}  // namespace pggw::metrics::detail
