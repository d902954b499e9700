// The wolfSSL backend (libpggw_tls_wolfssl.so), Debian's libwolfssl 5.5.4.
//
// Same shape and local names as boringssl_backend.cpp, so that `diff` of the two files shows
// the library calls: map_failure, the Engine, callbacks, the Context, certificate helpers, the
// Backend and the extern "C" entry point.
//
// Sans-IO through wolfSSL's native I/O callbacks (wolfSSL_SSLSetIORecv/IOSend): the recv
// callback reads the engine's input buffer and answers WANT_READ when it is empty; the send
// callback appends to the engine's output buffer. No OpenSSL-compat BIO layer, no sockets.
// wolfssl/options.h is force-included by CMake: it fixes the ABI of every header below.
#include <arpa/inet.h>
#include <sys/stat.h>

#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

#include "tls_backends/tls.hpp"

namespace pggw::tls {
namespace {

// One TLS record of ciphertext at most (2^14 + 256 + 5), rounded up.
constexpr std::size_t kInputSize = 17 * 1024;
constexpr char kTls13Suites[] =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256";

// TLS alert descriptions (RFC 8446 section 6).
constexpr int kAlertHandshakeFailure = 40;
constexpr int kAlertBadCertificate = 42;
constexpr int kAlertUnsupportedCertificate = 43;
constexpr int kAlertCertificateRevoked = 44;
constexpr int kAlertCertificateExpired = 45;
constexpr int kAlertCertificateUnknown = 46;
constexpr int kAlertUnknownCa = 48;
constexpr int kAlertProtocolVersion = 70;
constexpr int kAlertInsufficientSecurity = 71;
constexpr int kAlertCertificateRequired = 116;
constexpr int kAlertUnrecognizedName = 112;
constexpr int kAlertNoApplicationProtocol = 120;

struct WolfsslCtxFree {
    void operator()(WOLFSSL_CTX* c) const { wolfSSL_CTX_free(c); }
};
struct WolfsslFree {
    void operator()(WOLFSSL* s) const { wolfSSL_free(s); }
};
struct X509Free {
    void operator()(WOLFSSL_X509* x) const { wolfSSL_X509_free(x); }
};
using CtxPtr = std::unique_ptr<WOLFSSL_CTX, WolfsslCtxFree>;
using SslPtr = std::unique_ptr<WOLFSSL, WolfsslFree>;
using X509Ptr = std::unique_ptr<WOLFSSL_X509, X509Free>;

std::string error_string(int code) {
    char buf[WOLFSSL_MAX_ERROR_SZ] = {};
    wolfSSL_ERR_error_string_n(static_cast<unsigned long>(code), buf, sizeof buf);
    return std::string(buf) + " (" + std::to_string(code) + ")";
}

// Why a handshake or record operation failed, from what we know at that point.
struct FailureContext {
    int error;                  // ssl->error as wolfSSL_get_error() reports it
    int verify_error;           // first certificate error the verify callback saw, 0 if none
    int alert_received;         // description of the peer's fatal alert, -1 if none
    int alert_sent;             // description of the alert we sent, -1 if none
    bool transport_eof;         // the recv callback reported the end of the peer's stream
    bool first_record_not_tls;  // the first bytes received cannot start a TLS record
    bool in_client_hello;       // server: failed on the ClientHello, before sending anything
};

Failure failure_from_alert(int alert) {
    switch (alert) {
        case kAlertUnknownCa:
            return Failure::unknown_ca;
        case kAlertBadCertificate:
        case kAlertUnsupportedCertificate:
        case kAlertCertificateRevoked:
        case kAlertCertificateUnknown:
        case kAlertCertificateRequired:
            return Failure::bad_certificate;
        case kAlertCertificateExpired:
            return Failure::certificate_expired;
        case kAlertNoApplicationProtocol:
            return Failure::no_alpn;
        case kAlertProtocolVersion:
            return Failure::protocol_version;
        case kAlertHandshakeFailure:
        case kAlertInsufficientSecurity:
        case kAlertUnrecognizedName:
            return Failure::handshake_failure;
        default:
            return Failure::other;
    }
}

Failure failure_from_error(int error) {
    switch (error) {
        case ASN_NO_SIGNER_E:
        case ASN_SELF_SIGNED_E:
            return Failure::unknown_ca;
        case ASN_AFTER_DATE_E:
        case ASN_BEFORE_DATE_E:
            return Failure::certificate_expired;
        case DOMAIN_NAME_MISMATCH:
        case IPADDR_MISMATCH:
            return Failure::hostname_mismatch;
        case NO_PEER_CERT:
        case ASN_PARSE_E:
        case ASN_SIG_CONFIRM_E:
        case ASN_SIG_OID_E:
        case ASN_SIG_KEY_E:
        case ASN_SIG_HASH_E:
        case VERIFY_CERT_ERROR:
        case NO_CERT_ERROR:
            return Failure::bad_certificate;
        case UNKNOWN_ALPN_PROTOCOL_NAME_E:
            return Failure::no_alpn;
        case VERSION_ERROR:
            return Failure::protocol_version;
        case MATCH_SUITE_ERROR:
        case ECC_CURVE_ERROR:
        case ECC_PEERKEY_ERROR:
        case PEER_KEY_ERROR:
        case EXT_MISSING:
        case BAD_KEY_SHARE_DATA:
        case INVALID_PARAMETER:
            return Failure::handshake_failure;
        case SOCKET_PEER_CLOSED_E:
        case SOCKET_ERROR_E:
            return Failure::eof;
        default:
            return Failure::other;
    }
}

// The verify callback sees OpenSSL-style X509_V_ERR_* codes (wolfSSL's compat layer converts
// its ASN errors), except for the name checks, which come as wolfSSL's own negative codes.
Failure failure_from_x509_error(int error) {
    switch (error) {
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_CERT_UNTRUSTED:
            return Failure::unknown_ca;
        case X509_V_ERR_CERT_NOT_YET_VALID:
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
        case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
            return Failure::certificate_expired;
        default:
            return Failure::bad_certificate;
    }
}

// The one place where wolfSSL's errors become a Failure.
Failure map_failure(const FailureContext& c, std::string& reason) {
    Failure f = Failure::other;
    if (c.first_record_not_tls) {
        f = Failure::not_tls;
        reason = "peer did not send a TLS record (";
        reason += error_string(c.error) + ")";
        return f;
    }
    if (c.verify_error != 0) {
        f = c.verify_error > 0 ? failure_from_x509_error(c.verify_error)
                               : failure_from_error(c.verify_error);
        if (f == Failure::other || f == Failure::eof) f = Failure::bad_certificate;
        reason = "certificate verify failed: ";
        reason += c.verify_error > 0 ? wolfSSL_X509_verify_cert_error_string(c.verify_error)
                                     : error_string(c.verify_error);
        return f;
    }
    if (c.alert_received >= 0 && c.error == FATAL_ERROR) {
        f = failure_from_alert(c.alert_received);
        if (f == Failure::other) f = Failure::handshake_failure;
        reason = "peer sent fatal alert " + std::to_string(c.alert_received);
        return f;
    }
    if (c.transport_eof && (c.error == SOCKET_PEER_CLOSED_E || c.error == SOCKET_ERROR_E ||
                            c.error == WOLFSSL_ERROR_SYSCALL)) {
        reason = "peer closed the connection without close_notify";
        return Failure::eof;
    }
    f = failure_from_error(c.error);
    if (f == Failure::other && c.alert_sent >= 0) f = failure_from_alert(c.alert_sent);
    // wolfSSL answers some ClientHellos it cannot serve (no common group) with BAD_FUNC_ARG.
    if (f == Failure::other && c.in_client_hello) f = Failure::handshake_failure;
    reason = error_string(c.error);
    if (c.alert_sent >= 0) reason += ", sent alert " + std::to_string(c.alert_sent);
    return f;
}

bool is_ip_literal(const std::string& host) {
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// "CN=localhost,O=pggw": RFC 2253 order (last RDN first), as OpenSSL's XN_FLAG_RFC2253 prints.
std::string name_to_string(WOLFSSL_X509_NAME* name) {
    std::string out;
    if (!name) return out;
    int n = wolfSSL_X509_NAME_entry_count(name);
    for (int i = n - 1; i >= 0; --i) {
        WOLFSSL_X509_NAME_ENTRY* e = wolfSSL_X509_NAME_get_entry(name, i);
        if (!e) continue;
        const char* sn =
            wolfSSL_OBJ_nid2sn(wolfSSL_OBJ_obj2nid(wolfSSL_X509_NAME_ENTRY_get_object(e)));
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

std::string common_name(WOLFSSL_X509_NAME* name) {
    char buf[256] = {};
    if (!name) return {};
    int n = wolfSSL_X509_NAME_get_text_by_NID(name, NID_commonName, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string{};
}

std::int64_t asn1_time_to_unix(const WOLFSSL_ASN1_TIME* t) {
    struct tm tm {};
    if (!t || wolfSSL_ASN1_TIME_to_tm(t, &tm) != WOLFSSL_SUCCESS) return 0;
    return static_cast<std::int64_t>(timegm(&tm));
}

class WolfsslContext;

class WolfsslEngine final : public Engine {
  public:
    WolfsslEngine(SslPtr ssl, Role role, const EngineOptions& opts)
        : ssl_(std::move(ssl)),
          role_(role),
          require_alpn_(opts.require_alpn),
          in_(new std::uint8_t[kInputSize]) {
        wolfSSL_SSLSetIORecv(ssl_.get(), &WolfsslEngine::recv_cb);
        wolfSSL_SSLSetIOSend(ssl_.get(), &WolfsslEngine::send_cb);
        wolfSSL_SetIOReadCtx(ssl_.get(), this);
        wolfSSL_SetIOWriteCtx(ssl_.get(), this);
        wolfSSL_SetCertCbCtx(ssl_.get(), this);
    }

    std::span<std::uint8_t> input_space() override {
        if (in_begin_ == in_end_) {
            in_begin_ = in_end_ = 0;
        } else if (in_end_ == kInputSize && in_begin_ > 0) {
            std::memmove(in_.get(), in_.get() + in_begin_, in_end_ - in_begin_);
            in_end_ -= in_begin_;
            in_begin_ = 0;
        }
        return {in_.get() + in_end_, kInputSize - in_end_};
    }
    void commit_input(std::size_t n) override {
        if (!seen_input_ && n > 0) {
            seen_input_ = true;
            first_byte_ = in_[in_end_];
        }
        in_end_ += std::min(n, kInputSize - in_end_);
    }
    void input_eof() { eof_ = true; }

    std::span<const std::uint8_t> output() const override {
        return {out_.data() + out_begin_, out_.size() - out_begin_};
    }
    void consume_output(std::size_t n) override {
        out_begin_ += std::min(n, out_.size() - out_begin_);
        if (out_begin_ == out_.size()) {
            out_.clear();  // keeps its capacity: no allocation per record
            out_begin_ = 0;
        }
    }

    Result handshake() override {
        if (failed_) return Result::error;
        if (done_) return Result::ok;
        int ret = role_ == Role::server ? wolfSSL_accept(ssl_.get()) : wolfSSL_connect(ssl_.get());
        if (ret != WOLFSSL_SUCCESS) return fail_or_want(ret);
        return finish_handshake();
    }

    Result read(std::span<std::uint8_t> buf, std::size_t& n) override {
        n = 0;
        if (failed_) return Result::error;
        if (peer_closed_) return Result::closed;
        if (buf.empty()) return Result::ok;
        int len = static_cast<int>(std::min<std::size_t>(buf.size(), 1u << 30));
        int ret = wolfSSL_read(ssl_.get(), buf.data(), len);
        if (ret > 0) {
            n = static_cast<std::size_t>(ret);
            return Result::ok;
        }
        if (wolfSSL_get_error(ssl_.get(), ret) == WOLFSSL_ERROR_ZERO_RETURN) {
            peer_closed_ = true;
            return Result::closed;
        }
        return fail_or_want(ret);
    }

    Result write(std::span<const std::uint8_t> buf) override {
        if (failed_) return Result::error;
        while (!buf.empty()) {
            int len = static_cast<int>(std::min<std::size_t>(buf.size(), 1u << 30));
            int ret = wolfSSL_write(ssl_.get(), buf.data(), len);
            if (ret <= 0) return fail_or_want(ret);
            buf = buf.subspan(static_cast<std::size_t>(ret));
        }
        return Result::ok;
    }

    Result shutdown() override {
        if (failed_) return Result::error;
        if (shutdown_sent_) return Result::ok;
        int ret = wolfSSL_shutdown(ssl_.get());
        if (ret == WOLFSSL_SUCCESS || ret == WOLFSSL_SHUTDOWN_NOT_DONE) {
            shutdown_sent_ = true;
            return Result::ok;
        }
        return fail_or_want(ret);
    }

    const HandshakeInfo& info() const override { return info_; }
    Failure failure() const override { return failure_; }
    const std::string& failure_reason() const override { return failure_reason_; }

    // Called on the server once the ClientHello's extensions are parsed: false refuses it.
    bool accept_client_hello() {
        char* proto = nullptr;
        unsigned short len = 0;
        if (require_alpn_ &&
            wolfSSL_ALPN_GetProtocol(ssl_.get(), &proto, &len) != WOLFSSL_SUCCESS) {
            alpn_refused_ = true;
            return false;
        }
        return true;
    }

    // Called by the verify callback with the first certificate error of the chain.
    void note_verify_error(int error) {
        if (verify_error_ == 0) verify_error_ = error;
    }

  private:
    static int recv_cb(WOLFSSL*, char* buf, int sz, void* ctx) {
        auto* self = static_cast<WolfsslEngine*>(ctx);
        std::size_t avail = self->in_end_ - self->in_begin_;
        if (avail == 0) {
            return self->eof_ ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
        }
        std::size_t n = std::min(avail, static_cast<std::size_t>(sz));
        std::memcpy(buf, self->in_.get() + self->in_begin_, n);
        self->in_begin_ += n;
        return static_cast<int>(n);
    }
    static int send_cb(WOLFSSL*, char* buf, int sz, void* ctx) {
        auto* self = static_cast<WolfsslEngine*>(ctx);
        self->out_.insert(self->out_.end(), buf, buf + sz);
        self->sent_any_ = true;
        return sz;
    }

    Result fail_or_want(int ret) {
        int err = wolfSSL_get_error(ssl_.get(), ret);
        if (err == WOLFSSL_ERROR_WANT_READ) {
            if (eof_ && in_begin_ == in_end_)
                err = SOCKET_PEER_CLOSED_E;
            else
                return Result::want_input;
        }
        if (err == WOLFSSL_ERROR_WANT_WRITE) return Result::want_input;  // never: send_cb takes all
        return fail(err);
    }

    Result fail(int err) {
        WOLFSSL_ALERT_HISTORY h{};
        wolfSSL_get_alert_history(ssl_.get(), &h);
        FailureContext c{};
        c.error = err;
        c.verify_error = verify_error_;
        c.alert_received = h.last_rx.level == alert_fatal ? h.last_rx.code : -1;
        c.alert_sent = h.last_tx.level == alert_fatal ? h.last_tx.code : -1;
        c.transport_eof = eof_;
        // A TLS stream starts with a handshake (22) or alert (21) record; anything else in the
        // first byte (an HTTP request, a StartupMessage...) is not TLS at all.
        c.first_record_not_tls = !done_ && seen_input_ && first_byte_ != 22 && first_byte_ != 21;
        // Before the server's first flight, or after a HelloRetryRequest (wolfSSL reports a
        // second ClientHello without a usable group as BAD_FUNC_ARG).
        c.in_client_hello = role_ == Role::server && (!sent_any_ || err == BAD_FUNC_ARG);
        failure_ = map_failure(c, failure_reason_);
        if (alpn_refused_) {
            failure_ = Failure::no_alpn;
            failure_reason_ = "client offered no ALPN protocol (direct TLS requires one)";
        }
        // Where wolfSSL gives up on a hello without a word (no common version or group), tell
        // the peer, as BoringSSL does: a plaintext fatal alert is still valid at that point.
        if (!done_ && c.alert_sent < 0 && c.alert_received < 0 && !c.first_record_not_tls &&
            (failure_ == Failure::protocol_version || failure_ == Failure::handshake_failure)) {
            std::uint8_t desc = failure_ == Failure::protocol_version ? kAlertProtocolVersion
                                                                      : kAlertHandshakeFailure;
            const std::uint8_t alert[] = {21, 3, 3, 0, 2, 2 /* fatal */, desc};
            out_.insert(out_.end(), std::begin(alert), std::end(alert));
        }
        wolfSSL_ERR_clear_error();
        failed_ = true;
        return Result::error;
    }

    Result finish_handshake() {
        done_ = true;
        WOLFSSL* ssl = ssl_.get();
        info_.version = wolfSSL_get_version(ssl);
        int suite = wolfSSL_get_current_cipher_suite(ssl);
        const char* iana =
            wolfSSL_get_cipher_name_iana_from_suite(static_cast<unsigned char>((suite >> 8) & 0xff),
                                                    static_cast<unsigned char>(suite & 0xff));
        info_.cipher = iana ? iana : "";
        char* proto = nullptr;
        unsigned short proto_len = 0;
        if (wolfSSL_ALPN_GetProtocol(ssl, &proto, &proto_len) == WOLFSSL_SUCCESS && proto) {
            info_.alpn.assign(proto, proto_len);
        }
        if (role_ == Role::server) {
            void* sni = nullptr;
            unsigned short sni_len = wolfSSL_SNI_GetRequest(ssl, WOLFSSL_SNI_HOST_NAME, &sni);
            if (sni && sni_len > 0) info_.sni.assign(static_cast<const char*>(sni), sni_len);
        }
        if (X509Ptr peer{wolfSSL_get_peer_certificate(ssl)}) {
            WOLFSSL_X509_NAME* subject = wolfSSL_X509_get_subject_name(peer.get());
            info_.peer_certificate = true;
            info_.peer_common_name = common_name(subject);
            info_.peer_subject = name_to_string(subject);
        }
        if (role_ == Role::server && require_alpn_ && info_.alpn.empty()) {
            failed_ = true;
            failure_ = Failure::no_alpn;
            failure_reason_ =
                "client offered no ALPN protocol (direct TLS requires \"postgresql\")";
            return Result::error;
        }
        return Result::ok;
    }

    SslPtr ssl_;
    Role role_;
    bool require_alpn_;
    std::unique_ptr<std::uint8_t[]> in_;
    std::size_t in_begin_ = 0;
    std::size_t in_end_ = 0;
    std::vector<std::uint8_t> out_;
    std::size_t out_begin_ = 0;
    bool eof_ = false;
    bool seen_input_ = false;
    bool sent_any_ = false;
    bool alpn_refused_ = false;
    std::uint8_t first_byte_ = 0;
    bool done_ = false;
    bool failed_ = false;
    bool peer_closed_ = false;
    bool shutdown_sent_ = false;
    int verify_error_ = 0;
    HandshakeInfo info_;
    Failure failure_ = Failure::none;
    std::string failure_reason_;
};

// ---- callbacks ----

// The server's ALPN choice is wolfSSL_UseALPN(..., WOLFSSL_ALPN_FAILED_ON_MISMATCH): wolfSSL
// itself picks "postgresql" and answers no_application_protocol on a mismatch. A client that
// offers no ALPN at all is refused here, where wolfSSL calls its SNI hook after parsing the
// ClientHello's extensions, with the same alert.
int alpn_select(WOLFSSL* ssl, int* alert, void*) {
    auto* engine = static_cast<WolfsslEngine*>(wolfSSL_GetIOReadCtx(ssl));
    if (engine && !engine->accept_client_hello()) {
        *alert = kAlertNoApplicationProtocol;
        return fatal_return;
    }
    return 0;
}

// Records the first certificate error for map_failure; never overrides wolfSSL's verdict.
int verify(int preverify_ok, WOLFSSL_X509_STORE_CTX* store) {
    if (!preverify_ok && store && store->userCtx) {
        static_cast<WolfsslEngine*>(store->userCtx)->note_verify_error(store->error);
    }
    return preverify_ok;
}

// ---- the context ----

bool parse_groups(const std::string& list, std::vector<int>& out, std::string& error) {
    static constexpr struct {
        const char* name;
        int group;
    } kGroups[] = {
        {"X25519", WOLFSSL_ECC_X25519},       {"x25519", WOLFSSL_ECC_X25519},
        {"P-256", WOLFSSL_ECC_SECP256R1},     {"prime256v1", WOLFSSL_ECC_SECP256R1},
        {"secp256r1", WOLFSSL_ECC_SECP256R1}, {"P-384", WOLFSSL_ECC_SECP384R1},
        {"secp384r1", WOLFSSL_ECC_SECP384R1}, {"P-521", WOLFSSL_ECC_SECP521R1},
        {"secp521r1", WOLFSSL_ECC_SECP521R1}, {"X448", WOLFSSL_ECC_X448},
        {"x448", WOLFSSL_ECC_X448},
    };
    std::stringstream ss(list.empty() ? std::string("X25519:P-256") : list);
    std::string item;
    while (std::getline(ss, item, ':')) {
        auto it = std::find_if(std::begin(kGroups), std::end(kGroups),
                               [&](const auto& g) { return item == g.name; });
        if (it == std::end(kGroups)) {
            error = "unknown TLS group \"" + item + "\"";
            return false;
        }
        out.push_back(it->group);
    }
    if (out.empty()) {
        error = "empty TLS group list";
        return false;
    }
    return true;
}

// Every certificate in a PEM file, in file order.
bool read_pem_certificates(const std::string& file, std::vector<CertificateInfo>& out,
                           std::string& error) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        error = "cannot read " + file;
        return false;
    }
    std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
    static constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
    std::size_t pos = 0;
    while ((pos = pem.find(kBegin, pos)) != std::string::npos) {
        std::size_t end = pem.find(kEnd, pos);
        if (end == std::string::npos) break;
        end += kEnd.size();
        X509Ptr x{wolfSSL_X509_load_certificate_buffer(
            reinterpret_cast<const unsigned char*>(pem.data() + pos), static_cast<int>(end - pos),
            WOLFSSL_FILETYPE_PEM)};
        if (!x) {
            error = "cannot parse a certificate in " + file;
            return false;
        }
        out.push_back({name_to_string(wolfSSL_X509_get_subject_name(x.get())),
                       asn1_time_to_unix(wolfSSL_X509_get_notAfter(x.get()))});
        pos = end;
    }
    if (out.empty()) {
        error = "no certificate in " + file;
        return false;
    }
    return true;
}

class WolfsslContext final : public Context {
  public:
    static std::unique_ptr<WolfsslContext> create(const Options& opts, std::string& error) {
        if (opts.min_version > opts.max_version) {
            error = "min_version is above max_version";
            return nullptr;
        }
        bool server = opts.role == Role::server;
        // The flexible method negotiates 1.2 and 1.3; the range narrows it.
        CtxPtr ctx{
            wolfSSL_CTX_new(server ? wolfSSLv23_server_method() : wolfSSLv23_client_method())};
        if (!ctx) {
            error = "wolfSSL_CTX_new failed";
            return nullptr;
        }
        WOLFSSL_CTX* c = ctx.get();
        int min = opts.min_version == Version::tls1_3 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2;
        int max = opts.max_version == Version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
        if (wolfSSL_CTX_SetMinVersion(c, min) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_set_max_proto_version(c, max) != WOLFSSL_SUCCESS) {
            error = "cannot set the TLS version range";
            return nullptr;
        }
        auto self = std::unique_ptr<WolfsslContext>(new WolfsslContext(std::move(ctx), opts));

        if (!opts.ciphers.empty()) {
            // wolfSSL's list replaces the TLS 1.3 suites too; Options::ciphers is about TLS 1.2
            // (as in BoringSSL), so keep the TLS 1.3 ones unless the list names some itself.
            std::string list = opts.ciphers;
            if (list.find("TLS13-") == std::string::npos &&
                list.find("TLS_") == std::string::npos) {
                list = std::string(kTls13Suites) + ":" + list;
            }
            if (wolfSSL_CTX_set_cipher_list(c, list.c_str()) != WOLFSSL_SUCCESS) {
                error = "invalid cipher list \"" + opts.ciphers + "\"";
                return nullptr;
            }
        }
        std::vector<int> groups;
        if (!parse_groups(opts.groups, groups, error)) return nullptr;
        if (wolfSSL_CTX_set_groups(c, groups.data(), static_cast<int>(groups.size())) !=
            WOLFSSL_SUCCESS) {
            error = "cannot set TLS groups \"" + opts.groups + "\"";
            return nullptr;
        }

        if (!opts.cert_file.empty()) {
            if (wolfSSL_CTX_use_certificate_chain_file(c, opts.cert_file.c_str()) !=
                WOLFSSL_SUCCESS) {
                error = "cannot load certificate chain " + opts.cert_file;
                return nullptr;
            }
            if (wolfSSL_CTX_use_PrivateKey_file(c, opts.key_file.c_str(), WOLFSSL_FILETYPE_PEM) !=
                WOLFSSL_SUCCESS) {
                error = "cannot load private key " + opts.key_file;
                return nullptr;
            }
            if (wolfSSL_CTX_check_private_key(c) != WOLFSSL_SUCCESS) {
                error = "private key " + opts.key_file + " does not match " + opts.cert_file;
                return nullptr;
            }
            if (!read_pem_certificates(opts.cert_file, self->certificates_, error)) return nullptr;
        } else if (server) {
            error = "a server needs a certificate and a key";
            return nullptr;
        }

        if (!opts.ca_file.empty() && wolfSSL_CTX_load_verify_locations(
                                         c, opts.ca_file.c_str(), nullptr) != WOLFSSL_SUCCESS) {
            error = "cannot load CA file " + opts.ca_file;
            return nullptr;
        }
        int mode = WOLFSSL_VERIFY_NONE;
        if (opts.verify != Verify::none) {
            if (opts.ca_file.empty()) {
                error = "certificate verification needs a CA file";
                return nullptr;
            }
            mode = WOLFSSL_VERIFY_PEER;
            if (server) mode |= WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        }
        wolfSSL_CTX_set_verify(c, mode, mode == WOLFSSL_VERIFY_NONE ? nullptr : &verify);
        if (server) wolfSSL_CTX_set_servername_callback(c, &alpn_select);

        for (const auto& p : opts.alpn) {
            if (p.empty() || p.size() > 255 || p.find(',') != std::string::npos) {
                error = "invalid ALPN protocol \"" + p + "\"";
                return nullptr;
            }
            if (!self->alpn_.empty()) self->alpn_ += ',';
            self->alpn_ += p;
        }
        return self;
    }

    std::unique_ptr<Engine> new_engine(const EngineOptions& opts) override {
        SslPtr ssl{wolfSSL_new(ctx_.get())};
        if (!ssl) return nullptr;
        WOLFSSL* s = ssl.get();
        if (!alpn_.empty()) {
            // The client offers its list; the server picks from its own and refuses a client
            // that offers ALPN without a match (no_application_protocol).
            int mode = role_ == Role::server ? WOLFSSL_ALPN_FAILED_ON_MISMATCH
                                             : WOLFSSL_ALPN_CONTINUE_ON_MISMATCH;
            if (wolfSSL_UseALPN(s, alpn_.data(), static_cast<unsigned>(alpn_.size()), mode) !=
                WOLFSSL_SUCCESS) {
                return nullptr;
            }
        }
        if (role_ == Role::client && !opts.hostname.empty()) {
            bool ip = is_ip_literal(opts.hostname);
            if (!ip && wolfSSL_UseSNI(s, WOLFSSL_SNI_HOST_NAME, opts.hostname.data(),
                                      static_cast<unsigned short>(opts.hostname.size())) !=
                           WOLFSSL_SUCCESS) {
                return nullptr;
            }
            if (verify_ == Verify::chain_and_hostname) {
                int ok = wolfSSL_check_domain_name(s, opts.hostname.c_str());
                if (ok != WOLFSSL_SUCCESS) return nullptr;
            }
        }
        return std::make_unique<WolfsslEngine>(std::move(ssl), role_, opts);
    }

    const std::vector<CertificateInfo>& certificates() const override { return certificates_; }

  private:
    WolfsslContext(CtxPtr ctx, const Options& opts)
        : ctx_(std::move(ctx)), role_(opts.role), verify_(opts.verify) {}

    CtxPtr ctx_;
    Role role_;
    Verify verify_;
    std::string alpn_;  // comma-separated, as wolfSSL_UseALPN takes it
    std::vector<CertificateInfo> certificates_;
};

// ---- certificate generation ----

// ---- the backend ----

class WolfsslBackend final : public Backend {
  public:
    WolfsslBackend() { wolfSSL_Init(); }
    std::string_view name() const override { return "wolfssl"; }
    std::string version() const override { return std::string("wolfSSL ") + wolfSSL_lib_version(); }
    std::uint32_t capabilities() const override {
        return cap_tls1_2 | cap_tls1_3 | cap_alpn | cap_client_certificates | cap_cipher_list;
    }
    std::unique_ptr<Context> new_context(const Options& opts, std::string& error) override {
        return WolfsslContext::create(opts, error);
    }
    bool generate_certificates(const CertificateRequest& req, std::string& error) override {
        error = "the wolfSSL backend cannot generate certificates";
        return false;
    }
};

}  // namespace
}  // namespace pggw::tls

extern "C" __attribute__((visibility("default"))) pggw::tls::Backend* pggw_tls_backend_v1() {
    static pggw::tls::WolfsslBackend backend;
    return &backend;
}
