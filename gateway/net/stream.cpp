#include "gateway/net/stream.hpp"

#include <algorithm>
#include <cstring>

#include "gateway/net/buffer_pool.hpp"

namespace pggw {

Stream::Stream(tcp::socket socket)
    : socket_(std::move(socket)),
      write_done_(socket_.get_executor(), asio::steady_timer::time_point::max()) {
    // try_read_some and flush's first write must never block the worker. Asio's own
    // asynchronous operations work the same in either mode.
    error_code ignored;
    if (socket_.is_open()) socket_.non_blocking(true, ignored);
}

void Stream::start_tls(std::unique_ptr<tls::Engine> engine, std::span<const std::uint8_t> initial) {
    engine_ = std::move(engine);
    if (!initial.empty()) engine_->feed(initial);
}

template <class Op>
awaitable<Stream::Performed> Stream::perform(Op op) {
    for (;;) {
        Performed p;
        p.result = op();
        if (!engine_->output().empty()) p.ec = co_await flush();
        if (p.result != tls::Result::want_input || p.ec) co_return p;
        if ((p.ec = co_await fill())) {
            p.read_failed = true;
            co_return p;
        }
    }
}

awaitable<error_code> Stream::flush() {
    // The timer never expires: cancel() at the end of a write is the wake-up.
    while (writing_) co_await write_done_.async_wait(use_nothrow);
    writing_ = true;
    error_code ec;
    // Most writes go out whole at once, straight from the engine: no copy, no buffer lent.
    {
        auto out = engine_->output();
        std::size_t n = socket_.write_some(asio::buffer(out.data(), out.size()), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
        if (!ec) engine_->consume_output(n);
    }
    if (!ec && !engine_->output().empty()) {
        PooledBuffer buf;
        while (!engine_->output().empty()) {
            auto out = engine_->output();
            std::size_t n = std::min(out.size(), PooledBuffer::kSize);
            std::memcpy(buf.data(), out.data(), n);
            engine_->consume_output(n);
            auto [e, w] =
                co_await asio::async_write(socket_, asio::buffer(buf.data(), n), use_nothrow);
            if (e) {
                ec = e;
                break;
            }
        }
    }
    writing_ = false;
    write_done_.cancel();
    co_return ec;
}

// Reads straight into the engine's input buffer. Only the reading coroutine ever calls the
// engine's input side, so nothing moves that buffer while the read is in flight.
awaitable<error_code> Stream::fill() {
    if (input_eof_) co_return error_code{asio::error::eof};
    drained_ = false;  // this read waits for bytes: what try_read_some knew is stale
    auto space = engine_->input_space();
    auto [ec, n] =
        co_await socket_.async_read_some(asio::buffer(space.data(), space.size()), use_nothrow);
    if (ec == asio::error::eof) {
        // Let the engine tell close_notify (clean) from truncation on its next operation.
        input_eof_ = true;
        engine_->input_eof();
        co_return error_code{};
    }
    if (!ec) engine_->commit_input(n);
    co_return ec;
}

awaitable<TlsOutcome> Stream::handshake() {
    Performed p = co_await perform([&] { return engine_->handshake(); });
    // The engine's own verdict first: a failed handshake's alert may not reach a peer that
    // is already gone, and the failure says more than the write error.
    if (p.result == tls::Result::error)
        co_return TlsOutcome{false, engine_->failure(), engine_->failure_reason()};
    if (!p.ec) co_return TlsOutcome{true, tls::Failure::none, {}};
    if (!p.read_failed)
        co_return TlsOutcome{false, tls::Failure::eof, "write failed: " + p.ec.message()};
    if (p.ec == asio::error::eof)
        co_return TlsOutcome{false, tls::Failure::eof, "peer closed during the handshake"};
    co_return TlsOutcome{false, tls::Failure::eof, "read failed: " + p.ec.message()};
}

awaitable<std::tuple<error_code, std::size_t>> Stream::read_some(std::span<std::uint8_t> buf) {
    if (!engine_) {
        auto [ec, n] =
            co_await socket_.async_read_some(asio::buffer(buf.data(), buf.size()), use_nothrow);
        co_return std::tuple{ec, n};
    }
    std::size_t n = 0;
    Performed p = co_await perform([&] { return engine_->read(buf, n); });
    if (p.ec) co_return std::tuple{p.ec, std::size_t{0}};
    switch (p.result) {
        case tls::Result::ok:
            co_return std::tuple{error_code{}, n};
        case tls::Result::closed:
            co_return std::tuple{error_code{asio::error::eof}, std::size_t{0}};
        case tls::Result::error:
        case tls::Result::want_input:
            break;
    }
    // Truncation (no close_notify) ends the stream like TCP EOF does.
    error_code ec = asio::error::connection_aborted;
    if (engine_->failure() == tls::Failure::eof) ec = asio::error::eof;
    co_return std::tuple{ec, std::size_t{0}};
}

std::tuple<error_code, std::size_t> Stream::try_read_some(std::span<std::uint8_t> buf) {
    error_code ec;
    if (!engine_) {
        if (drained_) return {error_code{asio::error::would_block}, 0};
        std::size_t n = socket_.read_some(asio::buffer(buf.data(), buf.size()), ec);
        if (ec == asio::error::try_again) ec = asio::error::would_block;
        if (!ec && n < buf.size()) drained_ = true;
        return {ec, n};
    }
    // Output left by an earlier operation goes out first (wait_readable sends it).
    if (!engine_->output().empty()) {
        retry_now_ = true;
        return {error_code{asio::error::would_block}, 0};
    }
    for (;;) {
        std::size_t n = 0;
        tls::Result r = engine_->read(buf, n);
        if (r == tls::Result::ok && n > 0) return {error_code{}, n};
        error_code failed;
        if (r == tls::Result::closed) failed = asio::error::eof;
        if (r == tls::Result::error) {
            // Truncation (no close_notify) ends the stream like TCP EOF does.
            failed = asio::error::connection_aborted;
            if (engine_->failure() == tls::Failure::eof) failed = asio::error::eof;
        }
        if (!engine_->output().empty()) {
            // An alert or a KeyUpdate answer to send first: wait_readable sends it, then
            // reports the failure, if any.
            retry_now_ = true;
            deferred_ = failed;
            return {error_code{asio::error::would_block}, 0};
        }
        if (failed) return {failed, 0};
        if (input_eof_) return {error_code{asio::error::eof}, 0};
        // want_input: the engine holds no complete record; read what the socket has.
        if (drained_) return {error_code{asio::error::would_block}, 0};
        auto space = engine_->input_space();
        std::size_t got = socket_.read_some(asio::buffer(space.data(), space.size()), ec);
        if (!ec && got < space.size()) drained_ = true;
        if (ec == asio::error::eof) {
            input_eof_ = true;  // the engine tells close_notify from truncation
            engine_->input_eof();
            ec = {};
            continue;
        }
        if (ec == asio::error::try_again) ec = asio::error::would_block;
        if (ec) return {ec, 0};
        engine_->commit_input(got);
    }
}

awaitable<error_code> Stream::wait_readable() {
    if (engine_ && retry_now_) {
        retry_now_ = false;
        error_code ec;
        if (!engine_->output().empty()) ec = co_await flush();
        if (!ec) ec = deferred_;
        deferred_ = {};
        co_return ec;
    }
    // Nothing in flight on the read side and the engine's output sent or being sent from a lent
    // buffer: an idle session keeps no ciphertext buffer while it waits.
    if (engine_) engine_->release_buffers();
    auto [ec] = co_await socket_.async_wait(tcp::socket::wait_read, use_nothrow);
    drained_ = false;
    co_return ec;
}

awaitable<error_code> Stream::write_all(std::span<const std::uint8_t> buf) {
    if (!engine_) {
        auto [ec, n] =
            co_await asio::async_write(socket_, asio::buffer(buf.data(), buf.size()), use_nothrow);
        co_return ec;
    }
    // An engine takes all of buf or fails (tls.hpp): write never wants input.
    Performed p = co_await perform([&] { return engine_->write(buf); });
    if (p.result != tls::Result::ok) co_return error_code{asio::error::connection_aborted};
    co_return p.ec;
}

std::tuple<error_code, std::size_t> Stream::try_write(std::span<const std::uint8_t> buf) {
    error_code ec;
    auto would_block = [](const error_code& e) {
        return e == asio::error::would_block || e == asio::error::try_again;
    };
    if (!engine_) {
        std::size_t n = socket_.write_some(asio::buffer(buf.data(), buf.size()), ec);
        if (would_block(ec)) return {error_code{}, 0};
        return {ec, n};
    }
    // An engine takes all of buf or fails (tls.hpp).
    if (engine_->write(buf) != tls::Result::ok)
        return {error_code{asio::error::connection_aborted}, 0};
    // A write in flight (flush) sends these records after its own, in order.
    if (!writing_) {
        auto out = engine_->output();
        std::size_t n = socket_.write_some(asio::buffer(out.data(), out.size()), ec);
        if (would_block(ec)) ec = {};
        if (!ec) engine_->consume_output(n);
    }
    return {ec, buf.size()};
}

awaitable<error_code> Stream::finish_write(std::span<const std::uint8_t> rest) {
    if (!engine_) {
        auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(rest.data(), rest.size()),
                                                  use_nothrow);
        co_return ec;
    }
    // flush() also waits for a write in flight, which may be carrying try_write's records.
    if (!output_pending()) co_return error_code{};
    co_return co_await flush();
}

bool Stream::try_shutdown_send() {
    if (engine_) return false;
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    return true;
}

awaitable<void> Stream::shutdown_send() {
    // shutdown() only queues close_notify (tls.hpp): it never waits for the peer's.
    if (engine_) co_await perform([&] { return engine_->shutdown(); });
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

void Stream::close() {
    error_code ignored;
    socket_.close(ignored);
}

}  // namespace pggw
