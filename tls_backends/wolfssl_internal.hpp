// The wolfSSL backend (Debian libwolfssl 5.5.4): declarations its files share; private.
// wolfssl/options.h is force-included by CMake: it fixes the ABI of every wolfSSL header.
//
// Same files, same order and same local names as the BoringSSL backend
// (boringssl_internal.hpp), so the two read side by side; library-independent code is in
// shared.hpp and client_hello.hpp:
//   wolfssl_x509.cpp     certificate fields: names, SHA-256, notAfter, host-name matching
//   wolfssl_failure.cpp  library errors: the one place they become a Failure
//   wolfssl_engine.cpp   the sans-IO Engine over wolfSSL's native I/O callbacks, and its
//                        callbacks
//   wolfssl_context.cpp  the Context: versions, ciphers, groups, certificate, key, CA, ALPN
//   wolfssl_certgen.cpp  gen-cert: a snake-oil CA and server certificate
//   wolfssl_crypto.cpp   SCRAM's primitives (Crypto): SHA-256, HMAC, PBKDF2, random bytes
//   wolfssl_backend.cpp  the Backend and the module's entry point, pggw_tls_backend_v1
#pragma once

#include <wolfssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tls_backends/tls.hpp"

namespace pggw::tls::wolfssl {

struct CtxFree {
    void operator()(WOLFSSL_CTX* c) const { wolfSSL_CTX_free(c); }
};
struct SslFree {
    void operator()(WOLFSSL* s) const { wolfSSL_free(s); }
};
struct X509Free {
    void operator()(WOLFSSL_X509* x) const { wolfSSL_X509_free(x); }
};

// ---- certificate fields (wolfssl_x509.cpp) ----
// "CN=localhost,O=pggw": RFC 2253 order (last RDN first), as BoringSSL's XN_FLAG_RFC2253.
std::string x509_name_line(WOLFSSL_X509_NAME* name);
// SHA-256 of the certificate's DER encoding (compared for channel binding).
CertificateHash x509_sha256(WOLFSSL_X509* cert);
// tls-server-end-point (RFC 5929 section 4.1) of a server certificate: HandshakeInfo's
// server_end_point. Empty when its signature algorithm names no single hash.
std::vector<std::uint8_t> x509_server_end_point(WOLFSSL_X509* cert);
std::string x509_common_name(WOLFSSL_X509_NAME* name);
std::int64_t asn1_time_unix(const WOLFSSL_ASN1_TIME* t);
// verify-full for an IP literal, as libpq: the iPAddress SANs when the certificate has SANs,
// else the CN. (wolfSSL_X509_check_ip_asc compares its own text form, which misses "::1".)
bool x509_matches_ip(WOLFSSL_X509* cert, const std::string& host);
// shared::presented_names() of the certificate, for the reason of a host name mismatch.
std::string x509_presented_names(WOLFSSL_X509* cert);

// ---- library errors (wolfssl_failure.cpp) ----
std::string error_text(int e);
std::string alert_text(int alert);
// error: wolfSSL_get_error()'s answer; verify_error: the first certificate error the verify
// callback saw (0 if none); first_byte: the first byte the peer sent while the handshake was
// running (-1 if none); transport_eof: the driver reported EOF; plain_alert: the alert of an
// unencrypted alert record that failed to decrypt, else -1; hostname: what verify-full
// checked, for the text.
Failure map_failure(WOLFSSL* ssl, int error, int verify_error, int first_byte, bool transport_eof,
                    int plain_alert, const std::string& hostname, std::string& reason);

// ---- the engine and its callbacks (wolfssl_engine.cpp) ----
// What the engines of one Context share.
struct ContextState {
    std::string alpn;         // comma-separated, as wolfSSL_UseALPN takes it
    std::vector<int> groups;  // WOLFSSL_ECC_*, in preference order
    Version min_version = Version::tls1_2, max_version = Version::tls1_3;
    Verify verify = Verify::none;
    // server: x509_server_end_point() of our leaf, hashed once for every engine.
    std::vector<std::uint8_t> server_end_point;
};
std::unique_ptr<Engine> new_engine(WOLFSSL_CTX* ctx, std::shared_ptr<const ContextState> state,
                                   Role role, const EngineOptions& opts);
// Installed on the WOLFSSL_CTX by the context. (Server ALPN selection is wolfSSL's own:
// wolfSSL_UseALPN with WOLFSSL_ALPN_FAILED_ON_MISMATCH, set in the engine, picks our protocol
// and sends no_application_protocol on a mismatch; early() stands in for BoringSSL's
// select-certificate callback.)
int verify(int ok, WOLFSSL_X509_STORE_CTX* store);

// ---- the context (wolfssl_context.cpp) ----
std::unique_ptr<Context> create_context(const Options& o, std::string& error);

// ---- certificate generation (wolfssl_certgen.cpp) ----
bool create_certificates(const CertificateRequest& req, std::string& error);

// ---- SCRAM's primitives (wolfssl_crypto.cpp) ----
const Crypto& crypto_primitives();

}  // namespace pggw::tls::wolfssl
