// The wolfSSL backend (Debian libwolfssl 5.5.4): a sans-IO Engine over wolfSSL's native I/O
// callbacks (wolfSSL_SSLSetIORecv/IOSend), no OpenSSL-compat BIO. Ciphertext from the peer
// lands in io_ (input_space/commit_input, cipher_buffers.hpp) and is consumed by the recv
// callback, which answers WANT_READ when it is empty; records wolfSSL writes are appended to
// io_'s output by the send callback (output/consume_output). wolfssl/options.h is
// force-included by CMake: it fixes the ABI.
//
// Shape shared with boringssl_backend.cpp, in this order: map_failure, the Engine, callbacks,
// the Context, certificate generation, the Backend, the entry point.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tls_backends/cipher_buffers.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::tls {
namespace {

constexpr const char* kDefaultGroups = "X25519:P-256";
// wolfSSL's cipher list also holds the TLS 1.3 suites; Options::ciphers is about TLS 1.2.
constexpr const char* kTls13Suites =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256";

// TLS alert descriptions (RFC 8446 section 6) and record/handshake types.
enum Alert : int {
    kAlertHandshakeFailure = 40,
    kAlertBadCertificate = 42,
    kAlertUnsupportedCertificate = 43,
    kAlertCertificateRevoked = 44,
    kAlertCertificateExpired = 45,
    kAlertCertificateUnknown = 46,
    kAlertUnknownCa = 48,
    kAlertProtocolVersion = 70,
    kAlertInsufficientSecurity = 71,
    kAlertCertificateRequired = 116,
    kAlertNoApplicationProtocol = 120,
};
constexpr std::uint8_t kRecordAlert = 21, kRecordHandshake = 22, kClientHello = 1;

struct CtxFree {
    void operator()(WOLFSSL_CTX* c) const { wolfSSL_CTX_free(c); }
};
struct SslFree {
    void operator()(WOLFSSL* s) const { wolfSSL_free(s); }
};
struct X509Free {
    void operator()(WOLFSSL_X509* x) const { wolfSSL_X509_free(x); }
};

// "CN=localhost,O=pggw": RFC 2253 order (last RDN first), as BoringSSL's XN_FLAG_RFC2253.
std::string x509_name_line(WOLFSSL_X509_NAME* name) {
    std::string out;
    if (!name) return out;
    for (int i = wolfSSL_X509_NAME_entry_count(name) - 1; i >= 0; --i) {
        WOLFSSL_X509_NAME_ENTRY* e = wolfSSL_X509_NAME_get_entry(name, i);
        if (!e) continue;
        int nid = wolfSSL_OBJ_obj2nid(wolfSSL_X509_NAME_ENTRY_get_object(e));
        const char* sn = wolfSSL_OBJ_nid2sn(nid);
        WOLFSSL_ASN1_STRING* data = wolfSSL_X509_NAME_ENTRY_get_data(e);
        if (!out.empty()) out += ',';
        out += sn ? sn : "?";
        out += '=';
        if (data) {
            out.append(reinterpret_cast<const char*>(wolfSSL_ASN1_STRING_data(data)),
                       static_cast<std::size_t>(wolfSSL_ASN1_STRING_length(data)));
        }
    }
    return out;
}

// SHA-256 of the certificate's DER encoding (compared for channel binding).
CertificateHash x509_sha256(WOLFSSL_X509* cert) {
    CertificateHash out{};
    int len = 0;
    const unsigned char* der = wolfSSL_X509_get_der(cert, &len);
    if (!der || len <= 0) return out;
    wc_Sha256Hash(der, static_cast<word32>(len), out.data());
    return out;
}

std::string x509_common_name(WOLFSSL_X509_NAME* name) {
    if (!name) return {};
    char buf[256] = {};
    int len = wolfSSL_X509_NAME_get_text_by_NID(name, NID_commonName, buf, sizeof buf);
    return len > 0 ? std::string(buf, static_cast<std::size_t>(len)) : std::string{};
}

std::int64_t asn1_time_unix(const WOLFSSL_ASN1_TIME* t) {
    struct tm tm {};
    if (!t || wolfSSL_ASN1_TIME_to_tm(t, &tm) != WOLFSSL_SUCCESS) return 0;
    return static_cast<std::int64_t>(timegm(&tm));
}

bool is_ip_literal(const std::string& host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// verify-full for an IP literal, as libpq: the iPAddress SANs when the certificate has SANs,
// else the CN. (wolfSSL_X509_check_ip_asc compares its own text form, which misses "::1".)
bool x509_matches_ip(WOLFSSL_X509* cert, const std::string& host) {
    unsigned char want[16];
    int want_len = inet_pton(AF_INET, host.c_str(), want) == 1    ? 4
                   : inet_pton(AF_INET6, host.c_str(), want) == 1 ? 16
                                                                  : 0;
    if (want_len == 0) return false;
    constexpr int kGeneralNameDns = 2, kGeneralNameIp = 7;  // GeneralName CHOICE tags
    auto* names = static_cast<WOLFSSL_STACK*>(
        wolfSSL_X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    bool has_san = false, match = false;
    for (int i = 0; names && i < wolfSSL_sk_GENERAL_NAME_num(names); ++i) {
        WOLFSSL_GENERAL_NAME* gn = wolfSSL_sk_GENERAL_NAME_value(names, i);
        if (!gn || (gn->type != kGeneralNameIp && gn->type != kGeneralNameDns)) continue;
        has_san = true;
        if (gn->type == kGeneralNameIp && gn->d.ip &&
            wolfSSL_ASN1_STRING_length(gn->d.ip) == want_len &&
            std::memcmp(wolfSSL_ASN1_STRING_data(gn->d.ip), want, want_len) == 0) {
            match = true;
        }
    }
    if (names) wolfSSL_GENERAL_NAMES_free(names);
    return has_san ? match : x509_common_name(wolfSSL_X509_get_subject_name(cert)) == host;
}

// What a certificate is for, as verify-full sees it: "DNS:a, IP:10.0.0.1 (CN=a)", for the
// reason of a host name mismatch.
std::string x509_presented_names(WOLFSSL_X509* cert) {
    std::string out;
    constexpr int kGeneralNameDns = 2, kGeneralNameIp = 7;  // GeneralName CHOICE tags
    auto* names = static_cast<WOLFSSL_STACK*>(
        wolfSSL_X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    // wolfSSL's stack holds the names last first: walk it backwards for the certificate's order.
    for (int i = names ? wolfSSL_sk_GENERAL_NAME_num(names) - 1 : -1; i >= 0; --i) {
        WOLFSSL_GENERAL_NAME* gn = wolfSSL_sk_GENERAL_NAME_value(names, i);
        std::string name;
        if (gn && gn->type == kGeneralNameDns && gn->d.dNSName) {
            name =
                "DNS:" +
                std::string(reinterpret_cast<const char*>(wolfSSL_ASN1_STRING_data(gn->d.dNSName)),
                            static_cast<std::size_t>(wolfSSL_ASN1_STRING_length(gn->d.dNSName)));
        } else if (gn && gn->type == kGeneralNameIp && gn->d.ip) {
            char text[INET6_ADDRSTRLEN] = {};
            int len = wolfSSL_ASN1_STRING_length(gn->d.ip);
            if ((len == 4 || len == 16) &&
                inet_ntop(len == 4 ? AF_INET : AF_INET6, wolfSSL_ASN1_STRING_data(gn->d.ip), text,
                          sizeof text)) {
                name = std::string("IP:") + text;
            }
        }
        if (name.empty()) continue;
        out += (out.empty() ? "" : ", ") + name;
    }
    if (names) wolfSSL_GENERAL_NAMES_free(names);
    std::string cn = x509_common_name(wolfSSL_X509_get_subject_name(cert));
    if (!cn.empty()) out += (out.empty() ? "CN=" : " (CN=") + cn + (out.empty() ? "" : ")");
    return out.empty() ? "no name" : out;
}

std::string error_text(int e) {
    char buf[WOLFSSL_MAX_ERROR_SZ] = {};
    wolfSSL_ERR_error_string_n(static_cast<unsigned long>(e), buf, sizeof buf);
    return std::string(buf) + " (" + std::to_string(e) + ")";
}

std::string alert_text(int alert) {
    const char* s = wolfSSL_alert_desc_string_long(alert);  // NULL for certificate_required
    return s                                    ? s
           : alert == kAlertCertificateRequired ? "certificate required"
                                                : "alert " + std::to_string(alert);
}

Failure alert_failure(int alert) {
    switch (alert) {
        case kAlertUnknownCa:
            return Failure::unknown_ca;
        case kAlertCertificateExpired:
            return Failure::certificate_expired;
        case kAlertBadCertificate:
        case kAlertUnsupportedCertificate:
        case kAlertCertificateRevoked:
        case kAlertCertificateUnknown:
        case kAlertCertificateRequired:
            return Failure::bad_certificate;
        case kAlertNoApplicationProtocol:
            return Failure::no_alpn;
        case kAlertProtocolVersion:
            return Failure::protocol_version;
        case kAlertHandshakeFailure:
        case kAlertInsufficientSecurity:
            return Failure::handshake_failure;
        default:
            return Failure::other;
    }
}

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

// ---- 2) the one place library errors become a Failure ----
//
// error: wolfSSL_get_error()'s answer; verify_error: the first certificate error the verify
// callback saw (0 if none); first_byte: the first byte the peer sent while the handshake was
// running (-1 if none); transport_eof: the driver reported EOF; plain_alert: the alert of an
// unencrypted alert record that failed to decrypt, else -1 (OpenSSL clients, libpq among
// them, send their TLS 1.3 certificate verification alerts before switching to handshake
// keys); hostname: what verify-full checked, for the text.
Failure map_failure(WOLFSSL* ssl, int error, int verify_error, int first_byte, bool transport_eof,
                    int plain_alert, const std::string& hostname, std::string& reason) {
    // A TLS stream starts with a handshake (or alert) record; anything else (an HTTP request,
    // a second SSLRequest, a StartupMessage) is not TLS at all.
    if (first_byte >= 0 && first_byte != kRecordHandshake && first_byte != kRecordAlert) {
        reason = "not a TLS record (" + error_text(error) + ")";
        return Failure::not_tls;
    }
    if (verify_error != 0) {
        reason = "certificate verify failed: ";
        if (verify_error == DOMAIN_NAME_MISMATCH || verify_error == IPADDR_MISMATCH) {
            reason += "server certificate does not match host name \"" + hostname + "\"";
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
        return alert_failure(h.last_rx.code);
    }
    if (plain_alert >= 0 && (error == PARSE_ERROR || error == DECRYPT_ERROR ||
                             error == VERIFY_MAC_ERROR || error == BUFFER_ERROR)) {
        reason = "peer sent alert: " + alert_text(plain_alert) + " (unencrypted)";
        return alert_failure(plain_alert);
    }
    // OPENSSL_EXTRA builds report the recv callback's CONN_CLOSE as SSL_ERROR_SYSCALL.
    if (error == WOLFSSL_ERROR_SYSCALL || error == SOCKET_PEER_CLOSED_E ||
        error == SOCKET_ERROR_E) {
        reason = transport_eof ? (wolfSSL_is_init_finished(ssl)
                                      ? "peer closed the connection without close_notify "
                                        "(truncated)"
                                      : "peer closed the connection during the TLS handshake")
                               : "transport error";
        return transport_eof ? Failure::eof : Failure::other;
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
        return alert_failure(h.last_tx.code);
    }
    return Failure::other;
}

struct ContextState {
    std::string alpn;         // comma-separated, as wolfSSL_UseALPN takes it
    std::vector<int> groups;  // WOLFSSL_ECC_*, in preference order
    Version min_version = Version::tls1_2, max_version = Version::tls1_3;
    Verify verify = Verify::none;
};

// What the server looks at in a ClientHello before wolfSSL does (see early()).
struct ClientHello {
    bool alpn = false;                    // the client offered ALPN
    std::vector<std::uint16_t> groups;    // supported_groups, empty if absent
    std::vector<std::uint16_t> versions;  // supported_versions, empty if absent
    std::uint16_t legacy_version = 0;
};
enum class HelloParse { ok, need_more, unparsed };
HelloParse parse_client_hello(std::span<const std::uint8_t> in, bool eof, ClientHello& hello);
int io_recv(WOLFSSL* ssl, char* buf, int sz, void* ctx);
int io_send(WOLFSSL* ssl, char* buf, int sz, void* ctx);

// ---- 3) the engine ----
class WolfsslEngine final : public Engine {
  public:
    WolfsslEngine(WOLFSSL_CTX* ctx, std::shared_ptr<const ContextState> state, Role role,
                  const EngineOptions& opts)
        : state_(std::move(state)),
          role_(role),
          hostname_(opts.hostname),
          require_alpn_(opts.require_alpn) {
        ssl_.reset(wolfSSL_new(ctx));
        if (!ssl_) {
            fail(Failure::other, "cannot create TLS session");
            return;
        }
        WOLFSSL* ssl = ssl_.get();
        wolfSSL_SSLSetIORecv(ssl, io_recv);
        wolfSSL_SSLSetIOSend(ssl, io_send);
        wolfSSL_SetIOReadCtx(ssl, this);
        wolfSSL_SetIOWriteCtx(ssl, this);
        wolfSSL_SetCertCbCtx(ssl, this);
        if (!state_->alpn.empty()) {
            // The server picks from its list and refuses a client whose list has no match
            // (no_application_protocol); the client offers its list.
            std::string list = state_->alpn;
            int mode = role == Role::server ? WOLFSSL_ALPN_FAILED_ON_MISMATCH
                                            : WOLFSSL_ALPN_CONTINUE_ON_MISMATCH;
            if (wolfSSL_UseALPN(ssl, list.data(), static_cast<unsigned>(list.size()), mode) !=
                WOLFSSL_SUCCESS) {
                fail(Failure::other, "cannot set ALPN protocols");
                return;
            }
        }
        if (role == Role::server) return;
        bool ip = is_ip_literal(hostname_);
        if (!hostname_.empty() && !ip &&
            wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, hostname_.data(),
                           static_cast<unsigned short>(hostname_.size())) != WOLFSSL_SUCCESS) {
            fail(Failure::other, "invalid host name \"" + hostname_ + "\"");
            return;
        }
        if (state_->verify == Verify::chain_and_hostname) {
            if (hostname_.empty()) {
                fail(Failure::hostname_mismatch, "verify-full needs a host name to check");
                return;
            }
            // DNS names: SAN, else CN (as libpq). IP literals: checked by verify() on the leaf.
            if (ip) {
                check_ip_ = true;
            } else if (wolfSSL_check_domain_name(ssl, hostname_.c_str()) != WOLFSSL_SUCCESS) {
                fail(Failure::other, "invalid host name \"" + hostname_ + "\"");
            }
        }
    }

    std::span<std::uint8_t> input_space() override { return io_.input_space(); }
    void commit_input(std::size_t n) override {
        std::span<const std::uint8_t> added = io_.commit_input(n);
        if (first_byte_ < 0 && !added.empty()) first_byte_ = added[0];
    }
    std::span<const std::uint8_t> output() const override { return io_.output(); }
    void consume_output(std::size_t n) override { io_.consume_output(n); }
    void input_eof() override { eof_ = true; }

    Result handshake() override {
        if (failure_ != Failure::none) return Result::error;
        if (handshake_done_) return Result::ok;
        if (role_ == Role::server && !hello_checked_) {
            ClientHello hello;
            switch (parse_client_hello(io_.unread(), eof_, hello)) {
                case HelloParse::need_more:
                    return Result::want_input;
                case HelloParse::ok:
                    if (!early(hello)) return Result::error;
                    break;
                case HelloParse::unparsed:
                    break;  // wolfSSL judges it
            }
            hello_checked_ = true;
        }
        wolfSSL_ERR_clear_error();
        int ret = wolfSSL_negotiate(ssl_.get());
        if (ret == WOLFSSL_SUCCESS) {
            finish_handshake();
            if (role_ == Role::server && require_alpn_ && info_.alpn.empty()) {
                // A ClientHello early() could not read (fragmented): refuse it now.
                fail(Failure::no_alpn, "client offered no ALPN, which is required here");
                return Result::error;
            }
            return Result::ok;
        }
        return outcome(ret);
    }
    Result read(std::span<std::uint8_t> buf, std::size_t& n) override {
        n = 0;
        if (failure_ != Failure::none) return Result::error;
        if (peer_closed_) return Result::closed;
        if (buf.empty()) return Result::ok;
        wolfSSL_ERR_clear_error();
        int len = static_cast<int>(std::min<std::size_t>(buf.size(), INT_MAX));
        int ret = wolfSSL_read(ssl_.get(), buf.data(), len);
        if (!handshake_done_ && wolfSSL_is_init_finished(ssl_.get())) finish_handshake();
        if (ret > 0) {
            n = static_cast<std::size_t>(ret);
            return Result::ok;
        }
        return outcome(ret);
    }
    Result write(std::span<const std::uint8_t> buf) override {
        if (failure_ != Failure::none) return Result::error;
        while (!buf.empty()) {
            wolfSSL_ERR_clear_error();
            int len = static_cast<int>(std::min<std::size_t>(buf.size(), 1u << 30));
            int ret = wolfSSL_write(ssl_.get(), buf.data(), len);
            if (!handshake_done_ && wolfSSL_is_init_finished(ssl_.get())) finish_handshake();
            if (ret <= 0) return outcome(ret);
            buf = buf.subspan(static_cast<std::size_t>(ret));
        }
        return Result::ok;
    }
    Result shutdown() override {
        if (failure_ != Failure::none) return Result::error;
        if (shutdown_sent_) return Result::ok;
        wolfSSL_ERR_clear_error();
        int ret = wolfSSL_shutdown(ssl_.get());
        // SHUTDOWN_NOT_DONE: close_notify queued; SUCCESS: both sides closed.
        if (ret == WOLFSSL_SHUTDOWN_NOT_DONE || ret == WOLFSSL_SUCCESS) {
            shutdown_sent_ = true;
            return Result::ok;
        }
        return outcome(ret);
    }

    const HandshakeInfo& info() const override { return info_; }
    Failure failure() const override { return failure_; }
    const std::string& failure_reason() const override { return reason_; }

    // Called by the I/O callbacks and by the other callbacks.
    int io_read(char* out, int len) {
        if (io_.unread().empty()) {
            return eof_ ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
        }
        return static_cast<int>(io_.pull(out, static_cast<std::size_t>(len)));
    }
    int io_write(const char* data, int len) {
        io_.push(data, static_cast<std::size_t>(len));
        return len;
    }
    const ContextState& state() const { return *state_; }
    bool require_alpn() const { return require_alpn_; }
    bool check_ip() const { return check_ip_; }
    const std::string& hostname() const { return hostname_; }
    // Refuses the handshake with a fatal alert sent in the clear (no keys exist yet).
    bool refuse(Failure f, int alert, std::string reason) {
        const std::uint8_t record[] = {
            kRecordAlert, 3, 3, 0, 2, 2 /* fatal */, static_cast<std::uint8_t>(alert)};
        io_write(reinterpret_cast<const char*>(record), sizeof record);
        fail(f, std::move(reason));
        return false;
    }
    void note_verify_error(int error, int depth, WOLFSSL_X509* cert) {
        if (verify_error_ != 0) return;
        verify_error_ = error;
        if (cert) {
            verify_detail_ = " (depth " + std::to_string(depth) + ", subject \"" +
                             x509_name_line(wolfSSL_X509_get_subject_name(cert)) + "\")";
            if (error == DOMAIN_NAME_MISMATCH || error == IPADDR_MISMATCH) {
                verify_detail_ = "; the certificate is for " + x509_presented_names(cert);
            }
        }
    }

  private:
    bool early(const ClientHello& hello);

    Result outcome(int ret) {
        int err = wolfSSL_get_error(ssl_.get(), ret);
        if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) {
            return Result::want_input;  // never WANT_WRITE: io_write takes everything
        }
        if (err == WOLFSSL_ERROR_ZERO_RETURN) {
            peer_closed_ = true;
            return Result::closed;
        }
        std::string reason;
        Failure f = map_failure(ssl_.get(), err, verify_error_, handshake_done_ ? -1 : first_byte_,
                                eof_, plain_alert(), hostname_, reason);
        if (verify_error_ != 0) reason += verify_detail_;
        // Where wolfSSL gives up on a hello without a word (no common version), tell the peer,
        // as BoringSSL does: a plaintext fatal alert is still valid at that point.
        WOLFSSL_ALERT_HISTORY h{};
        wolfSSL_get_alert_history(ssl_.get(), &h);
        // Likewise a TLS 1.2 server refusing a client without a certificate (still in the clear:
        // its ChangeCipherSpec comes later), with handshake_failure as BoringSSL sends.
        bool tls12_no_cert = err == NO_PEER_CERT && wolfSSL_version(ssl_.get()) == TLS1_2_VERSION;
        if (!handshake_done_ && h.last_tx.level != alert_fatal && h.last_rx.level != alert_fatal &&
            (f == Failure::protocol_version || f == Failure::handshake_failure || tls12_no_cert)) {
            refuse(f,
                   f == Failure::protocol_version ? kAlertProtocolVersion : kAlertHandshakeFailure,
                   std::move(reason));
        } else {
            fail(f, std::move(reason));
        }
        wolfSSL_ERR_clear_error();
        return Result::error;
    }
    // If the last bytes the library consumed were a plaintext alert record (15 03 0x 00 02
    // level description), its description; else -1. wolfSSL stops after the record header.
    int plain_alert() const {
        for (std::size_t consumed : {std::size_t{7}, std::size_t{5}}) {
            std::span<const std::uint8_t> rec = io_.input_from(consumed);
            if (rec.size() < 7) continue;
            bool alert = rec[0] == kRecordAlert && rec[1] == 3 && rec[3] == 0 && rec[4] == 2;
            if (alert && rec[5] == alert_fatal) return rec[6];
        }
        return -1;
    }
    void fail(Failure f, std::string reason) {
        failure_ = f;
        reason_ = std::move(reason);
    }
    void finish_handshake() {
        handshake_done_ = true;
        WOLFSSL* ssl = ssl_.get();
        info_.version = wolfSSL_get_version(ssl);
        // wolfSSL_get_cipher_name() answers wolfSSL's own names ("TLS13-AES128-GCM-SHA256");
        // the metrics label is the IANA name, as BoringSSL's SSL_CIPHER_standard_name().
        int suite = wolfSSL_get_current_cipher_suite(ssl);
        if (const char* name = wolfSSL_get_cipher_name_iana_from_suite(
                static_cast<unsigned char>((suite >> 8) & 0xff),
                static_cast<unsigned char>(suite & 0xff))) {
            info_.cipher = name;
        }
        char* alpn = nullptr;
        unsigned short alpn_len = 0;
        if (wolfSSL_ALPN_GetProtocol(ssl, &alpn, &alpn_len) == WOLFSSL_SUCCESS && alpn) {
            info_.alpn.assign(alpn, alpn_len);
        }
        if (role_ == Role::server) {
            // Kept without a configured name: this build has WOLFSSL_ALWAYS_KEEP_SNI.
            void* sni = nullptr;
            unsigned short sni_len = wolfSSL_SNI_GetRequest(ssl, WOLFSSL_SNI_HOST_NAME, &sni);
            if (sni && sni_len > 0) info_.sni.assign(static_cast<const char*>(sni), sni_len);
        }
        std::unique_ptr<WOLFSSL_X509, X509Free> peer(wolfSSL_get_peer_certificate(ssl));
        info_.peer_certificate = peer != nullptr;
        if (peer) {
            info_.peer_common_name = x509_common_name(wolfSSL_X509_get_subject_name(peer.get()));
            info_.peer_subject = x509_name_line(wolfSSL_X509_get_subject_name(peer.get()));
            info_.peer_certificate_sha256 = x509_sha256(peer.get());
        }
    }

    std::unique_ptr<WOLFSSL, SslFree> ssl_;
    std::shared_ptr<const ContextState> state_;
    Role role_;
    std::string hostname_;
    bool require_alpn_ = false;
    bool check_ip_ = false;
    bool handshake_done_ = false;
    bool hello_checked_ = false;
    bool peer_closed_ = false;
    bool shutdown_sent_ = false;
    bool eof_ = false;
    int first_byte_ = -1;
    CipherBuffers io_;
    HandshakeInfo info_;
    Failure failure_ = Failure::none;
    std::string reason_;
    int verify_error_ = 0;
    std::string verify_detail_;
};

// ---- 4) callbacks ----
int io_recv(WOLFSSL*, char* buf, int sz, void* ctx) {
    return static_cast<WolfsslEngine*>(ctx)->io_read(buf, sz);
}

int io_send(WOLFSSL*, char* buf, int sz, void* ctx) {
    return static_cast<WolfsslEngine*>(ctx)->io_write(buf, sz);
}

// Server ALPN selection is wolfSSL's own (wolfSSL_UseALPN with WOLFSSL_ALPN_FAILED_ON_MISMATCH,
// set in the engine): it picks our protocol and sends no_application_protocol on a mismatch.

// Reads what early() needs from the first record, when it holds the whole ClientHello.
HelloParse parse_client_hello(std::span<const std::uint8_t> in, bool eof, ClientHello& hello) {
    if (in.empty()) return eof ? HelloParse::unparsed : HelloParse::need_more;
    if (in[0] != kRecordHandshake) return HelloParse::unparsed;
    if (in.size() < 9) return eof ? HelloParse::unparsed : HelloParse::need_more;
    std::size_t record_len = std::size_t{in[3]} << 8 | in[4];
    if (in[1] != 3 || in[5] != kClientHello) return HelloParse::unparsed;
    std::size_t msg_len = std::size_t{in[6]} << 16 | std::size_t{in[7]} << 8 | in[8];
    if (record_len > 16 * 1024 + 256 || msg_len + 4 > record_len) {
        return HelloParse::unparsed;  // oversized, or fragmented over records: wolfSSL's job
    }
    if (in.size() < 5 + record_len) return eof ? HelloParse::unparsed : HelloParse::need_more;
    std::span<const std::uint8_t> p = in.subspan(9, msg_len);
    std::size_t at = 0;
    auto u8 = [&](std::size_t& v) {
        return at + 1 <= p.size() ? (v = p[at], at += 1, true) : false;
    };
    auto u16 = [&](std::size_t& v) {
        return at + 2 <= p.size() ? (v = std::size_t{p[at]} << 8 | p[at + 1], at += 2, true)
                                  : false;
    };
    auto skip = [&](std::size_t n) { return at + n <= p.size() ? (at += n, true) : false; };
    std::size_t v = 0, n = 0;
    if (!u16(v) || !skip(32)) return HelloParse::unparsed;
    hello.legacy_version = static_cast<std::uint16_t>(v);
    if (!u8(n) || !skip(n) || !u16(n) || !skip(n) || !u8(n) || !skip(n)) {
        return HelloParse::unparsed;
    }
    std::size_t ext_total = 0;
    if (!u16(ext_total)) return HelloParse::ok;  // no extensions
    std::size_t end = std::min(p.size(), at + ext_total);
    while (at + 4 <= end) {
        std::size_t type = 0, len = 0;
        u16(type);
        u16(len);
        if (at + len > end) return HelloParse::unparsed;
        std::span<const std::uint8_t> ext = p.subspan(at, len);
        if (type == 0x0010) {  // application_layer_protocol_negotiation
            hello.alpn = true;
        } else if (type == 0x000a && len >= 2) {  // supported_groups
            for (std::size_t i = 2; i + 1 < len; i += 2) {
                hello.groups.push_back(static_cast<std::uint16_t>(ext[i] << 8 | ext[i + 1]));
            }
        } else if (type == 0x002b && len >= 1) {  // supported_versions
            for (std::size_t i = 1; i + 1 < len; i += 2) {
                hello.versions.push_back(static_cast<std::uint16_t>(ext[i] << 8 | ext[i + 1]));
            }
        }
        at += len;
    }
    return HelloParse::ok;
}

// Server, before wolfSSL sees the ClientHello: what wolfSSL 5.5.4 gets wrong or cannot do.
//  - direct TLS insists on ALPN being offered (wolfSSL has no hook that runs after ALPN);
//  - no common group: wolfSSL answers with an empty HelloRetryRequest instead of an alert;
//  - no common version: wolfSSL's alert says handshake_failure, not protocol_version.
bool WolfsslEngine::early(const ClientHello& hello) {
    const ContextState& st = *state_;
    bool v12 = st.min_version == Version::tls1_2;
    bool v13 = st.max_version == Version::tls1_3;
    bool version_ok = hello.versions.empty()
                          ? v12 && hello.legacy_version >= 0x0303
                          : std::any_of(hello.versions.begin(), hello.versions.end(), [&](auto x) {
                                return (x == 0x0303 && v12) || (x == 0x0304 && v13);
                            });
    if (!version_ok) {
        return refuse(Failure::protocol_version, kAlertProtocolVersion,
                      "no common TLS version (client offered none this server accepts)");
    }
    if (!hello.groups.empty() &&
        std::none_of(hello.groups.begin(), hello.groups.end(), [&](std::uint16_t g) {
            return std::find(st.groups.begin(), st.groups.end(), g) != st.groups.end();
        })) {
        return refuse(Failure::handshake_failure, kAlertHandshakeFailure,
                      "no common key exchange group");
    }
    if (require_alpn_ && !hello.alpn) {
        return refuse(Failure::no_alpn, kAlertNoApplicationProtocol,
                      "client offered no ALPN, which is required here");
    }
    return true;
}

// Chain verification is the library's; this remembers which certificate failed and checks an
// IP-literal host name against the leaf (wolfSSL_check_domain_name is for DNS names).
int verify(int ok, WOLFSSL_X509_STORE_CTX* store) {
    auto* engine = store ? static_cast<WolfsslEngine*>(store->userCtx) : nullptr;
    if (!engine) return ok;
    if (!ok) {
        engine->note_verify_error(store->error, store->error_depth, store->current_cert);
    } else if (engine->check_ip() && store->error_depth == 0 && store->current_cert &&
               !x509_matches_ip(store->current_cert, engine->hostname())) {
        engine->note_verify_error(IPADDR_MISMATCH, 0, store->current_cert);
        return 0;
    }
    return ok;
}

// ---- 5) the context ----
bool parse_groups(const std::string& list, std::vector<int>& out) {
    static constexpr struct {
        const char* name;
        int group;
    } kGroups[] = {
        {"X25519", WOLFSSL_ECC_X25519},       {"x25519", WOLFSSL_ECC_X25519},
        {"P-256", WOLFSSL_ECC_SECP256R1},     {"prime256v1", WOLFSSL_ECC_SECP256R1},
        {"secp256r1", WOLFSSL_ECC_SECP256R1}, {"P-384", WOLFSSL_ECC_SECP384R1},
        {"secp384r1", WOLFSSL_ECC_SECP384R1}, {"P-521", WOLFSSL_ECC_SECP521R1},
        {"secp521r1", WOLFSSL_ECC_SECP521R1},
    };
    std::stringstream ss(list);
    std::string item;
    while (std::getline(ss, item, ':')) {
        auto it = std::find_if(std::begin(kGroups), std::end(kGroups),
                               [&](const auto& g) { return item == g.name; });
        if (it == std::end(kGroups)) return false;
        out.push_back(it->group);
    }
    return !out.empty();
}

// wolfSSL accepts a list when any one name in it is known; BoringSSL's strict list refuses an
// unknown name, and so do we: every plain name must be a suite (keywords and !-+ pass).
bool valid_cipher_list(const std::string& list) {
    std::stringstream ss(list);
    std::string item;
    while (std::getline(ss, item, ':')) {
        if (item.empty() || std::strchr("!-+@", item[0])) continue;
        if (item.find('-') == std::string::npos && item.find('_') == std::string::npos) {
            continue;  // a keyword: ALL, HIGH, ECDHE...
        }
        unsigned char s0 = 0, s1 = 0;
        int flags = 0;
        if (wolfSSL_get_cipher_suite_from_name(item.c_str(), &s0, &s1, &flags) != 0) return false;
    }
    return true;
}

// wolfSSL_CTX_check_private_key compares only the key type for ECDSA keys (RSA: the modulus):
// compare the public point of the key with the leaf certificate's.
bool ecc_key_matches_certificate(const std::string& cert_file, const std::string& key_file) {
    std::ifstream in(key_file, std::ios::binary);
    std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<unsigned char> der(pem.size() + 1);
    int der_len = wc_KeyPemToDer(reinterpret_cast<const unsigned char*>(pem.data()),
                                 static_cast<int>(pem.size()), der.data(),
                                 static_cast<int>(der.size()), nullptr);
    if (der_len <= 0) return true;  // not for us to judge: wolfSSL loaded it
    ecc_key priv, pub;
    wc_ecc_init(&priv);
    wc_ecc_init(&pub);
    unsigned char a[160], b[160];
    word32 a_len = sizeof a, b_len = sizeof b, idx = 0;
    bool result = true;
    if (wc_EccPrivateKeyDecode(der.data(), &idx, &priv, static_cast<word32>(der_len)) == 0) {
        std::unique_ptr<WOLFSSL_X509, X509Free> leaf(
            wolfSSL_X509_load_certificate_file(cert_file.c_str(), WOLFSSL_FILETYPE_PEM));
        unsigned char spki[512];
        int spki_len = sizeof spki;
        word32 spki_idx = 0;
        result = leaf &&
                 wolfSSL_X509_get_pubkey_buffer(leaf.get(), spki, &spki_len) == WOLFSSL_SUCCESS &&
                 wc_EccPublicKeyDecode(spki, &spki_idx, &pub, static_cast<word32>(spki_len)) == 0 &&
                 wc_ecc_make_pub(&priv, nullptr) == 0 &&
                 wc_ecc_export_x963(&priv, a, &a_len) == 0 &&
                 wc_ecc_export_x963(&pub, b, &b_len) == 0 && a_len == b_len &&
                 std::memcmp(a, b, a_len) == 0;
    }
    wc_ecc_free(&priv);
    wc_ecc_free(&pub);
    return result;
}

class WolfsslContext final : public Context {
  public:
    static std::unique_ptr<Context> create(const Options& o, std::string& error) {
        auto self = std::unique_ptr<WolfsslContext>(new WolfsslContext(o.role));
        // The flexible method negotiates 1.2 and 1.3; the version range narrows it.
        WOLFSSL_CTX* ctx = wolfSSL_CTX_new(o.role == Role::server ? wolfSSLv23_server_method()
                                                                  : wolfSSLv23_client_method());
        if (!ctx) {
            error = "cannot create TLS context";
            return nullptr;
        }
        self->ctx_.reset(ctx);
        auto state = std::make_shared<ContextState>();
        state->verify = o.verify;
        state->min_version = o.min_version;
        state->max_version = o.max_version;
        auto failed = [&](const std::string& what) {
            error = what;
            return nullptr;
        };

        if (o.min_version > o.max_version) {
            return failed("min_version is above max_version");
        }
        if (wolfSSL_CTX_SetMinVersion(
                ctx, o.min_version == Version::tls1_3 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2) !=
                WOLFSSL_SUCCESS ||
            wolfSSL_CTX_set_max_proto_version(
                ctx, o.max_version == Version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION) !=
                WOLFSSL_SUCCESS) {
            return failed("cannot set TLS versions");
        }
        if (!o.ciphers.empty()) {
            // Keep the TLS 1.3 suites unless the list names some itself.
            std::string list = o.ciphers;
            if (list.find("TLS13-") == std::string::npos &&
                list.find("TLS_") == std::string::npos) {
                list = std::string(kTls13Suites) + ":" + list;
            }
            if (!valid_cipher_list(o.ciphers) ||
                wolfSSL_CTX_set_cipher_list(ctx, list.c_str()) != WOLFSSL_SUCCESS) {
                return failed("invalid cipher list \"" + o.ciphers + "\"");
            }
        }
        const std::string groups = o.groups.empty() ? kDefaultGroups : o.groups;
        if (!parse_groups(groups, state->groups) ||
            wolfSSL_CTX_set_groups(ctx, state->groups.data(),
                                   static_cast<int>(state->groups.size())) != WOLFSSL_SUCCESS) {
            return failed("invalid group list \"" + groups + "\"");
        }

        if (o.role == Role::server && o.cert_file.empty()) {
            return failed("a server needs a certificate (cert_file)");
        }
        if (!o.cert_file.empty()) {
            const std::string& key = o.key_file.empty() ? o.cert_file : o.key_file;
            if (wolfSSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) !=
                WOLFSSL_SUCCESS) {
                return failed("cannot load certificate chain \"" + o.cert_file + "\"");
            }
            if (wolfSSL_CTX_use_PrivateKey_file(ctx, key.c_str(), WOLFSSL_FILETYPE_PEM) !=
                WOLFSSL_SUCCESS) {
                return failed("cannot load private key \"" + key + "\"");
            }
            if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS ||
                !ecc_key_matches_certificate(o.cert_file, key)) {
                return failed("private key \"" + key + "\" does not match the certificate");
            }
            if (!self->load_certificates(o.cert_file)) {
                return failed("cannot read certificates \"" + o.cert_file + "\"");
            }
        }
        if (o.verify != Verify::none && o.ca_file.empty()) {
            return failed("certificate verification needs a CA file (ca_file)");
        }
        if (!o.ca_file.empty() &&
            wolfSSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != WOLFSSL_SUCCESS) {
            return failed("cannot load CA file \"" + o.ca_file + "\"");
        }

        for (const std::string& p : o.alpn) {
            if (p.empty() || p.size() > 255 || p.find(',') != std::string::npos) {
                return failed("invalid ALPN protocol \"" + p + "\"");
            }
            if (!state->alpn.empty()) state->alpn += ',';
            state->alpn += p;
        }

        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
        if (o.role == Role::server) {
            if (o.verify != Verify::none) {
                wolfSSL_CTX_set_verify(
                    ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify);
            } else {
                wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, nullptr);
            }
        } else {
            // wolfSSL clients verify by default: sslmode=require must say NONE.
            if (o.verify == Verify::none) {
                wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, nullptr);
            } else {
                wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, verify);
            }
        }
        self->state_ = std::move(state);
        return self;
    }

    std::unique_ptr<Engine> new_engine(const EngineOptions& opts) override {
        return std::make_unique<WolfsslEngine>(ctx_.get(), state_, role_, opts);
    }
    const std::vector<CertificateInfo>& certificates() const override { return certificates_; }

  private:
    explicit WolfsslContext(Role role) : role_(role) {}

    bool load_certificates(const std::string& file) {
        std::ifstream in(file, std::ios::binary);
        if (!in) return false;
        std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
        static constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
        for (std::size_t pos = 0; (pos = pem.find(kBegin, pos)) != std::string::npos;) {
            std::size_t end = pem.find(kEnd, pos);
            if (end == std::string::npos) break;
            end += kEnd.size();
            std::unique_ptr<WOLFSSL_X509, X509Free> cert(wolfSSL_X509_load_certificate_buffer(
                reinterpret_cast<const unsigned char*>(pem.data() + pos),
                static_cast<int>(end - pos), WOLFSSL_FILETYPE_PEM));
            if (!cert) return false;
            certificates_.push_back({x509_name_line(wolfSSL_X509_get_subject_name(cert.get())),
                                     asn1_time_unix(wolfSSL_X509_get_notAfter(cert.get())),
                                     x509_sha256(cert.get())});
            pos = end;
        }
        return !certificates_.empty();
    }

    Role role_;
    std::unique_ptr<WOLFSSL_CTX, CtxFree> ctx_;
    std::shared_ptr<const ContextState> state_;
    std::vector<CertificateInfo> certificates_;
};

// ---- 6) certificate generation ----
// With wolfCrypt's certificate API (WOLFSSL_CERT_GEN in Debian's build).
struct KeyPair {
    bool rsa = false;
    bool ready = false;
    ecc_key ecc;
    RsaKey rsa_key;
    RsaKey* rsa_ptr() { return rsa ? &rsa_key : nullptr; }
    ecc_key* ecc_ptr() { return rsa ? nullptr : &ecc; }
    ~KeyPair() {
        if (ready && rsa) wc_FreeRsaKey(&rsa_key);
        if (ready && !rsa) wc_ecc_free(&ecc);
    }
};

std::unique_ptr<KeyPair> generate_key(const std::string& type, WC_RNG& rng, std::string& error) {
    auto key = std::make_unique<KeyPair>();
    if (type == "ecdsa-p256") {
        key->ready = wc_ecc_init(&key->ecc) == 0;
        if (!key->ready || wc_ecc_make_key_ex(&rng, 32, &key->ecc, ECC_SECP256R1) != 0) {
            error = "cannot generate an ECDSA P-256 key";
            return nullptr;
        }
    } else if (type == "rsa-2048") {
        key->rsa = true;
        key->ready = wc_InitRsaKey(&key->rsa_key, nullptr) == 0;
        if (!key->ready || wc_MakeRsaKey(&key->rsa_key, 2048, WC_RSA_EXPONENT, &rng) != 0 ||
            wc_RsaSetRNG(&key->rsa_key, &rng) != 0) {
            error = "cannot generate an RSA 2048 key";
            return nullptr;
        }
    } else {
        error = "unknown key type \"" + type + "\" (ecdsa-p256 or rsa-2048)";
        return nullptr;
    }
    return key;
}

// DER length octets.
void append_der_length(std::vector<std::uint8_t>& out, std::size_t len) {
    if (len < 0x80) {
        out.push_back(static_cast<std::uint8_t>(len));
    } else if (len < 0x100) {
        out.insert(out.end(), {0x81, static_cast<std::uint8_t>(len)});
    } else {
        out.insert(out.end(), {0x82, static_cast<std::uint8_t>(len >> 8),
                               static_cast<std::uint8_t>(len & 0xff)});
    }
}

// subjectAltName's GeneralNames: dNSName [2] and iPAddress [7].
std::vector<std::uint8_t> alt_names_der(const std::vector<std::string>& hostnames) {
    std::vector<std::uint8_t> names;
    for (const std::string& h : hostnames) {
        unsigned char ip[16];
        if (inet_pton(AF_INET, h.c_str(), ip) == 1 || inet_pton(AF_INET6, h.c_str(), ip) == 1) {
            std::size_t len = h.find(':') == std::string::npos ? 4 : 16;
            names.push_back(0x87);
            append_der_length(names, len);
            names.insert(names.end(), ip, ip + len);
        } else {
            names.push_back(0x82);
            append_der_length(names, h.size());
            names.insert(names.end(), h.begin(), h.end());
        }
    }
    std::vector<std::uint8_t> seq{0x30};
    append_der_length(seq, names.size());
    seq.insert(seq.end(), names.begin(), names.end());
    return seq;
}

// issuer_der empty: self-signed (the CA). The DER certificate, or empty on failure.
std::vector<std::uint8_t> make_certificate(KeyPair& key, const std::string& cn,
                                           const std::vector<std::uint8_t>& issuer_der,
                                           KeyPair& issuer_key, int days, const char* usage,
                                           const char* ext_usage,
                                           const std::vector<std::uint8_t>& alt_names,
                                           WC_RNG& rng) {
    auto cert = std::make_unique<Cert>();
    std::vector<std::uint8_t> der(16 * 1024);
    if (wc_InitCert(cert.get()) != 0 || cn.size() >= CTC_NAME_SIZE ||
        alt_names.size() > sizeof cert->altNames) {
        return {};
    }
    cert->version = 2;  // X.509 v3
    cert->daysValid = days;
    cert->sigType = issuer_key.rsa ? CTC_SHA256wRSA : CTC_SHA256wECDSA;
    std::memcpy(cert->subject.commonName, cn.data(), cn.size());
    cert->subject.commonNameEnc = CTC_UTF8;
    if (issuer_der.empty()) {
        cert->isCA = 1;
        cert->selfSigned = 1;
    } else if (wc_SetIssuerBuffer(cert.get(), issuer_der.data(),
                                  static_cast<int>(issuer_der.size())) != 0) {
        return {};
    }
    if (!alt_names.empty()) {
        std::memcpy(cert->altNames, alt_names.data(), alt_names.size());
        cert->altNamesSz = static_cast<int>(alt_names.size());
    }
    if (wc_SetSubjectKeyIdFromPublicKey(cert.get(), key.rsa_ptr(), key.ecc_ptr()) != 0 ||
        wc_SetAuthKeyIdFromPublicKey(cert.get(), issuer_key.rsa_ptr(), issuer_key.ecc_ptr()) != 0 ||
        wc_SetKeyUsage(cert.get(), usage) != 0 ||
        (ext_usage && wc_SetExtKeyUsage(cert.get(), ext_usage) != 0)) {
        return {};
    }
    int body = wc_MakeCert(cert.get(), der.data(), static_cast<word32>(der.size()), key.rsa_ptr(),
                           key.ecc_ptr(), &rng);
    if (body <= 0) return {};
    int len = wc_SignCert(body, cert->sigType, der.data(), static_cast<word32>(der.size()),
                          issuer_key.rsa_ptr(), issuer_key.ecc_ptr(), &rng);
    if (len <= 0) return {};
    der.resize(static_cast<std::size_t>(len));
    return der;
}

std::string to_pem(const std::vector<std::uint8_t>& der, int type) {
    std::string pem(der.size() * 2 + 128, '\0');
    int len = der.empty() ? -1
                          : wc_DerToPem(der.data(), static_cast<word32>(der.size()),
                                        reinterpret_cast<byte*>(pem.data()),
                                        static_cast<word32>(pem.size()), type);
    pem.resize(len > 0 ? static_cast<std::size_t>(len) : 0);
    return pem;
}

std::string key_pem(KeyPair& key) {
    std::vector<std::uint8_t> der(8 * 1024);
    int len = key.rsa ? wc_RsaKeyToDer(&key.rsa_key, der.data(), static_cast<word32>(der.size()))
                      : wc_EccKeyToDer(&key.ecc, der.data(), static_cast<word32>(der.size()));
    if (len <= 0) return {};
    der.resize(static_cast<std::size_t>(len));
    std::string pem = to_pem(der, key.rsa ? PRIVATEKEY_TYPE : ECC_PRIVATEKEY_TYPE);
    std::fill(der.begin(), der.end(), 0);
    return pem;
}

bool write_pem(const std::filesystem::path& path, mode_t mode, const std::string& pem,
               std::string& error) {
    if (pem.empty()) {
        error = "cannot encode " + path.string();
        return false;
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        error = "cannot create " + path.string() + ": " + std::strerror(errno);
        return false;
    }
    bool ok = ::fchmod(fd, mode) == 0;
    const char* data = pem.data();
    std::size_t len = pem.size();
    while (ok && len > 0) {
        ssize_t n = ::write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) {
            data += n;
            len -= static_cast<std::size_t>(n);
        }
    }
    if (::close(fd) != 0) ok = false;
    if (!ok) error = "cannot write " + path.string() + ": " + std::strerror(errno);
    return ok;
}

bool valid_dns_name(const std::string& name) {
    return !name.empty() && name.size() <= 253 &&
           std::all_of(name.begin(), name.end(), [](unsigned char c) {
               return std::isalnum(c) || c == '-' || c == '.' || c == '*' || c == '_';
           });
}

struct Rng {
    WC_RNG rng;
    bool ready = wc_InitRng(&rng) == 0;
    ~Rng() {
        if (ready) wc_FreeRng(&rng);
    }
};

// ---- 7) the backend ----
class WolfsslBackend final : public Backend {
  public:
    WolfsslBackend() { wolfSSL_Init(); }
    std::string_view name() const override { return "wolfssl"; }
    std::string version() const override { return std::string("wolfSSL ") + wolfSSL_lib_version(); }
    std::uint32_t capabilities() const override {
        return cap_tls1_2 | cap_tls1_3 | cap_alpn | cap_client_certificates |
               cap_generate_certificates | cap_cipher_list;
    }
    std::unique_ptr<Context> new_context(const Options& opts, std::string& error) override {
        return WolfsslContext::create(opts, error);
    }
    bool generate_certificates(const CertificateRequest& req, std::string& error) override {
        if (req.hostnames.empty()) {
            error = "no host names for the server certificate";
            return false;
        }
        if (req.days <= 0) {
            error = "validity must be at least one day";
            return false;
        }
        for (const std::string& h : req.hostnames) {
            if (!is_ip_literal(h) && !valid_dns_name(h)) {
                error = "invalid host name \"" + h + "\"";
                return false;
            }
        }
        std::error_code ec;
        std::filesystem::create_directories(req.dir, ec);
        if (ec) {
            error = "cannot create " + req.dir + ": " + ec.message();
            return false;
        }
        auto rng = std::make_unique<Rng>();
        if (!rng->ready) {
            error = "cannot seed the random number generator";
            return false;
        }
        auto ca_key = generate_key(req.key_type, rng->rng, error);
        auto key = ca_key ? generate_key(req.key_type, rng->rng, error) : nullptr;
        if (!key) return false;
        auto ca = make_certificate(*ca_key, "pggw snake-oil CA", {}, *ca_key, req.days,
                                   "keyCertSign,cRLSign", nullptr, {}, rng->rng);
        const char* usage =
            req.key_type == "rsa-2048" ? "digitalSignature,keyEncipherment" : "digitalSignature";
        auto cert =
            ca.empty() ? ca
                       : make_certificate(*key, req.hostnames.front(), ca, *ca_key, req.days, usage,
                                          "serverAuth", alt_names_der(req.hostnames), rng->rng);
        if (cert.empty()) {
            error = "cannot make certificates";
            return false;
        }
        const std::filesystem::path dir(req.dir);
        return write_pem(dir / "ca.key", 0600, key_pem(*ca_key), error) &&
               write_pem(dir / "ca.crt", 0644, to_pem(ca, CERT_TYPE), error) &&
               write_pem(dir / "server.key", 0600, key_pem(*key), error) &&
               write_pem(dir / "server.crt", 0644, to_pem(cert, CERT_TYPE), error);
    }
};

}  // namespace
}  // namespace pggw::tls

// ---- 8) the entry point ----
extern "C" __attribute__((visibility("default"))) pggw::tls::Backend* pggw_tls_backend_v1() {
    static pggw::tls::WolfsslBackend backend;
    return &backend;
}
