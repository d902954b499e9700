// One leg of a session: a TCP socket, optionally with a TLS engine on it. This is pggw's one
// TLS driver (the shape of Asio's ssl/detail/io.hpp): perform() runs an engine operation,
// sends whatever output the engine holds after it, and feeds the engine one socket read
// whenever it wants input, until the operation completes. handshake, read, write and
// shutdown are each one perform(). Sessions read and write plaintext through a Stream and
// never see TLS.
//
// One coroutine may read while another writes (the two relay directions). The socket reads
// straight into the engine's input buffer (only the reader touches it). Engine output is
// first written without waiting, straight from the engine; what the socket does not take at
// once is copied to a buffer lent for the write (buffer_pool.hpp), so an engine operation
// during an in-flight write (a read that answers a KeyUpdate, say) never moves bytes under
// it; writes are serialised by `writing_`.
//
// The relay reads with try_read_some() (no wait: the bytes the socket or the engine holds
// now, or would_block) and waits only after would_block, so a session holds no buffer of its
// own while it waits; it writes with try_write() and waits (finish_write) only for what the
// socket did not take. The relay is callbacks, not coroutines, while a session idles
// (relay.cpp): async_wait_readable() is wait_readable() as one reactor operation.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gateway/net/asio.hpp"
#include "tls_backends/tls.hpp"

namespace pggw {

struct TlsOutcome {
    bool ok = false;
    tls::Failure failure = tls::Failure::none;
    std::string reason;  // readable, for the log
};

class Stream {
  public:
    explicit Stream(tcp::socket socket);

    tcp::socket& socket() { return socket_; }
    bool encrypted() const { return engine_ != nullptr; }
    const tls::Engine* engine() const { return engine_.get(); }

    // Puts TLS on this leg. initial: ciphertext already read from the socket (direct TLS).
    void start_tls(std::unique_ptr<tls::Engine> engine, std::span<const std::uint8_t> initial = {});
    awaitable<TlsOutcome> handshake();

    // Plaintext. Returns asio::error::eof on close_notify or TCP EOF.
    awaitable<std::tuple<error_code, std::size_t>> read_some(std::span<std::uint8_t> buf);
    awaitable<error_code> write_all(std::span<const std::uint8_t> buf);
    // Plaintext, without waiting: n > 0 bytes, or would_block, or an error as read_some's.
    // TLS: the engine's buffered records first; the socket is read only when the engine holds
    // no complete record.
    std::tuple<error_code, std::size_t> try_read_some(std::span<std::uint8_t> buf);
    // After try_read_some()'s would_block: sends what the engine has to send, then waits until
    // the socket is readable (at once when the engine has something to say: output sent, or a
    // failure to report). Errors: the socket's, or what try_read_some will report.
    awaitable<error_code> wait_readable();
    // wait_readable() as a callback, handler(error_code), when it needs nothing sent first:
    // !wait_needs_flush(). One reactor operation and no coroutine frame while a session idles.
    bool wait_needs_flush() const { return engine_ && retry_now_; }
    template <class Handler>
    void async_wait_readable(Handler handler) {
        if (engine_) engine_->release_buffers();  // as in wait_readable()
        socket_.async_wait(tcp::socket::wait_read,
                           [this, h = std::move(handler)](error_code ec) mutable {
                               drained_ = false;
                               h(ec);
                           });
    }
    // Frees the TLS engine's buffers that hold nothing (Engine::release_buffers), between
    // operations.
    void release_buffers() {
        if (engine_ && !writing_) engine_->release_buffers();
    }
    // Plaintext, without waiting: returns how much of buf was taken, written to the socket
    // (no TLS) or handed whole to the engine, whose records go out as far as the socket takes
    // them now. What is left, untaken bytes or engine output (output_pending()), goes out
    // with finish_write(). One write per call: a TLS flight of records is one send.
    std::tuple<error_code, std::size_t> try_write(std::span<const std::uint8_t> buf);
    // TLS: records written by try_write (or a write in flight) not yet on the socket.
    bool output_pending() const { return engine_ && (writing_ || !engine_->output().empty()); }
    // Completes a try_write: writes rest (the bytes it did not take), then the engine's output.
    awaitable<error_code> finish_write(std::span<const std::uint8_t> rest);
    // Half-close after the peer's EOF: close_notify (TLS) then shutdown(send).
    awaitable<void> shutdown_send();
    // shutdown_send() without waiting where it needs no write (no TLS): false when
    // shutdown_send() must do it.
    bool try_shutdown_send();
    // Abort: cancels any pending operation of the other direction too.
    void close();

  private:
    // What one perform() ended with: the engine's last result, and the socket error that
    // ended it early, if any (read_failed: it was the socket read, else a write).
    struct Performed {
        tls::Result result = tls::Result::error;
        error_code ec;
        bool read_failed = false;
    };
    // op: a call of one engine operation, returning tls::Result; called again after every
    // socket read until it answers anything but want_input.
    template <class Op>
    awaitable<Performed> perform(Op op);
    awaitable<error_code> flush();
    awaitable<error_code> fill();  // one socket read into the engine

    tcp::socket socket_;
    std::unique_ptr<tls::Engine> engine_;
    bool writing_ = false;
    bool input_eof_ = false;
    // try_read_some left the engine with output to send or a result to report (an alert, a
    // KeyUpdate answer): wait_readable sends it and returns at once.
    bool retry_now_ = false;
    error_code deferred_;  // what wait_readable reports once that output is sent
    // The last socket read returned fewer bytes than asked: the socket was empty, so the next
    // try_read_some answers would_block without the read() that would only return EAGAIN.
    // Safe because wait_readable's async_wait re-arms the descriptor (Boost 1.81's epoll
    // reactor: EPOLL_CTL_MOD), which reports at once bytes that arrived in between; and it
    // costs nothing, since that re-arm replaces the EAGAIN read syscall for syscall.
    bool drained_ = false;
    asio::steady_timer write_done_;  // cancelled when a write finishes, to wake a waiting writer
};

}  // namespace pggw
