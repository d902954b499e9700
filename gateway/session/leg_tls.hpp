// One TLS handshake on either leg, recorded once: pggw_tls_handshakes_total and the duration
// histogram (ok / error / timeout), pggw_tls_handshake_errors_total{reason}, the negotiated
// version and cipher, and the log line. The deadline is the caller's: the handshake runs
// inside a `|| sleep_for(...)` race (--handshake-timeout on the client leg,
// --server-connect-timeout on the server leg), and a handshake that race cancels is
// recorded here as a timeout.
#pragma once

#include <string>
#include <string_view>

#include "gateway/net/stream.hpp"
#include "metrics/metrics.hpp"

namespace pggw {

struct LegTls {
    metrics::Leg leg;
    std::string_view library;  // metrics label
    metrics::WorkerMetrics& metrics;
    std::string_view peer;  // client address, or the server's HOST:PORT
    std::string_view sni;   // server leg: the name sent and verified
};

struct LegTlsOutcome {
    bool ok = false;
    bool timed_out = false;  // cancelled by the caller's deadline (recorded as timeout)
    tls::Failure failure = tls::Failure::none;
    std::string reason;  // readable, for the log
};

// Runs the handshake of an engine already put on s (Stream::start_tls).
awaitable<LegTlsOutcome> run_tls_handshake(Stream& s, const LegTls& leg);

}  // namespace pggw
