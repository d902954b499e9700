// The relay of an established session: both directions at once, each with backpressure (one
// buffer, lent from the worker's pool only while bytes move, written out before the next
// read), until either side ends; and, during a drain, an
// end at the session's first idle moment. It owns what watches the byte streams: the message
// trackers (transaction state, for the drain) and the channel-binding guard.
#pragma once

#include <exception>
#include <optional>
#include <span>

#include "gateway/net/stream.hpp"
#include "gateway/pg/channel_binding.hpp"
#include "gateway/pg/message_tracker.hpp"
#include "gateway/session/clock.hpp"
#include "gateway/session/session_env.hpp"
#include "gateway/session/session_record.hpp"

namespace pggw {

class Relay {
  public:
    // guard: ChannelBindingGuard::for_legs() when the server's authentication is relayed;
    // none when pggw authenticated each leg itself.
    Relay(SessionEnv& env, SessionRecord& rec, Stream& client, Stream& server,
          std::optional<ChannelBindingGuard> guard);

    // pending: server bytes already read (--server-tls allow), sent to the client first.
    awaitable<void> run(std::span<const std::uint8_t> pending);

  private:
    awaitable<void> transfer(Stream& from, Stream& to, metrics::Direction dir);
    awaitable<void> end_when_drained();
    awaitable<void> end_when_idle_too_long();  // --client-idle-timeout
    bool idle() const;
    void note_stripped_offer();
    // Relayed authentication (rec_.client_auth "relayed"): ok at the server's first
    // ReadyForQuery, error when the session ends before one.
    void note_relayed_auth(bool ended);

    // The relay's end (run): both transfers ended, or a watcher (drain, idle timeout) did.
    // A coroutine's locals are destroyed before it completes, so an Ended in its frame has
    // counted it by the time the parallel group asks End.
    struct Ended {
        int& count;
        ~Ended() { ++count; }
    };
    struct End {
        Relay* relay;
        asio::cancellation_type operator()(const std::exception_ptr& e) const {
            if (relay->ended_) return asio::cancellation_type::none;  // the rest are cancelled
            if (!e && relay->transfers_ended_ < 2 && relay->watchers_ended_ == 0)
                return asio::cancellation_type::none;
            relay->ended_ = true;
            relay->end_error_ = e;
            return asio::cancellation_type::terminal;
        }
    };

    SessionEnv& env_;
    SessionRecord& rec_;
    Stream& client_;
    Stream& server_;
    MessageTracker tracker_;         // server-to-client boundaries and transaction status
    MessageTracker client_tracker_;  // client-to-server: counts the queries sent
    bool s2c_writing_ = false;       // a server-to-client write is in flight
    // Cancelled when a drain is on and the session just became idle.
    asio::steady_timer idle_wakeup_;
    std::optional<ChannelBindingGuard> cb_guard_;  // set when channel binding cannot pass
    bool auth_counted_ = false;
    int transfers_ended_ = 0;
    int watchers_ended_ = 0;
    bool ended_ = false;            // End cancelled the rest of the group
    std::exception_ptr end_error_;  // what ended it, if an exception did
    Clock::time_point started_ = Clock::now();
    Clock::time_point last_bytes_ = Clock::now();  // read on either leg, for the idle timeout
};

}  // namespace pggw
