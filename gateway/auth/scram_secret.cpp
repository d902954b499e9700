#include "gateway/auth/scram_secret.hpp"

#include "gateway/auth/base64.hpp"
#include "gateway/auth/saslprep.hpp"

namespace pggw::auth {

namespace {

constexpr std::string_view kScheme = "SCRAM-SHA-256$";

std::span<const std::uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Decimal 1..kMaxIterations, no sign, no leading zero, no blanks.
std::optional<std::uint32_t> parse_iterations(std::string_view s) {
    if (s.empty() || s.size() > 10 || s[0] == '0') return std::nullopt;
    std::uint64_t n = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + std::uint64_t(c - '0');
    }
    if (n < 1 || n > kMaxIterations) return std::nullopt;
    return std::uint32_t(n);
}

bool parse_key(std::string_view b64, tls::Sha256Digest& out) {
    auto key = base64_decode(b64);
    if (!key || key->size() != out.size()) return false;
    std::copy(key->begin(), key->end(), out.begin());
    return true;
}

}  // namespace

bool looks_like_scram_secret(std::string_view text) {
    return text.starts_with(kScheme);
}

std::optional<ScramSecret> parse_scram_secret(std::string_view text) {
    if (!text.starts_with(kScheme)) return std::nullopt;
    text.remove_prefix(kScheme.size());
    // <iterations>:<salt>$<StoredKey>:<ServerKey>; base64 has neither ':' nor '$'.
    const auto dollar = text.find('$');
    if (dollar == std::string_view::npos) return std::nullopt;
    const std::string_view first = text.substr(0, dollar), second = text.substr(dollar + 1);
    const auto colon1 = first.find(':'), colon2 = second.find(':');
    if (colon1 == std::string_view::npos || colon2 == std::string_view::npos) return std::nullopt;

    ScramSecret s;
    auto iterations = parse_iterations(first.substr(0, colon1));
    if (!iterations) return std::nullopt;
    s.iterations = *iterations;
    const std::string_view salt_b64 = first.substr(colon1 + 1);
    if (salt_b64.empty() || salt_b64.size() > kMaxSaltBase64) return std::nullopt;
    auto salt = base64_decode(salt_b64);
    if (!salt || salt->empty()) return std::nullopt;
    s.salt = std::move(*salt);
    if (!parse_key(second.substr(0, colon2), s.stored_key)) return std::nullopt;
    if (!parse_key(second.substr(colon2 + 1), s.server_key)) return std::nullopt;
    return s;
}

std::string format_scram_secret(const ScramSecret& s) {
    return std::string(kScheme) + std::to_string(s.iterations) + ":" + base64_encode(s.salt) + "$" +
           base64_encode(s.stored_key) + ":" + base64_encode(s.server_key);
}

bool salted_password(const tls::Crypto& crypto, std::string_view password,
                     std::span<const std::uint8_t> salt, std::uint32_t iterations,
                     tls::Sha256Digest& out) {
    if (iterations == 0) return false;
    const std::string prepared = saslprep(password);
    return crypto.pbkdf2_sha256(bytes(prepared), salt, iterations, out);
}

tls::Sha256Digest client_key_from_salted(const tls::Crypto& crypto,
                                         const tls::Sha256Digest& salted) {
    return crypto.hmac_sha256(salted, bytes("Client Key"));
}

tls::Sha256Digest server_key_from_salted(const tls::Crypto& crypto,
                                         const tls::Sha256Digest& salted) {
    return crypto.hmac_sha256(salted, bytes("Server Key"));
}

ScramSecret scram_secret_from_password(const tls::Crypto& crypto, std::string_view password,
                                       std::span<const std::uint8_t> salt,
                                       std::uint32_t iterations) {
    ScramSecret s;
    s.iterations = iterations;
    s.salt.assign(salt.begin(), salt.end());
    tls::Sha256Digest salted{};
    if (!salted_password(crypto, password, salt, iterations, salted)) return s;  // all-zero keys
    s.stored_key = crypto.sha256(client_key_from_salted(crypto, salted));
    s.server_key = server_key_from_salted(crypto, salted);
    return s;
}

tls::Sha256Digest scram_client_key_from_password(const tls::Crypto& crypto,
                                                 std::string_view password,
                                                 std::span<const std::uint8_t> salt,
                                                 std::uint32_t iterations) {
    tls::Sha256Digest salted{};
    if (!salted_password(crypto, password, salt, iterations, salted)) return {};
    return client_key_from_salted(crypto, salted);
}

tls::Sha256Digest scram_signature(const tls::Crypto& crypto, const tls::Sha256Digest& key,
                                  std::string_view client_first_bare, std::string_view server_first,
                                  std::string_view client_final_without_proof) {
    std::string auth_message;
    auth_message.reserve(client_first_bare.size() + server_first.size() +
                         client_final_without_proof.size() + 2);
    auth_message.append(client_first_bare).append(",").append(server_first).append(",");
    auth_message.append(client_final_without_proof);
    return crypto.hmac_sha256(key, bytes(auth_message));
}

}  // namespace pggw::auth
