#include "metrics/admin_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <system_error>

namespace pggw::metrics {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

std::string to_string(const tcp::endpoint& ep) {
    const auto a = ep.address();
    return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" +
           std::to_string(ep.port());
}

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

Response text_response(const Request& req, http::status status, std::string body,
                       std::string_view content_type = "text/plain; charset=utf-8") {
    Response res{status, req.version()};
    res.set(http::field::server, "pggw");
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();  // Content-Length stays
    return res;
}

}  // namespace

struct AdminServer::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& ioc, tcp::endpoint ep, Registry& registry, Health& health,
         AdminOptions options)
        : ioc(ioc),
          endpoint(ep),
          registry(registry),
          health(health),
          options(options),
          acceptor(ioc) {}

    void start() {
        beast::error_code ec;
        const char* step = "open";
        acceptor.open(endpoint.protocol(), ec);
        if (!ec) {
            step = "set SO_REUSEADDR on";
            acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
        }
        if (!ec) {
            step = "bind";
            acceptor.bind(endpoint, ec);
        }
        if (!ec) {
            step = "listen on";
            acceptor.listen(asio::socket_base::max_listen_connections, ec);
        }
        if (ec) {
            spdlog::error("admin: cannot {} {} (--metrics-listen): {}", step, to_string(endpoint),
                          ec.message());
            beast::error_code ignored;
            acceptor.close(ignored);
            throw std::system_error(
                ec, "admin: cannot " + std::string(step) + " " + to_string(endpoint));
        }
        {
            std::lock_guard lock(bound_mutex);
            bound = acceptor.local_endpoint();
        }
        spdlog::info("admin: serving /metrics /healthz /readyz on {}", to_string(bound));
        asio::co_spawn(ioc, accept_loop(shared_from_this()), [](std::exception_ptr e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                spdlog::error("admin: accept loop ended: {}", ex.what());
            }
        });
    }

    void stop() {
        asio::post(ioc, [self = shared_from_this()] {
            self->stopped = true;
            beast::error_code ignored;
            self->acceptor.close(ignored);
            for (auto& [id, c] : self->connections) {
                if (auto s = c.stream.lock()) s->socket().close(ignored);
            }
        });
    }

    static asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
        while (!self->stopped) {
            auto [ec, socket] = co_await self->acceptor.async_accept(use_nothrow);
            if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) co_return;
            if (ec) {
                // EMFILE and friends: back off instead of spinning.
                spdlog::warn("admin: accept failed: {}", ec.message());
                asio::steady_timer t(self->ioc, std::chrono::milliseconds(100));
                co_await t.async_wait(use_nothrow);
                continue;
            }
            beast::error_code pec;
            const auto peer = socket.remote_endpoint(pec).address();
            if (pec) continue;  // gone already
            std::size_t& from_peer = self->per_source[peer];
            const bool total_full = self->connections.size() >= self->options.max_connections;
            if (total_full || from_peer >= self->options.max_connections_per_source) {
                if (from_peer == 0) self->per_source.erase(peer);
                self->refused(peer, total_full);
                beast::error_code ignored;
                socket.close(ignored);
                continue;
            }
            ++from_peer;
            auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
            const auto id = self->next_id++;
            self->connections.emplace(id, Connection{stream, peer});
            asio::co_spawn(self->ioc, serve(self, std::move(stream)),
                           [self, id](std::exception_ptr e) {
                               self->forget(id);
                               if (!e) return;
                               try {
                                   std::rethrow_exception(e);
                               } catch (const std::exception& ex) {
                                   spdlog::warn("admin: connection ended: {}", ex.what());
                               }
                           });
        }
    }

    static asio::awaitable<void> serve(std::shared_ptr<Impl> self,
                                       std::shared_ptr<beast::tcp_stream> stream) {
        const auto& opt = self->options;
        beast::flat_buffer buffer(opt.header_limit + opt.body_limit);
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.header_limit(static_cast<std::uint32_t>(opt.header_limit));
            parser.body_limit(opt.body_limit);
            // One deadline for the whole request: a client that sends nothing, or dribbles
            // its headers, loses the connection after request_timeout.
            stream->expires_after(opt.request_timeout);
            auto [rec, rn] = co_await http::async_read(*stream, buffer, parser, use_nothrow);
            if (rec) {
                const bool too_large = rec == http::error::header_limit ||
                                       rec == http::error::body_limit ||
                                       rec == http::error::buffer_overflow;
                if (too_large && stream->socket().is_open()) {
                    Request dummy;
                    dummy.keep_alive(false);
                    auto res = text_response(dummy, http::status::payload_too_large,
                                             "request too large\n");
                    stream->expires_after(std::chrono::seconds(5));
                    co_await http::async_write(*stream, res, use_nothrow);
                }
                break;
            }
            Request req = parser.release();
            Response res = co_await self->handle(req);
            stream->expires_after(opt.write_timeout);
            auto [wec, wn] = co_await http::async_write(*stream, res, use_nothrow);
            if (wec || !res.keep_alive()) break;
        }
        beast::error_code ignored;
        stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream->socket().close(ignored);
    }

    void forget(std::uint64_t id) {
        auto it = connections.find(id);
        if (it == connections.end()) return;
        auto src = per_source.find(it->second.peer);
        if (src != per_source.end() && --src->second == 0) per_source.erase(src);
        connections.erase(it);
    }

    // A connection over a cap: logged at most every 10 s, with the count since the last line.
    void refused(const asio::ip::address& peer, bool total_full) {
        ++refused_since_log;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_refusal_log < std::chrono::seconds(10)) return;
        last_refusal_log = now;
        spdlog::warn(
            "admin: closed {} connection(s) over the cap (last from {}: {}; at most {} per "
            "source, {} in all)",
            refused_since_log, peer.to_string(),
            total_full ? "all slots taken" : "too many from that address",
            options.max_connections_per_source, options.max_connections);
        refused_since_log = 0;
    }

    asio::awaitable<Response> handle(const Request& req) {
        if (req.method() != http::verb::get && req.method() != http::verb::head) {
            auto res = text_response(req, http::status::method_not_allowed, "GET only\n");
            res.set(http::field::allow, "GET, HEAD");
            co_return res;
        }
        std::string_view path = req.target();
        path = path.substr(0, path.find('?'));
        if (path == "/metrics") {
            std::string body;
            try {
                body = registry.scrape();
            } catch (const std::exception& e) {
                spdlog::error("admin: scrape failed: {}", e.what());
                co_return text_response(req, http::status::internal_server_error,
                                        "scrape failed\n");
            }
            co_return text_response(req, http::status::ok, std::move(body),
                                    "text/plain; version=0.0.4; charset=utf-8");
        }
        if (path == "/healthz") {
            const bool ok = co_await health.check(options.health_timeout);
            co_return text_response(req, ok ? http::status::ok : http::status::service_unavailable,
                                    ok ? "ok\n" : "worker event loop unresponsive\n");
        }
        if (path == "/readyz") {
            const auto& r = registry.readiness();
            const bool draining = r.draining.load();
            const bool ready = r.ready.load() && !draining;
            co_return text_response(req,
                                    ready ? http::status::ok : http::status::service_unavailable,
                                    ready      ? "ready\n"
                                    : draining ? "draining\n"
                                               : "not ready\n");
        }
        co_return text_response(req, http::status::not_found, "not found\n");
    }

    asio::io_context& ioc;
    const tcp::endpoint endpoint;
    Registry& registry;
    Health& health;
    const AdminOptions options;
    tcp::acceptor acceptor;
    // Touched on the io_context only.
    struct Connection {
        std::weak_ptr<beast::tcp_stream> stream;
        asio::ip::address peer;
    };
    std::map<std::uint64_t, Connection> connections;
    std::map<asio::ip::address, std::size_t> per_source;  // open connections by source
    std::uint64_t next_id = 0;
    std::uint64_t refused_since_log = 0;
    std::chrono::steady_clock::time_point last_refusal_log{};
    bool stopped = false;
    mutable std::mutex bound_mutex;
    tcp::endpoint bound;
};

AdminServer::AdminServer(asio::io_context& ioc, tcp::endpoint endpoint, Registry& registry,
                         Health& health, AdminOptions options)
    : impl_(std::make_shared<Impl>(ioc, endpoint, registry, health, options)) {}

AdminServer::~AdminServer() {
    impl_->stop();
}

void AdminServer::start() {
    impl_->start();
}

void AdminServer::stop() {
    impl_->stop();
}

tcp::endpoint AdminServer::local_endpoint() const {
    std::lock_guard lock(impl_->bound_mutex);
    return impl_->bound;
}

}  // namespace pggw::metrics
