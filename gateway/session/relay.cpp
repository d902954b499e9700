#include "gateway/session/relay.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "gateway/pg/protocol.hpp"

namespace pggw {

using metrics::Direction;

namespace {
// Plaintext relayed per read: one full TLS record's worth (the pooled buffer is a bit larger,
// for a record's ciphertext).
constexpr std::size_t kRelayChunk = 16 * 1024;
// Reads a direction relays before it lets the worker's other sessions run (a post): 256 KiB
// of a bulk transfer, and a busy session never starves the rest.
constexpr int kReadsPerTurn = 16;
}  // namespace

Relay::Relay(RelayOwner& owner, SessionEnv& env, SessionRecord& rec, Stream& client, Stream& server,
             std::optional<ChannelBindingGuard> guard)
    : owner_(owner),
      env_(env),
      rec_(rec),
      client_(client),
      server_(server),
      c2s_{client, server, Direction::client_to_server, false},
      s2c_{server, client, Direction::server_to_client, true},
      cb_guard_(std::move(guard)),
      idle_timer_(client.socket().get_executor()) {}

awaitable<bool> Relay::begin(std::span<const std::uint8_t> pending) {
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
            co_return false;
        }
    }
    // Posted: the relay may end (and its owner go) only after the caller's coroutine is done.
    asio::post(client_.socket().get_executor(), [hold = Hold(*this)]() mutable {
        Relay& r = hold.release();
        r.callback([&r] { r.start(); });
    });
    co_return true;
}

void Relay::start() {
    if (env_.cfg.client_idle_timeout > 0) arm_idle_timer();
    env_.drain.listen(*this);
    if (env_.drain.active()) drain_changed();  // began before this session's relay
    pump(c2s_);
    pump(s2c_);
}

template <class F>
void Relay::callback(F&& f) {
    if (!ended_) {
        try {
            f();
        } catch (...) {
            fail(std::current_exception());
        }
    }
    settle();
}

void Relay::settle() {
    if (--outstanding_ > 0 || !ended_) return;
    note_relayed_auth(true);
    owner_.relay_ended(end_error_);  // may destroy this relay: the last thing it does
}

void Relay::abandon() {
    if (--outstanding_ == 0) owner_.relay_abandoned();
}

template <class A>
void Relay::spawn(A a) {
    asio::co_spawn(client_.socket().get_executor(), std::move(a),
                   [hold = Hold(*this)](std::exception_ptr e) mutable {
                       Relay& r = hold.release();
                       if (e) r.fail(e);
                       r.settle();
                   });
}

void Relay::fail(std::exception_ptr e) {
    if (ended_) return;
    end_error_ = e;
    end();
}

void Relay::end() {
    if (ended_) return;
    ended_ = stopping_ = true;
    DrainSignal::unlisten(*this);
    idle_timer_.cancel();
    client_.close();
    server_.close();
    // Closing ends every pending operation; this post makes sure a settle() follows even when
    // none was, and that the owner hears of the end from a handler, never from end()'s caller.
    asio::post(client_.socket().get_executor(),
               [hold = Hold(*this)]() mutable { hold.release().settle(); });
}

void Relay::pump(Way& w) {
    for (int reads = 0; reads < kReadsPerTurn; ++reads) {
        if (stopping_) return;
        // Lent only while bytes move through it, and never across a wait for the peer: an idle
        // session holds no buffer. The read does not wait; the wait comes only after
        // would_block, so a busy session pays no wake-up more than a plain read would.
        PooledBuffer buf;
        auto [ec, n] = w.from.try_read_some(buf.span().first(kRelayChunk));
        if (ec == asio::error::would_block) {
            buf.release();
            wait(w);
            return;
        }
        if (ec) {
            read_failed(w, ec);
            return;
        }
        std::span<const std::uint8_t> data(buf.data(), n);
        last_bytes_ = Clock::now();
        if (!w.s2c) client_tracker_.feed(data);
        env_.metrics.bytes(w.dir, n);
        (w.s2c ? rec_.bytes_s2c : rec_.bytes_c2s) += n;
        if (cb_guard_ && w.s2c) {
            const bool before = cb_guard_->stripped();
            data = cb_guard_->server_bytes(data);
            if (!before && cb_guard_->stripped()) note_stripped_offer();
            if (data.empty()) continue;
        }
        if (cb_guard_ && !w.s2c && cb_guard_->client_chose_plus(data)) {
            stopping_ = true;
            spawn(refuse_channel_binding());
            return;
        }
        if (w.s2c) s2c_writing_ = true;
        auto [wec, taken] = w.to.try_write(data);
        if (!wec && (taken < data.size() || w.to.output_pending())) {
            spawn(finish_write(w, std::move(buf), data, taken));  // the direction waits
            return;
        }
        if (!written(w, data, wec)) return;
    }
    if (stopping_) return;
    asio::post(client_.socket().get_executor(), [hold = Hold(*this), &w]() mutable {
        Relay& r = hold.release();
        r.callback([&] { r.pump(w); });
    });
}

void Relay::wait(Way& w) {
    if (w.from.wait_needs_flush()) {  // an alert or a KeyUpdate answer to send first
        spawn([](Relay* r, Way& w) -> awaitable<void> {
            error_code ec = co_await w.from.wait_readable();
            if (r->ended_) co_return;
            if (ec) {
                r->read_failed(w, ec);
            } else {
                r->pump(w);
            }
        }(this, w));
        return;
    }
    // The write side of `to` is idle too (nothing pending, or try_write would have handed
    // the rest to finish_write): its engine's empty output buffer goes with the wait.
    w.to.release_buffers();
    w.from.async_wait_readable([hold = Hold(*this), &w](error_code ec) mutable {
        Relay& r = hold.release();
        r.callback([&] {
            if (ec) {
                r.read_failed(w, ec);
            } else {
                r.pump(w);
            }
        });
    });
}

awaitable<void> Relay::finish_write(Way& w, PooledBuffer buf, std::span<const std::uint8_t> data,
                                    std::size_t taken) {
    error_code ec = co_await w.to.finish_write(data.subspan(taken));
    if (ended_) co_return;
    if (written(w, data, ec)) pump(w);
}

// After a write of data: what watches the streams learns it (idle() means nothing is
// half-sent to the client), then the write's error ends the relay, or the drain does where
// this write made the session idle. False: the direction stops.
bool Relay::written(Way& w, std::span<const std::uint8_t> data, error_code ec) {
    if (w.s2c) {
        s2c_writing_ = false;
        tracker_.feed(data);
        note_relayed_auth(false);
        if (cb_guard_) cb_guard_->server_bytes_sent();  // data may be its bytes: fed already
    }
    if (ec) {
        rec_.end((w.s2c ? "client write error: " : "server write error: ") + ec.message());
        end();
        return false;
    }
    if (w.s2c && env_.drain.active() && idle()) {
        drain_end();
        return false;
    }
    return true;
}

void Relay::read_failed(Way& w, error_code ec) {
    if (w.s2c && rec_.bytes_s2c == 0) {
        server_gone_before_reply(ec);
        return;
    }
    if (ec != asio::error::eof) {
        rec_.end((w.s2c ? "server read error: " : "client read error: ") + ec.message());
        end();
        return;
    }
    rec_.end(w.s2c ? "server closed the connection" : "client closed");
    if (w.to.try_shutdown_send()) {
        way_ended(w);
    } else {
        spawn(finish_shutdown(w));
    }
}

// The server leg ended before the server said a word: its login failed (a TLS 1.3 server
// that refuses pggw's certificate sends its alert after pggw's side of the handshake ended).
// The client gets the answer the server leg's other failures give, 08006, whether the server
// was gone by the time pggw sent the StartupMessage (server_connection.cpp) or only after.
void Relay::server_gone_before_reply(error_code ec) {
    std::string why = ec == asio::error::eof ? std::string("the server closed the connection")
                                             : "server read error: " + ec.message();
    if (const tls::Engine* e = server_.engine(); e && e->failure() != tls::Failure::none)
        why += " (TLS: " + e->failure_reason() + ")";
    env_.metrics.server_connect_error("closed_before_reply");
    spdlog::error(
        "server connection failed for peer={} user={} database={}: {} before it "
        "answered the startup packet",
        rec_.peer, rec_.user, rec_.database, why);
    stopping_ = true;
    spawn([](Relay* r) -> awaitable<void> {
        co_await refuse_client(
            r->client_, r->rec_, r->env_.metrics, pg::sqlstate::connection_failure,
            "pggw could not connect to the PostgreSQL server", Refusal::server_unreachable);
        r->end();
    }(this));
}

awaitable<void> Relay::finish_shutdown(Way& w) {
    co_await w.to.shutdown_send();
    if (!ended_) way_ended(w);
}

// Half-closed one way; the other goes on until its own EOF, as a TCP relay would.
void Relay::way_ended(Way& w) {
    w.ended = true;
    if (c2s_.ended && s2c_.ended) end();
}

awaitable<void> Relay::say_then_end(std::vector<std::uint8_t> msg) {
    co_await client_.write_all(msg);
    end();
}

awaitable<void> Relay::refuse_channel_binding() {
    co_await refuse_client(client_, rec_, env_.metrics,
                           pg::sqlstate::invalid_authorization_specification,
                           kChannelBindingRefusal, Refusal::channel_binding);
    end();
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
// continue until they commit or roll back (written() looks after every write to the client),
// or until the drain times out (DrainSignal::force): then they end too, with the same FATAL
// when it cannot split a message of the server's.
void Relay::drain_changed() {
    if (stopping_) return;
    try {
        if (idle() || env_.drain.forced()) drain_end();
    } catch (...) {
        fail(std::current_exception());
    }
}

void Relay::drain_end() {
    const bool busy = !idle();
    rec_.close_reason = busy ? "drain timeout" : "drained";
    stopping_ = true;
    if (busy && (s2c_writing_ || !tracker_.at_boundary())) {  // closed without a word
        end();
        return;
    }
    spawn(say_then_end(pg::error_response(pg::sqlstate::admin_shutdown,
                                          "terminating connection due to administrator command")));
}

// --client-idle-timeout: a session idle between transactions (PostgreSQL's idle_session_timeout
// does not count time in a transaction) with no bytes either way for that long ends with
// PostgreSQL's FATAL 57P05, then close. Off: no timer at all.
void Relay::arm_idle_timer() {
    const auto limit = seconds(env_.cfg.client_idle_timeout);
    idle_timer_.expires_at(std::max(last_bytes_ + limit, Clock::now()));
    idle_timer_.async_wait([hold = Hold(*this)](error_code) mutable {
        Relay& r = hold.release();
        r.callback([&r] { r.idle_timer_fired(); });
    });
}

void Relay::idle_timer_fired() {
    if (stopping_) return;
    if (Clock::now() - last_bytes_ < seconds(env_.cfg.client_idle_timeout)) {
        arm_idle_timer();  // bytes came meanwhile
        return;
    }
    if (!idle()) {
        // In a transaction or a query: look again a limit later (bytes will have moved it).
        last_bytes_ = Clock::now();
        arm_idle_timer();
        return;
    }
    rec_.close_reason = "idle-session timeout";
    stopping_ = true;
    spawn(say_then_end(
        pg::error_response("57P05", "terminating connection due to idle-session timeout")));
}

}  // namespace pggw
