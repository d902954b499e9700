// wolfSSL: gen-cert, a snake-oil CA and a server certificate signed by it, with wolfCrypt's
// certificate API (WOLFSSL_CERT_GEN in Debian's build; see wolfssl_internal.hpp). The request
// checks and the file writing are shared.hpp's.
#include <arpa/inet.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "tls_backends/shared.hpp"
#include "tls_backends/wolfssl_internal.hpp"

namespace pggw::tls::wolfssl {
namespace {

// One key of the three types; the certificate API's *_ex functions take (key_type(), key()).
struct KeyPair {
    shared::KeyType type = shared::KeyType::ecdsa_p256;
    bool ready = false;
    ecc_key ecc;
    RsaKey rsa_key;
    ed25519_key ed;
    int key_type() const {
        switch (type) {
            case shared::KeyType::rsa_2048:
                return RSA_TYPE;
            case shared::KeyType::ed25519:
                return ED25519_TYPE;
            case shared::KeyType::ecdsa_p256:
                break;
        }
        return ECC_TYPE;
    }
    void* key() {
        switch (type) {
            case shared::KeyType::rsa_2048:
                return &rsa_key;
            case shared::KeyType::ed25519:
                return &ed;
            case shared::KeyType::ecdsa_p256:
                break;
        }
        return &ecc;
    }
    // Ed25519 (RFC 8410) signs the message itself: no digest in the signature algorithm.
    int signature_type() const {
        switch (type) {
            case shared::KeyType::rsa_2048:
                return CTC_SHA256wRSA;
            case shared::KeyType::ed25519:
                return CTC_ED25519;
            case shared::KeyType::ecdsa_p256:
                break;
        }
        return CTC_SHA256wECDSA;
    }
    ~KeyPair() {
        if (!ready) return;
        switch (type) {
            case shared::KeyType::rsa_2048:
                wc_FreeRsaKey(&rsa_key);
                break;
            case shared::KeyType::ed25519:
                wc_ed25519_free(&ed);
                break;
            case shared::KeyType::ecdsa_p256:
                wc_ecc_free(&ecc);
                break;
        }
    }
};

struct Rng {
    WC_RNG rng;
    bool ready = wc_InitRng(&rng) == 0;
    ~Rng() {
        if (ready) wc_FreeRng(&rng);
    }
};

std::unique_ptr<KeyPair> generate_key(const std::string& type, WC_RNG& rng, std::string& error) {
    shared::KeyType key_type{};
    if (!shared::parse_key_type(type, key_type, error)) return nullptr;
    auto key = std::make_unique<KeyPair>();
    key->type = key_type;
    if (key_type == shared::KeyType::ecdsa_p256) {
        key->ready = wc_ecc_init(&key->ecc) == 0;
        if (!key->ready || wc_ecc_make_key_ex(&rng, 32, &key->ecc, ECC_SECP256R1) != 0) {
            error = "cannot generate an ECDSA P-256 key";
            return nullptr;
        }
    } else if (key_type == shared::KeyType::ed25519) {
        key->ready = wc_ed25519_init(&key->ed) == 0;
        if (!key->ready || wc_ed25519_make_key(&rng, ED25519_KEY_SIZE, &key->ed) != 0) {
            error = "cannot generate an Ed25519 key";
            return nullptr;
        }
    } else {
        key->ready = wc_InitRsaKey(&key->rsa_key, nullptr) == 0;
        if (!key->ready || wc_MakeRsaKey(&key->rsa_key, 2048, WC_RSA_EXPONENT, &rng) != 0 ||
            wc_RsaSetRNG(&key->rsa_key, &rng) != 0) {
            error = "cannot generate an RSA 2048 key";
            return nullptr;
        }
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

// subjectAltName's GeneralNames in DER: dNSName [2] and iPAddress [7].
std::vector<std::uint8_t> alt_names(const std::vector<std::string>& hostnames) {
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
    cert->sigType = issuer_key.signature_type();
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
    if (wc_SetSubjectKeyIdFromPublicKey_ex(cert.get(), key.key_type(), key.key()) != 0 ||
        wc_SetAuthKeyIdFromPublicKey_ex(cert.get(), issuer_key.key_type(), issuer_key.key()) != 0 ||
        wc_SetKeyUsage(cert.get(), usage) != 0 ||
        (ext_usage && wc_SetExtKeyUsage(cert.get(), ext_usage) != 0)) {
        return {};
    }
    int body = wc_MakeCert_ex(cert.get(), der.data(), static_cast<word32>(der.size()),
                              key.key_type(), key.key(), &rng);
    if (body <= 0) return {};
    int len = wc_SignCert_ex(body, cert->sigType, der.data(), static_cast<word32>(der.size()),
                             issuer_key.key_type(), issuer_key.key(), &rng);
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
    const auto size = static_cast<word32>(der.size());
    int len = 0, pem_type = 0;
    switch (key.type) {
        case shared::KeyType::rsa_2048:  // PKCS#1, "RSA PRIVATE KEY"
            len = wc_RsaKeyToDer(&key.rsa_key, der.data(), size);
            pem_type = PRIVATEKEY_TYPE;
            break;
        case shared::KeyType::ed25519:  // RFC 8410 PKCS#8, "PRIVATE KEY"
            len = wc_Ed25519PrivateKeyToDer(&key.ed, der.data(), size);
            pem_type = PKCS8_PRIVATEKEY_TYPE;
            break;
        case shared::KeyType::ecdsa_p256:  // SEC 1, "EC PRIVATE KEY"
            len = wc_EccKeyToDer(&key.ecc, der.data(), size);
            pem_type = ECC_PRIVATEKEY_TYPE;
            break;
    }
    if (len <= 0) return {};
    der.resize(static_cast<std::size_t>(len));
    std::string pem = to_pem(der, pem_type);
    std::fill(der.begin(), der.end(), 0);
    return pem;
}

}  // namespace

bool create_certificates(const CertificateRequest& req, std::string& error) {
    if (!shared::prepare_certificate_request(req, error)) return false;
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
    auto cert = ca.empty()
                    ? ca
                    : make_certificate(*key, req.hostnames.front(), ca, *ca_key, req.days, usage,
                                       "serverAuth", alt_names(req.hostnames), rng->rng);
    if (cert.empty()) {
        error = "cannot make certificates";
        return false;
    }
    const std::filesystem::path dir(req.dir);
    return shared::write_pem(dir / "ca.key", 0600, key_pem(*ca_key), error) &&
           shared::write_pem(dir / "ca.crt", 0644, to_pem(ca, CERT_TYPE), error) &&
           shared::write_pem(dir / "server.key", 0600, key_pem(*key), error) &&
           shared::write_pem(dir / "server.crt", 0644, to_pem(cert, CERT_TYPE), error);
}

}  // namespace pggw::tls::wolfssl
