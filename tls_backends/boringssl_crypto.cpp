// BoringSSL: SCRAM's primitives, the Backend's Crypto (see boringssl_internal.hpp).
#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "tls_backends/boringssl_internal.hpp"

namespace pggw::tls::boringssl {
namespace {

class BoringsslCrypto final : public Crypto {
  public:
    Sha256Digest sha256(std::span<const std::uint8_t> data) const override {
        Sha256Digest out{};
        SHA256(data.data(), data.size(), out.data());
        return out;
    }
    Sha256Digest hmac_sha256(std::span<const std::uint8_t> key,
                             std::span<const std::uint8_t> data) const override {
        // One-shot HMAC works on a stack context: it cannot fail for SHA-256.
        Sha256Digest out{};
        unsigned len = 0;
        HMAC(EVP_sha256(), key.data(), key.size(), data.data(), data.size(), out.data(), &len);
        return out;
    }
    bool pbkdf2_sha256(std::span<const std::uint8_t> password, std::span<const std::uint8_t> salt,
                       std::uint32_t iterations, std::span<std::uint8_t> out) const override {
        if (iterations == 0) return false;
        return PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(password.data()), password.size(),
                                 salt.data(), salt.size(), iterations, EVP_sha256(), out.size(),
                                 out.data()) == 1;
    }
    bool random_bytes(std::span<std::uint8_t> out) const override {
        return RAND_bytes(out.data(), out.size()) == 1;  // BoringSSL aborts rather than fail
    }
};

}  // namespace

const Crypto& crypto_primitives() {
    static const BoringsslCrypto crypto;
    return crypto;
}

}  // namespace pggw::tls::boringssl
