// wolfSSL: the sans-IO Engine over wolfSSL's native I/O callbacks (wolfSSL_SSLSetIORecv/
// IOSend), no OpenSSL-compat BIO, and the callbacks the library calls it through (see
// wolfssl_internal.hpp). Ciphertext from the peer lands in io_ (input_space/commit_input,
// cipher_buffers.hpp) and is consumed by the recv callback, which answers WANT_READ when it is
// empty; records wolfSSL writes are appended to io_'s output by the send callback
// (output/consume_output).
#include <wolfssl/error-ssl.h>

#include <algorithm>
#include <climits>

#include "tls_backends/client_hello.hpp"
#include "tls_backends/shared.hpp"
#include "tls_backends/wolfssl_internal.hpp"

namespace pggw::tls::wolfssl {
namespace {

int io_recv(WOLFSSL* ssl, char* buf, int sz, void* ctx);
int io_send(WOLFSSL* ssl, char* buf, int sz, void* ctx);

// ---- the engine ----
class WolfsslEngine final : public shared::EngineBase {
  public:
    WolfsslEngine(WOLFSSL_CTX* ctx, std::shared_ptr<const ContextState> state, Role role,
                  const EngineOptions& opts)
        : EngineBase(opts), state_(std::move(state)), role_(role) {
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
        bool ip = shared::is_ip_literal(hostname_);
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

    void commit_input(std::size_t n) override {
        std::span<const std::uint8_t> added = io_.commit_input(n);
        if (first_byte_ < 0 && !added.empty()) first_byte_ = added[0];
    }

    Result handshake() override {
        if (failed()) return Result::error;
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
        if (failed()) return Result::error;
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
        if (failed()) return Result::error;
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
        if (failed()) return Result::error;
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
    bool check_ip() const { return check_ip_; }
    void note_verify_error(int error, int depth, WOLFSSL_X509* cert) {
        if (verify_error_ != 0) return;
        verify_error_ = error;
        if (cert) {
            verify_detail_ =
                shared::verify_detail(depth, x509_name_line(wolfSSL_X509_get_subject_name(cert)));
            if (error == DOMAIN_NAME_MISMATCH || error == IPADDR_MISMATCH) {
                verify_detail_ = "; the certificate is for " + x509_presented_names(cert);
            }
        }
    }

  private:
    // Server, before wolfSSL sees the ClientHello: what wolfSSL 5.5.4 gets wrong or cannot do.
    //  - direct TLS insists on ALPN being offered (wolfSSL has no hook that runs after ALPN);
    //  - no common group: wolfSSL answers with an empty HelloRetryRequest instead of an alert;
    //  - no common version: wolfSSL's alert says handshake_failure, not protocol_version.
    bool early(const ClientHello& hello) {
        const ContextState& st = *state_;
        bool v12 = st.min_version == Version::tls1_2;
        bool v13 = st.max_version == Version::tls1_3;
        bool version_ok =
            hello.versions.empty()
                ? v12 && hello.legacy_version >= 0x0303
                : std::any_of(hello.versions.begin(), hello.versions.end(),
                              [&](auto x) { return (x == 0x0303 && v12) || (x == 0x0304 && v13); });
        if (!version_ok) {
            return refuse(Failure::protocol_version, shared::kAlertProtocolVersion,
                          "no common TLS version (client offered none this server accepts)");
        }
        if (!hello.groups.empty() &&
            std::none_of(hello.groups.begin(), hello.groups.end(), [&](std::uint16_t g) {
                return std::find(st.groups.begin(), st.groups.end(), g) != st.groups.end();
            })) {
            return refuse(Failure::handshake_failure, shared::kAlertHandshakeFailure,
                          "no common key exchange group");
        }
        if (require_alpn_ && !hello.alpn) {
            return refuse(Failure::no_alpn, shared::kAlertNoApplicationProtocol,
                          "client offered no ALPN, which is required here");
        }
        return true;
    }
    // Refuses the handshake with a fatal alert sent in the clear (no keys exist yet).
    bool refuse(Failure f, int alert, std::string reason) {
        const std::uint8_t record[] = {shared::kRecordAlert,
                                       3,
                                       3,
                                       0,
                                       2,
                                       shared::kAlertLevelFatal,
                                       static_cast<std::uint8_t>(alert)};
        io_write(reinterpret_cast<const char*>(record), sizeof record);
        fail(f, std::move(reason));
        return false;
    }
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
                   f == Failure::protocol_version ? shared::kAlertProtocolVersion
                                                  : shared::kAlertHandshakeFailure,
                   std::move(reason));
        } else {
            fail(f, std::move(reason));
        }
        wolfSSL_ERR_clear_error();
        return Result::error;
    }
    // The alert of a plaintext alert record the library just consumed, else -1. wolfSSL may
    // stop after the record header.
    int plain_alert() const {
        int alert = EngineBase::plain_alert(7);
        return alert >= 0 ? alert : EngineBase::plain_alert(5);
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
        // The server's certificate: ours, hashed once per context; else the peer's leaf.
        if (role_ == Role::server) {
            info_.server_end_point = state_->server_end_point;
        } else if (peer) {
            info_.server_end_point = x509_server_end_point(peer.get());
        }
    }

    std::unique_ptr<WOLFSSL, SslFree> ssl_;
    std::shared_ptr<const ContextState> state_;
    Role role_;
    bool check_ip_ = false;
    bool hello_checked_ = false;
    bool peer_closed_ = false;
    bool shutdown_sent_ = false;
    int first_byte_ = -1;
    int verify_error_ = 0;
    std::string verify_detail_;
};

// ---- the I/O callbacks ----
int io_recv(WOLFSSL*, char* buf, int sz, void* ctx) {
    return static_cast<WolfsslEngine*>(ctx)->io_read(buf, sz);
}

int io_send(WOLFSSL*, char* buf, int sz, void* ctx) {
    return static_cast<WolfsslEngine*>(ctx)->io_write(buf, sz);
}

}  // namespace

std::unique_ptr<Engine> new_engine(WOLFSSL_CTX* ctx, std::shared_ptr<const ContextState> state,
                                   Role role, const EngineOptions& opts) {
    return std::make_unique<WolfsslEngine>(ctx, std::move(state), role, opts);
}

// ---- the handshake callbacks ----

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

}  // namespace pggw::tls::wolfssl
