#include "gateway/app/gateway.hpp"

#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <future>

#include <boost/asio/signal_set.hpp>

#include "gateway/app/cert_watcher.hpp"
#include "gateway/app/drain.hpp"
#include "gateway/app/tls_contexts.hpp"
#include "gateway/app/worker.hpp"
#include "gateway/pg/server_negotiation.hpp"
#include "metrics/admin_server.hpp"

namespace pggw {

namespace {

// Servers commonly raise the soft open-file limit to the hard one: each session needs two.
void raise_fd_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

std::vector<tls::CertificateInfo> cert_infos(const std::shared_ptr<tls::Context>& ctx) {
    if (!ctx) return {};
    return ctx->certificates();
}

std::string endpoint_name(const tcp::endpoint& ep) {
    auto a = ep.address().to_string();
    return (ep.address().is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(ep.port());
}

// Binds every worker's listeners. A --listen port of 0 is bound by the first worker on a port
// the kernel chooses; the others bind that same port. Returns the bound addresses.
std::vector<tcp::endpoint> start_workers(std::vector<std::unique_ptr<Worker>>& pool,
                                         const std::vector<HostPort>& listen) {
    std::vector<tcp::endpoint> eps;
    for (const auto& hp : listen) eps.emplace_back(asio::ip::make_address(hp.host), hp.port);
    for (std::size_t i = 0; i < pool.size(); ++i) {
        pool[i]->start(eps);
        if (i == 0) eps = pool[0]->local_endpoints();
    }
    return eps;
}

// Expiry series for both legs; replaced whole, so a replaced certificate's series goes away.
void publish_certificates(metrics::Registry& registry, const TlsContexts& t) {
    registry.set_certificates(metrics::Leg::client, cert_infos(t.client));
    registry.set_certificates(metrics::Leg::server, cert_infos(t.server));
}

// Every certificate, key and CA file make_tls_contexts reads with these settings.
std::vector<std::string> tls_files(const Config& cfg) {
    std::vector<std::string> out;
    auto add = [&](const std::string& f) {
        if (!f.empty()) out.push_back(f);
    };
    if (cfg.effective_client_tls() != TlsMode::disable) {
        add(cfg.cert);
        add(cfg.key);
        add(cfg.client_ca);
    }
    if (server_negotiation::uses_tls(cfg.server_tls)) {
        add(cfg.server_cert);
        add(cfg.server_key);
        add(cfg.server_ca);
    }
    return out;
}

std::string subjects(const TlsContexts& t) {
    std::string s;
    for (const auto& c : cert_infos(t.client)) s += (s.empty() ? "" : ", ") + c.subject;
    return s.empty() ? "none" : s;
}

std::string seconds_text(double s) {
    return fmt::format("{:g}s", s);
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
    ConnectionBudget connections(cfg.max_connections ? cfg.max_connections
                                                     : default_max_connections());
    shared.connections = &connections;
    AdmissionLimits caps;
    caps.negotiating_total = effective_max_negotiating(cfg, connections.max());
    caps.negotiating_per_source = effective_max_negotiating_per_source(cfg, connections.max());
    caps.cancel_rate = cfg.cancel_rate_per_source;
    caps.cancel_burst = 2.0 * cfg.cancel_rate_per_source;
    Admission admission(caps);
    shared.admission = &admission;
    tls::Backend* backend = nullptr;  // null only if no TLS is configured on either leg
    unsigned workers = cfg.workers ? cfg.workers : default_workers();

    std::string error;
    if (!validate_tls_settings(cfg, error)) {
        spdlog::critical("{}", error);
        return 2;
    }
    if (tls_needed(cfg)) {
        backend = tls::load_backend(cfg.tls_library, error);
        if (!backend) {
            spdlog::critical("cannot load TLS library {}: {}", cfg.tls_library, error);
            return 2;
        }
    }
    if (backend) {
        shared.library = backend->name();
        shared.crypto = &backend->crypto();
    }
    TlsContexts contexts;
    const std::vector<std::string> files = backend ? tls_files(cfg) : std::vector<std::string>{};
    std::string loaded_digest = files_digest(files);  // what the contexts were made from
    if (!make_tls_contexts(cfg, backend, contexts, error)) {
        spdlog::critical("{}", error);
        return 2;
    }
    // --auth-file: refused at start when unreadable, malformed or open to group or others.
    const std::vector<std::string> auth_files =
        cfg.auth_file.empty() ? std::vector<std::string>{} : std::vector{cfg.auth_file};
    std::string auth_digest = files_digest(auth_files);
    std::shared_ptr<const auth::AuthTable> auth_table;
    if (!cfg.auth_file.empty()) {
        auth_table = auth::load_auth_file(cfg.auth_file, *shared.crypto, error);
        if (!auth_table) {
            spdlog::critical("--auth-file: {}", error);
            return 2;
        }
    }

    metrics::Registry registry(workers, {PGGW_VERSION, compiled_libraries_csv()});
    shared.metrics = &registry;
    publish_certificates(registry, contexts);

    // Handlers go in before any listener opens: a SIGTERM that arrives as soon as the port
    // accepts is queued for the drain below, not fatal.
    asio::io_context main_io(1);
    asio::signal_set signals(main_io, SIGTERM, SIGINT, SIGHUP);

    std::vector<std::unique_ptr<Worker>> pool;
    std::vector<tcp::endpoint> listening;
    for (unsigned i = 0; i < workers; ++i)
        pool.push_back(std::make_unique<Worker>(shared, i, contexts, auth_table));
    try {
        listening = start_workers(pool, cfg.listen);
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

    // The addresses as bound: with port 0 asked for, this line is where the port is told.
    std::string listen;
    for (const auto& ep : listening) listen += (listen.empty() ? "" : ",") + endpoint_name(ep);
    spdlog::info(
        "pggw {} listening on {} with {} workers; server {}; client TLS {}; server TLS {}; "
        "TLS library {}; max_connections {}; metrics on {}",
        PGGW_VERSION, listen, workers, cfg.server.str(), tls_mode_name(shared.client_tls),
        tls_mode_name(cfg.server_tls), backend ? backend->name() : "none", connections.max(),
        endpoint_name(admin.local_endpoint()));
    spdlog::info(
        "overload caps: max_negotiating {}; max_negotiating_per_source {}; "
        "max_handshakes_per_worker {}; cancel_rate_per_source {}/s; client_idle_timeout {}",
        admission.limits().negotiating_total, admission.limits().negotiating_per_source,
        cfg.max_handshakes_per_worker, cfg.cancel_rate_per_source,
        cfg.client_idle_timeout > 0 ? fmt::format("{:g}s", cfg.client_idle_timeout) : "off");
    if (auth_table)
        spdlog::info("SCRAM in the gateway for {} {} of {}; other users {}", auth_table->size(),
                     auth_table->size() == 1 ? "user" : "users", cfg.auth_file,
                     cfg.auth_refuse_unknown ? "refused (--auth-unknown-users refuse)"
                                             : "relayed to the server");
    registry.readiness().ready = true;

    // The one TLS reload, for SIGHUP and for files changed on disk: both legs' contexts made
    // afresh and handed to every worker for its new sessions (open sessions keep theirs). A
    // failure (unreadable, half-written, key of another certificate) keeps the current ones.
    auto reload_tls = [&](std::string_view why) {
        loaded_digest = files_digest(files);
        std::string err;
        TlsContexts fresh;
        if (!make_tls_contexts(cfg, backend, fresh, err)) {
            registry.tls_reloaded(false);
            spdlog::error("{}: TLS reload failed, keeping the current certificates: {}", why, err);
            return;
        }
        for (auto& w : pool) w->set_tls(fresh);
        publish_certificates(registry, fresh);
        registry.tls_reloaded(true);
        spdlog::info("{}: TLS certificates reloaded (client leg: {})", why, subjects(fresh));
    };
    // --auth-file, reloaded with the certificates: a failure keeps the users loaded last.
    auto reload_auth = [&](std::string_view why) {
        if (cfg.auth_file.empty()) return;
        auth_digest = files_digest(auth_files);
        std::string err;
        auto fresh = auth::load_auth_file(cfg.auth_file, *shared.crypto, err);
        if (!fresh) {
            registry.auth_file_reloaded(false);
            spdlog::error("{}: --auth-file reload failed, keeping the users loaded before: {}", why,
                          err);
            return;
        }
        for (auto& w : pool) w->set_auth(fresh);
        registry.auth_file_reloaded(true);
        spdlog::info("{}: --auth-file reloaded ({} {})", why, fresh->size(),
                     fresh->size() == 1 ? "user" : "users");
    };
    // Files changed: reloaded once their contents differ from what was loaded last, so that
    // unrelated activity in a watched directory costs a read of a few files and nothing more.
    std::vector<std::string> watched = files;
    watched.insert(watched.end(), auth_files.begin(), auth_files.end());
    CertWatcher watcher(main_io, watched, [&] {
        if (files_digest(files) != loaded_digest) reload_tls("certificate files changed");
        if (files_digest(auth_files) != auth_digest) reload_auth("--auth-file changed");
    });
    if (!watched.empty()) {
        std::string err;
        if (!watcher.start(err))
            spdlog::warn("cannot watch the certificate files ({}); reload them with SIGHUP", err);
        else
            spdlog::info("watching {} for certificate changes", [&] {
                std::string dirs;
                for (const auto& d : watcher.directories()) dirs += (dirs.empty() ? "" : ", ") + d;
                return dirs;
            }());
    }

    auto live_sessions = [&] {
        std::size_t n = 0;
        for (auto& w : pool) n += w->live_sessions();
        return n;
    };
    const char* drain_trigger = "SIGTERM";
    Drain drain(main_io, DrainSettings::from_seconds(cfg.drain_delay, cfg.drain_timeout),
                DrainHooks{
                    .stop_accepting =
                        [&] {
                            // Every listener is closed before any session hears of the drain:
                            // a session ended with 57P01 means no worker still accepts (each
                            // worker closes its own, on its thread).
                            std::vector<std::future<void>> closed;
                            for (auto& w : pool) closed.push_back(w->close_listeners());
                            for (auto& f : closed) f.wait_for(std::chrono::seconds(2));
                            spdlog::info(
                                "{}: draining: no new connections; sessions end when idle (up to "
                                "{}); {} open",
                                drain_trigger, seconds_text(cfg.drain_timeout), live_sessions());
                            for (auto& w : pool) w->begin_drain();
                        },
                    .force =
                        [&] {
                            for (auto& w : pool) w->force_drain();
                        },
                    .live = live_sessions,
                    .done =
                        [&] {
                            watcher.stop();
                            admin.stop();
                            main_io.stop();
                        },
                });

    // Signals: SIGTERM/SIGINT start a drain (a second one stops at once); SIGHUP reloads TLS.
    std::function<void(error_code, int)> on_signal = [&](error_code ec, int sig) {
        if (ec) return;
        const char* name = sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGHUP";
        if (sig == SIGHUP) {
            reload_tls(name);
            reload_auth(name);
        } else if (drain.phase() != Drain::Phase::idle) {
            spdlog::warn("second signal ({}): stopping now", name);
            main_io.stop();
            return;
        } else {
            registry.readiness().draining = true;  // /readyz 503 from now on
            drain_trigger = name;
            if (cfg.drain_delay > 0)
                spdlog::info(
                    "{}: draining: /readyz answers 503; new sessions still served for {} "
                    "(--drain-delay); {} open",
                    name, seconds_text(cfg.drain_delay), live_sessions());
            drain.start();
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
