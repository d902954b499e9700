// BoringSSL: certificate fields (see boringssl_internal.hpp).
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/digest.h>
#include <openssl/obj.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "tls_backends/boringssl_internal.hpp"
#include "tls_backends/shared.hpp"

namespace pggw::tls::boringssl {

std::string x509_name_line(const X509_NAME* name) {
    if (!name) return {};
    bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    const uint8_t* data = nullptr;
    std::size_t len = 0;
    BIO_mem_contents(bio.get(), &data, &len);
    return std::string(reinterpret_cast<const char*>(data), len);
}

CertificateHash x509_sha256(X509* cert) {
    CertificateHash out{};
    uint8_t* der = nullptr;
    int len = i2d_X509(cert, &der);
    if (len <= 0) return out;
    SHA256(der, static_cast<std::size_t>(len), out.data());
    OPENSSL_free(der);
    return out;
}

// As PostgreSQL's be_tls_get_certificate_hash and libpq's pgtls_get_peer_certificate_hash: the
// digest of the signature algorithm, MD5 and SHA-1 replaced by SHA-256 (RFC 5929 section 4.1).
// Ed25519 and RSA-PSS name no digest here (NID_undef): no binding, as libpq gives none either.
std::vector<std::uint8_t> x509_server_end_point(const X509* cert) {
    int digest_nid = NID_undef, pkey_nid = NID_undef;
    if (!cert || !OBJ_find_sigid_algs(X509_get_signature_nid(cert), &digest_nid, &pkey_nid)) {
        return {};
    }
    if (digest_nid == NID_md5 || digest_nid == NID_sha1) digest_nid = NID_sha256;
    const EVP_MD* md = EVP_get_digestbynid(digest_nid);
    std::vector<std::uint8_t> out(EVP_MAX_MD_SIZE);
    unsigned len = 0;
    if (!md || !X509_digest(cert, md, out.data(), &len)) return {};
    out.resize(len);
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

bool ip_host_matches_common_name(X509* cert, const std::string& host) {
    bssl::UniquePtr<GENERAL_NAMES> sans(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    for (std::size_t i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
        int type = sk_GENERAL_NAME_value(sans.get(), i)->type;
        if (type == GEN_DNS || type == GEN_IPADD) return false;
    }
    return x509_common_name(X509_get_subject_name(cert)) == host;
}

std::string x509_presented_names(X509* cert) {
    std::vector<std::string> names;
    bssl::UniquePtr<GENERAL_NAMES> sans(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    for (std::size_t i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
        if (gn->type == GEN_DNS) {
            names.push_back(
                "DNS:" +
                std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
                            static_cast<std::size_t>(ASN1_STRING_length(gn->d.dNSName))));
        } else if (gn->type == GEN_IPADD) {
            names.push_back(shared::ip_alt_name(ASN1_STRING_get0_data(gn->d.iPAddress),
                                                ASN1_STRING_length(gn->d.iPAddress)));
        }
    }
    return shared::presented_names(names, x509_common_name(X509_get_subject_name(cert)));
}

}  // namespace pggw::tls::boringssl
