// What one session's closing log line reports, filled in by each stage as it goes, and the
// one way a stage refuses a client.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "gateway/net/stream.hpp"
#include "gateway/pg/refusal.hpp"
#include "metrics/metrics.hpp"

namespace pggw {

struct SessionRecord {
    std::string peer;       // "ADDR:PORT" / "[v6]:PORT", for every log line
    std::string peer_host;  // ADDR alone, as refusals name it
    std::string via;        // behind PROXY protocol: the balancer's ADDR:PORT
    std::string user, database;
    std::string close_reason;  // the first stage to end the session says why
    std::uint64_t bytes_c2s = 0, bytes_s2c = 0;
    // How each leg authenticated: a SCRAM mechanism when pggw did it (--auth-file), "relayed"
    // when the server's exchange passed through.
    std::string_view client_auth = "relayed", server_auth = "relayed";

    void end(std::string reason) {
        if (close_reason.empty()) close_reason = std::move(reason);
    }
};

// Logs the refusal, counts pggw_client_refusals_total{reason}, sets the close reason and
// sends the client an ErrorResponse (FATAL, sqlstate, message, detail when not empty).
awaitable<void> refuse_client(Stream& client, SessionRecord& rec, metrics::WorkerMetrics& m,
                              std::string_view sqlstate, std::string_view message, Refusal why,
                              std::string_view detail = {});
// The same, for a caller that has logged why in its own words: counts the refusal, sets the
// close reason and sends error_response, a complete ErrorResponse.
awaitable<void> send_refusal(Stream& client, SessionRecord& rec, metrics::WorkerMetrics& m,
                             std::span<const std::uint8_t> error_response, Refusal why);

}  // namespace pggw
