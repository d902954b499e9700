// BoringSSL: the sans-IO Engine over a custom memory BIO, and the callbacks the library calls
// it through (see boringssl_internal.hpp). Ciphertext from the peer lands in io_
// (input_space/commit_input, cipher_buffers.hpp) and is consumed by the BIO's read method;
// records BoringSSL writes are appended to io_'s output (output/consume_output).
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "tls_backends/boringssl_internal.hpp"
#include "tls_backends/shared.hpp"

namespace pggw::tls::boringssl {
namespace {

BIO_METHOD* bio_method();

// ---- the engine ----
class BoringsslEngine final : public shared::EngineBase {
  public:
    BoringsslEngine(SSL_CTX* ctx, std::shared_ptr<const ContextState> state, Role role,
                    const EngineOptions& opts)
        : EngineBase(opts), state_(std::move(state)) {
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
        // What the handshake needed of the context's configuration (certificate chain, cipher
        // and group lists, verify parameters) is freed once it is done: an idle session keeps
        // only the connection's keys and what info() reports (read at the end of the handshake).
        SSL_set_shed_handshake_config(ssl_.get(), 1);
        if (role == Role::server) {
            SSL_set_accept_state(ssl_.get());
            return;
        }
        SSL_set_connect_state(ssl_.get());
        bool ip = shared::is_ip_literal(hostname_);
        if (!hostname_.empty() && !ip) SSL_set_tlsext_host_name(ssl_.get(), hostname_.c_str());
        if (state_->verify == Verify::chain_and_hostname) {
            if (hostname_.empty()) {
                fail(Failure::hostname_mismatch, "verify-full needs a host name to check");
                return;
            }
            X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
            int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, hostname_.c_str())
                        : X509_VERIFY_PARAM_set1_host(param, hostname_.c_str(), hostname_.size());
            if (!ok) fail(Failure::other, "invalid host name \"" + hostname_ + "\"");
        }
    }

    Result handshake() override {
        if (failed()) return Result::error;
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
        if (failed()) return Result::error;
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
        if (failed()) return Result::error;
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
        if (failed()) return Result::error;
        ERR_clear_error();
        int ret = SSL_shutdown(ssl_.get());
        if (ret >= 0) return Result::ok;  // 0: close_notify queued; 1: both sides closed
        return outcome(ret);
    }

    // Called by the BIO and by the callbacks.
    int io_read(char* out, int len) {
        if (io_.unread().empty()) return eof_ ? 0 : -1;
        return static_cast<int>(io_.pull(out, static_cast<std::size_t>(len)));
    }
    int io_write(const char* data, int len) {
        io_.push(data, static_cast<std::size_t>(len));
        return len;
    }
    const ContextState& state() const { return *state_; }
    // A callback's verdict wins over the library's generic error for the same failure.
    void note_failure(Failure f, std::string reason) {
        noted_ = f;
        noted_reason_ = std::move(reason);
    }
    void note_verify_error(int error, int depth, X509* cert) {
        if (verify_detail_.empty() && cert) {
            verify_detail_ =
                shared::verify_detail(depth, x509_name_line(X509_get_subject_name(cert)));
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
    // The alert of a plaintext alert record the library just consumed whole, else -1.
    int plain_alert() const { return EngineBase::plain_alert(7); }
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
        // The server's certificate: ours, hashed once per context; else the peer's leaf.
        if (SSL_is_server(ssl)) {
            info_.server_end_point = state_->server_end_point;
        } else if (peer) {
            info_.server_end_point = x509_server_end_point(peer.get());
        }
    }

    bssl::UniquePtr<SSL> ssl_;
    std::shared_ptr<const ContextState> state_;
    Failure noted_ = Failure::none;
    std::string noted_reason_;
    std::string verify_detail_;
};

// ---- the I/O callbacks ----
int bio_read(BIO* bio, char* out, int len) {
    BIO_clear_retry_flags(bio);
    int n = static_cast<BoringsslEngine*>(BIO_get_data(bio))->io_read(out, len);
    if (n < 0) BIO_set_retry_read(bio);
    return n;
}

int bio_write(BIO* bio, const char* data, int len) {
    BIO_clear_retry_flags(bio);
    return static_cast<BoringsslEngine*>(BIO_get_data(bio))->io_write(data, len);
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

}  // namespace

std::unique_ptr<Engine> new_engine(SSL_CTX* ctx, std::shared_ptr<const ContextState> state,
                                   Role role, const EngineOptions& opts) {
    return std::make_unique<BoringsslEngine>(ctx, std::move(state), role, opts);
}

// ---- the handshake callbacks ----

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

}  // namespace pggw::tls::boringssl
