// BoringSSL: library errors, and the one place they become a Failure (see
// boringssl_internal.hpp). Alerts map through shared::alert_failure().
#include <openssl/err.h>

#include "tls_backends/boringssl_internal.hpp"
#include "tls_backends/shared.hpp"

namespace pggw::tls::boringssl {
namespace {

Failure verify_failure(long v) {
    switch (v) {
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_CERT_UNTRUSTED:
            return Failure::unknown_ca;
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return Failure::certificate_expired;
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
            return Failure::hostname_mismatch;
        default:
            return Failure::bad_certificate;
    }
}

}  // namespace

uint32_t take_error() {
    uint32_t first = 0, ssl_first = 0;
    while (uint32_t e = ERR_get_error()) {
        if (!first) first = e;
        if (!ssl_first && ERR_GET_LIB(e) == ERR_LIB_SSL) ssl_first = e;
    }
    return ssl_first ? ssl_first : first;
}

std::string error_text(uint32_t e) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

Failure map_failure(const SSL* ssl, int ssl_error, uint32_t error, bool transport_eof,
                    int plain_alert, const std::string& hostname, std::string& reason) {
    if (ssl_error == SSL_ERROR_SYSCALL && error == 0) {
        return shared::transport_failure(transport_eof, SSL_in_init(ssl), reason);
    }
    if (error == 0) {
        reason = "TLS error " + std::to_string(ssl_error);
        return Failure::other;
    }
    reason = error_text(error);
    if (ERR_GET_LIB(error) != ERR_LIB_SSL) return Failure::other;
    int r = ERR_GET_REASON(error);
    if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256) {
        int alert = r - SSL_AD_REASON_OFFSET;
        reason = std::string("peer sent alert: ") + SSL_alert_desc_string_long(alert);
        return shared::alert_failure(alert);
    }
    if (plain_alert >= 0 &&
        (r == SSL_R_BAD_PACKET_LENGTH || r == SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC)) {
        reason = std::string("peer sent alert: ") + SSL_alert_desc_string_long(plain_alert) +
                 " (unencrypted)";
        return shared::alert_failure(plain_alert);
    }
    switch (r) {
        case SSL_R_CERTIFICATE_VERIFY_FAILED: {
            long v = SSL_get_verify_result(ssl);
            reason = "certificate verify failed: ";
            if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
                reason += shared::hostname_mismatch_reason(hostname);
            } else {
                reason += X509_verify_cert_error_string(v);
            }
            return verify_failure(v);
        }
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
            reason = "peer did not send a certificate";
            return Failure::bad_certificate;
        case SSL_R_NO_APPLICATION_PROTOCOL:
            reason = "no common application protocol (ALPN)";
            return Failure::no_alpn;
        case SSL_R_UNSUPPORTED_PROTOCOL:
            reason = "no common TLS version";
            return Failure::protocol_version;
        case SSL_R_NO_SHARED_CIPHER:
        case SSL_R_NO_SHARED_GROUP:
        case SSL_R_NO_COMMON_SIGNATURE_ALGORITHMS:
        case SSL_R_CONNECTION_REJECTED:
            return Failure::handshake_failure;
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_HTTP_REQUEST:
        case SSL_R_HTTPS_PROXY_REQUEST:
            reason = "not a TLS record (" + reason + ")";
            return Failure::not_tls;
        default:
            return Failure::other;
    }
}

}  // namespace pggw::tls::boringssl
