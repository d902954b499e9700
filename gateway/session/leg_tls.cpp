#include "gateway/session/leg_tls.hpp"

#include <spdlog/spdlog.h>

#include "gateway/session/clock.hpp"
#include "gateway/session/log_value.hpp"

namespace pggw {

awaitable<LegTlsOutcome> run_tls_handshake(Stream& s, const LegTls& leg) {
    using metrics::HandshakeResult;
    using metrics::Leg;
    const auto started = Clock::now();
    TlsOutcome out = co_await s.handshake();
    const double secs = seconds_since(started);
    auto& m = leg.metrics;

    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) {
        m.tls_handshake(leg.leg, leg.library, HandshakeResult::timeout, secs);
        m.tls_handshake_error(leg.leg, leg.library, "timeout");
        co_return LegTlsOutcome{false, true, tls::Failure::other, "timeout"};
    }
    if (!out.ok) {
        const auto why = tls::failure_name(out.failure);
        m.tls_handshake(leg.leg, leg.library, HandshakeResult::error, secs);
        m.tls_handshake_error(leg.leg, leg.library, why);
        if (leg.leg == Leg::client)
            spdlog::warn("TLS handshake failed: peer={} reason={}: {}", leg.peer, why, out.reason);
        else
            spdlog::warn("TLS handshake with PostgreSQL server {} failed: reason={} sni={}: {}",
                         leg.peer, why, leg.sni, out.reason);
        co_return LegTlsOutcome{false, false, out.failure, std::move(out.reason)};
    }
    const tls::HandshakeInfo& info = s.engine()->info();
    m.tls_handshake(leg.leg, leg.library, HandshakeResult::ok, secs);
    m.tls_session(leg.leg, info.version, info.cipher);
    if (leg.leg == Leg::client)
        spdlog::debug(
            "TLS established: peer={} version={} cipher={} alpn={} sni={}{}", leg.peer,
            info.version, info.cipher, log_value(info.alpn), log_value(info.sni),
            info.peer_certificate ? " client_cn=" + log_value(info.peer_common_name) : "");
    else
        spdlog::debug("server TLS established: server={} version={} cipher={} subject={}", leg.peer,
                      info.version, info.cipher, info.peer_subject);
    co_return LegTlsOutcome{true, false, tls::Failure::none, {}};
}

}  // namespace pggw
