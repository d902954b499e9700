// The BoringSSL backend (Debian android-libboringssl): a sans-IO Engine over a custom memory
// BIO. Ciphertext from the peer lands in io_ (input_space/commit_input, cipher_buffers.hpp) and
// is consumed by the BIO's read method; records BoringSSL writes are appended to io_'s output
// (output/consume_output).
//
// Shape shared with wolfssl_backend.cpp, in this order: map_failure, the Engine, callbacks,
// the Context, certificate generation, the Backend, the entry point.
#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tls_backends/cipher_buffers.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::tls {
namespace {

constexpr const char* kDefaultGroups = "X25519:P-256";

std::string x509_name_line(const X509_NAME* name) {
    if (!name) return {};
    bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    const uint8_t* data = nullptr;
    std::size_t len = 0;
    BIO_mem_contents(bio.get(), &data, &len);
    return std::string(reinterpret_cast<const char*>(data), len);
}

// SHA-256 of the certificate's DER encoding (compared for channel binding).
CertificateHash x509_sha256(X509* cert) {
    CertificateHash out{};
    uint8_t* der = nullptr;
    int len = i2d_X509(cert, &der);
    if (len <= 0) return out;
    SHA256(der, static_cast<std::size_t>(len), out.data());
    OPENSSL_free(der);
    return out;
}

std::string x509_common_name(const X509_NAME* name) {
    if (!name) return {};
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0) return {};
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0) return {};
    std::string cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
    return cn;
}

std::int64_t asn1_time_unix(const ASN1_TIME* t) {
    bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
    int days = 0, seconds = 0;
    if (!epoch || !ASN1_TIME_diff(&days, &seconds, epoch.get(), t)) return 0;
    return std::int64_t{days} * 86400 + seconds;
}

bool is_ip_literal(const std::string& host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// libpq's rule for an IP-literal host: with no dNSName or iPAddress subjectAltName at all, the
// CN is compared as text (BoringSSL's X509_check_ip never looks at the CN).
bool ip_host_matches_common_name(X509* cert, const std::string& host) {
    bssl::UniquePtr<GENERAL_NAMES> sans(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    for (std::size_t i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
        int type = sk_GENERAL_NAME_value(sans.get(), i)->type;
        if (type == GEN_DNS || type == GEN_IPADD) return false;
    }
    return x509_common_name(X509_get_subject_name(cert)) == host;
}

// What a certificate is for, as verify-full sees it: "DNS:a, IP:10.0.0.1 (CN=a)", for the
// reason of a host name mismatch.
std::string x509_presented_names(X509* cert) {
    std::string out;
    bssl::UniquePtr<GENERAL_NAMES> sans(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    for (std::size_t i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
        std::string name;
        if (gn->type == GEN_DNS) {
            name = "DNS:" +
                   std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
                               static_cast<std::size_t>(ASN1_STRING_length(gn->d.dNSName)));
        } else if (gn->type == GEN_IPADD) {
            char text[INET6_ADDRSTRLEN] = {};
            int len = ASN1_STRING_length(gn->d.iPAddress);
            if ((len == 4 || len == 16) &&
                inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(gn->d.iPAddress),
                          text, sizeof text)) {
                name = std::string("IP:") + text;
            }
        }
        if (name.empty()) continue;
        out += (out.empty() ? "" : ", ") + name;
    }
    std::string cn = x509_common_name(X509_get_subject_name(cert));
    if (!cn.empty()) out += (out.empty() ? "CN=" : " (CN=") + cn + (out.empty() ? "" : ")");
    return out.empty() ? "no name" : out;
}

// The first queued library error, preferring one from libssl; clears the queue.
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

Failure alert_failure(int alert) {
    switch (alert) {
        case SSL_AD_UNKNOWN_CA:
            return Failure::unknown_ca;
        case SSL_AD_CERTIFICATE_EXPIRED:
            return Failure::certificate_expired;
        case SSL_AD_BAD_CERTIFICATE:
        case SSL_AD_UNSUPPORTED_CERTIFICATE:
        case SSL_AD_CERTIFICATE_REVOKED:
        case SSL_AD_CERTIFICATE_UNKNOWN:
        case SSL_AD_CERTIFICATE_REQUIRED:
            return Failure::bad_certificate;
        case SSL_AD_NO_APPLICATION_PROTOCOL:
            return Failure::no_alpn;
        case SSL_AD_PROTOCOL_VERSION:
            return Failure::protocol_version;
        case SSL_AD_HANDSHAKE_FAILURE:
        case SSL_AD_INSUFFICIENT_SECURITY:
            return Failure::handshake_failure;
        default:
            return Failure::other;
    }
}

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

// ---- 2) the one place library errors become a Failure ----
//
// ssl_error: SSL_get_error()'s answer; error: the first queued library error (0 if none);
// transport_eof: the driver reported EOF; plain_alert: the alert of an unencrypted alert record
// that failed to decrypt, else -1 (OpenSSL clients, libpq among them, send their TLS 1.3
// certificate verification alerts before switching to handshake keys); hostname: what
// verify-full checked, for the text.
Failure map_failure(const SSL* ssl, int ssl_error, uint32_t error, bool transport_eof,
                    int plain_alert, const std::string& hostname, std::string& reason) {
    if (ssl_error == SSL_ERROR_SYSCALL && error == 0) {
        reason = transport_eof ? (SSL_in_init(ssl) ? "peer closed the connection during the "
                                                     "TLS handshake"
                                                   : "peer closed the connection without "
                                                     "close_notify (truncated)")
                               : "transport error";
        return transport_eof ? Failure::eof : Failure::other;
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
        return alert_failure(alert);
    }
    if (plain_alert >= 0 &&
        (r == SSL_R_BAD_PACKET_LENGTH || r == SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC)) {
        reason = std::string("peer sent alert: ") + SSL_alert_desc_string_long(plain_alert) +
                 " (unencrypted)";
        return alert_failure(plain_alert);
    }
    switch (r) {
        case SSL_R_CERTIFICATE_VERIFY_FAILED: {
            long v = SSL_get_verify_result(ssl);
            reason = std::string("certificate verify failed: ") + X509_verify_cert_error_string(v);
            if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
                reason =
                    "certificate verify failed: server certificate does not match host "
                    "name \"" +
                    hostname + "\"";
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

struct ContextState {
    std::vector<std::string> alpn;  // server: accepted, in preference order
    Verify verify = Verify::none;
};

BIO_METHOD* bio_method();

// ---- 3) the engine ----
class BoringsslEngine final : public Engine {
  public:
    BoringsslEngine(SSL_CTX* ctx, std::shared_ptr<const ContextState> state, Role role,
                    const EngineOptions& opts)
        : state_(std::move(state)), hostname_(opts.hostname), require_alpn_(opts.require_alpn) {
        ssl_.reset(SSL_new(ctx));
        BIO* bio = ssl_ ? BIO_new(bio_method()) : nullptr;
        if (!bio) {
            fail(Failure::other, "cannot create TLS session: " + error_text(take_error()));
            return;
        }
        BIO_set_data(bio, this);
        BIO_set_init(bio, 1);
        SSL_set_bio(ssl_.get(), bio, bio);
        SSL_set_app_data(ssl_.get(), this);
        if (role == Role::server) {
            SSL_set_accept_state(ssl_.get());
            return;
        }
        SSL_set_connect_state(ssl_.get());
        bool ip = is_ip_literal(hostname_);
        if (!hostname_.empty() && !ip) SSL_set_tlsext_host_name(ssl_.get(), hostname_.c_str());
        if (state_->verify == Verify::chain_and_hostname) {
            X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
            int ok = 0;
            if (hostname_.empty()) {
                fail(Failure::hostname_mismatch, "verify-full needs a host name to check");
                return;
            }
            ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, hostname_.c_str())
                    : X509_VERIFY_PARAM_set1_host(param, hostname_.c_str(), hostname_.size());
            if (!ok) fail(Failure::other, "invalid host name \"" + hostname_ + "\"");
        }
    }

    std::span<std::uint8_t> input_space() override { return io_.input_space(); }
    void commit_input(std::size_t n) override { io_.commit_input(n); }
    std::span<const std::uint8_t> output() const override { return io_.output(); }
    void consume_output(std::size_t n) override { io_.consume_output(n); }
    void input_eof() override { eof_ = true; }

    Result handshake() override {
        if (failure_ != Failure::none) return Result::error;
        if (handshake_done_) return Result::ok;
        ERR_clear_error();
        int ret = SSL_do_handshake(ssl_.get());
        if (ret == 1) {
            finish_handshake();
            return Result::ok;
        }
        return outcome(ret);
    }
    Result read(std::span<std::uint8_t> buf, std::size_t& n) override {
        n = 0;
        if (failure_ != Failure::none) return Result::error;
        if (buf.empty()) return Result::ok;
        ERR_clear_error();
        int len = static_cast<int>(std::min<std::size_t>(buf.size(), INT_MAX));
        int ret = SSL_read(ssl_.get(), buf.data(), len);
        if (!handshake_done_ && !SSL_in_init(ssl_.get())) finish_handshake();
        if (ret > 0) {
            n = static_cast<std::size_t>(ret);
            return Result::ok;
        }
        return outcome(ret);
    }
    Result write(std::span<const std::uint8_t> buf) override {
        if (failure_ != Failure::none) return Result::error;
        while (!buf.empty()) {
            ERR_clear_error();
            int len = static_cast<int>(std::min<std::size_t>(buf.size(), 1u << 30));
            int ret = SSL_write(ssl_.get(), buf.data(), len);
            if (!handshake_done_ && !SSL_in_init(ssl_.get())) finish_handshake();
            if (ret <= 0) return outcome(ret);
            buf = buf.subspan(static_cast<std::size_t>(ret));
        }
        return Result::ok;
    }
    Result shutdown() override {
        if (failure_ != Failure::none) return Result::error;
        ERR_clear_error();
        int ret = SSL_shutdown(ssl_.get());
        if (ret >= 0) return Result::ok;  // 0: close_notify queued; 1: both sides closed
        return outcome(ret);
    }

    const HandshakeInfo& info() const override { return info_; }
    Failure failure() const override { return failure_; }
    const std::string& failure_reason() const override { return reason_; }

    // Called by the BIO and by the callbacks.
    int bio_read(char* out, int len) {
        if (io_.unread().empty()) return eof_ ? 0 : -1;
        return static_cast<int>(io_.pull(out, static_cast<std::size_t>(len)));
    }
    int bio_write(const char* data, int len) {
        io_.push(data, static_cast<std::size_t>(len));
        return len;
    }
    const ContextState& state() const { return *state_; }
    bool require_alpn() const { return require_alpn_; }
    // A callback's verdict wins over the library's generic error for the same failure.
    void note_failure(Failure f, std::string reason) {
        noted_ = f;
        noted_reason_ = std::move(reason);
    }
    const std::string& hostname() const { return hostname_; }
    void note_verify_error(int error, int depth, X509* cert) {
        if (verify_detail_.empty() && cert) {
            verify_detail_ = " (depth " + std::to_string(depth) + ", subject \"" +
                             x509_name_line(X509_get_subject_name(cert)) + "\")";
            if (error == X509_V_ERR_HOSTNAME_MISMATCH || error == X509_V_ERR_IP_ADDRESS_MISMATCH) {
                verify_detail_ = "; the certificate is for " + x509_presented_names(cert);
            }
        }
    }

  private:
    Result outcome(int ret) {
        int err = SSL_get_error(ssl_.get(), ret);
        if (err == SSL_ERROR_WANT_READ) return Result::want_input;
        if (err == SSL_ERROR_ZERO_RETURN) return Result::closed;
        uint32_t e = take_error();
        std::string reason;
        Failure f = map_failure(ssl_.get(), err, e, eof_, plain_alert(), hostname_, reason);
        if (noted_ != Failure::none) {
            f = noted_;
            reason = noted_reason_;
        } else if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
            reason += verify_detail_;
        }
        fail(f, std::move(reason));
        return Result::error;
    }
    // If the last bytes the library consumed were a whole plaintext alert record
    // (15 03 0x 00 02 level description), its description; else -1.
    int plain_alert() const {
        std::span<const std::uint8_t> rec = io_.input_from(7);
        if (rec.size() < 7) return -1;
        bool alert = rec[0] == SSL3_RT_ALERT && rec[1] == 3 && rec[3] == 0 && rec[4] == 2;
        return alert && rec[5] == SSL3_AL_FATAL ? rec[6] : -1;
    }
    void fail(Failure f, std::string reason) {
        failure_ = f;
        reason_ = std::move(reason);
    }
    void finish_handshake() {
        handshake_done_ = true;
        SSL* ssl = ssl_.get();
        info_.version = SSL_get_version(ssl);
        if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl)) {
            info_.cipher = SSL_CIPHER_standard_name(c);
        }
        const uint8_t* alpn = nullptr;
        unsigned alpn_len = 0;
        SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
        if (alpn) info_.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
        if (SSL_is_server(ssl)) {
            if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) {
                info_.sni = sni;
            }
        }
        bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(ssl));
        info_.peer_certificate = peer != nullptr;
        if (peer) {
            info_.peer_common_name = x509_common_name(X509_get_subject_name(peer.get()));
            info_.peer_subject = x509_name_line(X509_get_subject_name(peer.get()));
            info_.peer_certificate_sha256 = x509_sha256(peer.get());
        }
    }

    bssl::UniquePtr<SSL> ssl_;
    std::shared_ptr<const ContextState> state_;
    std::string hostname_;
    bool require_alpn_ = false;
    bool handshake_done_ = false;
    bool eof_ = false;
    CipherBuffers io_;
    HandshakeInfo info_;
    Failure failure_ = Failure::none;
    std::string reason_;
    Failure noted_ = Failure::none;
    std::string noted_reason_;
    std::string verify_detail_;
};

// ---- 4) callbacks ----
int bio_read(BIO* bio, char* out, int len) {
    BIO_clear_retry_flags(bio);
    int n = static_cast<BoringsslEngine*>(BIO_get_data(bio))->bio_read(out, len);
    if (n < 0) BIO_set_retry_read(bio);
    return n;
}

int bio_write(BIO* bio, const char* data, int len) {
    BIO_clear_retry_flags(bio);
    return static_cast<BoringsslEngine*>(BIO_get_data(bio))->bio_write(data, len);
}

long bio_ctrl(BIO*, int cmd, long, void*) {
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

BIO_METHOD* bio_method() {
    static BIO_METHOD* method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pggw");
        BIO_meth_set_read(m, bio_read);
        BIO_meth_set_write(m, bio_write);
        BIO_meth_set_ctrl(m, bio_ctrl);
        return m;
    }();
    return method;
}

BoringsslEngine* engine_of(const SSL* ssl) {
    return static_cast<BoringsslEngine*>(SSL_get_app_data(ssl));
}

// Server: pick the first of our protocols the client offered; none in common is fatal.
int alpn_select(SSL* ssl, const uint8_t** out, uint8_t* out_len, const uint8_t* in, unsigned in_len,
                void*) {
    BoringsslEngine* engine = engine_of(ssl);
    for (const std::string& ours : engine->state().alpn) {
        for (unsigned i = 0; i < in_len;) {
            unsigned len = in[i];
            if (i + 1 + len > in_len) break;
            if (len == ours.size() && std::memcmp(in + i + 1, ours.data(), len) == 0) {
                *out = in + i + 1;
                *out_len = static_cast<uint8_t>(len);
                return SSL_TLSEXT_ERR_OK;
            }
            i += 1 + len;
        }
    }
    engine->note_failure(Failure::no_alpn,
                         "client offered no application protocol (ALPN) this server accepts");
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// Server, before most ClientHello processing: direct TLS insists on ALPN being offered.
ssl_select_cert_result_t early(const SSL_CLIENT_HELLO* hello) {
    BoringsslEngine* engine = engine_of(hello->ssl);
    const uint8_t* data = nullptr;
    std::size_t len = 0;
    if (engine->require_alpn() &&
        !SSL_early_callback_ctx_extension_get(
            hello, TLSEXT_TYPE_application_layer_protocol_negotiation, &data, &len)) {
        engine->note_failure(Failure::no_alpn, "client offered no ALPN, which is required here");
        SSL_send_fatal_alert(hello->ssl, SSL_AD_NO_APPLICATION_PROTOCOL);
        return ssl_select_cert_error;
    }
    return ssl_select_cert_success;
}

// Chain verification is the library's; this remembers which certificate failed, and adds
// libpq's CN fallback for IP-literal hosts.
int verify(int ok, X509_STORE_CTX* store) {
    if (!ok) {
        auto* ssl = static_cast<SSL*>(
            X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
        if (!ssl) return ok;
        BoringsslEngine* engine = engine_of(ssl);
        int depth = X509_STORE_CTX_get_error_depth(store);
        X509* cert = X509_STORE_CTX_get_current_cert(store);
        if (X509_STORE_CTX_get_error(store) == X509_V_ERR_IP_ADDRESS_MISMATCH && depth == 0 &&
            cert && ip_host_matches_common_name(cert, engine->hostname())) {
            X509_STORE_CTX_set_error(store, X509_V_OK);
            return 1;
        }
        engine->note_verify_error(X509_STORE_CTX_get_error(store), depth, cert);
    }
    return ok;
}

// ---- 5) the context ----
class BoringsslContext final : public Context {
  public:
    static std::unique_ptr<Context> create(const Options& o, std::string& error) {
        auto self = std::unique_ptr<BoringsslContext>(new BoringsslContext(o.role));
        SSL_CTX* ctx = SSL_CTX_new(TLS_method());
        if (!ctx) {
            error = "cannot create TLS context: " + error_text(take_error());
            return nullptr;
        }
        self->ctx_.reset(ctx);
        auto state = std::make_shared<ContextState>();
        state->verify = o.verify;
        auto failed = [&](const std::string& what) {
            error = what;
            if (uint32_t e = take_error()) error += ": " + error_text(e);
            return nullptr;
        };
        ERR_clear_error();

        auto version = [](Version v) -> uint16_t {
            return v == Version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
        };
        if (version(o.min_version) > version(o.max_version)) {
            return failed("min_version is above max_version");
        }
        if (!SSL_CTX_set_min_proto_version(ctx, version(o.min_version)) ||
            !SSL_CTX_set_max_proto_version(ctx, version(o.max_version))) {
            return failed("cannot set TLS versions");
        }
        if (!o.ciphers.empty() && !SSL_CTX_set_strict_cipher_list(ctx, o.ciphers.c_str())) {
            return failed("invalid cipher list \"" + o.ciphers + "\"");
        }
        const std::string groups = o.groups.empty() ? kDefaultGroups : o.groups;
        if (!SSL_CTX_set1_curves_list(ctx, groups.c_str())) {
            return failed("invalid group list \"" + groups + "\"");
        }

        if (o.role == Role::server && o.cert_file.empty()) {
            return failed("a server needs a certificate (cert_file)");
        }
        if (!o.cert_file.empty()) {
            const std::string& key = o.key_file.empty() ? o.cert_file : o.key_file;
            if (!SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str())) {
                return failed("cannot load certificate chain \"" + o.cert_file + "\"");
            }
            if (!SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM)) {
                return failed("cannot load private key \"" + key + "\"");
            }
            if (!SSL_CTX_check_private_key(ctx)) {
                return failed("private key \"" + key + "\" does not match the certificate");
            }
            if (!self->load_certificates(o.cert_file)) {
                return failed("cannot read certificates \"" + o.cert_file + "\"");
            }
        }
        if (o.verify != Verify::none && o.ca_file.empty()) {
            return failed("certificate verification needs a CA file (ca_file)");
        }
        if (!o.ca_file.empty() && !SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr)) {
            return failed("cannot load CA file \"" + o.ca_file + "\"");
        }

        std::string wire;  // ALPN list in wire format
        for (const std::string& p : o.alpn) {
            if (p.empty() || p.size() > 255) return failed("invalid ALPN protocol \"" + p + "\"");
            wire += static_cast<char>(p.size());
            wire += p;
        }
        state->alpn = o.alpn;

        static const unsigned char kSessionContext[] = "pggw";
        if (o.role == Role::server) {
            // No server-side session cache; one TLS 1.3 ticket instead of BoringSSL's two
            // (each costs ~12 us per handshake here, and libpq never resumes).
            SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
            SSL_CTX_set_num_tickets(ctx, 1);
            SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
            if (o.verify != Verify::none) {
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify);
                if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_file.c_str())) {
                    SSL_CTX_set_client_CA_list(ctx, names);
                }
            }
            if (!o.alpn.empty()) SSL_CTX_set_alpn_select_cb(ctx, alpn_select, nullptr);
            SSL_CTX_set_select_certificate_cb(ctx, early);
        } else {
            SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
            SSL_CTX_set_verify(ctx, o.verify == Verify::none ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                               verify);
            if (!wire.empty() &&
                SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const uint8_t*>(wire.data()),
                                        wire.size()) != 0) {  // 0 is success here
                return failed("cannot set ALPN protocols");
            }
        }
        self->state_ = std::move(state);
        return self;
    }

    std::unique_ptr<Engine> new_engine(const EngineOptions& opts) override {
        return std::make_unique<BoringsslEngine>(ctx_.get(), state_, role_, opts);
    }
    const std::vector<CertificateInfo>& certificates() const override { return certificates_; }

  private:
    explicit BoringsslContext(Role role) : role_(role) {}

    bool load_certificates(const std::string& file) {
        bssl::UniquePtr<BIO> bio(BIO_new_file(file.c_str(), "r"));
        if (!bio) return false;
        while (X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
            bssl::UniquePtr<X509> cert(raw);
            certificates_.push_back({x509_name_line(X509_get_subject_name(cert.get())),
                                     asn1_time_unix(X509_get0_notAfter(cert.get())),
                                     x509_sha256(cert.get())});
        }
        ERR_clear_error();  // the loop ends on "no start line"
        return !certificates_.empty();
    }

    Role role_;
    bssl::UniquePtr<SSL_CTX> ctx_;
    std::shared_ptr<const ContextState> state_;
    std::vector<CertificateInfo> certificates_;
};

// ---- 6) certificate generation ----
bssl::UniquePtr<EVP_PKEY> generate_key(const std::string& type, std::string& error) {
    bssl::UniquePtr<EVP_PKEY> pkey(EVP_PKEY_new());
    if (type == "ecdsa-p256") {
        bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
        if (!ec || !EC_KEY_generate_key(ec.get()) ||
            !EVP_PKEY_assign_EC_KEY(pkey.get(), ec.get())) {
            error = "cannot generate an ECDSA P-256 key";
            return nullptr;
        }
        ec.release();  // owned by pkey
    } else if (type == "rsa-2048") {
        bssl::UniquePtr<RSA> rsa(RSA_new());
        bssl::UniquePtr<BIGNUM> e(BN_new());
        if (!rsa || !e || !BN_set_word(e.get(), RSA_F4) ||
            !RSA_generate_key_ex(rsa.get(), 2048, e.get(), nullptr) ||
            !EVP_PKEY_assign_RSA(pkey.get(), rsa.get())) {
            error = "cannot generate an RSA 2048 key";
            return nullptr;
        }
        rsa.release();
    } else {
        error = "unknown key type \"" + type + "\" (ecdsa-p256 or rsa-2048)";
        return nullptr;
    }
    return pkey;
}

bool add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    bssl::UniquePtr<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
    return ext && X509_add_ext(cert, ext.get(), -1);
}

// issuer == nullptr: self-signed (the CA).
bssl::UniquePtr<X509> make_certificate(EVP_PKEY* key, const std::string& cn, X509* issuer,
                                       EVP_PKEY* issuer_key, int days,
                                       const std::vector<std::pair<int, std::string>>& exts) {
    bssl::UniquePtr<X509> cert(X509_new());
    uint8_t serial_bytes[16];
    RAND_bytes(serial_bytes, sizeof serial_bytes);
    serial_bytes[0] &= 0x7f;  // positive
    serial_bytes[0] |= 0x01;  // and no leading zero byte
    bssl::UniquePtr<BIGNUM> serial(BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr));
    bssl::UniquePtr<X509_NAME> name(X509_NAME_new());
    if (!cert || !serial || !name || !X509_set_version(cert.get(), X509_VERSION_3) ||
        !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) ||
        !X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                                    reinterpret_cast<const uint8_t*>(cn.c_str()), -1, -1, 0) ||
        !X509_set_subject_name(cert.get(), name.get()) ||
        !X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name.get()) ||
        !X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert.get()), long{days} * 86400) ||
        !X509_set_pubkey(cert.get(), key)) {
        return nullptr;
    }
    for (const auto& [nid, value] : exts) {
        if (!add_extension(cert.get(), issuer ? issuer : cert.get(), nid, value)) return nullptr;
    }
    if (!X509_sign(cert.get(), issuer_key, EVP_sha256())) return nullptr;
    return cert;
}

bool write_pem(const std::filesystem::path& path, mode_t mode,
               const std::function<int(BIO*)>& write, std::string& error) {
    bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
    const uint8_t* data = nullptr;
    std::size_t len = 0;
    if (!bio || !write(bio.get()) || !BIO_mem_contents(bio.get(), &data, &len)) {
        error = "cannot encode " + path.string();
        return false;
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        error = "cannot create " + path.string() + ": " + std::strerror(errno);
        return false;
    }
    bool ok = ::fchmod(fd, mode) == 0;
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

// ---- 7) the backend ----
class BoringsslBackend final : public Backend {
  public:
    std::string_view name() const override { return "boringssl"; }
    std::string version() const override {
        return std::string(OpenSSL_version(OPENSSL_VERSION)) +
               " (Debian android-libboringssl, API " + std::to_string(BORINGSSL_API_VERSION) + ")";
    }
    std::uint32_t capabilities() const override {
        return cap_tls1_2 | cap_tls1_3 | cap_alpn | cap_client_certificates |
               cap_generate_certificates | cap_cipher_list;
    }
    std::unique_ptr<Context> new_context(const Options& opts, std::string& error) override {
        return BoringsslContext::create(opts, error);
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
        std::string san;
        for (const std::string& h : req.hostnames) {
            if (is_ip_literal(h)) {
                san += (san.empty() ? "IP:" : ",IP:") + h;
            } else if (valid_dns_name(h)) {
                san += (san.empty() ? "DNS:" : ",DNS:") + h;
            } else {
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
        auto ca_key = generate_key(req.key_type, error);
        auto key = ca_key ? generate_key(req.key_type, error) : nullptr;
        if (!key) return false;
        auto ca =
            make_certificate(ca_key.get(), "pggw snake-oil CA", nullptr, ca_key.get(), req.days,
                             {{NID_basic_constraints, "critical,CA:TRUE"},
                              {NID_key_usage, "critical,keyCertSign,cRLSign"},
                              {NID_subject_key_identifier, "hash"}});
        const std::string usage = req.key_type == "rsa-2048"
                                      ? "critical,digitalSignature,keyEncipherment"
                                      : "critical,digitalSignature";
        auto cert = ca ? make_certificate(key.get(), req.hostnames.front(), ca.get(), ca_key.get(),
                                          req.days,
                                          {{NID_basic_constraints, "critical,CA:FALSE"},
                                           {NID_key_usage, usage},
                                           {NID_ext_key_usage, "serverAuth"},
                                           {NID_subject_key_identifier, "hash"},
                                           {NID_authority_key_identifier, "keyid:always"},
                                           {NID_subject_alt_name, san}})
                       : nullptr;
        if (!cert) {
            error = "cannot make certificates: " + error_text(take_error());
            return false;
        }
        const std::filesystem::path dir(req.dir);
        auto write_key = [](EVP_PKEY* k) {
            return [k](BIO* b) {
                return PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
            };
        };
        auto write_cert = [](X509* c) { return [c](BIO* b) { return PEM_write_bio_X509(b, c); }; };
        return write_pem(dir / "ca.key", 0600, write_key(ca_key.get()), error) &&
               write_pem(dir / "ca.crt", 0644, write_cert(ca.get()), error) &&
               write_pem(dir / "server.key", 0600, write_key(key.get()), error) &&
               write_pem(dir / "server.crt", 0644, write_cert(cert.get()), error);
    }
};

}  // namespace
}  // namespace pggw::tls

// ---- 8) the entry point ----
extern "C" __attribute__((visibility("default"))) pggw::tls::Backend* pggw_tls_backend_v1() {
    static pggw::tls::BoringsslBackend backend;
    return &backend;
}
