// wolfSSL: certificate fields (see wolfssl_internal.hpp).
#include <arpa/inet.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/hash.h>

#include <cstring>
#include <ctime>

#include "tls_backends/shared.hpp"
#include "tls_backends/wolfssl_internal.hpp"

namespace pggw::tls::wolfssl {
namespace {

constexpr int kGeneralNameDns = 2, kGeneralNameIp = 7;  // GeneralName CHOICE tags

}  // namespace

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

CertificateHash x509_sha256(WOLFSSL_X509* cert) {
    CertificateHash out{};
    int len = 0;
    const unsigned char* der = wolfSSL_X509_get_der(cert, &len);
    if (!der || len <= 0) return out;
    wc_Sha256Hash(der, static_cast<word32>(len), out.data());
    return out;
}

// As PostgreSQL's be_tls_get_certificate_hash and libpq's pgtls_get_peer_certificate_hash: the
// digest of the signature algorithm, MD5 and SHA-1 replaced by SHA-256 (RFC 5929 section 4.1).
// wolfSSL has no OBJ_find_sigid_algs: the signature OIDs it knows, mapped here. Ed25519,
// Ed448 and RSA-PSS name no digest that way: no binding, as with BoringSSL.
std::vector<std::uint8_t> x509_server_end_point(WOLFSSL_X509* cert) {
    wc_HashType type = WC_HASH_TYPE_NONE;
    switch (cert ? wolfSSL_X509_get_signature_type(cert) : 0) {
        case CTC_MD5wRSA:
        case CTC_SHAwRSA:
        case CTC_SHAwECDSA:
        case CTC_SHAwDSA:
        case CTC_SHA256wRSA:
        case CTC_SHA256wECDSA:
        case CTC_SHA256wDSA:
            type = WC_HASH_TYPE_SHA256;
            break;
        case CTC_SHA224wRSA:
        case CTC_SHA224wECDSA:
            type = WC_HASH_TYPE_SHA224;
            break;
        case CTC_SHA384wRSA:
        case CTC_SHA384wECDSA:
            type = WC_HASH_TYPE_SHA384;
            break;
        case CTC_SHA512wRSA:
        case CTC_SHA512wECDSA:
            type = WC_HASH_TYPE_SHA512;
            break;
        default:
            return {};
    }
    int len = 0;
    const unsigned char* der = wolfSSL_X509_get_der(cert, &len);
    int size = wc_HashGetDigestSize(type);
    if (!der || len <= 0 || size <= 0) return {};
    std::vector<std::uint8_t> out(static_cast<std::size_t>(size));
    if (wc_Hash(type, der, static_cast<word32>(len), out.data(), static_cast<word32>(size)) != 0) {
        return {};
    }
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

bool x509_matches_ip(WOLFSSL_X509* cert, const std::string& host) {
    unsigned char want[16];
    int want_len = inet_pton(AF_INET, host.c_str(), want) == 1    ? 4
                   : inet_pton(AF_INET6, host.c_str(), want) == 1 ? 16
                                                                  : 0;
    if (want_len == 0) return false;
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

std::string x509_presented_names(WOLFSSL_X509* cert) {
    std::vector<std::string> names;
    auto* sans = static_cast<WOLFSSL_STACK*>(
        wolfSSL_X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    // wolfSSL's stack holds the names last first: walk it backwards for the certificate's order.
    for (int i = sans ? wolfSSL_sk_GENERAL_NAME_num(sans) - 1 : -1; i >= 0; --i) {
        WOLFSSL_GENERAL_NAME* gn = wolfSSL_sk_GENERAL_NAME_value(sans, i);
        if (gn && gn->type == kGeneralNameDns && gn->d.dNSName) {
            names.push_back(
                "DNS:" +
                std::string(reinterpret_cast<const char*>(wolfSSL_ASN1_STRING_data(gn->d.dNSName)),
                            static_cast<std::size_t>(wolfSSL_ASN1_STRING_length(gn->d.dNSName))));
        } else if (gn && gn->type == kGeneralNameIp && gn->d.ip) {
            names.push_back(shared::ip_alt_name(wolfSSL_ASN1_STRING_data(gn->d.ip),
                                                wolfSSL_ASN1_STRING_length(gn->d.ip)));
        }
    }
    if (sans) wolfSSL_GENERAL_NAMES_free(sans);
    return shared::presented_names(names, x509_common_name(wolfSSL_X509_get_subject_name(cert)));
}

}  // namespace pggw::tls::wolfssl
