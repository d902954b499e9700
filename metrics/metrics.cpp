#include "metrics/metrics.hpp"

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>

#include "metrics/process_stats.hpp"

namespace pggw::metrics {

namespace detail {
namespace {

static_assert(LegDim::values.size() == 2 && LegDim::values[1] == "server");
static_assert(ResultDim::values.size() == 3 && ResultDim::values[2] == "timeout");
static_assert(StartupKindDim::values.size() == 6 && StartupKindDim::values[5] == "invalid" &&
              static_cast<std::size_t>(StartupKind::invalid) == 5);
static_assert(DirectionDim::values.size() == 2 && DirectionDim::values[1] == "server_to_client");
static_assert(LibraryDim::values.back() == "other" && ReplyDim::values.back() == "other" &&
              HandshakeErrorReasonDim::values.back() == "other");

}  // namespace
}  // namespace detail

// ---- the table, as data ----

namespace {

prometheus::MetricType to_prometheus(MetricKind k) {
    switch (k) {
        case MetricKind::counter:
            return prometheus::MetricType::Counter;
        case MetricKind::gauge:
            return prometheus::MetricType::Gauge;
        case MetricKind::histogram:
            return prometheus::MetricType::Histogram;
    }
    return prometheus::MetricType::Untyped;
}

std::vector<std::string_view> split_labels(std::string_view s) {
    std::vector<std::string_view> out;
    while (!s.empty()) {
        const auto comma = s.find(',');
        out.push_back(s.substr(0, comma));
        if (comma == std::string_view::npos) break;
        s.remove_prefix(comma + 1);
    }
    return out;
}

}  // namespace

const std::vector<MetricDesc>& metric_table() {
    static const std::vector<MetricDesc> table = [] {
        using namespace detail;
        std::vector<MetricDesc> t;
#define PGGW_ROW_SHARDED(field, kind, name, help, storage) \
    t.push_back({name, MetricKind::kind, help, unparen<void storage>::type::label_names()});
#define PGGW_ROW_DERIVED(field, kind, name, help, source) \
    t.push_back({name, MetricKind::kind, help, decltype(ShardFields::source##_)::label_names()});
#define PGGW_ROW_GLOBAL(field, kind, name, help, labels) \
    t.push_back({name, MetricKind::kind, help, split_labels(labels)});
        PGGW_METRICS(PGGW_ROW_SHARDED, PGGW_ROW_DERIVED, PGGW_ROW_GLOBAL)
#undef PGGW_ROW_SHARDED
#undef PGGW_ROW_DERIVED
#undef PGGW_ROW_GLOBAL
        return t;
    }();
    return table;
}

// ---- scrape ----

namespace {

// Series of one family, merged over shards, keyed by label values.
class Accumulator {
  public:
    void add(detail::Labels labels, bool keep_zero, const detail::Sample& s) {
        if (!keep_zero && !s.nonzero()) return;
        series_[std::vector<std::string>(labels.begin(), labels.end())].merge(s);
    }

    prometheus::MetricFamily family(std::string_view name, std::string_view help, MetricKind kind,
                                    const std::vector<std::string_view>& label_names,
                                    std::span<const double> bounds) const {
        prometheus::MetricFamily f{std::string(name), std::string(help), to_prometheus(kind), {}};
        f.metric.reserve(series_.size());
        for (const auto& [values, s] : series_) {
            prometheus::ClientMetric m;
            for (std::size_t k = 0; k < label_names.size() && k < values.size(); ++k) {
                m.label.push_back({std::string(label_names[k]), values[k]});
            }
            switch (kind) {
                case MetricKind::counter:  // a DERIVED counter reads a histogram's count
                    m.counter.value = s.buckets.empty() ? s.value : static_cast<double>(s.count());
                    break;
                case MetricKind::gauge:
                    m.gauge.value = s.value;
                    break;
                case MetricKind::histogram: {
                    std::uint64_t cumulative = 0;
                    for (std::size_t i = 0; i < s.buckets.size(); ++i) {
                        cumulative += s.buckets[i];
                        const double le =
                            i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity();
                        m.histogram.bucket.push_back({cumulative, le});
                    }
                    m.histogram.sample_count = cumulative;
                    m.histogram.sample_sum = s.sum;
                    break;
                }
            }
            f.metric.push_back(std::move(m));
        }
        return f;
    }

  private:
    std::map<std::vector<std::string>, detail::Sample> series_;
};

prometheus::ClientMetric gauge_metric(double v, std::vector<prometheus::ClientMetric::Label> l) {
    prometheus::ClientMetric m;
    m.label = std::move(l);
    m.gauge.value = v;
    return m;
}

}  // namespace

struct Registry::Impl : prometheus::Collectable {
    explicit Impl(std::size_t n, BuildInfo b) : build(std::move(b)) {
        if (n == 0) throw std::invalid_argument("pggw::metrics::Registry: zero workers");
        workers.reserve(n);
        for (std::size_t i = 0; i < n; ++i) workers.push_back(std::make_unique<WorkerMetrics>());
        ctx.library_mask = 0;
        for (auto lib : split_labels(build.libraries)) {
            const auto i = detail::index_of<detail::LibraryDim>(lib);
            if (i + 1 < detail::LibraryDim::values.size()) ctx.library_mask |= 1u << i;
        }
    }

    std::vector<prometheus::MetricFamily> Collect() const override {
        std::vector<prometheus::MetricFamily> out;
        const detail::ProcessStats proc = detail::read_process_stats();
        using detail::ShardFields;
#define PGGW_COLLECT_SHARDED(field, kind, name, help, storage) \
    out.push_back(collect_sharded(                             \
        name, help, MetricKind::kind,                          \
        [](const WorkerMetrics& w) -> const auto& { return w.f_.field##_; }));
#define PGGW_COLLECT_DERIVED(field, kind, name, help, source) \
    PGGW_COLLECT_SHARDED(source, kind, name, help, _)
#define PGGW_COLLECT_GLOBAL(field, kind, name, help, labels)                         \
    {                                                                                \
        prometheus::MetricFamily f{name, help, to_prometheus(MetricKind::kind), {}}; \
        collect_##field(f, proc);                                                    \
        if (!f.metric.empty()) out.push_back(std::move(f));                          \
    }
        PGGW_METRICS(PGGW_COLLECT_SHARDED, PGGW_COLLECT_DERIVED, PGGW_COLLECT_GLOBAL)
#undef PGGW_COLLECT_SHARDED
#undef PGGW_COLLECT_DERIVED
#undef PGGW_COLLECT_GLOBAL
        return out;
    }

    template <class Get>
    prometheus::MetricFamily collect_sharded(std::string_view name, std::string_view help,
                                             MetricKind kind, Get get) const {
        using Storage = std::remove_cvref_t<decltype(get(*workers.front()))>;
        Accumulator acc;
        for (const auto& w : workers) {
            get(*w).visit(
                [&](detail::Labels l, bool keep, const detail::Sample& s) { acc.add(l, keep, s); },
                ctx);
        }
        return acc.family(name, help, kind, Storage::label_names(), Storage::value_type::bounds());
    }

    // ---- GLOBAL rows ----
    using Proc = detail::ProcessStats;
    static void add_optional(prometheus::MetricFamily& f, const std::optional<double>& v) {
        if (!v) return;
        prometheus::ClientMetric m;
        if (f.type == prometheus::MetricType::Counter) {
            m.counter.value = *v;
        } else {
            m.gauge.value = *v;
        }
        f.metric.push_back(std::move(m));
    }
    void collect_ready(prometheus::MetricFamily& f, const Proc&) const {
        f.metric.push_back(gauge_metric(readiness.ready.load() ? 1 : 0, {}));
    }
    void collect_draining(prometheus::MetricFamily& f, const Proc&) const {
        f.metric.push_back(gauge_metric(readiness.draining.load() ? 1 : 0, {}));
    }
    void collect_certificate_expiry(prometheus::MetricFamily& f, const Proc&) const {
        std::lock_guard lock(cert_mutex);
        for (std::size_t leg = 0; leg < certs.size(); ++leg) {
            // One series per subject; two certificates with one subject report the earlier
            // expiry (the one an alert must see).
            std::map<std::string, std::int64_t> by_subject;
            for (const auto& c : certs[leg]) {
                auto subject =
                    detail::Capped<detail::Count, detail::TlsSessionNames>::sanitize(c.subject);
                auto [it, inserted] = by_subject.emplace(subject, c.not_after);
                if (!inserted) it->second = std::min(it->second, c.not_after);
            }
            for (const auto& [subject, not_after] : by_subject) {
                f.metric.push_back(gauge_metric(
                    static_cast<double>(not_after),
                    {{"leg", std::string(detail::LegDim::values[leg])}, {"subject", subject}}));
            }
        }
    }
    using ReloadCounts = std::array<std::atomic<std::uint64_t>, 2>;  // ok, error
    static void add_reloads(prometheus::MetricFamily& f, const ReloadCounts& counts) {
        for (std::size_t i = 0; i < counts.size(); ++i) {
            prometheus::ClientMetric m;
            m.label = {{"result", i == 0 ? "ok" : "error"}};
            m.counter.value = static_cast<double>(counts[i].load(std::memory_order_relaxed));
            f.metric.push_back(std::move(m));
        }
    }
    void collect_tls_reloads(prometheus::MetricFamily& f, const Proc&) const {
        add_reloads(f, tls_reloads);
    }
    void collect_auth_file_reloads(prometheus::MetricFamily& f, const Proc&) const {
        add_reloads(f, auth_file_reloads);
    }
    void collect_build_info(prometheus::MetricFamily& f, const Proc&) const {
        f.metric.push_back(
            gauge_metric(1, {{"version", build.version}, {"libraries", build.libraries}}));
    }
    void collect_process_cpu_seconds(prometheus::MetricFamily& f, const Proc& p) const {
        add_optional(f, p.cpu_seconds);
    }
    void collect_process_open_fds(prometheus::MetricFamily& f, const Proc& p) const {
        add_optional(f, p.open_fds);
    }
    void collect_process_max_fds(prometheus::MetricFamily& f, const Proc& p) const {
        add_optional(f, p.max_fds);
    }
    void collect_process_virtual_memory(prometheus::MetricFamily& f, const Proc& p) const {
        add_optional(f, p.virtual_bytes);
    }
    void collect_process_resident_memory(prometheus::MetricFamily& f, const Proc& p) const {
        add_optional(f, p.resident_bytes);
    }
    void collect_process_start_time(prometheus::MetricFamily& f, const Proc& p) const {
        add_optional(f, p.start_time);
    }

    BuildInfo build;
    std::vector<std::unique_ptr<WorkerMetrics>> workers;
    detail::ScrapeContext ctx;
    Readiness readiness;
    mutable std::mutex cert_mutex;
    std::array<std::vector<CertificateInfo>, 2> certs;
    ReloadCounts tls_reloads{};
    ReloadCounts auth_file_reloads{};
};

Registry::Registry(std::size_t workers, BuildInfo info)
    : impl_(std::make_unique<Impl>(workers, std::move(info))) {}

Registry::~Registry() = default;

std::size_t Registry::workers() const {
    return impl_->workers.size();
}

WorkerMetrics& Registry::worker(std::size_t i) {
    return *impl_->workers.at(i);
}

Readiness& Registry::readiness() {
    return impl_->readiness;
}

void Registry::set_certificates(Leg leg, std::vector<CertificateInfo> certs) {
    std::lock_guard lock(impl_->cert_mutex);
    impl_->certs[static_cast<std::size_t>(leg)] = std::move(certs);
}

void Registry::tls_reloaded(bool ok) {
    impl_->tls_reloads[ok ? 0 : 1].fetch_add(1, std::memory_order_relaxed);
}

void Registry::auth_file_reloaded(bool ok) {
    impl_->auth_file_reloads[ok ? 0 : 1].fetch_add(1, std::memory_order_relaxed);
}

std::string Registry::scrape() {
    return prometheus::TextSerializer().Serialize(impl_->Collect());
}

}  // namespace pggw::metrics
