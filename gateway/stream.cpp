#include "gateway/stream.hpp"

#include <cstring>

namespace pggw {

Stream::Stream(tcp::socket socket)
    : socket_(std::move(socket)),
      write_done_(socket_.get_executor(), asio::steady_timer::time_point::max()) {}

void Stream::start_tls(std::unique_ptr<tls::Engine> engine, std::span<const std::uint8_t> initial) {
    engine_ = std::move(engine);
    if (!initial.empty()) engine_->feed(initial);
}

awaitable<error_code> Stream::flush() {
    // The timer never expires: cancel() at the end of a write is the wake-up.
    while (writing_) co_await write_done_.async_wait(use_nothrow);
    writing_ = true;
    error_code ec;
    while (!engine_->output().empty()) {
        auto out = engine_->output();
        wbuf_.assign(out.begin(), out.end());
        engine_->consume_output(out.size());
        auto [e, n] = co_await asio::async_write(socket_, asio::buffer(wbuf_), use_nothrow);
        if (e) {
            ec = e;
            break;
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
    for (;;) {
        tls::Result r = engine_->handshake();
        error_code wec;
        if (!engine_->output().empty()) wec = co_await flush();
        if (r == tls::Result::ok && !wec) co_return TlsOutcome{true, tls::Failure::none, {}};
        if (r == tls::Result::error)
            co_return TlsOutcome{false, engine_->failure(), engine_->failure_reason()};
        if (wec) co_return TlsOutcome{false, tls::Failure::eof, "write failed: " + wec.message()};
        if (auto ec = co_await fill()) {
            if (ec == asio::error::eof)
                co_return TlsOutcome{false, tls::Failure::eof, "peer closed during the handshake"};
            co_return TlsOutcome{false, tls::Failure::eof, "read failed: " + ec.message()};
        }
    }
}

awaitable<std::tuple<error_code, std::size_t>> Stream::read_some(std::span<std::uint8_t> buf) {
    if (!engine_) {
        auto [ec, n] =
            co_await socket_.async_read_some(asio::buffer(buf.data(), buf.size()), use_nothrow);
        co_return std::tuple{ec, n};
    }
    for (;;) {
        std::size_t n = 0;
        tls::Result r = engine_->read(buf, n);
        if (!engine_->output().empty()) {
            if (auto ec = co_await flush()) co_return std::tuple{ec, std::size_t{0}};
        }
        switch (r) {
            case tls::Result::ok:
                co_return std::tuple{error_code{}, n};
            case tls::Result::closed:
                co_return std::tuple{error_code{asio::error::eof}, std::size_t{0}};
            case tls::Result::error: {
                // Truncation (no close_notify) ends the stream like TCP EOF does.
                error_code ec = asio::error::connection_aborted;
                if (engine_->failure() == tls::Failure::eof) ec = asio::error::eof;
                co_return std::tuple{ec, std::size_t{0}};
            }
            case tls::Result::want_input:
                break;
        }
        if (auto ec = co_await fill()) co_return std::tuple{ec, std::size_t{0}};
    }
}

awaitable<error_code> Stream::write_all(std::span<const std::uint8_t> buf) {
    if (!engine_) {
        auto [ec, n] =
            co_await asio::async_write(socket_, asio::buffer(buf.data(), buf.size()), use_nothrow);
        co_return ec;
    }
    if (engine_->write(buf) != tls::Result::ok)
        co_return error_code{asio::error::connection_aborted};
    co_return co_await flush();
}

awaitable<void> Stream::shutdown_send() {
    if (engine_ && engine_->shutdown() == tls::Result::ok && !engine_->output().empty())
        co_await flush();
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

void Stream::close() {
    error_code ignored;
    socket_.close(ignored);
}

}  // namespace pggw
