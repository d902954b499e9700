// wolfSSL: library errors, and the one place they become a Failure (see wolfssl_internal.hpp).
// Alerts map through shared::alert_failure().
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "tls_backends/shared.hpp"
#include "tls_backends/wolfssl_internal.hpp"

namespace pggw::tls::wolfssl {
namespace {

// The verify callback sees OpenSSL-style X509_V_ERR_* codes (wolfSSL's compat layer converts
// its ASN errors), except for the name checks, which stay wolfSSL's negative codes.
Failure verify_failure(int v) {
    switch (v) {
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_CERT_UNTRUSTED:
        case ASN_NO_SIGNER_E:
        case ASN_SELF_SIGNED_E:
            return Failure::unknown_ca;
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_CERT_NOT_YET_VALID:
        case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
        case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:  // what wolfSSL reports for expiry
        case ASN_AFTER_DATE_E:
        case ASN_BEFORE_DATE_E:
            return Failure::certificate_expired;
        case DOMAIN_NAME_MISMATCH:
        case IPADDR_MISMATCH:
            return Failure::hostname_mismatch;
        default:
            return Failure::bad_certificate;
    }
}

}  // namespace

std::string error_text(int e) {
    char buf[WOLFSSL_MAX_ERROR_SZ] = {};
    wolfSSL_ERR_error_string_n(static_cast<unsigned long>(e), buf, sizeof buf);
    return std::string(buf) + " (" + std::to_string(e) + ")";
}

std::string alert_text(int alert) {
    const char* s = wolfSSL_alert_desc_string_long(alert);  // NULL for certificate_required
    return s                                            ? s
           : alert == shared::kAlertCertificateRequired ? "certificate required"
                                                        : "alert " + std::to_string(alert);
}

Failure map_failure(WOLFSSL* ssl, int error, int verify_error, int first_byte, bool transport_eof,
                    int plain_alert, const std::string& hostname, std::string& reason) {
    // A TLS stream starts with a handshake (or alert) record; anything else (an HTTP request,
    // a second SSLRequest, a StartupMessage) is not TLS at all.
    if (first_byte >= 0 && first_byte != shared::kRecordHandshake &&
        first_byte != shared::kRecordAlert) {
        reason = "not a TLS record (" + error_text(error) + ")";
        return Failure::not_tls;
    }
    if (verify_error != 0) {
        reason = "certificate verify failed: ";
        if (verify_error == DOMAIN_NAME_MISMATCH || verify_error == IPADDR_MISMATCH) {
            reason += shared::hostname_mismatch_reason(hostname);
        } else if (verify_error > 0) {
            reason += wolfSSL_X509_verify_cert_error_string(verify_error);
        } else {
            reason += error_text(verify_error);
        }
        return verify_failure(verify_error);
    }
    WOLFSSL_ALERT_HISTORY h{};
    wolfSSL_get_alert_history(ssl, &h);
    if (error == FATAL_ERROR && h.last_rx.level == alert_fatal) {
        reason = "peer sent alert: " + alert_text(h.last_rx.code);
        return shared::alert_failure(h.last_rx.code);
    }
    if (plain_alert >= 0 && (error == PARSE_ERROR || error == DECRYPT_ERROR ||
                             error == VERIFY_MAC_ERROR || error == BUFFER_ERROR)) {
        reason = "peer sent alert: " + alert_text(plain_alert) + " (unencrypted)";
        return shared::alert_failure(plain_alert);
    }
    // OPENSSL_EXTRA builds report the recv callback's CONN_CLOSE as SSL_ERROR_SYSCALL.
    if (error == WOLFSSL_ERROR_SYSCALL || error == SOCKET_PEER_CLOSED_E ||
        error == SOCKET_ERROR_E) {
        return shared::transport_failure(transport_eof, !wolfSSL_is_init_finished(ssl), reason);
    }
    reason = error_text(error);
    switch (error) {
        case NO_PEER_CERT:
            reason = "peer did not send a certificate";
            return Failure::bad_certificate;
        case UNKNOWN_ALPN_PROTOCOL_NAME_E:
            reason = "no common application protocol (ALPN)";
            return Failure::no_alpn;
        case VERSION_ERROR:
            reason = "no common TLS version";
            return Failure::protocol_version;
        case MATCH_SUITE_ERROR:
        case ECC_CURVE_ERROR:
        case BAD_KEY_SHARE_DATA:
        case EXT_MISSING:
            return Failure::handshake_failure;
        case UNKNOWN_RECORD_TYPE:
        case PARSE_ERROR:
            reason = "not a TLS record (" + reason + ")";
            return Failure::not_tls;
        default:
            break;
    }
    if (h.last_tx.level == alert_fatal) {
        reason += ", sent alert: " + alert_text(h.last_tx.code);
        return shared::alert_failure(h.last_tx.code);
    }
    return Failure::other;
}

}  // namespace pggw::tls::wolfssl
