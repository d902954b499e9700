// Base64 (RFC 4648 section 4, the standard alphabet, with padding) for SCRAM: salts, nonces,
// proofs, signatures and channel-binding input all travel in it.
//
// Hand-written: neither TLS library is reachable from here (the protocol code stays free of
// TLS-library headers) and no Debian library offers a public base64 API worth a dependency.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pggw::auth {

std::string base64_encode(std::span<const std::uint8_t> data);
inline std::string base64_encode(std::string_view data) {
    return base64_encode(
        std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
}

// Strict: length a multiple of 4, only the alphabet, '=' only as the last one or two
// characters, and the unused bits of the last character zero (so every byte string has exactly
// one encoding, and comparing encodings compares bytes). No whitespace. nullopt otherwise.
// The empty string decodes to no bytes.
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text);

}  // namespace pggw::auth
