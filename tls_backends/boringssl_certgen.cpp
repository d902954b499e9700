// BoringSSL: gen-cert, a snake-oil CA and a server certificate signed by it (see
// boringssl_internal.hpp). The request checks and the file writing are shared.hpp's.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <functional>
#include <utility>

#include "tls_backends/boringssl_internal.hpp"
#include "tls_backends/shared.hpp"

namespace pggw::tls::boringssl {
namespace {

bssl::UniquePtr<EVP_PKEY> generate_key(const std::string& type, std::string& error) {
    shared::KeyType key_type{};
    if (!shared::parse_key_type(type, key_type, error)) return nullptr;
    bssl::UniquePtr<EVP_PKEY> pkey(EVP_PKEY_new());
    if (key_type == shared::KeyType::ecdsa_p256) {
        bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
        if (!ec || !EC_KEY_generate_key(ec.get()) ||
            !EVP_PKEY_assign_EC_KEY(pkey.get(), ec.get())) {
            error = "cannot generate an ECDSA P-256 key";
            return nullptr;
        }
        ec.release();  // owned by pkey
    } else if (key_type == shared::KeyType::ed25519) {
        EVP_PKEY* raw = nullptr;
        bssl::UniquePtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
        if (!ctx || !EVP_PKEY_keygen_init(ctx.get()) || !EVP_PKEY_keygen(ctx.get(), &raw)) {
            error = "cannot generate an Ed25519 key";
            return nullptr;
        }
        pkey.reset(raw);
    } else {
        bssl::UniquePtr<RSA> rsa(RSA_new());
        bssl::UniquePtr<BIGNUM> e(BN_new());
        if (!rsa || !e || !BN_set_word(e.get(), RSA_F4) ||
            !RSA_generate_key_ex(rsa.get(), 2048, e.get(), nullptr) ||
            !EVP_PKEY_assign_RSA(pkey.get(), rsa.get())) {
            error = "cannot generate an RSA 2048 key";
            return nullptr;
        }
        rsa.release();
    }
    return pkey;
}

// subjectAltName in the configuration syntax: "DNS:localhost,IP:127.0.0.1".
std::string alt_names(const std::vector<std::string>& hostnames) {
    std::string san;
    for (const std::string& h : hostnames) {
        san +=
            (san.empty() ? "" : ",") + std::string(shared::is_ip_literal(h) ? "IP:" : "DNS:") + h;
    }
    return san;
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
    // Ed25519 (RFC 8410) signs the message itself: no digest to name.
    const EVP_MD* md = EVP_PKEY_id(issuer_key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
    if (!X509_sign(cert.get(), issuer_key, md)) return nullptr;
    return cert;
}

// PEM text written by `write` into a memory BIO; empty on failure.
std::string to_pem(const std::function<int(BIO*)>& write) {
    bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
    const uint8_t* data = nullptr;
    std::size_t len = 0;
    if (!bio || !write(bio.get()) || !BIO_mem_contents(bio.get(), &data, &len)) return {};
    return std::string(reinterpret_cast<const char*>(data), len);
}

std::string key_pem(EVP_PKEY* key) {
    return to_pem([key](BIO* b) {
        return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
    });
}

std::string cert_pem(X509* cert) {
    return to_pem([cert](BIO* b) { return PEM_write_bio_X509(b, cert); });
}

}  // namespace

bool create_certificates(const CertificateRequest& req, std::string& error) {
    if (!shared::prepare_certificate_request(req, error)) return false;
    auto ca_key = generate_key(req.key_type, error);
    auto key = ca_key ? generate_key(req.key_type, error) : nullptr;
    if (!key) return false;
    auto ca = make_certificate(ca_key.get(), "pggw snake-oil CA", nullptr, ca_key.get(), req.days,
                               {{NID_basic_constraints, "critical,CA:TRUE"},
                                {NID_key_usage, "critical,keyCertSign,cRLSign"},
                                {NID_subject_key_identifier, "hash"}});
    const std::string usage = req.key_type == "rsa-2048"
                                  ? "critical,digitalSignature,keyEncipherment"
                                  : "critical,digitalSignature";
    auto cert =
        ca ? make_certificate(key.get(), req.hostnames.front(), ca.get(), ca_key.get(), req.days,
                              {{NID_basic_constraints, "critical,CA:FALSE"},
                               {NID_key_usage, usage},
                               {NID_ext_key_usage, "serverAuth"},
                               {NID_subject_key_identifier, "hash"},
                               {NID_authority_key_identifier, "keyid:always"},
                               {NID_subject_alt_name, alt_names(req.hostnames)}})
           : nullptr;
    if (!cert) {
        error = "cannot make certificates: " + error_text(take_error());
        return false;
    }
    const std::filesystem::path dir(req.dir);
    return shared::write_pem(dir / "ca.key", 0600, key_pem(ca_key.get()), error) &&
           shared::write_pem(dir / "ca.crt", 0644, cert_pem(ca.get()), error) &&
           shared::write_pem(dir / "server.key", 0600, key_pem(key.get()), error) &&
           shared::write_pem(dir / "server.crt", 0644, cert_pem(cert.get()), error);
}

}  // namespace pggw::tls::boringssl
