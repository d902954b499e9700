#include "gateway/session/session_record.hpp"

#include <spdlog/spdlog.h>

#include "gateway/pg/protocol.hpp"

namespace pggw {

awaitable<void> refuse_client(Stream& client, SessionRecord& rec, metrics::WorkerMetrics& m,
                              std::string_view sqlstate, std::string_view message, Refusal why,
                              std::string_view detail) {
    spdlog::warn("refused client: peer={} user={} database={} sqlstate={}: {}", rec.peer, rec.user,
                 rec.database, sqlstate, message);
    auto msg = pg::error_response(sqlstate, message, "FATAL", detail);
    co_await send_refusal(client, rec, m, msg, why);
}

awaitable<void> send_refusal(Stream& client, SessionRecord& rec, metrics::WorkerMetrics& m,
                             std::span<const std::uint8_t> error_response, Refusal why) {
    m.client_refused(refusal_name(why));
    rec.close_reason = "refused: " + std::string(refusal_name(why));
    co_await client.write_all(error_response);
}

}  // namespace pggw
