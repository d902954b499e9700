// wolfSSL: the Context, a WOLFSSL_CTX made from Options (see wolfssl_internal.hpp).
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "tls_backends/shared.hpp"
#include "tls_backends/wolfssl_cipher_order.hpp"
#include "tls_backends/wolfssl_internal.hpp"

namespace pggw::tls::wolfssl {
namespace {

// wolfSSL's cipher list also holds the TLS 1.3 suites; Options::ciphers is about TLS 1.2.
constexpr const char* kTls13Suites =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256";

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

// wolfSSL 5.5.4's X509 layer answers NULL for an Ed25519 certificate (its TLS layer serves one):
// what the certificate list needs, from wolfCrypt's decoder. The one-line subject
// ("/CN=a/O=b") in x509_name_line's order ("O=b,CN=a").
bool decoded_certificate_info(std::string_view pem, CertificateInfo& info) {
    std::vector<unsigned char> der(pem.size());
    int der_len = wc_CertPemToDer(reinterpret_cast<const unsigned char*>(pem.data()),
                                  static_cast<int>(pem.size()), der.data(),
                                  static_cast<int>(der.size()), CERT_TYPE);
    if (der_len <= 0) return false;
    DecodedCert dc;
    wc_InitDecodedCert(&dc, der.data(), static_cast<word32>(der_len), nullptr);
    const byte* date = nullptr;
    byte format = 0;
    int date_len = 0;
    struct tm tm {};
    bool ok = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, nullptr) == 0 &&
              wc_GetDateInfo(dc.afterDate, dc.afterDateLen, &date, &format, &date_len) == 0 &&
              wc_GetDateAsCalendarTime(date, date_len, format, &tm) == 0;
    if (ok) {
        std::string subject;
        std::stringstream ss(dc.subject);
        std::string rdn;
        while (std::getline(ss, rdn, '/')) {
            if (!rdn.empty()) subject = subject.empty() ? rdn : rdn + "," + subject;
        }
        info.subject = subject;
        info.not_after = static_cast<std::int64_t>(timegm(&tm));
        ok = wc_Sha256Hash(der.data(), static_cast<word32>(der_len), info.sha256.data()) == 0;
    }
    wc_FreeDecodedCert(&dc);
    return ok;
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

        // ---- versions, ciphers, groups ----
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
        {
            // Keep the TLS 1.3 suites unless the list names some itself. What pggw adds of
            // its own (the TLS 1.3 suites, the default TLS 1.2 list) is in default_order(),
            // ChaCha20-Poly1305 first where AES is slow; a list the operator gave keeps its
            // order, as with BoringSSL.
            const std::string ciphers =
                o.ciphers.empty() ? default_order(shared::kDefaultTls12Ciphers) : o.ciphers;
            std::string list = ciphers;
            if (list.find("TLS13-") == std::string::npos &&
                list.find("TLS_") == std::string::npos) {
                list = default_order(kTls13Suites) + ":" + list;
            }
            if (!valid_cipher_list(ciphers) ||
                wolfSSL_CTX_set_cipher_list(ctx, list.c_str()) != WOLFSSL_SUCCESS) {
                return failed("invalid cipher list \"" + ciphers + "\"");
            }
        }
        const std::string groups = o.groups.empty() ? shared::kDefaultGroups : o.groups;
        if (!parse_groups(groups, state->groups) ||
            wolfSSL_CTX_set_groups(ctx, state->groups.data(),
                                   static_cast<int>(state->groups.size())) != WOLFSSL_SUCCESS) {
            return failed("invalid group list \"" + groups + "\"");
        }

        // ---- certificate, key, CA ----
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
            if (o.role == Role::server) {
                state->server_end_point = x509_server_end_point(wolfSSL_CTX_get0_certificate(ctx));
            }
        }
        if (o.verify != Verify::none && o.ca_file.empty()) {
            return failed("certificate verification needs a CA file (ca_file)");
        }
        if (!o.ca_file.empty() &&
            wolfSSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != WOLFSSL_SUCCESS) {
            return failed("cannot load CA file \"" + o.ca_file + "\"");
        }

        // ---- ALPN ----
        for (const std::string& p : o.alpn) {
            if (p.empty() || p.size() > 255 || p.find(',') != std::string::npos) {
                return failed("invalid ALPN protocol \"" + p + "\"");
            }
            if (!state->alpn.empty()) state->alpn += ',';
            state->alpn += p;
        }

        // ---- sessions, verification, callbacks ----
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
        if (o.role == Role::server) {
            // No tickets, TLS 1.2 or 1.3, as PostgreSQL's SSL_OP_NO_TICKET: a resumed session
            // would skip the certificate checks (expiry).
            if (wolfSSL_CTX_NoTicketTLSv12(ctx) != WOLFSSL_SUCCESS ||
                wolfSSL_CTX_no_ticket_TLSv13(ctx) != 0) {  // 0: success here
                return failed("cannot turn session tickets off");
            }
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
        return wolfssl::new_engine(ctx_.get(), state_, role_, opts);
    }
    const std::vector<CertificateInfo>& certificates() const override { return certificates_; }

  private:
    explicit WolfsslContext(Role role) : role_(role) {}

    // The certificates of the chain file, leaf first, for expiry metrics.
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
            if (!cert) {
                CertificateInfo info;
                if (!decoded_certificate_info(std::string_view(pem).substr(pos, end - pos), info)) {
                    return false;
                }
                certificates_.push_back(info);
                pos = end;
                continue;
            }
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

}  // namespace

std::unique_ptr<Context> create_context(const Options& o, std::string& error) {
    return WolfsslContext::create(o, error);
}

}  // namespace pggw::tls::wolfssl
