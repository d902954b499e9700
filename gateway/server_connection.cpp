#include "gateway/server_connection.hpp"

#include "gateway/worker.hpp"

namespace pggw {

namespace {

using Clock = std::chrono::steady_clock;

awaitable<ServerConnection> tcp_connect(Worker& w) {
    const HostPort& backend = w.shared().cfg.backend;
    ServerConnection out;
    auto ex = co_await asio::this_coro::executor;
    std::vector<tcp::endpoint> endpoints;
    error_code ec;
    auto addr = asio::ip::make_address(backend.host, ec);
    if (!ec) {
        endpoints.emplace_back(addr, backend.port);
    } else {
        tcp::resolver resolver(ex);
        auto [rec, results] = co_await resolver.async_resolve(
            backend.host, std::to_string(backend.port), use_nothrow);
        if (rec) {
            out.log_error = "could not resolve \"" + backend.host + "\": " + rec.message();
            out.metric_reason = "resolve";
            co_return out;
        }
        for (const auto& r : results) endpoints.push_back(r.endpoint());
    }
    error_code last;
    for (const auto& ep : endpoints) {
        tcp::socket s(ex);
        auto [cec] = co_await s.async_connect(ep, use_nothrow);
        if (!cec) {
            tune_socket(s);
            out.stream.emplace(std::move(s));
            co_return out;
        }
        last = cec;
        out.log_error = "could not connect to server " + ep.address().to_string() + ":" +
                        std::to_string(ep.port()) + ": " + cec.message();
    }
    out.metric_reason = last == asio::error::connection_refused ? "refused" : "unreachable";
    co_return out;
}

}  // namespace

awaitable<ServerConnection> connect_server(Worker& w) {
    auto started = Clock::now();
    auto timeout = std::chrono::duration<double>(w.shared().cfg.server_connect_timeout);
    auto r = co_await (tcp_connect(w) ||
                       sleep_for(std::chrono::duration_cast<Clock::duration>(timeout)));
    if (r.index() == 1) {
        ServerConnection out;
        out.log_error = "timeout connecting to server " + w.shared().cfg.backend.str();
        out.metric_reason = "timeout";
        w.metrics().server_connect_error(out.metric_reason);
        co_return out;
    }
    auto conn = std::move(std::get<0>(r));
    if (!conn.stream) {
        w.metrics().server_connect_error(conn.metric_reason);
        co_return conn;
    }
    w.metrics().server_connect(std::chrono::duration<double>(Clock::now() - started).count());
    co_return conn;
}

}  // namespace pggw
