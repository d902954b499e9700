#include "gateway/session.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <optional>

#include "gateway/channel_binding.hpp"
#include "gateway/message_tracker.hpp"
#include "gateway/protocol.hpp"
#include "gateway/server_connection.hpp"
#include "gateway/startup_decoder.hpp"
#include "gateway/stream.hpp"
#include "gateway/worker.hpp"

namespace pggw {
namespace {

using Clock = std::chrono::steady_clock;
using metrics::Direction;
using metrics::HandshakeResult;
using metrics::Leg;

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

metrics::StartupKind metric_kind(StartupKind k) {
    switch (k) {
        case StartupKind::ssl_request:
            return metrics::StartupKind::ssl;
        case StartupKind::gssenc_request:
            return metrics::StartupKind::gssenc;
        case StartupKind::cancel_request:
            return metrics::StartupKind::cancel;
        case StartupKind::startup_message:
            return metrics::StartupKind::startup;
        case StartupKind::direct_tls:
            return metrics::StartupKind::direct_tls;
    }
    return metrics::StartupKind::invalid;
}

std::string peer_name(const tcp::socket& s) {
    error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) return "?";
    auto a = ep.address();
    if (a.is_v6()) return "[" + a.to_string() + "]:" + std::to_string(ep.port());
    return a.to_string() + ":" + std::to_string(ep.port());
}

// What the startup phase ends with.
struct Startup {
    enum What { closed, startup, cancel } what = closed;
    std::vector<std::uint8_t> packet;  // StartupMessage or CancelRequest, to forward as is
};

class Session {
  public:
    Session(Worker& w, tcp::socket s)
        : w_(w), m_(w.metrics()), client_(std::move(s)), peer_(peer_name(client_.socket())) {}

    awaitable<void> run();

  private:
    awaitable<Startup> negotiate();
    awaitable<bool> client_handshake(bool direct, std::span<const std::uint8_t> initial);
    awaitable<void> refuse(std::string_view sqlstate, std::string_view message,
                           std::string_view metric_reason);
    awaitable<void> forward_cancel(const std::vector<std::uint8_t>& packet);
    awaitable<void> relay(Stream& server);
    awaitable<void> end_when_drained();
    bool idle() const;
    awaitable<void> transfer(Stream& from, Stream& to, Direction dir);
    void end_log();

    Worker& w_;
    metrics::WorkerMetrics& m_;
    Stream client_;
    std::string peer_;
    std::string user_, database_;
    std::string close_reason_;
    Clock::time_point started_ = Clock::now();
    std::optional<Clock::time_point> handshake_started_;  // set while a client handshake runs
    std::uint64_t bytes_c2s_ = 0, bytes_s2c_ = 0;
    MessageTracker tracker_;         // server-to-client boundaries and transaction status
    MessageTracker client_tracker_;  // client-to-server: counts the queries sent
    bool s2c_writing_ = false;       // a server-to-client write is in flight
    // Cancelled when a drain is on and the session just became idle.
    asio::steady_timer idle_wakeup_{client_.socket().get_executor(),
                                    asio::steady_timer::time_point::max()};
    std::optional<ChannelBindingGuard> cb_guard_;  // set when channel binding cannot pass
    bool over_limit_ = false;
    bool was_session_ = false;  // got as far as a StartupMessage
};

awaitable<void> Session::refuse(std::string_view sqlstate, std::string_view message,
                                std::string_view metric_reason) {
    spdlog::warn("refused client: peer={} user={} database={} sqlstate={}: {}", peer_, user_,
                 database_, sqlstate, message);
    m_.client_refused(metric_reason);
    close_reason_ = "refused: " + std::string(metric_reason);
    auto msg = pg::error_response(sqlstate, message);
    co_await client_.write_all(msg);
}

awaitable<bool> Session::client_handshake(bool direct, std::span<const std::uint8_t> initial) {
    auto& ctx = w_.tls().client;
    const auto library = w_.shared().backend->name();
    tls::EngineOptions opts;
    opts.require_alpn = direct;
    client_.start_tls(ctx->new_engine(opts), initial);
    handshake_started_ = Clock::now();
    TlsOutcome out = co_await client_.handshake();
    if (!out.ok) {
        // Cut short by --handshake-timeout: run() counts it as a timeout, once.
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none) co_return false;
    }
    double secs = seconds_since(*handshake_started_);
    handshake_started_.reset();
    if (!out.ok) {
        m_.tls_handshake(Leg::client, library, HandshakeResult::error, secs);
        m_.tls_handshake_error(Leg::client, library, tls::failure_name(out.failure));
        spdlog::warn("TLS handshake failed: peer={} reason={}: {}", peer_,
                     tls::failure_name(out.failure), out.reason);
        close_reason_ = "TLS handshake failed";
        co_return false;
    }
    const auto& info = client_.engine()->info();
    m_.tls_handshake(Leg::client, library, HandshakeResult::ok, secs);
    m_.tls_session(Leg::client, info.version, info.cipher);
    spdlog::debug("TLS established: peer={} version={} cipher={} alpn={} sni={}{}", peer_,
                  info.version, info.cipher, info.alpn, info.sni,
                  info.peer_certificate ? " client_cn=" + info.peer_common_name : "");
    co_return true;
}

// The server side of README.SSL, PostgreSQL's ProcessStartupPacket as a coroutine.
awaitable<Startup> Session::negotiate() {
    const TlsMode mode = w_.shared().client_tls;
    const bool tls_on = mode != TlsMode::disable;
    std::vector<std::uint8_t> in;
    in.reserve(512);
    bool first = true, ssl_done = false, gss_done = false;
    std::array<std::uint8_t, 4096> chunk;

    for (;;) {
        DecodeResult d = decode_startup(in, first);
        if (d.status == DecodeResult::need_more) {
            auto [ec, n] = co_await client_.read_some(chunk);
            if (ec) {
                close_reason_ =
                    in.empty() && first ? "closed before startup" : "incomplete startup packet";
                co_return Startup{};
            }
            in.insert(in.end(), chunk.begin(), chunk.begin() + std::ptrdiff_t(n));
            continue;
        }
        if (d.status == DecodeResult::invalid) {
            m_.startup_request(metrics::StartupKind::invalid);
            spdlog::warn("invalid startup packet: peer={}: {}", peer_, d.error);
            close_reason_ = "invalid startup packet";
            if (d.error.starts_with("unsupported frontend protocol"))
                co_await refuse(pg::sqlstate::feature_not_supported, d.error, "protocol_violation");
            co_return Startup{};
        }
        StartupPacket& p = d.packet;
        m_.startup_request(metric_kind(p.kind));
        first = false;

        switch (p.kind) {
            case StartupKind::direct_tls: {
                if (!tls_on) {
                    spdlog::warn("direct TLS connection refused (TLS is disabled): peer={}", peer_);
                    close_reason_ = "direct TLS refused";
                    co_return Startup{};
                }
                std::vector<std::uint8_t> hello = std::move(in);
                in.clear();
                ssl_done = gss_done = true;
                if (!co_await client_handshake(true, hello)) co_return Startup{};
                continue;
            }
            case StartupKind::ssl_request:
            case StartupKind::gssenc_request: {
                bool ssl = p.kind == StartupKind::ssl_request;
                if ((ssl ? ssl_done : gss_done) || client_.encrypted()) {
                    std::string msg = "unsupported frontend protocol 1234." +
                                      std::to_string(p.code & 0xffff) +
                                      ": server supports 3.0 to 3.2";
                    co_await refuse(pg::sqlstate::feature_not_supported, msg, "protocol_violation");
                    co_return Startup{};
                }
                // CVE-2021-23214: bytes behind the request, sent before our answer, were never
                // protected by the TLS that follows; they must not become the next packet.
                if (in.size() > d.consumed) {
                    m_.tls_handshake_error(
                        Leg::client, w_.shared().backend ? w_.shared().backend->name() : "other",
                        "plaintext_after_sslrequest");
                    spdlog::warn(
                        "received unencrypted data after {} request: peer={}; closing "
                        "(client bug or man-in-the-middle)",
                        ssl ? "SSL" : "GSSENC", peer_);
                    close_reason_ = "unencrypted data after SSL request";
                    co_return Startup{};
                }
                in.clear();
                (ssl ? ssl_done : gss_done) = true;
                const char reply = ssl && tls_on ? 'S' : 'N';
                if (co_await client_.write_all(std::span<const std::uint8_t>(
                        reinterpret_cast<const std::uint8_t*>(&reply), 1))) {
                    close_reason_ = "client gone";
                    co_return Startup{};
                }
                m_.negotiation_reply(reply);
                if (reply == 'S' && !co_await client_handshake(false, {})) co_return Startup{};
                continue;
            }
            case StartupKind::cancel_request:
                // Accepted in every mode, plaintext too: most clients send cancels unencrypted
                // and the packet carries nothing but the key.
                co_return Startup{Startup::cancel, {p.bytes.begin(), p.bytes.end()}};
            case StartupKind::startup_message:
                break;
        }

        user_ = p.user;
        database_ = p.database;
        was_session_ = true;
        if (!client_.encrypted() && mode >= TlsMode::require) {
            co_await refuse(pg::sqlstate::invalid_authorization_specification,
                            "TLS required: pggw accepts only encrypted connections from \"" +
                                peer_.substr(0, peer_.rfind(':')) +
                                "\" (connect with sslmode=require or stronger)",
                            "tls_required");
            co_return Startup{};
        }
        if (mode == TlsMode::verify_full) {
            const auto& info = client_.engine()->info();
            if (info.peer_common_name != p.user) {
                co_await refuse(pg::sqlstate::invalid_authorization_specification,
                                "certificate validation (clientcert=verify-full) failed for "
                                "user \"" +
                                    p.user + "\": CN mismatch",
                                "certificate_cn_mismatch");
                co_return Startup{};
            }
        }
        co_return Startup{Startup::startup, {p.bytes.begin(), p.bytes.end()}};
    }
}

awaitable<void> Session::forward_cancel(const std::vector<std::uint8_t>& packet) {
    close_reason_ = "cancel request";
    ServerConnection conn = co_await connect_server(w_, packet);  // sends the packet
    if (!conn.stream) {
        m_.cancel_request("error");
        spdlog::warn("cancel request not forwarded: peer={}: {}", peer_, conn.log_error);
        co_return;
    }
    m_.cancel_request("forwarded");
    // PostgreSQL closes the connection once it has acted on the request; wait for that, so
    // the cancel is not lost to an early reset, but not for long.
    std::array<std::uint8_t, 64> sink;
    co_await (conn.stream->read_some(sink) || sleep_for(std::chrono::seconds(5)));
    conn.stream->close();
}

awaitable<void> Session::transfer(Stream& from, Stream& to, Direction dir) {
    std::array<std::uint8_t, 16 * 1024> buf;
    const bool s2c = dir == Direction::server_to_client;
    for (;;) {
        auto [ec, n] = co_await from.read_some(buf);
        if (ec) {
            if (ec == asio::error::eof) {
                if (close_reason_.empty())
                    close_reason_ = s2c ? "server closed the connection" : "client closed";
                co_await to.shutdown_send();
            } else {
                if (close_reason_.empty())
                    close_reason_ =
                        (s2c ? "server read error: " : "client read error: ") + ec.message();
                from.close();
                to.close();
            }
            co_return;
        }
        std::span<const std::uint8_t> data(buf.data(), n);
        if (!s2c) client_tracker_.feed(data);
        m_.bytes(dir, n);
        (s2c ? bytes_s2c_ : bytes_c2s_) += n;
        if (cb_guard_ && s2c && (data = cb_guard_->server_bytes(data)).empty()) continue;
        if (cb_guard_ && !s2c && cb_guard_->client_chose_plus(data)) {
            co_await refuse(pg::sqlstate::invalid_authorization_specification,
                            kChannelBindingRefusal, "channel_binding");
            from.close();
            to.close();
            co_return;
        }
        if (s2c) s2c_writing_ = true;
        auto wec = co_await to.write_all(data);
        if (s2c) {
            // Tracked once written, so idle() also means nothing is half-sent to the client.
            s2c_writing_ = false;
            tracker_.feed(data);
            if (w_.draining() && idle()) idle_wakeup_.cancel();
        }
        if (wec) {
            if (close_reason_.empty())
                close_reason_ =
                    (s2c ? "client write error: " : "server write error: ") + wec.message();
            from.close();
            to.close();
            co_return;
        }
    }
}

// Between transactions with nothing in flight: the server's last ReadyForQuery said idle and
// answered every query the client sent (the first one answers the startup), and nothing is
// half-written to the client.
bool Session::idle() const {
    std::uint64_t asked =
        client_tracker_.count('Q') + client_tracker_.count('S') + client_tracker_.count('F');
    return tracker_.idle() && !s2c_writing_ && tracker_.count('Z') == asked + 1;
}

// During a drain, ends the session at its first moment between transactions, as PostgreSQL's
// smart shutdown would: FATAL 57P01 to the client, then close. Sessions in a transaction
// continue until they commit or roll back (or the drain times out).
awaitable<void> Session::end_when_drained() {
    // Both waits end early when the relay finishes first and cancels this coroutine (the
    // idle wake-up also ends a wait, by design): leave then, whatever the session's state.
    auto cancelled = [](asio::cancellation_state cs) {
        return cs.cancelled() != asio::cancellation_type::none;
    };
    if (!w_.draining()) co_await w_.drain_signal().async_wait(use_nothrow);
    while (!idle()) {
        if (cancelled(co_await asio::this_coro::cancellation_state)) co_return;
        co_await idle_wakeup_.async_wait(use_nothrow);
    }
    if (cancelled(co_await asio::this_coro::cancellation_state) || !w_.draining()) co_return;
    close_reason_ = "drained";
    auto msg = pg::error_response(pg::sqlstate::admin_shutdown,
                                  "terminating connection due to administrator command");
    co_await client_.write_all(msg);
}

awaitable<void> Session::relay(Stream& server) {
    co_await ((transfer(client_, server, Direction::client_to_server) &&
               transfer(server, client_, Direction::server_to_client)) ||
              end_when_drained());
}

awaitable<void> Session::run() {
    Shared& sh = w_.shared();
    m_.session_started();
    over_limit_ = sh.connections.fetch_add(1, std::memory_order_relaxed) >= sh.max_connections;

    auto timeout = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(sh.cfg.handshake_timeout));
    auto neg = co_await (negotiate() || sleep_for(timeout));
    if (neg.index() == 1) {
        if (handshake_started_) {
            auto lib = sh.backend->name();
            m_.tls_handshake(Leg::client, lib, HandshakeResult::timeout,
                             seconds_since(*handshake_started_));
            m_.tls_handshake_error(Leg::client, lib, "timeout");
        }
        spdlog::info("startup timeout: peer={} after {}s", peer_, sh.cfg.handshake_timeout);
        close_reason_ = "startup timeout";
    } else {
        Startup st = std::move(std::get<0>(neg));
        if (st.what == Startup::cancel) {
            co_await forward_cancel(st.packet);
        } else if (st.what == Startup::startup && over_limit_) {
            co_await refuse(pg::sqlstate::too_many_connections, "sorry, too many clients already",
                            "too_many_connections");
        } else if (st.what == Startup::startup) {
            ServerConnection conn = co_await connect_server(w_, st.packet);  // sends it
            if (!conn.stream) {
                spdlog::error("server connection failed for peer={} user={} database={}: {}", peer_,
                              user_, database_, conn.log_error);
                co_await refuse(conn.client_sqlstate, conn.client_message, conn.refuse_reason);
            } else {
                if (conn.stream->encrypted() && (!client_.encrypted() || !conn.channel_binding_ok))
                    cb_guard_.emplace(client_.encrypted());
                // Server bytes already read (--server-tls allow) go to the client first.
                std::span<const std::uint8_t> first(conn.pending);
                m_.bytes(Direction::server_to_client, first.size());
                bytes_s2c_ += first.size();
                if (cb_guard_) first = cb_guard_->server_bytes(first);
                tracker_.feed(first);
                if (!first.empty() && co_await client_.write_all(first)) {
                    close_reason_ = "client write error";
                } else {
                    co_await relay(*conn.stream);
                }
            }
        }
    }
    client_.close();
    sh.connections.fetch_sub(1, std::memory_order_relaxed);
    double secs = seconds_since(started_);
    m_.session_ended(secs);
    if (was_session_ || !close_reason_.empty()) {
        auto level = was_session_ ? spdlog::level::info : spdlog::level::debug;
        spdlog::log(level,
                    "session closed: peer={} user={} database={} worker={} duration={:.3f}s "
                    "bytes_in={} bytes_out={} tls={} reason={}",
                    peer_, user_, database_, w_.index(), secs, bytes_c2s_, bytes_s2c_,
                    client_.encrypted() ? client_.engine()->info().version : "off",
                    close_reason_.empty() ? "closed" : close_reason_);
    }
}

awaitable<void> run_session(std::unique_ptr<Session> s) {
    co_await s->run();
}

}  // namespace

void start_session(Worker& w, tcp::socket socket) {
    w.session_opened();
    asio::co_spawn(w.io(), run_session(std::make_unique<Session>(w, std::move(socket))),
                   [&w](std::exception_ptr e) {
                       w.session_closed();
                       if (!e) return;
                       try {
                           std::rethrow_exception(e);
                       } catch (const std::exception& ex) {
                           spdlog::error("worker {}: session ended by exception: {}", w.index(),
                                         ex.what());
                       }
                   });
}

}  // namespace pggw
