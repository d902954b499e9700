// pggw metrics: per-worker shards written without locks, summed into a Prometheus text
// exposition at scrape time. The metric set is declared once, in metrics/metric_table.hpp.
//
// Wiring (gateway):
//   Registry registry(n_workers, {PGGW_VERSION, "boringssl,wolfssl"});
//   worker i uses registry.worker(i) from its own thread only;
//   registry.readiness().ready = true   once listening with a certificate loaded;
//   registry.readiness().draining = true when a drain starts (/readyz then answers 503);
//   registry.set_certificates(Leg::client, {...}) on every (re)load;
//   registry.tls_reloaded(ok) on every reload (SIGHUP or files changed).
// See admin_server.hpp for /metrics, /healthz and /readyz.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/pg/startup_kind.hpp"
#include "metrics/metric_table.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::metrics {

// Enum order matches the label value order in metric_table.hpp.
enum class Leg { client, server };
enum class HandshakeResult { ok, error, timeout };
// The kind of packet a connection opened with (one enum with the startup decoder).
using StartupKind = pggw::StartupKind;
enum class Direction { client_to_server, server_to_client };
enum class AuthMechanism { scram_sha_256, scram_sha_256_plus, relayed };
enum class AuthResult { ok, error };
// The overload cap that closed a connection before its startup completed (RejectionReasonDim).
enum class Rejection {
    negotiating_total,
    negotiating_per_source,
    handshake_queue_timeout,
    cancel_rate
};
constexpr std::size_t kRejectionCount = 4;
static_assert(detail::RejectionReasonDim::values.size() == kRejectionCount &&
              detail::RejectionReasonDim::values[3] == "cancel_rate");
enum class AuthQueryResult { found, not_found, error, cached };  // AuthQueryResultDim's order

// A certificate pggw presents (subject, expiry): what the TLS context reports.
using CertificateInfo = tls::CertificateInfo;

struct BuildInfo {
    std::string version;
    std::string libraries;  // comma-separated TLS libraries compiled in, e.g. "boringssl,wolfssl"
};

// What /readyz and pggw_ready / pggw_draining report; set by the gateway.
struct Readiness {
    std::atomic<bool> ready{false};     // listening, certificate loaded
    std::atomic<bool> draining{false};  // shutting down: not ready, still healthy
};

class Registry;

namespace detail {
constexpr std::string_view leg_name(Leg l) {
    return LegDim::values[static_cast<std::size_t>(l)];
}
}  // namespace detail

// One per worker thread. Only that worker's thread may call the methods below (single-writer
// relaxed atomics: no lock, no contended atomic, no data race with the scraper).
class alignas(64) WorkerMetrics {
  public:
    WorkerMetrics() = default;
    WorkerMetrics(const WorkerMetrics&) = delete;
    WorkerMetrics& operator=(const WorkerMetrics&) = delete;

    void connection_accepted();
    void session_started();              // pggw_sessions_active +1
    void session_ended(double seconds);  // -1, observe pggw_session_duration_seconds
    void startup_request(StartupKind k);
    // result: ProxyHeaderResultDim's values (ok, local, untrusted, missing, malformed,
    // oversized, truncated, timeout); anything else is counted as "other".
    void proxy_header(std::string_view result);
    void negotiation_reply(char reply);  // 'S' or 'N' (anything else counts as "other")
    void negotiating(int delta);         // pggw_connections_negotiating
    void connection_rejected(Rejection r);
    void tls_handshakes_in_progress(int delta);
    // library: "boringssl" or "wolfssl" (else "other"). Counts pggw_tls_handshakes_total and
    // observes pggw_tls_handshake_duration_seconds with the same labels.
    void tls_handshake(Leg leg, std::string_view library, HandshakeResult r, double seconds);
    // reason: a tls::failure_name, plaintext_after_sslrequest or timeout
    // (HandshakeErrorReasonDim); anything else is counted as "other".
    void tls_handshake_error(Leg leg, std::string_view library, std::string_view reason);
    // Any strings; at most 32 distinct (leg, version, cipher) per worker, then "other".
    void tls_session(Leg leg, std::string_view version, std::string_view cipher);
    // Counts pggw_auth_total and observes pggw_auth_duration_seconds with the same labels.
    void auth(Leg leg, AuthMechanism m, AuthResult r, double seconds);
    void auth_query(AuthQueryResult r);  // pggw_auth_queries_total{result}
    void server_connect(double seconds);
    void server_connect_error(std::string_view reason);  // capped like tls_session
    void bytes(Direction d, std::uint64_t n);
    void cancel_request(std::string_view result);  // e.g. forwarded, error (capped)
    void client_refused(std::string_view reason);  // tls_required, too_many_connections, ...
  private:
    friend class Registry;
    detail::ShardFields f_;
};

enum class MetricKind { counter, gauge, histogram };

// One row of the table, for documentation and tests.
struct MetricDesc {
    std::string_view name;
    MetricKind kind;
    std::string_view help;
    std::vector<std::string_view> labels;
};
const std::vector<MetricDesc>& metric_table();

class Registry {
  public:
    Registry(std::size_t workers, BuildInfo info);
    ~Registry();
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    std::size_t workers() const;
    WorkerMetrics& worker(std::size_t i);
    Readiness& readiness();

    // Replaces all series of this leg (old subjects disappear, so expiry alerts clear).
    // Thread-safe (reload path).
    void set_certificates(Leg leg, std::vector<CertificateInfo> certs);
    // Counts a TLS reload, pggw_tls_reloads_total{result="ok"|"error"}. Thread-safe.
    void tls_reloaded(bool ok);
    // Counts an --auth-file reload, pggw_auth_file_reloads_total{result}. Thread-safe.
    void auth_file_reloaded(bool ok);

    // Prometheus text exposition (version 0.0.4). Thread-safe; sums the shards.
    std::string scrape();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// ---- hot path: inline, so that a call costs a few instructions in the session code ----

inline void WorkerMetrics::connection_accepted() {
    f_.connections_accepted_.get().inc();
}

inline void WorkerMetrics::session_started() {
    f_.sessions_active_.get().add(1);
}

inline void WorkerMetrics::session_ended(double seconds) {
    f_.sessions_active_.get().add(-1);
    f_.session_duration_.get().observe(seconds);
}

inline void WorkerMetrics::startup_request(StartupKind k) {
    f_.startup_requests_.at(k).inc();
}

inline void WorkerMetrics::proxy_header(std::string_view result) {
    f_.proxy_headers_.at(detail::index_of<detail::ProxyHeaderResultDim>(result)).inc();
}

inline void WorkerMetrics::negotiation_reply(char reply) {
    f_.negotiation_replies_.at(reply == 'S' ? 0 : reply == 'N' ? 1 : 2).inc();
}

inline void WorkerMetrics::negotiating(int delta) {
    f_.connections_negotiating_.get().add(delta);
}

inline void WorkerMetrics::connection_rejected(Rejection r) {
    f_.connections_rejected_.at(r).inc();
}

inline void WorkerMetrics::tls_handshakes_in_progress(int delta) {
    f_.tls_handshakes_in_progress_.get().add(delta);
}

inline void WorkerMetrics::tls_handshake(Leg leg, std::string_view library, HandshakeResult r,
                                         double seconds) {
    f_.tls_handshake_duration_.at(leg, detail::index_of<detail::LibraryDim>(library), r)
        .observe(seconds);
}

inline void WorkerMetrics::tls_handshake_error(Leg leg, std::string_view library,
                                               std::string_view reason) {
    f_.tls_handshake_errors_
        .at(leg, detail::index_of<detail::LibraryDim>(library),
            detail::index_of<detail::HandshakeErrorReasonDim>(reason))
        .inc();
}

inline void WorkerMetrics::tls_session(Leg leg, std::string_view version, std::string_view cipher) {
    f_.tls_sessions_.find({detail::leg_name(leg), version, cipher}).inc();
}

inline void WorkerMetrics::auth(Leg leg, AuthMechanism m, AuthResult r, double seconds) {
    f_.auth_duration_.at(leg, m, r).observe(seconds);
}

inline void WorkerMetrics::auth_query(AuthQueryResult r) {
    f_.auth_queries_.at(r).inc();
}

inline void WorkerMetrics::server_connect(double seconds) {
    f_.server_connect_duration_.get().observe(seconds);
}

inline void WorkerMetrics::server_connect_error(std::string_view reason) {
    f_.server_connect_errors_.find({reason}).inc();
}

inline void WorkerMetrics::bytes(Direction d, std::uint64_t n) {
    f_.bytes_.at(d).inc(n);
}

inline void WorkerMetrics::cancel_request(std::string_view result) {
    f_.cancel_requests_.find({result}).inc();
}

inline void WorkerMetrics::client_refused(std::string_view reason) {
    f_.client_refusals_.find({reason}).inc();
}

}  // namespace pggw::metrics
