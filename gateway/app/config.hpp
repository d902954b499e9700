// pggw's settings: every command-line flag is also a key of the TOML config file (the flag's
// name without the dashes: `--handshake-timeout 3` is `handshake-timeout = 3`; underscores are
// accepted too). Flags override the file. One table (config.cpp) declares every option.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/app/logging.hpp"
#include "gateway/net/cidr.hpp"
#include "gateway/net/proxy_protocol.hpp"
#include "tls_backends/tls.hpp"

namespace pggw {

// libpq's sslmode names; PgBouncer's client_tls_sslmode semantics on the client leg.
enum class TlsMode { disable, allow, prefer, require, verify_ca, verify_full };
std::string_view tls_mode_name(TlsMode m);

struct HostPort {
    std::string host;  // literal address or DNS name (IPv6 literals without brackets)
    std::uint16_t port = 0;
    std::string str() const;
};
// "HOST:PORT", "[v6]:PORT"; false and error set when malformed.
bool parse_host_port(std::string_view s, HostPort& out, std::string& error);

struct Config {
    std::vector<HostPort> listen;        // default 0.0.0.0:6432
    HostPort server{"127.0.0.1", 5432};  // --server (alias --backend): PostgreSQL
    unsigned workers = 0;                // 0: the CPUs this process may use
    double handshake_timeout = 10;       // seconds, accept to complete StartupMessage
    double server_connect_timeout = 5;   // seconds
    unsigned max_connections = 0;        // 0: derived from the open-file limit
    // Overload caps (gateway/session/admission.hpp); derived defaults in the functions below.
    unsigned max_negotiating = 0;                        // 0: min(max-connections, 4096)
    std::optional<unsigned> max_negotiating_per_source;  // unset: an eighth; 0: no cap
    unsigned max_handshakes_per_worker = 64;
    unsigned cancel_rate_per_source = 20;  // per second, burst twice that; 0: no cap
    double client_idle_timeout = 0;        // seconds; 0: off
    double drain_delay = 0;     // seconds after SIGTERM: /readyz 503, listeners still serve
    double drain_timeout = 30;  // seconds, then: sessions still open get 57P01 and are closed

    // TLS toward clients
    std::string cert, key, client_ca;
    std::optional<TlsMode> client_tls;  // default: require with a certificate, else disable
    std::string tls_library{tls::kLibraryNames[0]};
    std::string tls_min_version = "1.2";
    std::string tls_ciphers, tls_groups;

    // TLS toward the server
    TlsMode server_tls = TlsMode::disable;
    std::string server_ca, server_cert, server_key, server_sni;
    std::string server_tls_ciphers, server_tls_groups;  // empty: as the client leg's defaults

    // SCRAM in the gateway: users whose secret is in auth_file are authenticated by pggw, which
    // then logs in to PostgreSQL on their behalf (gateway/auth/). Users it does not know are
    // relayed (the server authenticates them) unless auth_refuse_unknown.
    std::string auth_file;
    bool auth_refuse_unknown = false;
    // --auth-user/--auth-query (PgBouncer's auth_user/auth_query): users not in auth_file are
    // looked up in PostgreSQL, logged in to as auth_user (gateway/session/auth_lookup.hpp).
    std::string auth_user;                 // empty: no lookups
    std::string auth_query;                // empty: auth::kDefaultAuthQuery
    double auth_query_cache_seconds = 30;  // 0: no cache

    // PROXY protocol: sources in proxy_trusted must send a header, any other source is closed.
    proxy_protocol::Mode proxy_protocol = proxy_protocol::Mode::off;
    std::vector<Cidr> proxy_trusted;

    HostPort metrics_listen{"0.0.0.0", 9930};
    std::string log_level = "info";
    LogFormat log_format = LogFormat::text;

    TlsMode effective_client_tls() const {
        return client_tls.value_or(cert.empty() ? TlsMode::disable : TlsMode::require);
    }
};

struct ParsedCommand {
    enum Kind { run, check_config, gen_cert, version, exit } kind = run;
    int exit_code = 0;  // kind == exit: help printed or a parse error
    Config config;
    std::string config_file;
    // gen-cert
    std::string cert_dir;
    std::vector<std::string> hostnames;
    std::string key_type = "ecdsa-p256";
};

// Parses argv (and the --config file). On error prints a clear message and returns kind=exit.
ParsedCommand parse_command_line(int argc, char** argv);

// Loads a TOML file into cfg; every error is "FILE:LINE:COL: message" in errors.
bool load_config_file(const std::string& path, Config& cfg, std::vector<std::string>& errors);
// The same from TOML text (source: the name errors give it): for tests and the fuzzer.
bool load_config_text(std::string_view text, const std::string& source, Config& cfg,
                      std::vector<std::string>& errors);

// Defaults that depend on the machine.
unsigned default_workers();
unsigned default_max_connections();
// --max-negotiating and --max-negotiating-per-source as they apply, given the effective
// --max-connections.
unsigned effective_max_negotiating(const Config& cfg, unsigned max_connections);
unsigned effective_max_negotiating_per_source(const Config& cfg, unsigned max_connections);

}  // namespace pggw
