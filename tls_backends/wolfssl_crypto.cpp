// wolfSSL: SCRAM's primitives, the Backend's Crypto (see wolfssl_internal.hpp). wolfCrypt's
// native API (wc_*): the OpenSSL-compatibility layer is not needed for any of them.
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/pwdbased.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <algorithm>
#include <climits>

#include "tls_backends/wolfssl_internal.hpp"

namespace pggw::tls::wolfssl {
namespace {

// wolfCrypt refuses a null pointer even with a zero length: an empty span may have one.
const byte* bytes(std::span<const std::uint8_t> s) {
    static const byte kEmpty = 0;
    return s.empty() ? &kEmpty : s.data();
}

class WolfsslCrypto final : public Crypto {
  public:
    Sha256Digest sha256(std::span<const std::uint8_t> data) const override {
        Sha256Digest out{};
        wc_Sha256Hash(bytes(data), static_cast<word32>(data.size()), out.data());
        return out;
    }
    Sha256Digest hmac_sha256(std::span<const std::uint8_t> key,
                             std::span<const std::uint8_t> data) const override {
        // Fails only on bad arguments (none possible here: no FIPS minimum key length in
        // Debian's build).
        Sha256Digest out{};
        Hmac hmac;
        if (wc_HmacInit(&hmac, nullptr, INVALID_DEVID) != 0) return out;
        if (wc_HmacSetKey(&hmac, WC_SHA256, bytes(key), static_cast<word32>(key.size())) == 0 &&
            wc_HmacUpdate(&hmac, bytes(data), static_cast<word32>(data.size())) == 0) {
            wc_HmacFinal(&hmac, out.data());
        }
        wc_HmacFree(&hmac);
        return out;
    }
    bool pbkdf2_sha256(std::span<const std::uint8_t> password, std::span<const std::uint8_t> salt,
                       std::uint32_t iterations, std::span<std::uint8_t> out) const override {
        // wolfCrypt quietly runs one iteration for zero; BoringSSL refuses, and so do we.
        if (iterations == 0 || iterations > INT_MAX || password.size() > INT_MAX ||
            salt.size() > INT_MAX || out.size() > INT_MAX) {
            return false;
        }
        return wc_PBKDF2(out.data(), bytes(password), static_cast<int>(password.size()),
                         bytes(salt), static_cast<int>(salt.size()), static_cast<int>(iterations),
                         static_cast<int>(out.size()), WC_SHA256) == 0;
    }
    bool random_bytes(std::span<std::uint8_t> out) const override {
        // A DRBG per call (seeded from the OS): no lock shared between threads, and a cost
        // that is nothing next to one SCRAM exchange's PBKDF2.
        WC_RNG rng;
        if (wc_InitRng(&rng) != 0) return false;
        bool ok = true;
        while (ok && !out.empty()) {
            std::size_t n = std::min<std::size_t>(out.size(), RNG_MAX_BLOCK_LEN);
            ok = wc_RNG_GenerateBlock(&rng, out.data(), static_cast<word32>(n)) == 0;
            out = out.subspan(n);
        }
        wc_FreeRng(&rng);
        return ok;
    }
};

}  // namespace

const Crypto& crypto_primitives() {
    static const WolfsslCrypto crypto;
    return crypto;
}

}  // namespace pggw::tls::wolfssl
