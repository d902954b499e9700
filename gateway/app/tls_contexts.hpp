// Builds the TLS contexts of both legs from the settings; used at start and on SIGHUP.
#pragma once

#include <string>

#include "gateway/app/config.hpp"
#include "gateway/session/session_env.hpp"

namespace pggw {

// Checks settings that need no file access (TLS on without a certificate, ...).
bool validate_tls_settings(const Config& cfg, std::string& error);
// The server leg's part of it (--server-tls, --server-ca, --server-cert/--server-key).
bool validate_server_tls_settings(const Config& cfg, std::string& error);
// nullopt-like: returns false and sets error when a certificate or key cannot be used.
bool make_tls_contexts(const Config& cfg, tls::Backend* backend, TlsContexts& out,
                       std::string& error);
// PostgreSQL's rule for private key files (be-secure-common.c): a regular file owned by the
// user pggw runs as, mode u=rw (0600) or less, or owned by root, mode u=rw,g=r (0640) or less.
// False and error (PostgreSQL's wording) otherwise. make_tls_contexts applies it to --key and
// --server-key, so it holds at start and on every reload.
bool check_key_file_permissions(const std::string& path, std::string& error);
// The rule itself, on a file's owner and mode for a process running as euid: empty when
// allowed, else what is wrong (the end of PostgreSQL's message).
std::string key_permission_problem(unsigned owner, unsigned mode, unsigned euid);
// Whether pggw needs a TLS library: TLS on either leg, or SCRAM's primitives (--auth-file).
bool tls_needed(const Config& cfg);

}  // namespace pggw
