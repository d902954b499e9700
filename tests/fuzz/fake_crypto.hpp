// A tls::Crypto for the fuzz targets: deterministic and cheap, no TLS library. Not SHA-256:
// the targets check SCRAM's logic (what is parsed, compared and derived, and in what order),
// not the library's hashes, which tests/tls checks against known answers.
#pragma once

#include <cstring>

#include "tls_backends/tls.hpp"

namespace pggw::fuzz {

class FakeCrypto final : public tls::Crypto {
  public:
    tls::Sha256Digest sha256(std::span<const std::uint8_t> data) const override {
        tls::Sha256Digest out{};
        for (std::size_t lane = 0; lane < 4; ++lane) {
            std::uint64_t h = 1469598103934665603ull + lane * 0x9E3779B97F4A7C15ull;
            for (std::uint8_t b : data) h = (h ^ b) * 1099511628211ull;
            h ^= h >> 31, h *= 0xBF58476D1CE4E5B9ull, h ^= h >> 29;  // splitmix-style finish
            std::memcpy(out.data() + 8 * lane, &h, 8);
        }
        return out;
    }
    tls::Sha256Digest hmac_sha256(std::span<const std::uint8_t> key,
                                  std::span<const std::uint8_t> data) const override {
        std::vector<std::uint8_t> in(key.begin(), key.end());
        in.push_back(0x5c);
        in.insert(in.end(), data.begin(), data.end());
        return sha256(in);
    }
    bool pbkdf2_sha256(std::span<const std::uint8_t> password, std::span<const std::uint8_t> salt,
                       std::uint32_t iterations, std::span<std::uint8_t> out) const override {
        if (iterations == 0) return false;
        std::vector<std::uint8_t> s(salt.begin(), salt.end());
        for (int i = 0; i < 4; ++i) s.push_back(std::uint8_t(iterations >> (8 * i)));
        const auto d = hmac_sha256(password, s);  // one round: the count changes the result only
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = d[i % d.size()];
        return true;
    }
    bool random_bytes(std::span<std::uint8_t> out) const override {
        for (auto& b : out) b = std::uint8_t(counter_++ * 131u + 7u);
        return true;
    }

  private:
    mutable std::uint32_t counter_ = 0;
};

}  // namespace pggw::fuzz
