// The relay of an established session: both directions at once, each with backpressure (one
// buffer, lent from the worker's pool only while bytes move, written out before the next
// read), until either side ends; and, during a drain, an end at the session's first idle
// moment. It owns what watches the byte streams: the message trackers (transaction state, for
// the drain) and the channel-binding guard.
//
// Callbacks, not coroutines, on the way bytes usually take: a direction reads what the socket
// (or the TLS engine) holds without waiting, writes it without waiting, and when the read
// says would_block it leaves one reactor operation (Stream::async_wait_readable) whose
// handler reads again. An idle session is then two such operations, this object and its
// Session, with no coroutine frame at all: the session's coroutine has returned by then, and
// the relay owns its Session until it ends (RelayOwner; bench/RESULTS.md, idle memory part 3).
// Coroutines are spawned only for what must wait part-way: a write the socket did not take whole, a
// TLS half-close, what the relay says to the client at its end (a drain's or the idle timeout's
// FATAL, a channel-binding refusal).
#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "gateway/net/buffer_pool.hpp"
#include "gateway/net/stream.hpp"
#include "gateway/pg/channel_binding.hpp"
#include "gateway/pg/message_tracker.hpp"
#include "gateway/session/clock.hpp"
#include "gateway/session/session_env.hpp"
#include "gateway/session/session_record.hpp"

namespace pggw {

// What a running relay belongs to (the Session): told once, as the last thing the relay does,
// that it has ended and nothing it started still runs (relay_ended: the owner may destroy the
// relay then), or, at exit, that the worker's io_context destroyed what was left unrun.
class RelayOwner {
  public:
    virtual void relay_ended(std::exception_ptr error) = 0;
    virtual void relay_abandoned() = 0;

  protected:
    ~RelayOwner() = default;
};

class Relay final : private DrainSignal::Listener {
  public:
    // guard: ChannelBindingGuard::for_legs() when the server's authentication is relayed;
    // none when pggw authenticated each leg itself.
    Relay(RelayOwner& owner, SessionEnv& env, SessionRecord& rec, Stream& client, Stream& server,
          std::optional<ChannelBindingGuard> guard);
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    // pending: server bytes already read (--server-tls allow), sent to the client first; then
    // starts the relay and returns true at once: the owner hears of its end (RelayOwner),
    // and the relay closes both sockets by then. False: the client is gone, nothing started.
    awaitable<bool> begin(std::span<const std::uint8_t> pending);

  private:
    // One direction.
    struct Way {
        Stream& from;
        Stream& to;
        metrics::Direction dir;
        bool s2c;
        bool ended = false;  // EOF read, half-close sent
    };

    // One callback or spawned coroutine of this relay, counted in outstanding_ until it has
    // run (release(), then settle()), or until the io_context destroys it unrun (abandon()).
    class Hold {
      public:
        explicit Hold(Relay& r) : r_(&r) { ++r.outstanding_; }
        Hold(Hold&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
        Hold(const Hold&) = delete;
        Hold& operator=(const Hold&) = delete;
        ~Hold() {
            if (r_) r_->abandon();
        }
        Relay& release() { return *std::exchange(r_, nullptr); }

      private:
        Relay* r_;
    };

    void start();
    void pump(Way& w);  // moves bytes until would_block (then waits), a wait or the end
    void wait(Way& w);
    bool written(Way& w, std::span<const std::uint8_t> data, error_code ec);
    void read_failed(Way& w, error_code ec);
    void server_gone_before_reply(error_code ec);
    void way_ended(Way& w);
    awaitable<void> finish_write(Way& w, PooledBuffer buf, std::span<const std::uint8_t> data,
                                 std::size_t taken);
    awaitable<void> finish_shutdown(Way& w);
    awaitable<void> say_then_end(std::vector<std::uint8_t> msg);
    awaitable<void> refuse_channel_binding();

    void drain_changed() override;
    void drain_end();
    void arm_idle_timer();  // --client-idle-timeout
    void idle_timer_fired();
    bool idle() const;
    void note_stripped_offer();
    // Relayed authentication (rec_.client_auth "relayed"): ok at the server's first
    // ReadyForQuery, error when the session ends before one.
    void note_relayed_auth(bool ended);

    // The end: both directions ended, an error, or what the relay said last is said. Closes
    // both sockets, which ends every operation still pending.
    void end();
    void fail(std::exception_ptr e);
    // A callback's body (skipped once the relay has ended), then settle(). The owner hears of
    // the end from the settle() that brings the count to zero after end().
    template <class F>
    void callback(F&& f);
    void settle();
    void abandon();
    template <class A>
    void spawn(A a);

    RelayOwner& owner_;
    SessionEnv& env_;
    SessionRecord& rec_;
    Stream& client_;
    Stream& server_;
    Way c2s_;
    Way s2c_;
    MessageTracker tracker_;         // server-to-client boundaries and transaction status
    MessageTracker client_tracker_;  // client-to-server: counts the queries sent
    bool s2c_writing_ = false;       // a server-to-client write is in flight
    std::optional<ChannelBindingGuard> cb_guard_;  // set when channel binding cannot pass
    bool auth_counted_ = false;
    bool stopping_ = false;  // the relay is saying its last word: directions move no more bytes
    bool ended_ = false;
    unsigned outstanding_ = 0;
    std::exception_ptr end_error_;   // what ended it, if an exception did
    asio::steady_timer idle_timer_;  // --client-idle-timeout, armed only when it is on
    Clock::time_point started_ = Clock::now();
    Clock::time_point last_bytes_ = Clock::now();  // read on either leg, for the idle timeout
};

}  // namespace pggw
