// Every metric pggw exports, declared once (Envoy's ALL_*_STATS style). The per-worker shard
// (WorkerMetrics' fields), the scrape code and the documentation table (metric_table()) are all
// generated from PGGW_METRICS; adding a metric is one row here plus the code that updates it.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "metrics/shard_storage.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::metrics::detail {

// ---- label dimensions with a fixed set of values (value order = enum order in metrics.hpp) ----

struct AlwaysPrecreate {
    static bool precreate(std::size_t, const ScrapeContext&) { return true; }
};
struct NeverPrecreate {
    static bool precreate(std::size_t, const ScrapeContext&) { return false; }
};

struct LegDim : AlwaysPrecreate {
    static constexpr std::string_view name = "leg";
    static constexpr std::array<std::string_view, 2> values{"client", "server"};
};
// Series of the libraries compiled in (BuildInfo::libraries) are pre-created; "other" catches
// a name we do not know and is only exported when non-zero.
struct LibraryDim {
    static constexpr std::string_view name = "library";
    static constexpr std::array<std::string_view, 3> values{"boringssl", "wolfssl", "other"};
    static_assert(values[0] == tls::kLibraryNames[0] && values[1] == tls::kLibraryNames[1] &&
                  tls::kLibraryNames.size() == 2);
    static bool precreate(std::size_t i, const ScrapeContext& ctx) {
        return i < 32 && (ctx.library_mask >> i & 1u) != 0;
    }
};
struct ResultDim : AlwaysPrecreate {
    static constexpr std::string_view name = "result";
    static constexpr std::array<std::string_view, 3> values{"ok", "error", "timeout"};
};
// The TLS libraries' failure names (tls::kFailureNames, but for none and other), then the two
// reasons pggw itself finds (bytes behind an SSLRequest; the deadline), then "other".
struct HandshakeErrorReasonDim : NeverPrecreate {
    static constexpr std::string_view name = "reason";
    static constexpr auto values = [] {
        std::array<std::string_view, tls::kFailureNames.size() + 1> v{};
        std::size_t n = 0;
        for (const auto& f : tls::kFailureNames)
            if (f.failure != tls::Failure::none && f.failure != tls::Failure::other)
                v[n++] = f.name;
        v[n++] = "plaintext_after_sslrequest";
        v[n++] = "timeout";
        v[n++] = "other";
        return v;
    }();
    static_assert(values.back() == "other");
};
struct StartupKindDim : AlwaysPrecreate {
    static constexpr std::string_view name = "kind";
    static constexpr std::array<std::string_view, 6> values{"ssl",     "gssenc",     "cancel",
                                                            "startup", "direct_tls", "invalid"};
};
// What became of a connection's PROXY protocol header (--proxy-protocol).
struct ProxyHeaderResultDim : NeverPrecreate {
    static constexpr std::string_view name = "result";
    static constexpr std::array<std::string_view, 9> values{"ok",        "local",     "untrusted",
                                                            "missing",   "malformed", "oversized",
                                                            "truncated", "timeout",   "other"};
};
// How a leg authenticated: pggw's own SCRAM exchange (--auth-file), or the server's exchange
// relayed to the client untouched (users the auth source does not know).
struct AuthMechanismDim : NeverPrecreate {
    static constexpr std::string_view name = "mechanism";
    static constexpr std::array<std::string_view, 3> values{"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS",
                                                            "relayed"};
};
struct AuthResultDim : AlwaysPrecreate {
    static constexpr std::string_view name = "result";
    static constexpr std::array<std::string_view, 2> values{"ok", "error"};
};
// --auth-query lookups: found/not_found (answered by PostgreSQL), error (no answer: the login
// failed), cached (answered from the worker's cache, found or not).
struct AuthQueryResultDim : AlwaysPrecreate {
    static constexpr std::string_view name = "result";
    static constexpr std::array<std::string_view, 4> values{"found", "not_found", "error",
                                                            "cached"};
};
// The overload cap a connection hit before its startup completed (gateway/session/admission.hpp).
struct RejectionReasonDim : AlwaysPrecreate {
    static constexpr std::string_view name = "reason";
    static constexpr std::array<std::string_view, 4> values{
        "negotiating_total", "negotiating_per_source", "handshake_queue_timeout", "cancel_rate"};
};
struct ReplyDim {
    static constexpr std::string_view name = "reply";
    static constexpr std::array<std::string_view, 3> values{"S", "N", "other"};
    static bool precreate(std::size_t i, const ScrapeContext&) { return i < 2; }
};
struct DirectionDim : AlwaysPrecreate {
    static constexpr std::string_view name = "direction";
    static constexpr std::array<std::string_view, 2> values{"client_to_server", "server_to_client"};
};

// Index of v in a Dim whose last value is "other"; anything unknown maps to "other".
template <class Dim>
inline std::size_t index_of(std::string_view v) noexcept {
    static_assert(Dim::values.back() == "other");
    for (std::size_t i = 0; i + 1 < Dim::values.size(); ++i) {
        if (same(Dim::values[i], v)) return i;
    }
    return Dim::values.size() - 1;
}

// ---- free-form label sets (capped per shard) ----

struct TlsSessionNames {
    static constexpr std::array<std::string_view, 3> names{"leg", "version", "cipher"};
    static constexpr std::array<std::array<std::string_view, 3>, 0> defaults{};
};
struct ServerConnectErrorNames {
    static constexpr std::array<std::string_view, 1> names{"reason"};
    static constexpr std::array<std::array<std::string_view, 1>, 0> defaults{};
};
struct CancelResultNames {
    static constexpr std::array<std::string_view, 1> names{"result"};
    static constexpr std::array<std::array<std::string_view, 1>, 2> defaults{
        {{"forwarded"}, {"error"}}};
};
struct RefusalReasonNames {
    static constexpr std::array<std::string_view, 1> names{"reason"};
    static constexpr std::array<std::array<std::string_view, 1>, 3> defaults{
        {{"tls_required"}, {"too_many_connections"}, {"protocol_violation"}}};
};

// ---- histogram buckets ----

// 50us * 2^i up to ~13 s: 100us, 1ms and 10ms fall in different buckets (0.0001, 0.0016, 0.0128).
struct LatencyBuckets {
    static constexpr std::array<double, 19> bounds = exponential_bounds<19>(50e-6, 2.0);
};
// Sessions last from milliseconds (pgbench -C) to days (poolers).
struct SessionBuckets {
    static constexpr std::array<double, 13> bounds{0.01, 0.1, 0.5,  1,     5,     15,   60,
                                                   300,  900, 3600, 14400, 43200, 86400};
};

}  // namespace pggw::metrics::detail

// clang-format off
// SHARDED(field, kind, name, help, (storage))  a per-worker shard field, summed over workers
// DERIVED(field, kind, name, help, source)     a counter read from the _count of a SHARDED
//                                              histogram, so both agree exactly per label set
// GLOBAL(field, kind, name, help, labels)      process-wide, filled by Registry::Impl::collect_<field>
#define PGGW_METRICS(SHARDED, DERIVED, GLOBAL)                                                    \
  SHARDED(connections_accepted, counter, "pggw_connections_accepted_total",                       \
          "Client TCP connections accepted.", (Scalar<Count>))                                    \
  SHARDED(sessions_active, gauge, "pggw_sessions_active",                                         \
          "Client sessions currently open.", (Scalar<Level>))                                     \
  SHARDED(session_duration, histogram, "pggw_session_duration_seconds",                           \
          "Duration of client sessions, accept to close.", (Scalar<Histogram<SessionBuckets>>))   \
  SHARDED(startup_requests, counter, "pggw_startup_requests_total",                               \
          "First packets of a connection by kind.", (Fixed<Count, StartupKindDim>))               \
  SHARDED(proxy_headers, counter, "pggw_proxy_protocol_headers_total",                            \
          "PROXY protocol headers by result (untrusted: a source outside --proxy-trusted).",      \
          (Fixed<Count, ProxyHeaderResultDim>))                                                   \
  SHARDED(connections_negotiating, gauge, "pggw_connections_negotiating",                         \
          "Connections between accept and a complete StartupMessage or CancelRequest.",           \
          (Scalar<Level>))                                                                        \
  SHARDED(connections_rejected, counter, "pggw_connections_rejected_total",                       \
          "Connections closed before their startup completed by an overload cap, by cap.",        \
          (Fixed<Count, RejectionReasonDim>))                                                     \
  SHARDED(tls_handshakes_in_progress, gauge, "pggw_tls_handshakes_in_progress",                   \
          "Client TLS handshakes in progress (at most --max-handshakes-per-worker per worker).",   \
          (Scalar<Level>))                                                                        \
  SHARDED(negotiation_replies, counter, "pggw_negotiation_replies_total",                         \
          "Replies to SSLRequest/GSSENCRequest.", (Fixed<Count, ReplyDim>))                       \
  DERIVED(tls_handshakes, counter, "pggw_tls_handshakes_total",                                   \
          "TLS handshakes by leg, library and result.", tls_handshake_duration)                   \
  SHARDED(tls_handshake_duration, histogram, "pggw_tls_handshake_duration_seconds",               \
          "TLS handshake duration by leg, library and result.",                                   \
          (Fixed<Histogram<LatencyBuckets>, LegDim, LibraryDim, ResultDim>))                      \
  SHARDED(tls_handshake_errors, counter, "pggw_tls_handshake_errors_total",                       \
          "Failed TLS handshakes by cause.",                                                      \
          (Fixed<Count, LegDim, LibraryDim, HandshakeErrorReasonDim>))                            \
  SHARDED(tls_sessions, counter, "pggw_tls_sessions_total",                                       \
          "Established TLS sessions by negotiated version and cipher.",                           \
          (Capped<Count, TlsSessionNames>))                                                       \
  DERIVED(auth, counter, "pggw_auth_total",                                                       \
          "Authentications by leg, mechanism and result (relayed: the server's own exchange, "   \
          "passed through).", auth_duration)                                                      \
  SHARDED(auth_duration, histogram, "pggw_auth_duration_seconds",                                 \
          "Authentication duration by leg, mechanism and result.",                                \
          (Fixed<Histogram<LatencyBuckets>, LegDim, AuthMechanismDim, AuthResultDim>))            \
  SHARDED(auth_queries, counter, "pggw_auth_queries_total",                                      \
          "--auth-query lookups of users not in --auth-file, by result (cached: answered from "   \
          "the worker's cache).", (Fixed<Count, AuthQueryResultDim>))                             \
  SHARDED(server_connect_duration, histogram, "pggw_server_connect_duration_seconds",             \
          "Time to open a TCP connection to the PostgreSQL server.",                              \
          (Scalar<Histogram<LatencyBuckets>>))                                                    \
  SHARDED(server_connect_errors, counter, "pggw_server_connect_errors_total",                     \
          "Failed connections to the PostgreSQL server.",                                         \
          (Capped<Count, ServerConnectErrorNames>))                                               \
  SHARDED(bytes, counter, "pggw_bytes_total",                                                     \
          "Payload bytes relayed (plaintext side).", (Fixed<Count, DirectionDim>))                \
  SHARDED(cancel_requests, counter, "pggw_cancel_requests_total",                                 \
          "CancelRequests handled, by result.", (Capped<Count, CancelResultNames>))               \
  SHARDED(client_refusals, counter, "pggw_client_refusals_total",                                 \
          "Client connections refused, by reason.", (Capped<Count, RefusalReasonNames>))          \
  GLOBAL(ready, gauge, "pggw_ready",                                                              \
         "1 when listening with a certificate loaded.", "")                                       \
  GLOBAL(draining, gauge, "pggw_draining", "1 while draining connections for shutdown.", "")      \
  GLOBAL(certificate_expiry, gauge, "pggw_tls_certificate_expiry_timestamp_seconds",              \
         "Expiry (notAfter) of each loaded certificate, unix seconds.", "leg,subject")            \
  GLOBAL(tls_reloads, counter, "pggw_tls_reloads_total",                                          \
         "Reloads of the TLS certificates, keys and CAs (SIGHUP or files changed on disk), by "  \
         "result; error: the previous ones kept serving.", "result")                              \
  GLOBAL(auth_file_reloads, counter, "pggw_auth_file_reloads_total",                              \
         "Reloads of --auth-file (SIGHUP or file changed on disk), by result; error: the "       \
         "previous contents kept serving.", "result")                                             \
  GLOBAL(build_info, gauge, "pggw_build_info",                                                    \
         "Build information; always 1.", "version,libraries")                                     \
  GLOBAL(process_cpu_seconds, counter, "process_cpu_seconds_total",                               \
         "Total user and system CPU time spent in seconds.", "")                                  \
  GLOBAL(process_open_fds, gauge, "process_open_fds", "Number of open file descriptors.", "")     \
  GLOBAL(process_max_fds, gauge, "process_max_fds",                                               \
         "Maximum number of open file descriptors.", "")                                          \
  GLOBAL(process_virtual_memory, gauge, "process_virtual_memory_bytes",                           \
         "Virtual memory size in bytes.", "")                                                     \
  GLOBAL(process_resident_memory, gauge, "process_resident_memory_bytes",                         \
         "Resident memory size in bytes.", "")                                                    \
  GLOBAL(process_start_time, gauge, "process_start_time_seconds",                                 \
         "Start time of the process since unix epoch in seconds.", "")
// clang-format on

namespace pggw::metrics::detail {

// The shard: one field per SHARDED row, named <field>_.
struct ShardFields {
#define PGGW_DECLARE_SHARDED(field, kind, name, help, storage) \
    typename unparen<void storage>::type field##_;
#define PGGW_DECLARE_NONE(...)
    PGGW_METRICS(PGGW_DECLARE_SHARDED, PGGW_DECLARE_NONE, PGGW_DECLARE_NONE)
#undef PGGW_DECLARE_SHARDED
#undef PGGW_DECLARE_NONE
};

}  // namespace pggw::metrics::detail
