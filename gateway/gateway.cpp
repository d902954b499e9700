#include "gateway/gateway.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <boost/asio/signal_set.hpp>

#include "gateway/tls_setup.hpp"
#include "gateway/worker.hpp"
#include "metrics/admin_server.hpp"

namespace pggw {

namespace {

constexpr auto kDrainTimeout = std::chrono::seconds(30);

// Servers commonly raise the soft open-file limit to the hard one: each session needs two.
void raise_fd_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

std::vector<metrics::CertificateInfo> cert_infos(const std::shared_ptr<tls::Context>& ctx) {
    std::vector<metrics::CertificateInfo> out;
    if (ctx)
        for (const auto& c : ctx->certificates()) out.push_back({c.subject, c.not_after});
    return out;
}

// Expiry series for both legs; replaced whole, so a replaced certificate's series goes away.
void publish_certificates(metrics::Registry& registry, const TlsContexts& t) {
    registry.set_certificates(metrics::Leg::client, cert_infos(t.client));
    registry.set_certificates(metrics::Leg::server, cert_infos(t.server));
}

}  // namespace

std::string compiled_libraries_csv() {
    std::string s;
    for (const auto& b : tls::compiled_backends()) s += (s.empty() ? "" : ",") + b;
    return s;
}

int run_gateway(const Config& cfg_in) {
    raise_fd_limit();
    Shared shared;
    shared.cfg = cfg_in;
    const Config& cfg = shared.cfg;
    shared.client_tls = cfg.effective_client_tls();
    shared.max_connections = cfg.max_connections ? cfg.max_connections : default_max_connections();
    unsigned workers = cfg.workers ? cfg.workers : default_workers();

    std::string error;
    if (!validate_tls_settings(cfg, error)) {
        spdlog::critical("{}", error);
        return 2;
    }
    if (tls_needed(cfg)) {
        shared.backend = tls::load_backend(cfg.tls_library, error);
        if (!shared.backend) {
            spdlog::critical("cannot load TLS library {}: {}", cfg.tls_library, error);
            return 2;
        }
    }
    TlsContexts contexts;
    if (!make_tls_contexts(cfg, shared.backend, contexts, error)) {
        spdlog::critical("{}", error);
        return 2;
    }

    metrics::Registry registry(workers, {PGGW_VERSION, compiled_libraries_csv()});
    shared.metrics = &registry;
    publish_certificates(registry, contexts);

    // Handlers go in before any listener opens: a SIGTERM that arrives as soon as the port
    // accepts is queued for the drain below, not fatal.
    asio::io_context main_io(1);
    asio::signal_set signals(main_io, SIGTERM, SIGINT, SIGHUP);

    std::vector<std::unique_ptr<Worker>> pool;
    try {
        for (unsigned i = 0; i < workers; ++i) {
            pool.push_back(std::make_unique<Worker>(shared, i, contexts));
            pool.back()->start();
        }
    } catch (const std::exception& e) {
        spdlog::critical("cannot listen: {}", e.what());
        return 1;
    }

    metrics::Health health;
    for (auto& w : pool) health.add_worker(w->io().get_executor());
    tcp::endpoint admin_ep(asio::ip::make_address(cfg.metrics_listen.host),
                           cfg.metrics_listen.port);
    metrics::AdminServer admin(main_io, admin_ep, registry, health);
    try {
        admin.start();
    } catch (const std::exception& e) {
        spdlog::critical("cannot serve metrics on {}: {}", cfg.metrics_listen.str(), e.what());
        return 1;
    }

    std::string listen;
    for (const auto& l : cfg.listen) listen += (listen.empty() ? "" : ",") + l.str();
    spdlog::info(
        "pggw {} listening on {} with {} workers; backend {}; client TLS {}; server TLS {}; "
        "TLS library {}; max_connections {}; metrics on {}",
        PGGW_VERSION, listen, workers, cfg.backend.str(), tls_mode_name(shared.client_tls),
        tls_mode_name(cfg.server_tls), shared.backend ? shared.backend->name() : "none",
        shared.max_connections, cfg.metrics_listen.str());
    registry.readiness().ready = true;

    // Signals: SIGTERM/SIGINT start a drain (a second one stops at once); SIGHUP reloads TLS.
    asio::steady_timer drain_poll(main_io);
    auto drain_deadline = std::chrono::steady_clock::time_point::max();
    std::function<void()> poll_drain = [&] {
        std::size_t live = 0;
        for (auto& w : pool) live += w->live_sessions();
        if (live == 0 || std::chrono::steady_clock::now() >= drain_deadline) {
            if (live) spdlog::warn("drain timeout: closing {} sessions", live);
            admin.stop();
            main_io.stop();
            return;
        }
        drain_poll.expires_after(std::chrono::milliseconds(100));
        drain_poll.async_wait([&](error_code ec) {
            if (!ec) poll_drain();
        });
    };
    std::function<void(error_code, int)> on_signal = [&](error_code ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
            std::string err;
            TlsContexts fresh;
            if (!make_tls_contexts(cfg, shared.backend, fresh, err)) {
                spdlog::error("SIGHUP: TLS reload failed, keeping the current certificates: {}",
                              err);
            } else {
                for (auto& w : pool) w->set_tls(fresh);
                publish_certificates(registry, fresh);
                spdlog::info("SIGHUP: TLS certificates reloaded");
            }
        } else if (shared.draining.exchange(true)) {
            spdlog::warn("second signal: stopping now");
            main_io.stop();
            return;
        } else {
            spdlog::info(
                "{}: draining: no new connections; sessions end when idle (up to {}s); {} open",
                sig == SIGTERM ? "SIGTERM" : "SIGINT", kDrainTimeout.count(), [&] {
                    std::size_t n = 0;
                    for (auto& w : pool) n += w->live_sessions();
                    return n;
                }());
            registry.readiness().draining = true;
            for (auto& w : pool) w->begin_drain();
            drain_deadline = std::chrono::steady_clock::now() + kDrainTimeout;
            poll_drain();
        }
        signals.async_wait(on_signal);
    };
    signals.async_wait(on_signal);
    main_io.run();

    for (auto& w : pool) w->stop_and_join();
    spdlog::info("pggw stopped");
    return 0;
}

}  // namespace pggw
