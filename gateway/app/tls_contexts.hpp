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
// Whether either leg needs a TLS library.
bool tls_needed(const Config& cfg);

}  // namespace pggw
