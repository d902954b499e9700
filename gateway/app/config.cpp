#include "gateway/app/config.hpp"

#include <sched.h>
#include <sys/resource.h>

#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <iostream>
#include <span>

#include "tls_backends/tls.hpp"

namespace pggw {
namespace {

using Apply = std::function<bool(Config&, const std::string&, std::string&)>;

struct OptionSpec {
    const char* name;  // flag without "--", and config-file key
    const char* help;
    bool repeatable;
    Apply apply;
    // Repeatable options: empties the list, so that flags replace the config file's values.
    void (*clear)(Config&) = nullptr;
};

bool parse_seconds(const std::string& v, double& out, std::string& err) {
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !std::isfinite(d) || d <= 0 || d > 86400) {
        err = "expected a number of seconds between 0 and 86400, got \"" + v + "\"";
        return false;
    }
    out = d;
    return true;
}

bool parse_uint(const std::string& v, unsigned& out, unsigned min, unsigned max, std::string& err) {
    unsigned n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc{} || p != v.data() + v.size() || n < min || n > max) {
        err = "expected an integer between " + std::to_string(min) + " and " + std::to_string(max) +
              ", got \"" + v + "\"";
        return false;
    }
    out = n;
    return true;
}

bool parse_mode(const std::string& v, TlsMode& out, std::string& err) {
    for (auto m : {TlsMode::disable, TlsMode::allow, TlsMode::prefer, TlsMode::require,
                   TlsMode::verify_ca, TlsMode::verify_full}) {
        if (v == tls_mode_name(m)) {
            out = m;
            return true;
        }
    }
    err = "expected one of disable, allow, prefer, require, verify-ca, verify-full, got \"" + v +
          "\"";
    return false;
}

bool parse_choice(const std::string& v, std::string& out, std::span<const std::string_view> ok,
                  std::string& err) {
    for (auto c : ok) {
        if (v == c) {
            out = v;
            return true;
        }
    }
    err = "expected one of";
    for (auto c : ok) err += " " + std::string(c);
    err += ", got \"" + v + "\"";
    return false;
}
bool parse_choice(const std::string& v, std::string& out,
                  std::initializer_list<std::string_view> ok, std::string& err) {
    return parse_choice(v, out, std::span(ok.begin(), ok.size()), err);
}

Apply str(std::string Config::*field) {
    return [field](Config& c, const std::string& v, std::string&) {
        c.*field = v;
        return true;
    };
}
Apply host_port(HostPort Config::*field) {
    return [field](Config& c, const std::string& v, std::string& err) {
        return parse_host_port(v, c.*field, err);
    };
}
Apply seconds(double Config::*field) {
    return [field](Config& c, const std::string& v, std::string& err) {
        return parse_seconds(v, c.*field, err);
    };
}

// The one list of options: flags, config keys and their validation come from here.
const std::vector<OptionSpec>& option_table() {
    static const std::vector<OptionSpec> table = {
        {"listen", "HOST:PORT to accept clients on (repeatable; default 0.0.0.0:6432)", true,
         [](Config& c, const std::string& v, std::string& err) {
             HostPort hp;
             if (!parse_host_port(v, hp, err)) return false;
             c.listen.push_back(hp);
             return true;
         },
         [](Config& c) { c.listen.clear(); }},
        {"server",
         "PostgreSQL server HOST:PORT (default 127.0.0.1:5432; names looked up again every 5 s; "
         "--backend is an older name for it)",
         false, host_port(&Config::server)},
        {"workers", "worker threads (default: CPUs this process may use)", false,
         [](Config& c, const std::string& v, std::string& err) {
             return parse_uint(v, c.workers, 1, 1024, err);
         }},
        {"handshake-timeout", "seconds from accept to a complete StartupMessage (default 10)",
         false, seconds(&Config::handshake_timeout)},
        {"server-connect-timeout", "seconds to connect to PostgreSQL (default 5)", false,
         seconds(&Config::server_connect_timeout)},
        {"max-connections", "client sessions at most (default: from the open-file limit)", false,
         [](Config& c, const std::string& v, std::string& err) {
             return parse_uint(v, c.max_connections, 1, 10'000'000, err);
         }},
        {"max-negotiating",
         "connections at most between accept and a complete StartupMessage or CancelRequest; "
         "beyond it new ones are closed at once (default: --max-connections, between 256 and "
         "4096)",
         false,
         [](Config& c, const std::string& v, std::string& err) {
             return parse_uint(v, c.max_negotiating, 1, 10'000'000, err);
         }},
        {"max-negotiating-per-source",
         "connections in negotiation at most from one client address (the PROXY protocol's "
         "when used); 0: no cap (default: an eighth of the smaller of --max-connections and "
         "--max-negotiating, at least 16)",
         false,
         [](Config& c, const std::string& v, std::string& err) {
             unsigned n = 0;
             if (!parse_uint(v, n, 0, 10'000'000, err)) return false;
             c.max_negotiating_per_source = n;
             return true;
         }},
        {"max-handshakes-per-worker",
         "client TLS handshakes in progress at most per worker; later ones wait up to 1 s for a "
         "place, then are closed (default 64)",
         false,
         [](Config& c, const std::string& v, std::string& err) {
             return parse_uint(v, c.max_handshakes_per_worker, 1, 1'000'000, err);
         }},
        {"cancel-rate-per-source",
         "CancelRequests forwarded per second at most from one client address, bursts of twice "
         "that; more are dropped; 0: no cap (default 20)",
         false,
         [](Config& c, const std::string& v, std::string& err) {
             return parse_uint(v, c.cancel_rate_per_source, 0, 1'000'000, err);
         }},
        {"client-idle-timeout",
         "seconds a session may stay idle between transactions (no bytes either way) before "
         "FATAL 57P05 and close; 0: off (default 0)",
         false,
         [](Config& c, const std::string& v, std::string& err) {
             char* end = nullptr;
             if (!v.empty() && std::strtod(v.c_str(), &end) == 0 && *end == '\0') {
                 c.client_idle_timeout = 0;
                 return true;
             }
             return parse_seconds(v, c.client_idle_timeout, err);
         }},
        {"drain-delay",
         "seconds after SIGTERM during which /readyz answers 503 but new sessions are still "
         "served, for a load balancer to deregister pggw (default 0)",
         false,
         [](Config& c, const std::string& v, std::string& err) {
             char* end = nullptr;
             if (!v.empty() && std::strtod(v.c_str(), &end) == 0 && *end == '\0') {
                 c.drain_delay = 0;
                 return true;
             }
             return parse_seconds(v, c.drain_delay, err);
         }},
        {"drain-timeout",
         "seconds, after the delay, for sessions to end between transactions; then the rest get "
         "FATAL 57P01 (default 30)",
         false, seconds(&Config::drain_timeout)},
        {"cert", "PEM certificate chain presented to clients", false, str(&Config::cert)},
        {"key", "PEM private key of --cert", false, str(&Config::key)},
        {"client-ca", "PEM CA that client certificates must chain to", false,
         str(&Config::client_ca)},
        {"client-tls",
         "disable|allow|prefer|require|verify-ca|verify-full (default: require with --cert)", false,
         [](Config& c, const std::string& v, std::string& err) {
             TlsMode m;
             if (!parse_mode(v, m, err)) return false;
             c.client_tls = m;
             return true;
         }},
        {"tls-library", "boringssl|wolfssl", false,
         [](Config& c, const std::string& v, std::string& err) {
             return parse_choice(v, c.tls_library, tls::kLibraryNames, err);
         }},
        {"tls-min-version", "1.2|1.3 (default 1.2)", false,
         [](Config& c, const std::string& v, std::string& err) {
             return parse_choice(v, c.tls_min_version, {"1.2", "1.3"}, err);
         }},
        {"tls-ciphers",
         "TLS 1.2 cipher list toward clients (library syntax; default ECDHE with AEAD only)", false,
         str(&Config::tls_ciphers)},
        {"tls-groups", "key exchange groups toward clients, e.g. X25519:P-256", false,
         str(&Config::tls_groups)},
        {"server-tls", "TLS toward PostgreSQL: libpq sslmode names (default disable)", false,
         [](Config& c, const std::string& v, std::string& err) {
             return parse_mode(v, c.server_tls, err);
         }},
        {"server-ca", "PEM CA that PostgreSQL's certificate must chain to", false,
         str(&Config::server_ca)},
        {"server-cert", "PEM client certificate presented to PostgreSQL", false,
         str(&Config::server_cert)},
        {"server-key", "PEM key of --server-cert", false, str(&Config::server_key)},
        {"server-tls-ciphers",
         "TLS 1.2 cipher list toward PostgreSQL (library syntax; default ECDHE with AEAD only)",
         false, str(&Config::server_tls_ciphers)},
        {"server-tls-groups", "key exchange groups toward PostgreSQL, e.g. X25519:P-256", false,
         str(&Config::server_tls_groups)},
        {"server-sni", "SNI and verify-full name toward PostgreSQL (default: --server host)", false,
         str(&Config::server_sni)},
        {"auth-file",
         "PgBouncer userlist.txt (\"user\" \"secret\" per line; SCRAM secrets or passwords): "
         "pggw authenticates these users itself with SCRAM, channel binding on each leg",
         false, str(&Config::auth_file)},
        {"auth-unknown-users",
         "relay|refuse: users not in --auth-file are authenticated by the server, relayed "
         "(default), or refused by pggw with 28P01",
         false,
         [](Config& c, const std::string& v, std::string& err) {
             std::string mode;
             if (!parse_choice(v, mode, {"relay", "refuse"}, err)) return false;
             c.auth_refuse_unknown = mode == "refuse";
             return true;
         }},
        {"auth-user",
         "role pggw logs in as to look up the SCRAM secrets of users not in --auth-file with "
         "--auth-query (its password: a plaintext --auth-file entry, or --server-cert)",
         false, str(&Config::auth_user)},
        {"auth-query",
         "SQL with $1 (the user name) returning the user name and its SCRAM secret (default: "
         "pg_authid, valid logins only)",
         false, str(&Config::auth_query)},
        {"auth-query-cache-seconds",
         "seconds a worker remembers an --auth-query answer (default 30, 0: none; users not "
         "found: at most 5)",
         false,
         [](Config& c, const std::string& v, std::string& err) {
             char* end = nullptr;
             if (!v.empty() && std::strtod(v.c_str(), &end) == 0 && *end == '\0') {
                 c.auth_query_cache_seconds = 0;
                 return true;
             }
             return parse_seconds(v, c.auth_query_cache_seconds, err);
         }},
        {"proxy-protocol",
         "off|v1|v2|auto: a PROXY protocol header (HAProxy) before anything else, from "
         "--proxy-trusted sources (default off)",
         false,
         [](Config& c, const std::string& v, std::string& err) {
             if (proxy_protocol::parse_mode(v, c.proxy_protocol)) return true;
             err = "expected one of off v1 v2 auto, got \"" + v + "\"";
             return false;
         }},
        {"proxy-trusted",
         "CIDR of the load balancers allowed to send PROXY headers (repeatable; required with "
         "--proxy-protocol)",
         true,
         [](Config& c, const std::string& v, std::string& err) {
             Cidr cidr;
             if (!parse_cidr(v, cidr, err)) return false;
             c.proxy_trusted.push_back(cidr);
             return true;
         },
         [](Config& c) { c.proxy_trusted.clear(); }},
        {"metrics-listen", "HOST:PORT for /metrics, /healthz, /readyz (default 0.0.0.0:9930)",
         false, host_port(&Config::metrics_listen)},
        {"log-format", "text|json: JSON is one object per line (default text)", false,
         [](Config& c, const std::string& v, std::string& err) {
             if (parse_log_format(v, c.log_format)) return true;
             err = "expected one of text json, got \"" + v + "\"";
             return false;
         }},
        {"log-level", "trace|debug|info|warn|error (default info)", false,
         [](Config& c, const std::string& v, std::string& err) {
             return parse_choice(v, c.log_level, {"trace", "debug", "info", "warn", "error"}, err);
         }},
    };
    return table;
}

// Older names still accepted, as flags and as config keys: {old, current}.
constexpr std::pair<std::string_view, std::string_view> kAliases[] = {{"backend", "server"}};

const OptionSpec* find_option(std::string key) {
    for (auto& ch : key)
        if (ch == '_') ch = '-';
    for (const auto& [old, current] : kAliases)
        if (key == old) key = current;
    for (const auto& spec : option_table())
        if (key == spec.name) return &spec;
    return nullptr;
}

std::string where(const std::string& path, const toml::source_region& src) {
    return path + ":" + std::to_string(src.begin.line) + ":" + std::to_string(src.begin.column);
}

// A TOML scalar as the string a flag would carry; nullopt for tables and nested arrays.
std::optional<std::string> scalar_text(const toml::node& n) {
    if (auto s = n.value<std::string>()) return *s;
    if (n.is_integer()) return std::to_string(*n.value<std::int64_t>());
    if (n.is_floating_point()) {
        std::ostringstream os;
        os << *n.value<double>();
        return os.str();
    }
    if (n.is_boolean()) return *n.value<bool>() ? "true" : "false";
    return std::nullopt;
}

}  // namespace

std::string_view tls_mode_name(TlsMode m) {
    switch (m) {
        case TlsMode::disable:
            return "disable";
        case TlsMode::allow:
            return "allow";
        case TlsMode::prefer:
            return "prefer";
        case TlsMode::require:
            return "require";
        case TlsMode::verify_ca:
            return "verify-ca";
        case TlsMode::verify_full:
            return "verify-full";
    }
    return "disable";
}

std::string HostPort::str() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

bool parse_host_port(std::string_view s, HostPort& out, std::string& error) {
    std::string_view host, port;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
            error = "expected [IPv6]:PORT, got \"" + std::string(s) + "\"";
            return false;
        }
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        auto colon = s.rfind(':');
        if (colon == std::string_view::npos || s.find(':') != colon) {
            error = "expected HOST:PORT (IPv6 as [ADDR]:PORT), got \"" + std::string(s) + "\"";
            return false;
        }
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (host.empty() || ec != std::errc{} || ptr != port.data() + port.size() || p > 65535) {
        error = "expected HOST:PORT with a port from 0 to 65535, got \"" + std::string(s) + "\"";
        return false;
    }
    out.host = std::string(host);
    out.port = std::uint16_t(p);
    return true;
}

namespace {

// The keys of a parsed file applied to cfg; errors name path.
bool apply_config_table(const toml::table& tbl, const std::string& path, Config& cfg,
                        std::vector<std::string>& errors) {
    // toml++ iterates keys in sorted order; report in file order, as a user reads the file.
    std::vector<std::pair<toml::source_position, std::string>> found;
    auto add = [&](const toml::source_region& at, std::string msg) {
        found.emplace_back(at.begin, where(path, at) + ": " + std::move(msg));
    };
    for (auto&& [key, node] : tbl) {
        std::string k(key.str());
        const OptionSpec* spec = find_option(k);
        if (!spec) {
            add(key.source(), "unknown key \"" + k + "\"");
            continue;
        }
        std::vector<std::string> values;
        if (auto* arr = node.as_array()) {
            if (!spec->repeatable) {
                add(node.source(), "\"" + k + "\" takes one value");
                continue;
            }
            for (auto& el : *arr) {
                auto t = scalar_text(el);
                if (!t)
                    add(el.source(), "\"" + k + "\": bad value");
                else
                    values.push_back(*t);
            }
        } else if (auto t = scalar_text(node)) {
            values.push_back(*t);
        } else {
            add(node.source(), "\"" + k + "\": expected a value");
            continue;
        }
        // A key given in the file replaces the defaults (each key appears once in TOML).
        if (spec->clear) spec->clear(cfg);
        for (const auto& v : values) {
            std::string err;
            if (!spec->apply(cfg, v, err)) add(node.source(), k + ": " + err);
        }
    }
    std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
        return a.first.line != b.first.line ? a.first.line < b.first.line
                                            : a.first.column < b.first.column;
    });
    for (auto& f : found) errors.push_back(std::move(f.second));
    return errors.empty();
}

}  // namespace

bool load_config_file(const std::string& path, Config& cfg, std::vector<std::string>& errors) {
    toml::table tbl;
    try {
        tbl = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
        errors.push_back(where(path, e.source()) + ": " + std::string(e.description()));
        return false;
    }
    return apply_config_table(tbl, path, cfg, errors);
}

bool load_config_text(std::string_view text, const std::string& source, Config& cfg,
                      std::vector<std::string>& errors) {
    toml::table tbl;
    try {
        tbl = toml::parse(text, source);
    } catch (const toml::parse_error& e) {
        errors.push_back(where(source, e.source()) + ": " + std::string(e.description()));
        return false;
    }
    return apply_config_table(tbl, source, cfg, errors);
}

ParsedCommand parse_command_line(int argc, char** argv) {
    ParsedCommand cmd;
    CLI::App app{"pggw: a TLS gateway for the PostgreSQL wire protocol", "pggw"};

    bool want_version = false;
    app.add_flag("-V,--version", want_version, "print version and TLS libraries");
    app.add_option("--config", cmd.config_file, "TOML config file (keys are the flag names)");

    std::vector<std::pair<const OptionSpec*, std::vector<std::string>>> flag_values;
    flag_values.reserve(option_table().size());
    for (const auto& spec : option_table()) {
        flag_values.push_back({&spec, {}});
        std::string names = std::string("--") + spec.name;
        for (const auto& [old, current] : kAliases)
            if (current == spec.name) names += ",--" + std::string(old);
        auto* opt = app.add_option(names, flag_values.back().second, spec.help);
        if (!spec.repeatable) opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        opt->type_size(1)->allow_extra_args(false);
    }

    auto* run = app.add_subcommand("run", "run the gateway (the default)");
    run->fallthrough();
    auto* check = app.add_subcommand("check-config", "validate a config file and exit");
    check->fallthrough();
    auto* gen = app.add_subcommand("gen-cert", "write a snake-oil CA and server certificate");
    gen->add_option("--dir", cmd.cert_dir, "directory for ca.crt ca.key server.crt server.key")
        ->required();
    gen->add_option("--hostname", cmd.hostnames, "DNS name or IP (repeatable)");
    gen->add_option("--key-type", cmd.key_type, "ecdsa-p256 (the default), rsa-2048 or ed25519")
        ->check(CLI::IsMember({"ecdsa-p256", "rsa-2048", "ed25519"}));
    gen->fallthrough();
    app.require_subcommand(0, 1);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        cmd.kind = ParsedCommand::exit;
        cmd.exit_code = app.exit(e);
        return cmd;
    }
    if (want_version) {
        cmd.kind = ParsedCommand::version;
        return cmd;
    }
    if (*gen) {
        cmd.kind = ParsedCommand::gen_cert;
        return cmd;
    }
    if (*check) {
        cmd.kind = ParsedCommand::check_config;
        if (cmd.config_file.empty()) {
            std::cerr << "pggw check-config: --config FILE is required\n";
            cmd.kind = ParsedCommand::exit;
            cmd.exit_code = 2;
            return cmd;
        }
    }

    std::vector<std::string> errors;
    if (!cmd.config_file.empty()) load_config_file(cmd.config_file, cmd.config, errors);
    for (auto& [spec, values] : flag_values) {
        if (values.empty()) continue;
        if (spec->clear) spec->clear(cmd.config);
        for (const auto& v : values) {
            std::string err;
            if (!spec->apply(cmd.config, v, err))
                errors.push_back(std::string("--") + spec->name + ": " + err);
        }
    }
    if (cmd.config.listen.empty()) cmd.config.listen.push_back({"0.0.0.0", 6432});
    if (cmd.config.proxy_protocol != proxy_protocol::Mode::off && cmd.config.proxy_trusted.empty())
        errors.push_back(
            "--proxy-protocol " +
            std::string(proxy_protocol::mode_name(cmd.config.proxy_protocol)) +
            " needs --proxy-trusted CIDR: the addresses of the load balancers that send the "
            "header (anyone else could claim any client address)");
    if (!errors.empty()) {
        for (const auto& e : errors) std::cerr << "pggw: " << e << "\n";
        cmd.kind = ParsedCommand::exit;
        cmd.exit_code = 2;
    }
    return cmd;
}

unsigned default_workers() {
    cpu_set_t set;
    CPU_ZERO(&set);
    unsigned cpus = 1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = unsigned(CPU_COUNT(&set));
    // cgroup v2 quota: "max 100000" or "200000 100000".
    std::ifstream f("/sys/fs/cgroup/cpu.max");
    std::string quota, period;
    if (f >> quota >> period && quota != "max") {
        double q = std::atof(quota.c_str()), p = std::atof(period.c_str());
        if (q > 0 && p > 0) cpus = std::min(cpus, unsigned(std::max(1.0, std::ceil(q / p))));
    }
    return std::max(1u, cpus);
}

unsigned default_max_connections() {
    // Two descriptors per session (client + server), and a reserve for listeners, the
    // metrics endpoint, logs and TLS modules.
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 100;
    rlim_t n = rl.rlim_cur == RLIM_INFINITY ? 1'000'000 : rl.rlim_cur;
    return n > 128 ? unsigned((n - 64) / 2) : 32;
}

unsigned effective_max_negotiating(const Config& cfg, unsigned max_connections) {
    // A legitimate negotiation lasts one round trip and a handshake: even a reconnect storm of
    // every session at once fits in max_connections; 4096 bounds the memory of TLS state held
    // by connections that never send a StartupMessage when the fd limit makes max_connections
    // huge. At least 256: with a small --max-connections, clients beyond it still get their
    // 53300 in words rather than a silent close.
    return cfg.max_negotiating ? cfg.max_negotiating : std::clamp(max_connections, 256u, 4096u);
}

unsigned effective_max_negotiating_per_source(const Config& cfg, unsigned max_connections) {
    if (cfg.max_negotiating_per_source) return *cfg.max_negotiating_per_source;
    // An eighth of the slots, and at least 16: a pooler or pgbench opening its connections at
    // once from one address is not a flood.
    return std::max(16u,
                    std::min(max_connections, effective_max_negotiating(cfg, max_connections)) / 8);
}

}  // namespace pggw
