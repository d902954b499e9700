// The BoringSSL backend (Debian android-libboringssl): declarations its files share; private.
//
// Same files, same order and same local names as the wolfSSL backend (wolfssl_internal.hpp),
// so the two read side by side; library-independent code is in shared.hpp:
//   boringssl_x509.cpp     certificate fields: names, SHA-256, notAfter, host-name matching
//   boringssl_failure.cpp  library errors: the one place they become a Failure
//   boringssl_engine.cpp   the sans-IO Engine over a custom memory BIO, and its callbacks
//   boringssl_context.cpp  the Context: versions, ciphers, groups, certificate, key, CA, ALPN
//   boringssl_certgen.cpp  gen-cert: a snake-oil CA and server certificate
//   boringssl_crypto.cpp   SCRAM's primitives (Crypto): SHA-256, HMAC, PBKDF2, random bytes
//   boringssl_backend.cpp  the Backend and the module's entry point, pggw_tls_backend_v1
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tls_backends/tls.hpp"

namespace pggw::tls::boringssl {

// ---- certificate fields (boringssl_x509.cpp) ----
// "CN=localhost,O=pggw" (RFC 2253).
std::string x509_name_line(const X509_NAME* name);
// SHA-256 of the certificate's DER encoding (compared for channel binding).
CertificateHash x509_sha256(X509* cert);
// tls-server-end-point (RFC 5929 section 4.1) of a server certificate: HandshakeInfo's
// server_end_point. Empty when its signature algorithm names no single hash.
std::vector<std::uint8_t> x509_server_end_point(const X509* cert);
std::string x509_common_name(const X509_NAME* name);
std::int64_t asn1_time_unix(const ASN1_TIME* t);
// libpq's rule for an IP-literal host: with no dNSName or iPAddress subjectAltName at all, the
// CN is compared as text (BoringSSL's X509_check_ip never looks at the CN).
bool ip_host_matches_common_name(X509* cert, const std::string& host);
// shared::presented_names() of the certificate, for the reason of a host name mismatch.
std::string x509_presented_names(X509* cert);

// ---- library errors (boringssl_failure.cpp) ----
// The first queued library error, preferring one from libssl; clears the queue.
uint32_t take_error();
std::string error_text(uint32_t e);
// ssl_error: SSL_get_error()'s answer; error: the first queued library error (0 if none);
// transport_eof: the driver reported EOF; plain_alert: the alert of an unencrypted alert record
// that failed to decrypt, else -1; hostname: what verify-full checked, for the text.
Failure map_failure(const SSL* ssl, int ssl_error, uint32_t error, bool transport_eof,
                    int plain_alert, const std::string& hostname, std::string& reason);

// ---- the engine and its callbacks (boringssl_engine.cpp) ----
// What the engines of one Context share.
struct ContextState {
    std::vector<std::string> alpn;  // server: accepted, in preference order
    Verify verify = Verify::none;
    // server: x509_server_end_point() of our leaf, hashed once for every engine.
    std::vector<std::uint8_t> server_end_point;
};
std::unique_ptr<Engine> new_engine(SSL_CTX* ctx, std::shared_ptr<const ContextState> state,
                                   Role role, const EngineOptions& opts);
// Installed on the SSL_CTX by the context.
int alpn_select(SSL* ssl, const uint8_t** out, uint8_t* out_len, const uint8_t* in, unsigned in_len,
                void*);
ssl_select_cert_result_t early(const SSL_CLIENT_HELLO* hello);
int verify(int ok, X509_STORE_CTX* store);

// ---- the context (boringssl_context.cpp) ----
std::unique_ptr<Context> create_context(const Options& o, std::string& error);

// ---- certificate generation (boringssl_certgen.cpp) ----
bool create_certificates(const CertificateRequest& req, std::string& error);

// ---- SCRAM's primitives (boringssl_crypto.cpp) ----
const Crypto& crypto_primitives();

}  // namespace pggw::tls::boringssl
