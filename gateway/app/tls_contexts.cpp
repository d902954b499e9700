#include "gateway/app/tls_contexts.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gateway/pg/server_negotiation.hpp"

namespace pggw {

bool tls_needed(const Config& cfg) {
    return cfg.effective_client_tls() != TlsMode::disable || cfg.server_tls != TlsMode::disable ||
           !cfg.auth_file.empty() || !cfg.auth_user.empty();
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

std::string key_permission_problem(unsigned owner, unsigned mode, unsigned euid) {
    if (owner != euid && owner != 0) return "must be owned by the user pggw runs as or root";
    // As PostgreSQL: the owner rule first, so a root-owned key of a pggw running as root must be
    // 0600; a root-owned key of another user's pggw may be group-readable (a Kubernetes Secret
    // mounted with defaultMode 0440 and fsGroup).
    if ((owner == euid && (mode & (S_IRWXG | S_IRWXO)) != 0) ||
        (owner == 0 && (mode & (S_IWGRP | S_IXGRP | S_IRWXO)) != 0))
        return "has group or world access; file must have permissions u=rw (0600) or less if "
               "owned by the current user, or permissions u=rw,g=r (0640) or less if owned by "
               "root";
    return {};
}

bool check_key_file_permissions(const std::string& path, std::string& error) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        error = "could not access private key file \"" + path + "\": " + std::strerror(errno);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        error = "private key file \"" + path + "\" is not a regular file";
        return false;
    }
    std::string problem = key_permission_problem(st.st_uid, st.st_mode, ::geteuid());
    if (problem.empty()) return true;
    error = "private key file \"" + path + "\" " + problem;
    return false;
}

namespace {

// Makes one leg's context; leg names it in the error ("client" / "server").
bool make_context(tls::Backend* backend, const tls::Options& o, std::string_view leg,
                  std::shared_ptr<tls::Context>& out, std::string& error) {
    std::string err;
    auto ctx = backend->new_context(o, err);
    if (!ctx) {
        error = std::string(leg) + " TLS (" + std::string(backend->name()) + "): " + err;
        return false;
    }
    out = std::move(ctx);
    return true;
}

tls::Version min_version(const Config& cfg) {
    return cfg.tls_min_version == "1.3" ? tls::Version::tls1_3 : tls::Version::tls1_2;
}

}  // namespace

bool make_tls_contexts(const Config& cfg, tls::Backend* backend, TlsContexts& out,
                       std::string& error) {
    out = {};
    // Key files first, as PostgreSQL checks them before loading (be-secure-openssl.c).
    for (const std::string* key : {&cfg.server_key, &cfg.key}) {
        if (key->empty()) continue;
        if (key == &cfg.server_key && !server_negotiation::uses_tls(cfg.server_tls)) continue;
        if (key == &cfg.key && cfg.effective_client_tls() == TlsMode::disable) continue;
        if (!check_key_file_permissions(*key, error)) return false;
    }
    // Toward PostgreSQL: pggw is the TLS client (libpq's role).
    if (server_negotiation::uses_tls(cfg.server_tls)) {
        tls::Options o;
        o.role = tls::Role::client;
        o.cert_file = cfg.server_cert;
        o.key_file = cfg.server_key;
        o.ca_file = cfg.server_ca;
        o.verify = server_negotiation::plan_for(cfg.server_tls, !cfg.server_ca.empty()).verify;
        o.min_version = min_version(cfg);
        o.ciphers = cfg.server_tls_ciphers;
        o.groups = cfg.server_tls_groups;
        if (!make_context(backend, o, "server", out.server, error)) return false;
    }
    TlsMode mode = cfg.effective_client_tls();
    if (mode == TlsMode::disable) return true;
    tls::Options o;
    o.role = tls::Role::server;
    o.cert_file = cfg.cert;
    o.key_file = cfg.key;
    o.ca_file = cfg.client_ca;
    o.verify = mode >= TlsMode::verify_ca ? tls::Verify::chain : tls::Verify::none;
    o.alpn = {"postgresql"};
    o.min_version = min_version(cfg);
    o.ciphers = cfg.tls_ciphers;
    o.groups = cfg.tls_groups;
    return make_context(backend, o, "client", out.client, error);
}

}  // namespace pggw
