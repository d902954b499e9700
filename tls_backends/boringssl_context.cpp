// BoringSSL: the Context, an SSL_CTX made from Options (see boringssl_internal.hpp).
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <iterator>

#include "tls_backends/boringssl_internal.hpp"
#include "tls_backends/shared.hpp"

namespace pggw::tls::boringssl {
namespace {

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

        // ---- versions, ciphers, groups ----
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
        const std::string ciphers = o.ciphers.empty() ? shared::kDefaultTls12Ciphers : o.ciphers;
        if (!SSL_CTX_set_strict_cipher_list(ctx, ciphers.c_str())) {
            return failed("invalid cipher list \"" + ciphers + "\"");
        }
        const std::string groups = o.groups.empty() ? shared::kDefaultGroups : o.groups;
        if (!SSL_CTX_set1_curves_list(ctx, groups.c_str())) {
            return failed("invalid group list \"" + groups + "\"");
        }

        // Signature algorithms accepted from the peer: BoringSSL's defaults, which leave Ed25519
        // out, and Ed25519 (RFC 8410 certificates: gen-cert --key-type ed25519, a PostgreSQL
        // server's or a client's). Without it a peer with only an Ed25519 key finds no common
        // signature algorithm.
        static constexpr uint16_t kVerifyAlgorithms[] = {
            SSL_SIGN_ECDSA_SECP256R1_SHA256,
            SSL_SIGN_RSA_PSS_RSAE_SHA256,
            SSL_SIGN_RSA_PKCS1_SHA256,
            SSL_SIGN_ECDSA_SECP384R1_SHA384,
            SSL_SIGN_RSA_PSS_RSAE_SHA384,
            SSL_SIGN_RSA_PKCS1_SHA384,
            SSL_SIGN_RSA_PSS_RSAE_SHA512,
            SSL_SIGN_RSA_PKCS1_SHA512,
            SSL_SIGN_ED25519,
            SSL_SIGN_RSA_PKCS1_SHA1,
        };
        if (!SSL_CTX_set_verify_algorithm_prefs(ctx, kVerifyAlgorithms,
                                                std::size(kVerifyAlgorithms))) {
            return failed("cannot set the signature algorithms");
        }

        // ---- certificate, key, CA ----
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
            if (o.role == Role::server) {
                state->server_end_point = x509_server_end_point(SSL_CTX_get0_certificate(ctx));
            }
        }
        if (o.verify != Verify::none && o.ca_file.empty()) {
            return failed("certificate verification needs a CA file (ca_file)");
        }
        if (!o.ca_file.empty() && !SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr)) {
            return failed("cannot load CA file \"" + o.ca_file + "\"");
        }

        // ---- ALPN ----
        std::string wire;  // ALPN list in wire format
        for (const std::string& p : o.alpn) {
            if (p.empty() || p.size() > 255) return failed("invalid ALPN protocol \"" + p + "\"");
            wire += static_cast<char>(p.size());
            wire += p;
        }
        state->alpn = o.alpn;

        // ---- sessions, verification, callbacks ----
        static const unsigned char kSessionContext[] = "pggw";
        if (o.role == Role::server) {
            // No session cache and no tickets (TLS 1.2 and 1.3), as PostgreSQL's
            // SSL_OP_NO_TICKET: a resumed session would skip the certificate checks (expiry).
            SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
            SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
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
        return boringssl::new_engine(ctx_.get(), state_, role_, opts);
    }
    const std::vector<CertificateInfo>& certificates() const override { return certificates_; }

  private:
    explicit BoringsslContext(Role role) : role_(role) {}

    // The certificates of the chain file, leaf first, for expiry metrics.
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

}  // namespace

std::unique_ptr<Context> create_context(const Options& o, std::string& error) {
    return BoringsslContext::create(o, error);
}

}  // namespace pggw::tls::boringssl
