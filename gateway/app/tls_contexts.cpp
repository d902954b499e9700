#include "gateway/app/tls_contexts.hpp"

#include "gateway/pg/server_negotiation.hpp"

namespace pggw {

bool tls_needed(const Config& cfg) {
    return cfg.effective_client_tls() != TlsMode::disable || cfg.server_tls != TlsMode::disable;
}

bool validate_tls_settings(const Config& cfg, std::string& error) {
    TlsMode mode = cfg.effective_client_tls();
    if (mode != TlsMode::disable && (cfg.cert.empty() || cfg.key.empty())) {
        error = "--client-tls " + std::string(tls_mode_name(mode)) +
                " needs a certificate and key (--cert FILE --key FILE); pggw has no anonymous "
                "TLS. For a throwaway pair run: pggw gen-cert --dir DIR";
        return false;
    }
    if ((mode == TlsMode::verify_ca || mode == TlsMode::verify_full) && cfg.client_ca.empty()) {
        error = "--client-tls " + std::string(tls_mode_name(mode)) +
                " needs --client-ca FILE to verify client certificates against";
        return false;
    }
    if (cfg.cert.empty() != cfg.key.empty()) {
        error = "--cert and --key go together";
        return false;
    }
    return validate_server_tls_settings(cfg, error);
}

bool validate_server_tls_settings(const Config& cfg, std::string& error) {
    const TlsMode mode = cfg.server_tls;
    if (cfg.server_cert.empty() != cfg.server_key.empty()) {
        error = "--server-cert and --server-key go together";
        return false;
    }
    if ((mode == TlsMode::verify_ca || mode == TlsMode::verify_full) && cfg.server_ca.empty()) {
        error = "--server-tls " + std::string(tls_mode_name(mode)) +
                " needs --server-ca FILE to verify the PostgreSQL server's certificate against";
        return false;
    }
    return true;
}

namespace {

// Toward PostgreSQL: pggw is the TLS client (libpq's role).
bool make_server_context(const Config& cfg, tls::Backend* backend, TlsContexts& out,
                         std::string& error) {
    if (!server_negotiation::uses_tls(cfg.server_tls)) return true;
    auto plan = server_negotiation::plan_for(cfg.server_tls, !cfg.server_ca.empty());
    tls::Options o;
    o.role = tls::Role::client;
    o.cert_file = cfg.server_cert;
    o.key_file = cfg.server_key;
    o.ca_file = cfg.server_ca;
    o.verify = plan.verify;
    o.min_version = cfg.tls_min_version == "1.3" ? tls::Version::tls1_3 : tls::Version::tls1_2;
    std::string err;
    auto ctx = backend->new_context(o, err);
    if (!ctx) {
        error = "server TLS (" + std::string(backend->name()) + "): " + err;
        return false;
    }
    out.server = std::move(ctx);
    return true;
}

}  // namespace

bool make_tls_contexts(const Config& cfg, tls::Backend* backend, TlsContexts& out,
                       std::string& error) {
    out = {};
    if (!make_server_context(cfg, backend, out, error)) return false;
    TlsMode mode = cfg.effective_client_tls();
    if (mode == TlsMode::disable) return true;
    tls::Options o;
    o.role = tls::Role::server;
    o.cert_file = cfg.cert;
    o.key_file = cfg.key;
    o.ca_file = cfg.client_ca;
    o.verify = mode >= TlsMode::verify_ca ? tls::Verify::chain : tls::Verify::none;
    o.alpn = {"postgresql"};
    o.min_version = cfg.tls_min_version == "1.3" ? tls::Version::tls1_3 : tls::Version::tls1_2;
    o.ciphers = cfg.tls_ciphers;
    o.groups = cfg.tls_groups;
    std::string err;
    auto ctx = backend->new_context(o, err);
    if (!ctx) {
        error = "client TLS (" + std::string(backend->name()) + "): " + err;
        return false;
    }
    out.client = std::move(ctx);
    return true;
}

}  // namespace pggw
