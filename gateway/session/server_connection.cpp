#include "gateway/session/server_connection.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>

#include "gateway/net/socket_options.hpp"
#include "gateway/pg/channel_binding.hpp"
#include "gateway/pg/server_negotiation.hpp"
#include "gateway/session/clock.hpp"
#include "gateway/session/leg_tls.hpp"

namespace pggw {

std::string_view connect_error_name(ConnectError e) {
    switch (e) {
        case ConnectError::none:
            return "none";
        case ConnectError::resolve:
            return "resolve";
        case ConnectError::refused:
            return "refused";
        case ConnectError::unreachable:
            return "unreachable";
        case ConnectError::write:
            return "write";
        case ConnectError::tls_config:
            return "tls_config";
        case ConnectError::ssl_negotiation:
            return "ssl_negotiation";
        case ConnectError::tls_handshake:
            return "tls_handshake";
        case ConnectError::tls_not_supported:
            return "tls_not_supported";
        case ConnectError::ssl_request_error:
            return "ssl_request_error";
        case ConnectError::timeout:
            return "timeout";
    }
    return "other";
}

namespace {

using metrics::Leg;
namespace neg = server_negotiation;

// How long pggw reads the text behind an 'E' answer (for the log) before closing.
constexpr auto kErrorTextWait = std::chrono::milliseconds(500);
constexpr std::size_t kErrorTextMax = 2048;

// Once per process: TLS on both legs with a client-leg certificate that is not the server's.
std::atomic<bool> g_channel_binding_warned{false};

ServerConnection failed(std::string log_error, ConnectError error) {
    ServerConnection out;
    out.log_error = std::move(log_error);
    out.error = error;
    return out;
}

// A TLS-policy failure: the client may know that much (never the server's address).
ServerConnection tls_refusal(std::string log_error, ConnectError error,
                             std::string client_message) {
    ServerConnection out = failed(std::move(log_error), error);
    out.client_message = std::move(client_message);
    out.refusal = Refusal::server_tls;
    return out;
}

std::string verified_tls_message(std::string_view why) {
    return "pggw could not establish a verified TLS connection to the PostgreSQL server (" +
           std::string(why) + ")";
}

awaitable<ServerConnection> tcp_connect(SessionEnv& env) {
    const HostPort& server = env.cfg.server;
    ServerConnection out;
    auto ex = co_await asio::this_coro::executor;
    std::vector<tcp::endpoint> endpoints;
    error_code ec;
    auto addr = asio::ip::make_address(server.host, ec);
    const bool by_name = static_cast<bool>(ec);
    if (!by_name) {
        endpoints.emplace_back(addr, server.port);
    } else {
        ResolverCache::Answer a = co_await env.server_addresses.resolve(server.host, server.port);
        if (a.error) {
            out.log_error = "could not resolve \"" + server.host + "\": " + a.error.message();
            out.error = ConnectError::resolve;
            co_return out;
        }
        endpoints = std::move(a.endpoints);
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
    out.error =
        last == asio::error::connection_refused ? ConnectError::refused : ConnectError::unreachable;
    // Every address failed: the next session waits for a fresh lookup (failover DNS).
    if (by_name) env.server_addresses.forget(server.host, server.port);
    co_return out;
}

// One server-leg negotiation: README.SSL's client flow with libpq's sslmode semantics.
class Negotiator {
  public:
    Negotiator(SessionEnv& env, std::span<const std::uint8_t> packet)
        : env_(env),
          m_(env.metrics),
          cfg_(env.cfg),
          packet_(packet),
          cancel_(neg::is_cancel_request(packet)) {}

    // The timeout cut a TLS handshake short (for the log line).
    bool handshake_timed_out = false;

    awaitable<ServerConnection> run() {
        const auto plan = neg::plan_for(cfg_.server_tls, !cfg_.server_ca.empty());
        if (plan.try_tls_first) co_return co_await with_tls(plan.plaintext_fallback);
        ServerConnection conn = co_await plaintext();
        if (!plan.tls_retry_on_error || cancel_ || !conn.stream) co_return conn;

        // allow: libpq retries with TLS when the server refuses the plaintext startup (an
        // ErrorResponse first, nothing relayed to the client yet).
        std::array<std::uint8_t, 4096> buf;
        auto [ec, n] = co_await conn.stream->read_some(buf);
        if (ec) co_return conn;  // closed without a word: the relay sees the EOF
        conn.pending.assign(buf.begin(), buf.begin() + std::ptrdiff_t(n));
        if (conn.pending.front() != 'E') co_return conn;
        ServerConnection retry = co_await with_tls(false);
        if (retry.stream) {
            spdlog::debug("server refused the plaintext startup; retried with TLS (allow)");
            conn.stream->close();
            co_return retry;
        }
        // Relay the server's own refusal of the plaintext attempt, as libpq would show it.
        spdlog::warn("--server-tls allow: TLS retry after the server refused plaintext failed: {}",
                     retry.log_error);
        co_return conn;
    }

  private:
    awaitable<ServerConnection> send_packet(ServerConnection conn) {
        if (auto ec = co_await conn.stream->write_all(packet_)) {
            conn.stream->close();
            co_return failed("could not send the " +
                                 std::string(cancel_ ? "cancel request" : "startup packet") +
                                 " to server " + cfg_.server.str() + ": " + ec.message(),
                             ConnectError::write);
        }
        co_return conn;
    }

    awaitable<ServerConnection> plaintext() {
        ServerConnection conn = co_await tcp_connect(env_);
        if (!conn.stream) co_return conn;
        co_return co_await send_packet(std::move(conn));
    }

    awaitable<ServerConnection> with_tls(bool fallback) {
        if (!env_.tls.server) co_return failed("no server TLS context", ConnectError::tls_config);
        ServerConnection conn = co_await tcp_connect(env_);
        if (!conn.stream) co_return conn;
        Stream& s = *conn.stream;
        if (auto ec = co_await s.write_all(neg::ssl_request())) {
            s.close();
            co_return failed(
                "could not send SSLRequest to server " + cfg_.server.str() + ": " + ec.message(),
                ConnectError::write);
        }
        std::array<std::uint8_t, 64> buf;
        auto [ec, n] = co_await s.read_some(buf);
        if (ec) {
            s.close();
            co_return failed("server " + cfg_.server.str() +
                                 " closed the connection during SSL negotiation: " + ec.message(),
                             ConnectError::ssl_negotiation);
        }
        const std::string mode(tls_mode_name(cfg_.server_tls));
        switch (neg::classify_ssl_answer(buf[0])) {
            case neg::SslAnswer::tls:
                // CVE-2021-23222: bytes behind the 'S', before the handshake, were not protected
                // by the TLS that follows; a man in the middle may have injected them.
                if (n > 1) {
                    s.close();
                    m_.tls_handshake_error(Leg::server, env_.library, "plaintext_after_sslrequest");
                    spdlog::warn(
                        "server {} sent unencrypted data after its SSL response ({} bytes); "
                        "closing (possible man-in-the-middle, CVE-2021-23222)",
                        cfg_.server.str(), n - 1);
                    co_return tls_refusal("received unencrypted data after SSL response",
                                          ConnectError::tls_handshake,
                                          verified_tls_message("unexpected data"));
                }
                if (!fallback) co_return co_await handshake(std::move(conn));
                {
                    // prefer: libpq retries without TLS on a fresh connection when the handshake
                    // fails (prefer checks no certificate, so this is a protocol failure).
                    ServerConnection tls = co_await handshake(std::move(conn));
                    if (tls.stream || tls.error != ConnectError::tls_handshake) co_return tls;
                    spdlog::warn("--server-tls prefer: retrying without TLS: {}", tls.log_error);
                    co_return co_await plaintext();
                }
            case neg::SslAnswer::plaintext:
                if (!fallback) {
                    s.close();
                    co_return tls_refusal(
                        "server " + cfg_.server.str() + " does not support SSL, but --server-tls " +
                            mode + " requires it",
                        ConnectError::tls_not_supported,
                        "the PostgreSQL server does not support SSL, but pggw requires it "
                        "(--server-tls " +
                            mode + ")");
                }
                co_return co_await send_packet(std::move(conn));
            case neg::SslAnswer::error: {
                // CVE-2024-10977: this text comes from an unauthenticated peer. Log it as such;
                // never show it to the client.
                std::vector<std::uint8_t> text(buf.begin(), buf.begin() + std::ptrdiff_t(n));
                auto deadline = Clock::now() + kErrorTextWait;
                while (text.size() < kErrorTextMax && Clock::now() < deadline) {
                    auto r = co_await (s.read_some(buf) || sleep_for(deadline - Clock::now()));
                    if (r.index() == 1) break;
                    auto [rec, rn] = std::get<0>(r);
                    if (rec) break;
                    text.insert(text.end(), buf.begin(), buf.begin() + std::ptrdiff_t(rn));
                }
                s.close();
                spdlog::warn(
                    "server {} answered the SSLRequest with an error (unverified text, not "
                    "shown to the client): \"{}\"{}",
                    cfg_.server.str(), neg::unverified_text(text),
                    fallback ? "; retrying without TLS" : "");
                if (!fallback) {
                    co_return tls_refusal(
                        "server " + cfg_.server.str() + " answered the SSLRequest with an error",
                        ConnectError::ssl_request_error,
                        "the PostgreSQL server does not support SSL, but pggw "
                        "requires it (--server-tls " +
                            mode + ")");
                }
                co_return co_await plaintext();
            }
            case neg::SslAnswer::unknown:
                break;
        }
        s.close();
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", buf[0]);
        co_return tls_refusal(
            "received invalid response to SSL negotiation from server " + cfg_.server.str() + ": " +
                hex + " (unknown response to SSLRequest)",
            ConnectError::ssl_negotiation, verified_tls_message("unknown response to SSLRequest"));
    }

    awaitable<ServerConnection> handshake(ServerConnection conn) {
        Stream& s = *conn.stream;
        tls::EngineOptions eo;
        eo.hostname = neg::tls_hostname(cfg_);
        s.start_tls(env_.tls.server->new_engine(eo));
        const std::string server = cfg_.server.str();
        LegTlsOutcome out =
            co_await run_tls_handshake(s, {Leg::server, env_.library, m_, server, eo.hostname});
        if (!out.ok) {
            s.close();
            if (out.timed_out) {
                // connect_server reports the timeout.
                handshake_timed_out = true;
                co_return failed("cancelled during the TLS handshake", ConnectError::timeout);
            }
            const auto why = tls::failure_name(out.failure);
            co_return tls_refusal("TLS handshake failed (" + std::string(why) + "): " + out.reason,
                                  ConnectError::tls_handshake, verified_tls_message(why));
        }
        const tls::HandshakeInfo& info = s.engine()->info();
        const tls::Context* client_leg = env_.tls.client.get();
        conn.channel_binding_ok =
            info.peer_certificate &&
            channel_binding_can_pass(client_leg, info.peer_certificate_sha256);
        if (!conn.channel_binding_ok && client_leg &&
            !g_channel_binding_warned.exchange(true, std::memory_order_relaxed)) {
            std::string ours = client_leg->certificates().empty()
                                   ? std::string("?")
                                   : client_leg->certificates().front().subject;
            spdlog::warn(
                "TLS on both legs: pggw's certificate ({}) is not the PostgreSQL server's ({}), "
                "so SCRAM channel binding cannot pass through pggw; {}clients connecting with "
                "channel_binding=prefer or require will be refused with an explanation (put "
                "them in --auth-file, use channel_binding=disable, or give pggw the server's "
                "certificate and key)",
                ours, info.peer_subject,
                cfg_.auth_file.empty() ? "" : "for users not in --auth-file, ");
        }
        co_return co_await send_packet(std::move(conn));
    }

    SessionEnv& env_;
    metrics::WorkerMetrics& m_;
    const Config& cfg_;
    std::span<const std::uint8_t> packet_;
    bool cancel_;
};

}  // namespace

awaitable<ServerConnection> connect_server(SessionEnv& env,
                                           std::span<const std::uint8_t> first_packet) {
    auto started = Clock::now();
    Negotiator n(env, first_packet);
    auto r = co_await (n.run() || sleep_for(seconds(env.cfg.server_connect_timeout)));
    if (r.index() == 1) {
        ServerConnection out;
        out.log_error = "timeout connecting to server " + env.cfg.server.str();
        out.error = ConnectError::timeout;
        if (n.handshake_timed_out) out.log_error += " (during the TLS handshake)";
        env.metrics.server_connect_error(connect_error_name(out.error));
        co_return out;
    }
    auto conn = std::move(std::get<0>(r));
    if (!conn.stream) {
        env.metrics.server_connect_error(connect_error_name(conn.error));
        co_return conn;
    }
    env.metrics.server_connect(seconds_since(started));
    co_return conn;
}

}  // namespace pggw
