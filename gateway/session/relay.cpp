#include "gateway/session/relay.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>

#include "gateway/net/buffer_pool.hpp"
#include "gateway/pg/protocol.hpp"

namespace pggw {

using metrics::Direction;

namespace {
// Plaintext relayed per read: one full TLS record's worth (the pooled buffer is a bit larger,
// for a record's ciphertext).
constexpr std::size_t kRelayChunk = 16 * 1024;
}  // namespace

Relay::Relay(SessionEnv& env, SessionRecord& rec, Stream& client, Stream& server,
             std::optional<ChannelBindingGuard> guard)
    : env_(env),
      rec_(rec),
      client_(client),
      server_(server),
      idle_wakeup_(client.socket().get_executor(), asio::steady_timer::time_point::max()),
      cb_guard_(std::move(guard)) {}

awaitable<void> Relay::run(std::span<const std::uint8_t> pending) {
    env_.metrics.bytes(Direction::server_to_client, pending.size());
    rec_.bytes_s2c += pending.size();
    if (cb_guard_) {
        pending = cb_guard_->server_bytes(pending);
        if (cb_guard_->stripped()) note_stripped_offer();
    }
    tracker_.feed(pending);
    note_relayed_auth(false);
    if (!pending.empty()) {
        // co_await on its own, never inside && or ||: GCC 12 resumes such a coroutine with a
        // corrupt state (SIGILL) once a parallel group has completed before it.
        error_code ec = co_await client_.write_all(pending);
        if (ec) {
            rec_.end("client write error");
            co_return;
        }
    }
    // ((c2s && s2c) || drained || idle), as one parallel group of four: the awaitable operators
    // nest three groups, each with its own coroutine frame, spawned branches and cancellation
    // slots, about 3 KiB of every idle session's memory. The group ends when both directions
    // have ended or when either watcher has; the others are cancelled then (End).
    auto ex = co_await asio::this_coro::executor;
    co_await asio::experimental::make_parallel_group(
        asio::co_spawn(ex, transfer(client_, server_, Direction::client_to_server), asio::deferred),
        asio::co_spawn(ex, transfer(server_, client_, Direction::server_to_client), asio::deferred),
        asio::co_spawn(ex, end_when_drained(), asio::deferred),
        asio::co_spawn(ex, end_when_idle_too_long(), asio::deferred))
        .async_wait(End{this}, use_nothrow);
    note_relayed_auth(true);
    // An exception that ended the relay (none is expected: errors are values here) reaches the
    // session's handler, which logs it, as the awaitable operators rethrew a winner's; one
    // thrown by a coroutine already cancelled is ignored, as they ignored a loser's.
    if (end_error_) std::rethrow_exception(end_error_);
}

void Relay::note_relayed_auth(bool ended) {
    if (auth_counted_ || rec_.client_auth != "relayed") return;
    const bool ok = tracker_.count('Z') > 0;
    if (!ok && !ended) return;
    auth_counted_ = true;
    env_.metrics.auth(metrics::Leg::client, metrics::AuthMechanism::relayed,
                      ok ? metrics::AuthResult::ok : metrics::AuthResult::error,
                      seconds_since(started_));
}

// A -PLUS offer removed: expected behind a TLS server leg with a plaintext client; over a
// plaintext server leg, not what a genuine PostgreSQL ever sends.
void Relay::note_stripped_offer() {
    if (server_.encrypted()) return;
    env_.metrics.server_connect_error("scram_plus_over_plaintext");
    spdlog::warn(
        "PostgreSQL server {} offered SCRAM-SHA-256-PLUS over a plaintext connection (not a "
        "genuine PostgreSQL, or a man in the middle); the offer was removed: peer={} user={}",
        env_.cfg.server.str(), rec_.peer, rec_.user);
}

awaitable<void> Relay::transfer(Stream& from, Stream& to, Direction dir) {
    const Ended ended{transfers_ended_};  // counted as the coroutine ends, however it ends
    const bool s2c = dir == Direction::server_to_client;
    for (;;) {
        // Lent only while bytes move through it, and never across a wait for the peer: an idle
        // session holds no buffer. The read does not wait; the wait comes only after
        // would_block, so a busy session pays no wake-up more than a plain read would.
        PooledBuffer buf;
        auto [ec, n] = from.try_read_some(buf.span().first(kRelayChunk));
        if (ec == asio::error::would_block) {
            buf.release();
            ec = co_await from.wait_readable();
            if (!ec) continue;
        }
        if (ec) {
            if (ec == asio::error::eof) {
                rec_.end(s2c ? "server closed the connection" : "client closed");
                co_await to.shutdown_send();
            } else {
                rec_.end((s2c ? "server read error: " : "client read error: ") + ec.message());
                from.close();
                to.close();
            }
            co_return;
        }
        std::span<const std::uint8_t> data(buf.data(), n);
        last_bytes_ = Clock::now();
        if (!s2c) client_tracker_.feed(data);
        env_.metrics.bytes(dir, n);
        (s2c ? rec_.bytes_s2c : rec_.bytes_c2s) += n;
        if (cb_guard_ && s2c) {
            const bool before = cb_guard_->stripped();
            data = cb_guard_->server_bytes(data);
            if (!before && cb_guard_->stripped()) note_stripped_offer();
            if (data.empty()) continue;
        }
        if (cb_guard_ && !s2c && cb_guard_->client_chose_plus(data)) {
            co_await refuse_client(client_, rec_, env_.metrics,
                                   pg::sqlstate::invalid_authorization_specification,
                                   kChannelBindingRefusal, Refusal::channel_binding);
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
            note_relayed_auth(false);
            if (env_.drain.active() && idle()) idle_wakeup_.cancel();
        }
        if (wec) {
            rec_.end((s2c ? "client write error: " : "server write error: ") + wec.message());
            from.close();
            to.close();
            co_return;
        }
    }
}

// Between transactions with nothing in flight: the server's last ReadyForQuery said idle and
// answered every query the client sent (the first one answers the startup), and nothing is
// half-written to the client.
bool Relay::idle() const {
    std::uint64_t asked =
        client_tracker_.count('Q') + client_tracker_.count('S') + client_tracker_.count('F');
    return tracker_.idle() && !s2c_writing_ && tracker_.count('Z') == asked + 1;
}

// During a drain, ends the session at its first moment between transactions, as PostgreSQL's
// smart shutdown would: FATAL 57P01 to the client, then close. Sessions in a transaction
// continue until they commit or roll back, or until the drain times out (DrainSignal::force):
// then they end too, with the same FATAL when it cannot split a message of the server's.
awaitable<void> Relay::end_when_drained() {
    const Ended ended{watchers_ended_};
    // Both waits end early when the relay finishes first and cancels this coroutine (the
    // idle wake-up also ends a wait, by design): leave then, whatever the session's state.
    auto cancelled = [](asio::cancellation_state cs) {
        return cs.cancelled() != asio::cancellation_type::none;
    };
    co_await env_.drain.wait();
    while (!idle() && !env_.drain.forced()) {
        if (cancelled(co_await asio::this_coro::cancellation_state)) co_return;
        co_await (idle_wakeup_.async_wait(use_nothrow) || env_.drain.wait_forced());
    }
    if (cancelled(co_await asio::this_coro::cancellation_state) || !env_.drain.active()) co_return;
    const bool busy = !idle();
    rec_.close_reason = busy ? "drain timeout" : "drained";
    if (busy && (s2c_writing_ || !tracker_.at_boundary())) co_return;  // closed without a word
    auto msg = pg::error_response(pg::sqlstate::admin_shutdown,
                                  "terminating connection due to administrator command");
    co_await client_.write_all(msg);
}

// --client-idle-timeout: a session idle between transactions (PostgreSQL's idle_session_timeout
// does not count time in a transaction) with no bytes either way for that long ends with
// PostgreSQL's FATAL 57P05, then close. Off: waits until the relay ends and cancels it.
awaitable<void> Relay::end_when_idle_too_long() {
    const Ended ended{watchers_ended_};
    const double limit = env_.cfg.client_idle_timeout;
    asio::steady_timer timer(client_.socket().get_executor(),
                             asio::steady_timer::time_point::max());
    for (;;) {
        if (limit > 0) timer.expires_at(std::max(last_bytes_ + seconds(limit), Clock::now()));
        co_await timer.async_wait(use_nothrow);
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none || limit <= 0) co_return;
        if (Clock::now() - last_bytes_ < seconds(limit)) continue;  // bytes came meanwhile
        if (idle()) break;
        // In a transaction or a query: look again a limit later (bytes will have moved it).
        last_bytes_ = Clock::now();
    }
    rec_.close_reason = "idle-session timeout";
    co_await client_.write_all(
        pg::error_response("57P05", "terminating connection due to idle-session timeout"));
}

}  // namespace pggw
