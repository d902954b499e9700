// The slice of Asio pggw uses, with short names. No boost/asio/ssl.hpp: it binds OpenSSL.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>

namespace pggw {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
template <typename T = void>
using awaitable = asio::awaitable<T>;
// Completion token for the data path: errors come back as values, never as exceptions.
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
using namespace asio::experimental::awaitable_operators;

// Completes after d; raced against an operation with || to make a timeout.
inline awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(use_nothrow);
}

}  // namespace pggw
