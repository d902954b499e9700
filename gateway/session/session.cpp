#include "gateway/session/session.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <optional>

#include "gateway/pg/auth_messages.hpp"
#include "gateway/pg/client_negotiation.hpp"
#include "gateway/pg/protocol.hpp"
#include "gateway/session/auth_lookup.hpp"
#include "gateway/session/client_auth.hpp"
#include "gateway/session/clock.hpp"
#include "gateway/session/leg_tls.hpp"
#include "gateway/session/log_value.hpp"
#include "gateway/session/relay.hpp"
#include "gateway/session/server_auth.hpp"
#include "gateway/session/server_connection.hpp"
#include "gateway/session/session_record.hpp"

namespace pggw {
namespace {

using metrics::Leg;

void log_session_exception(const SessionEnv& env, std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        spdlog::error("worker {}: session ended by exception: {}", env.worker, ex.what());
    } catch (...) {
        spdlog::error("worker {}: session ended by an exception", env.worker);
    }
}

// What the startup phase ends with.
struct Startup {
    enum What { closed, startup, cancel } what = closed;
    std::vector<std::uint8_t> packet;  // StartupMessage or CancelRequest, to forward as is
};

// What the server leg proves itself with: the secret and the ClientKey the client's proof
// revealed, or the auth file's plaintext password (PostgreSQL's salt is not pggw's).
auth::ScramCredentials server_credentials(const auth::AuthEntry& entry,
                                          const tls::Sha256Digest& client_key) {
    auth::ScramCredentials c;
    if (entry.kind == auth::AuthEntry::plaintext) {
        c.password = entry.password;
    } else {
        c.secret = entry.secret;
        c.client_key = client_key;
    }
    return c;
}

class Session final : public RelayOwner {
  public:
    // peer: the address accept(2) returned (no getpeername per connection).
    Session(SessionEnv& env, tcp::socket s, const tcp::endpoint& peer)
        : env_(env), m_(env.metrics), client_(std::move(s)) {
        peer_address_ = peer.address();
        set_peer(peer.address(), peer.port());
    }

    // True: the session went on to its relay, which now owns it (relay_ended deletes it).
    awaitable<bool> run();

  private:
    // The relay's end: the session's last log line, then the session goes.
    void relay_ended(std::exception_ptr error) override;
    // At exit, unended: the worker's io_context destroyed what the relay left pending.
    void relay_abandoned() override { delete this; }
    awaitable<void> hand_off(std::optional<Stream>& server, std::span<const std::uint8_t> pending,
                             std::optional<ChannelBindingGuard> guard);
    void finish();  // closes the client's socket, counts and logs the session's end
    void set_peer(const asio::ip::address& a, std::uint16_t port) {
        client_address_ = a;
        rec_.peer_host = a.to_string();
        rec_.peer =
            (a.is_v6() ? "[" + rec_.peer_host + "]" : rec_.peer_host) + ":" + std::to_string(port);
    }
    bool proxy_header_expected() const;
    awaitable<bool> read_proxy_header(std::vector<std::uint8_t>& rest);
    awaitable<Startup> start();
    awaitable<Startup> negotiate(std::span<const std::uint8_t> initial);
    awaitable<bool> client_handshake(bool direct, std::span<const std::uint8_t> initial);
    awaitable<void> refuse(std::string_view sqlstate, std::string_view message, Refusal why) {
        return refuse_client(client_, rec_, m_, sqlstate, message, why);
    }
    awaitable<void> forward_cancel(const std::vector<std::uint8_t>& packet);
    // Closed by an overload cap (admission.hpp): counted, logged at a bounded rate, no reply.
    void reject(Rejection why);
    awaitable<void> serve(const std::vector<std::uint8_t>& startup_packet);
    awaitable<void> serve_authenticated(const std::vector<std::uint8_t>& startup_packet,
                                        const auth::AuthEntry& entry);
    awaitable<void> refuse_unknown_user();

    SessionEnv& env_;
    metrics::WorkerMetrics& m_;
    Stream client_;
    SessionRecord rec_;
    asio::ip::address peer_address_;    // the TCP peer (the balancer, behind PROXY protocol)
    asio::ip::address client_address_;  // the client: the PROXY header's, else the TCP peer
    Admission::Ticket negotiating_;     // held from accept to the end of the negotiation
    bool in_proxy_header_ = false;      // reading it: a timeout counts against it
    Clock::time_point started_ = Clock::now();
    bool was_session_ = false;  // got as far as a StartupMessage
    std::string user_;          // the StartupMessage's, unquoted (rec_.user is for logs)
    // The --auth-file generation this session logs in with (copied once: a reload mid-login
    // changes nothing for it).
    std::shared_ptr<const auth::AuthTable> auth_;
    std::optional<ConnectionBudget::Slot> slot_;  // --max-connections: from the StartupMessage
    // From the relay's start: members, not coroutine locals, since the session's coroutine
    // has returned while they run.
    std::optional<Stream> server_;
    std::optional<Relay> relay_;
    bool relaying_ = false;
};

awaitable<bool> Session::client_handshake(bool direct, std::span<const std::uint8_t> initial) {
    // A place among the worker's handshakes: waiting in line (after the 'S', never an 'N')
    // for at most a second, within --handshake-timeout.
    HandshakeGate::Pass pass =
        co_await env_.handshakes.enter(std::min(seconds(1), seconds(env_.cfg.handshake_timeout)));
    if (!pass) {
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() == asio::cancellation_type::none)
            reject(Rejection::handshake_queue_timeout);  // else: run() logs the timeout
        co_return false;
    }
    m_.tls_handshakes_in_progress(1);
    struct InProgress {
        metrics::WorkerMetrics& m;
        ~InProgress() { m.tls_handshakes_in_progress(-1); }
    } in_progress{m_};
    tls::EngineOptions opts;
    opts.require_alpn = direct;
    client_.start_tls(env_.tls.client->new_engine(opts), initial);
    LegTlsOutcome out =
        co_await run_tls_handshake(client_, {Leg::client, env_.library, m_, rec_.peer, {}});
    // Cut short by --handshake-timeout: run() logs the timeout.
    if (!out.ok && !out.timed_out) rec_.close_reason = "TLS handshake failed";
    co_return out.ok;
}

bool Session::proxy_header_expected() const {
    if (env_.cfg.proxy_protocol == proxy_protocol::Mode::off) return false;
    for (const auto& range : env_.cfg.proxy_trusted)
        if (range.contains(peer_address_)) return true;
    return false;
}

// The PROXY protocol header of a trusted balancer: afterwards rec_ names the client it
// carries, and rest holds the bytes read behind it (the start of PostgreSQL's startup).
awaitable<bool> Session::read_proxy_header(std::vector<std::uint8_t>& rest) {
    namespace pp = proxy_protocol;
    const std::string via = rec_.peer;
    std::vector<std::uint8_t> in;
    std::array<std::uint8_t, 512> chunk;
    in_proxy_header_ = true;
    for (;;) {
        pp::Result r = pp::decode(in, env_.cfg.proxy_protocol);
        if (r.status == pp::Result::complete) {
            in_proxy_header_ = false;
            rest.assign(in.begin() + std::ptrdiff_t(r.consumed), in.end());
            m_.proxy_header(r.has_address ? "ok" : "local");
            if (r.has_address) set_peer(r.source, r.source_port);
            rec_.via = via;
            spdlog::debug("PROXY v{} header from {}: client {}", r.version, via,
                          r.has_address ? rec_.peer : "not given (LOCAL/UNKNOWN)");
            co_return true;
        }
        if (r.status == pp::Result::invalid) {
            in_proxy_header_ = false;
            m_.proxy_header(pp::error_name(r.error));
            spdlog::warn("PROXY protocol header refused: peer={} result={}: {}", via,
                         pp::error_name(r.error), r.detail);
            rec_.close_reason = "bad PROXY protocol header";
            co_return false;
        }
        auto [ec, got] = co_await client_.read_some(chunk);
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none) co_return false;  // run() counts it
        if (ec) {
            in_proxy_header_ = false;
            m_.proxy_header("truncated");
            spdlog::warn("PROXY protocol header truncated: peer={} after {} bytes", via, in.size());
            rec_.close_reason = "truncated PROXY protocol header";
            co_return false;
        }
        in.insert(in.end(), chunk.begin(), chunk.begin() + std::ptrdiff_t(got));
    }
}

// Everything before the session proper, under --handshake-timeout: the PROXY header when
// one is expected, then the negotiation.
awaitable<Startup> Session::start() {
    std::vector<std::uint8_t> rest;
    if (proxy_header_expected()) {
        const bool ok = co_await read_proxy_header(rest);  // not inside && (see relay.cpp)
        if (!ok) co_return Startup{};
        // Only now is the client known: until here the connection counted in the total only.
        if (!negotiating_.count_source(client_address_)) {
            reject(Rejection::negotiating_per_source);
            co_return Startup{};
        }
    }
    co_return co_await negotiate(rest);
}

awaitable<Startup> Session::negotiate(std::span<const std::uint8_t> initial) {
    ClientNegotiation n(env_.client_tls, rec_.peer_host);
    n.feed(initial);
    std::array<std::uint8_t, 4096> chunk;
    for (;;) {
        NegotiationAction a = n.next();
        if (a.decoded) m_.startup_request(*a.decoded);
        if (n.got_startup()) {
            was_session_ = true;
            // Client-chosen: quoted and escaped (log_value.hpp), they cannot forge a log line.
            user_ = std::string(n.user());
            rec_.user = log_value(n.user());
            rec_.database = log_value(n.database());
        }
        if (a.decoded == StartupKind::invalid) {
            spdlog::warn("invalid startup packet: peer={}: {}", rec_.peer, a.detail);
            rec_.close_reason = negotiation_end_name(NegotiationEnd::invalid_startup);
        }
        switch (a.kind) {
            case NegotiationAction::read: {
                auto [ec, got] = co_await client_.read_some(chunk);
                if (ec) {
                    rec_.close_reason = negotiation_end_name(n.peer_closed());
                    co_return Startup{};
                }
                n.feed(std::span(chunk).first(got));
                continue;
            }
            case NegotiationAction::reply: {
                const char reply = a.reply_byte;
                if (co_await client_.write_all(std::span<const std::uint8_t>(
                        reinterpret_cast<const std::uint8_t*>(&reply), 1))) {
                    rec_.close_reason = "client gone";
                    co_return Startup{};
                }
                m_.negotiation_reply(reply);
                continue;
            }
            case NegotiationAction::start_tls:
                if (!co_await client_handshake(a.direct, a.bytes)) co_return Startup{};
                n.tls_established(client_.engine()->info().peer_common_name);
                continue;
            case NegotiationAction::refuse:
                co_await refuse(a.sqlstate, a.message, a.refusal);
                co_return Startup{};
            case NegotiationAction::close:
                switch (a.end) {
                    case NegotiationEnd::direct_tls_refused:
                        spdlog::warn("direct TLS connection refused (TLS is disabled): peer={}",
                                     rec_.peer);
                        break;
                    case NegotiationEnd::plaintext_after_ssl:
                    case NegotiationEnd::plaintext_after_gssenc:
                        m_.tls_handshake_error(Leg::client, env_.library,
                                               "plaintext_after_sslrequest");
                        spdlog::warn(
                            "received unencrypted data after {} request: peer={}; closing "
                            "(client bug or man-in-the-middle)",
                            a.end == NegotiationEnd::plaintext_after_ssl ? "SSL" : "GSSENC",
                            rec_.peer);
                        break;
                    default:
                        break;
                }
                rec_.close_reason = negotiation_end_name(a.end);
                co_return Startup{};
            case NegotiationAction::cancel:
                co_return Startup{Startup::cancel, {a.bytes.begin(), a.bytes.end()}};
            case NegotiationAction::startup:
                co_return Startup{Startup::startup, {a.bytes.begin(), a.bytes.end()}};
        }
    }
}

awaitable<void> Session::forward_cancel(const std::vector<std::uint8_t>& packet) {
    rec_.close_reason = "cancel request";
    ServerConnection conn = co_await connect_server(env_, packet);  // sends the packet
    if (!conn.stream) {
        m_.cancel_request("error");
        spdlog::warn("cancel request not forwarded: peer={}: {}", rec_.peer, conn.log_error);
        co_return;
    }
    m_.cancel_request("forwarded");
    // PostgreSQL closes the connection once it has acted on the request; wait for that, so
    // the cancel is not lost to an early reset, but not for long.
    std::array<std::uint8_t, 64> sink;
    co_await (conn.stream->read_some(sink) || sleep_for(std::chrono::seconds(5)));
    conn.stream->close();
}

void Session::reject(Rejection why) {
    m_.connection_rejected(why);
    rec_.close_reason = "rejected: " + std::string(rejection_name(why));
    const RejectionLog::Decision d = env_.rejections.log(why, Clock::now());
    if (!d.write) return;
    const AdmissionLimits& caps = env_.admission.limits();
    std::string cap;
    switch (why) {
        case Rejection::negotiating_total:
            cap = fmt::format("{} connections in negotiation (--max-negotiating)",
                              caps.negotiating_total);
            break;
        case Rejection::negotiating_per_source:
            cap = fmt::format(
                "{} connections in negotiation from one address "
                "(--max-negotiating-per-source)",
                caps.negotiating_per_source);
            break;
        case Rejection::handshake_queue_timeout:
            cap = fmt::format(
                "no place among {} TLS handshakes in progress within the queue wait "
                "(--max-handshakes-per-worker)",
                env_.cfg.max_handshakes_per_worker);
            break;
        case Rejection::cancel_rate:
            cap = fmt::format(
                "over {} cancel requests per second from one address "
                "(--cancel-rate-per-source)",
                env_.cfg.cancel_rate_per_source);
            break;
    }
    spdlog::warn("connection rejected: peer={}{} reason={} worker={}: {}{}", rec_.peer,
                 rec_.via.empty() ? "" : " via=" + rec_.via, rejection_name(why), env_.worker, cap,
                 d.suppressed ? fmt::format(" ({} more of these not logged in the last {}s)",
                                            d.suppressed, 10)
                              : "");
}

awaitable<void> Session::serve(const std::vector<std::uint8_t>& startup_packet) {
    auth_ = env_.auth;
    const auth::AuthEntry* entry = auth_ ? auth_->find(user_) : nullptr;
    if (entry && entry->secret) {  // md5 entries: relayed, as unknown users
        co_await serve_authenticated(startup_packet, *entry);
        co_return;
    }
    const bool lookups = auth_query_enabled(env_);
    if (!entry && lookups) {
        // --auth-query: the secret from PostgreSQL, then exactly as an --auth-file entry.
        AuthLookupOutcome found = co_await look_up_secret(env_, rec_, user_, startup_packet);
        if (found.kind == AuthLookupOutcome::error) {
            spdlog::warn("--auth-query lookup for user {} failed: peer={}: {}", rec_.user,
                         rec_.peer, found.log_error);
            co_await refuse_client(client_, rec_, m_, pg::sqlstate::connection_failure,
                                   "pggw could not look up the password of user \"" +
                                       std::string(user_) + "\" in the PostgreSQL server",
                                   Refusal::server_auth, found.client_detail);
            co_return;
        }
        if (found.kind == AuthLookupOutcome::found) {
            auth::AuthEntry looked_up;
            looked_up.user = user_;
            looked_up.secret = std::move(found.secret);
            co_await serve_authenticated(startup_packet, looked_up);
            // A wrong password or a stale secret: the password may have changed since the
            // answer was cached, so the next login asks PostgreSQL again.
            if (rec_.close_reason == "refused: auth_failed" ||
                rec_.close_reason == "refused: server_auth")
                env_.auth_query.cache.forget(user_);
            co_return;
        }
        spdlog::debug("--auth-query: user {} not found: {}", rec_.user, found.log_error);
    }
    if (!entry && (auth_ || lookups) && env_.cfg.auth_refuse_unknown) {
        co_await refuse_unknown_user();
        co_return;
    }
    ServerConnection conn = co_await connect_server(env_, startup_packet);  // sends it
    if (!conn.stream) {
        spdlog::error("server connection failed for peer={} user={} database={}: {}", rec_.peer,
                      rec_.user, rec_.database, conn.log_error);
        co_await refuse(conn.client_sqlstate, conn.client_message, conn.refusal);
        co_return;
    }
    auto guard = ChannelBindingGuard::for_legs(client_.encrypted(), conn.stream->encrypted(),
                                               conn.channel_binding_ok);
    co_await hand_off(conn.stream, conn.pending, std::move(guard));
}

awaitable<void> Session::hand_off(std::optional<Stream>& server,
                                  std::span<const std::uint8_t> pending,
                                  std::optional<ChannelBindingGuard> guard) {
    server_.emplace(std::move(*server));  // nothing pending on it: the move is safe
    server.reset();
    relay_.emplace(*this, env_, rec_, client_, *server_, std::move(guard));
    relaying_ = co_await relay_->begin(pending);
}

// SCRAM in the gateway: the client proves itself to pggw first; only then is the server
// connection opened, and pggw logs in with the ClientKey the proof revealed.
awaitable<void> Session::serve_authenticated(const std::vector<std::uint8_t>& startup_packet,
                                             const auth::AuthEntry& entry) {
    rec_.client_auth = rec_.server_auth = "none";  // until each leg gets as far as a mechanism
    auto client_auth = co_await (authenticate_client(env_, rec_, client_, *entry.secret, user_) ||
                                 sleep_for(seconds(env_.cfg.handshake_timeout)));
    if (client_auth.index() == 1) {
        rec_.end("authentication timeout");
        co_return;
    }
    ClientAuthOutcome who = std::move(std::get<0>(client_auth));
    if (!who.ok) co_return;
    rec_.client_auth = who.mechanism;

    ServerConnection conn = co_await connect_server(env_, startup_packet);  // sends it
    if (!conn.stream) {
        spdlog::error("server connection failed for peer={} user={} database={}: {}", rec_.peer,
                      rec_.user, rec_.database, conn.log_error);
        co_await refuse(conn.client_sqlstate, conn.client_message, conn.refusal);
        co_return;
    }
    auto login = co_await (authenticate_server(env_, rec_, *conn.stream, conn.pending,
                                               server_credentials(entry, who.client_key), user_) ||
                           sleep_for(seconds(env_.cfg.server_connect_timeout)));
    ServerAuthOutcome server_auth;
    if (login.index() == 1) {
        server_auth.log_error = "timeout during login to the server";
        server_auth.client_error =
            pg::error_response(pg::sqlstate::connection_failure,
                               "pggw could not log in to the PostgreSQL server (timeout)");
    } else {
        server_auth = std::move(std::get<0>(login));
    }
    rec_.server_auth = server_auth.mechanism;
    if (!server_auth.ok) {
        spdlog::warn("login to the server on behalf of peer={} user={} database={} failed: {}",
                     rec_.peer, rec_.user, rec_.database, server_auth.log_error);
        co_await send_refusal(client_, rec_, m_, server_auth.client_error, server_auth.refusal);
        conn.stream->close();
        co_return;
    }
    // The client's SASLFinal (pggw's server signature), then the server's AuthenticationOk and
    // everything after it, unchanged. No channel-binding guard: each leg bound its own.
    if (co_await client_.write_all(pg::authentication_sasl_final(who.server_final))) {
        rec_.end("client gone");
        co_return;
    }
    co_await hand_off(conn.stream, server_auth.pending, std::nullopt);
}

// --auth-unknown-users refuse: the same exchange as for a known user, against a secret that
// no password matches, so that the answer does not tell which users exist.
awaitable<void> Session::refuse_unknown_user() {
    rec_.client_auth = rec_.server_auth = "none";
    auto r = co_await (
        authenticate_client(env_, rec_, client_, mock_secret(*env_.crypto, user_), user_) ||
        sleep_for(seconds(env_.cfg.handshake_timeout)));
    if (r.index() == 1) rec_.end("authentication timeout");
    if (r.index() == 0 && std::get<0>(r).ok) rec_.end("unknown user");  // cannot happen
    spdlog::info("user {} is not in --auth-file (--auth-unknown-users refuse): peer={}", rec_.user,
                 rec_.peer);
}

awaitable<bool> Session::run() {
    m_.session_started();

    if (env_.cfg.proxy_protocol != proxy_protocol::Mode::off && !proxy_header_expected()) {
        // Only the balancers may speak for a client: anyone else reaching this port directly
        // could otherwise claim any address.
        m_.proxy_header("untrusted");
        spdlog::warn("connection from a source outside --proxy-trusted closed: peer={}", rec_.peer);
        client_.close();
        m_.session_ended(seconds_since(started_));
        co_return false;
    }

    // The caps before the expensive part (admission.hpp): the total at once; the source now
    // when it is the TCP peer, after the PROXY header when a balancer speaks for the client.
    negotiating_ = env_.admission.enter(&m_);
    if (!negotiating_) {
        reject(Rejection::negotiating_total);
    } else if (!proxy_header_expected() && !negotiating_.count_source(client_address_)) {
        reject(Rejection::negotiating_per_source);
    } else {
        auto neg = co_await (start() || sleep_for(seconds(env_.cfg.handshake_timeout)));
        negotiating_.release();
        if (neg.index() == 1) {
            if (in_proxy_header_) m_.proxy_header("timeout");
            spdlog::info("startup timeout: peer={} after {}s", rec_.peer,
                         env_.cfg.handshake_timeout);
            rec_.close_reason = "startup timeout";
        } else {
            Startup st = std::move(std::get<0>(neg));
            if (st.what == Startup::cancel) {
                if (env_.admission.allow_cancel(client_address_, Clock::now()))
                    co_await forward_cancel(st.packet);
                else
                    reject(Rejection::cancel_rate);
            } else if (st.what == Startup::startup) {
                slot_.emplace(env_.connections);
                if (slot_->over_limit())
                    co_await refuse(pg::sqlstate::too_many_connections,
                                    "sorry, too many clients already",
                                    Refusal::too_many_connections);
                else
                    co_await serve(st.packet);
            }
        }
    }
    if (relaying_) co_return true;
    finish();
    co_return false;
}

void Session::relay_ended(std::exception_ptr error) {
    SessionEnv& env = env_;
    if (error) log_session_exception(env, error);
    finish();
    delete this;
    env.live_sessions.fetch_sub(1, std::memory_order_relaxed);
}

void Session::finish() {
    client_.close();
    const double secs = seconds_since(started_);
    m_.session_ended(secs);
    if (was_session_ || !rec_.close_reason.empty()) {
        auto level = was_session_ ? spdlog::level::info : spdlog::level::debug;
        spdlog::log(level,
                    "session closed: peer={}{} user={} database={} worker={} duration={:.3f}s "
                    "bytes_in={} bytes_out={} tls={} auth={} server_auth={} reason={}",
                    rec_.peer, rec_.via.empty() ? "" : " via=" + rec_.via, rec_.user, rec_.database,
                    env_.worker, secs, rec_.bytes_c2s, rec_.bytes_s2c,
                    client_.encrypted() ? client_.engine()->info().version : "off",
                    rec_.client_auth, rec_.server_auth,
                    log_value(rec_.close_reason.empty() ? "closed" : rec_.close_reason));
    }
}

// A session that reached its relay outlives this coroutine: the relay owns it from there.
awaitable<bool> run_session(std::unique_ptr<Session> s) {
    const bool relaying = co_await s->run();
    if (relaying) s.release();
    co_return relaying;
}

}  // namespace

void start_session(SessionEnv& env, tcp::socket socket, const tcp::endpoint& peer) {
    env.live_sessions.fetch_add(1, std::memory_order_relaxed);
    auto ex = socket.get_executor();
    asio::co_spawn(ex, run_session(std::make_unique<Session>(env, std::move(socket), peer)),
                   [&env](std::exception_ptr e, bool relaying) {
                       if (!relaying) env.live_sessions.fetch_sub(1, std::memory_order_relaxed);
                       if (e) log_session_exception(env, e);
                   });
}

}  // namespace pggw
