// SCRAM-SHA-256 secrets as PostgreSQL stores them in pg_authid.rolpassword, and the key
// derivations of RFC 5802 section 3 (all through tls::Crypto: no TLS-library header here).
//
//   SaltedPassword = PBKDF2-HMAC-SHA-256(SASLprep(password), salt, iterations)
//   ClientKey      = HMAC(SaltedPassword, "Client Key")
//   StoredKey      = H(ClientKey)
//   ServerKey      = HMAC(SaltedPassword, "Server Key")
//   AuthMessage    = client-first-message-bare "," server-first-message ","
//                    client-final-message-without-proof
//   ClientProof    = ClientKey XOR HMAC(StoredKey, AuthMessage)
//   ServerSignature = HMAC(ServerKey, AuthMessage)
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tls_backends/tls.hpp"

namespace pggw::auth {

struct ScramSecret {
    std::uint32_t iterations = 0;
    std::vector<std::uint8_t> salt;
    tls::Sha256Digest stored_key{};
    tls::Sha256Digest server_key{};
};

// PostgreSQL's defaults (SCRAM_DEFAULT_SALT_LEN, SCRAM_DEFAULT_ITERATIONS), and the bounds pggw
// accepts for an iteration count (PostgreSQL's int; at least 1).
inline constexpr std::size_t kDefaultSaltLength = 16;
inline constexpr std::uint32_t kDefaultIterations = 4096;
inline constexpr std::uint32_t kMaxIterations = 0x7fffffff;
// Longest base64 salt pggw accepts in a secret or a server-first-message (PostgreSQL's are 24
// characters); a bound for hostile input, far above any real salt.
inline constexpr std::size_t kMaxSaltBase64 = 1024;

// "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" (base64 salt and keys). Strict:
// exactly that scheme, a decimal iteration count in 1..kMaxIterations without sign, spaces or
// leading zeros, a non-empty salt, 32-byte keys, nothing else. nullopt when malformed.
std::optional<ScramSecret> parse_scram_secret(std::string_view text);
// The same text back (PostgreSQL's format), e.g. for tests. It holds key material: never log it.
std::string format_scram_secret(const ScramSecret& secret);

// Whether text is meant as a SCRAM secret (starts with "SCRAM-SHA-256$"), parsed or not.
bool looks_like_scram_secret(std::string_view text);

// SaltedPassword: PBKDF2 over saslprep(password). False only when the library fails.
bool salted_password(const tls::Crypto& crypto, std::string_view password,
                     std::span<const std::uint8_t> salt, std::uint32_t iterations,
                     tls::Sha256Digest& out);
tls::Sha256Digest client_key_from_salted(const tls::Crypto& crypto,
                                         const tls::Sha256Digest& salted);
tls::Sha256Digest server_key_from_salted(const tls::Crypto& crypto,
                                         const tls::Sha256Digest& salted);

// The secret PostgreSQL would store for this password, salt and iteration count (what
// CREATE ROLE ... PASSWORD computes). iterations must be >= 1. Crypto failures (none expected
// from the two libraries) give a secret no proof can match: all-zero keys.
ScramSecret scram_secret_from_password(const tls::Crypto& crypto, std::string_view password,
                                       std::span<const std::uint8_t> salt,
                                       std::uint32_t iterations);
// ClientKey for this password, salt and iteration count: what pggw proves itself with toward
// PostgreSQL when it holds a plaintext password.
tls::Sha256Digest scram_client_key_from_password(const tls::Crypto& crypto,
                                                 std::string_view password,
                                                 std::span<const std::uint8_t> salt,
                                                 std::uint32_t iterations);

// HMAC(key, bare "," server_first "," client_final_without_proof): ClientSignature with
// StoredKey, ServerSignature with ServerKey.
tls::Sha256Digest scram_signature(const tls::Crypto& crypto, const tls::Sha256Digest& key,
                                  std::string_view client_first_bare, std::string_view server_first,
                                  std::string_view client_final_without_proof);

}  // namespace pggw::auth
