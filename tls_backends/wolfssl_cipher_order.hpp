// The wolfSSL backend's default suite order: ChaCha20-Poly1305 first where this wolfSSL's
// AES-GCM has no hardware under it, as BoringSSL orders its defaults by itself. Header-only and
// private to the backend: wolfssl_context.cpp applies it, and the TLS tests (tests/tls) compute
// what a handshake must negotiate with the same decision. Needs no wolfSSL library, only the
// build options of the one this module links.
#pragma once

#include <wolfssl/options.h>  // force-included in the module already; the tests need it here

#include <sstream>
#include <string>

namespace pggw::tls::wolfssl {

// Whether this wolfSSL's AES-GCM runs on AES instructions. Decided from the library's build
// options (wolfssl/options.h: the header that fixes the ABI of the library the module links)
// because wolfSSL has no run-time query for it, and a timing probe at start would be noisy on a
// shared machine. Without one of these, AES and GHASH are table-driven C (Debian 12's 5.5.4:
// GCM_TABLE_4BIT, no WOLFSSL_AESNI), about twice the CPU of ChaCha20-Poly1305 per byte
// (bench/RESULTS.md, "Bulk"). With WOLFSSL_AESNI the library still checks the CPU at run time
// and falls back to C without AES-NI (and PCLMULQDQ, for GHASH): so do we. The ARMv8 crypto
// extensions (WOLFSSL_ARMASM) are used without a run-time check; AES handed to the kernel or a
// device (AF_ALG, /dev/crypto, KCAPI) is taken as hardware.
inline bool aes_accelerated() {
#if defined(WOLFSSL_AESNI) && (defined(__x86_64__) || defined(__i386__))
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
#elif (defined(WOLFSSL_ARMASM) && !defined(WOLFSSL_ARMASM_NO_HW_CRYPTO)) || \
    defined(WOLFSSL_AFALG) || defined(WOLFSSL_DEVCRYPTO_AES) || defined(WOLFSSL_KCAPI_AES)
    return true;
#else
    return false;
#endif
}

// `list` (names separated by ':') with its ChaCha20-Poly1305 suites moved to the front, each
// part in its own order: "A:X-CHACHA20-Y:B" -> "X-CHACHA20-Y:A:B".
inline std::string chacha20_first(const std::string& list) {
    std::string chacha, rest;
    std::stringstream ss(list);
    std::string item;
    while (std::getline(ss, item, ':')) {
        if (item.empty()) continue;
        std::string& to = item.find("CHACHA20") != std::string::npos ? chacha : rest;
        if (!to.empty()) to += ':';
        to += item;
    }
    return chacha.empty() || rest.empty() ? chacha + rest : chacha + ":" + rest;
}

// The order of a list pggw chose itself (its TLS 1.3 suites, its default TLS 1.2 list): as
// given where AES is fast, ChaCha20-Poly1305 first where it is not. wolfSSL picks the suite in
// the server's order (the client's only after wolfSSL_UseClientSuites, which pggw never calls),
// so a server that lists ChaCha20 first gets it from any client that offers it at all. A list
// the operator gave (Options::ciphers) never passes through here.
inline std::string default_order(const std::string& list) {
    return aes_accelerated() ? list : chacha20_first(list);
}

}  // namespace pggw::tls::wolfssl
