#include "gateway/auth/scram_client.hpp"

#include <algorithm>
#include <array>

#include "gateway/auth/base64.hpp"
#include "gateway/auth/constant_time.hpp"
#include "gateway/auth/scram_messages.hpp"

namespace pggw::auth {

namespace {

// Server-chosen text in an error: printable ASCII only, bounded (it reaches logs and clients).
std::string sanitize(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 64)) out += (c >= 0x20 && c <= 0x7e) ? c : '?';
    return out;
}

}  // namespace

ScramClient::ScramClient(const tls::Crypto& crypto, ScramCredentials credentials)
    : crypto_(crypto), credentials_(std::move(credentials)) {}

ScramClient::ScramClient(const tls::Crypto& crypto, ScramCredentials credentials,
                         std::string fixed_client_nonce)
    : crypto_(crypto),
      credentials_(std::move(credentials)),
      fixed_nonce_(std::move(fixed_client_nonce)) {}

ScramStep ScramClient::fail(std::string message, std::string detail) {
    state_ = State::failed;
    ScramStep s;
    s.kind = ScramStep::invalid;
    s.sqlstate = kProtocolViolation;
    s.message = std::move(message);
    s.detail = std::move(detail);
    return s;
}

std::optional<std::string> ScramClient::client_first(std::span<const std::string> offered,
                                                     std::vector<std::uint8_t> channel_binding,
                                                     std::string& error) {
    if (state_ != State::init) {
        error = "invalid SCRAM exchange state";
        return std::nullopt;
    }
    const bool by_secret = credentials_.secret && credentials_.client_key;
    if (!by_secret && !credentials_.password) {
        state_ = State::failed;
        error =
            "no SCRAM credentials for this user (neither a secret with its client key nor a "
            "password)";
        return std::nullopt;
    }
    auto has = [&](std::string_view m) {
        return std::find(offered.begin(), offered.end(), m) != offered.end();
    };
    if (!channel_binding.empty() && has(kScramSha256Plus)) {
        mechanism_ = kScramSha256Plus;
        cbind_flag_ = 'p';
    } else if (has(kScramSha256)) {
        mechanism_ = kScramSha256;
        // As libpq: 'y' says pggw could bind but the server did not offer it (a server that
        // can bind then refuses: someone stripped -PLUS from its offer).
        cbind_flag_ = channel_binding.empty() ? 'n' : 'y';
    } else {
        state_ = State::failed;
        error = "none of the server's SASL authentication mechanisms are supported";
        return std::nullopt;
    }
    binding_ = std::move(channel_binding);

    if (!fixed_nonce_.empty()) {
        client_nonce_ = fixed_nonce_;
    } else {
        std::array<std::uint8_t, kRawNonceLength> raw{};
        if (!crypto_.random_bytes(raw)) {
            state_ = State::failed;
            error = "could not generate nonce";
            return std::nullopt;
        }
        client_nonce_ = base64_encode(raw);
    }
    std::string first = build_client_first(cbind_flag_, client_nonce_);
    client_first_bare_ = first.substr(gs2_header(cbind_flag_).size());
    state_ = State::nonce_sent;
    return first;
}

ScramStep ScramClient::server_first(std::string_view msg) {
    if (state_ != State::nonce_sent) return fail("invalid SCRAM exchange state");
    ScramError e;
    auto m = parse_server_first(msg, client_nonce_, e);
    if (!m) return fail(std::move(e.message), std::move(e.detail));

    tls::Sha256Digest client_key{};
    if (!credentials_.password) {
        const ScramSecret& secret = *credentials_.secret;
        if (m->salt != secret.salt || m->iterations != secret.iterations) {
            // PostgreSQL holds another secret for this user: the password changed since the
            // auth source was written. Salt and iteration count are public (PostgreSQL sends
            // them to anyone who asks), so naming the counts is safe.
            state_ = State::failed;
            ScramStep s;
            s.kind = ScramStep::stale;
            s.sqlstate = kInvalidAuthorizationSpecification;
            s.message =
                "the SCRAM secret pggw holds for this user is not the server's (auth "
                "source out of date)";
            s.detail = "The server's salt or iteration count (" + std::to_string(m->iterations) +
                       ") differs from the secret's (" + std::to_string(secret.iterations) + ").";
            return s;
        }
        client_key = *credentials_.client_key;
        server_key_ = secret.server_key;
    } else {
        // Plaintext password: SaltedPassword with the server's own salt and iteration count.
        tls::Sha256Digest salted{};
        if (!salted_password(crypto_, *credentials_.password, m->salt, m->iterations, salted))
            return fail("could not calculate client proof: PBKDF2 failed");
        client_key = client_key_from_salted(crypto_, salted);
        server_key_ = server_key_from_salted(crypto_, salted);
    }

    server_first_ = std::string(msg);
    const std::string binding = channel_binding_attribute(cbind_flag_, binding_);
    client_final_without_proof_ = build_client_final_without_proof(binding, m->nonce);
    const auto signature = scram_signature(crypto_, crypto_.sha256(client_key), client_first_bare_,
                                           server_first_, client_final_without_proof_);
    tls::Sha256Digest proof{};
    for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = client_key[i] ^ signature[i];
    state_ = State::proof_sent;
    ScramStep s;
    s.kind = ScramStep::reply;
    s.data = build_client_final(client_final_without_proof_, proof);
    return s;
}

ScramStep ScramClient::server_final(std::string_view msg) {
    if (state_ != State::proof_sent) return fail("invalid SCRAM exchange state");
    ScramError e;
    auto m = parse_server_final(msg, e);
    if (!m) return fail(std::move(e.message), std::move(e.detail));
    if (!m->verifier)
        return fail("error received from server in SCRAM exchange: " + sanitize(m->error));
    const auto expected = scram_signature(crypto_, server_key_, client_first_bare_, server_first_,
                                          client_final_without_proof_);
    if (!constant_time_equal(*m->verifier, expected)) {
        ScramStep s = fail("incorrect server signature");
        s.sqlstate = kInvalidAuthorizationSpecification;
        return s;
    }
    state_ = State::finished;
    ScramStep s;
    s.kind = ScramStep::done;
    return s;
}

}  // namespace pggw::auth
