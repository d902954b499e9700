#include "gateway/auth/scram_server.hpp"

#include <array>

#include "gateway/auth/base64.hpp"
#include "gateway/auth/constant_time.hpp"

namespace pggw::auth {

namespace {

std::string_view text(std::span<const std::uint8_t> data) {
    return {reinterpret_cast<const char*>(data.data()), data.size()};
}

}  // namespace

std::string password_authentication_failed(std::string_view user) {
    return "password authentication failed for user \"" + std::string(user) + "\"";
}

ScramServer::ScramServer(const tls::Crypto& crypto, const ScramSecret& secret,
                         std::vector<std::uint8_t> channel_binding)
    : crypto_(crypto), secret_(secret), binding_(std::move(channel_binding)) {}

ScramServer::ScramServer(const tls::Crypto& crypto, const ScramSecret& secret,
                         std::vector<std::uint8_t> channel_binding, std::string fixed_server_nonce)
    : crypto_(crypto),
      secret_(secret),
      binding_(std::move(channel_binding)),
      fixed_nonce_(std::move(fixed_server_nonce)) {}

std::vector<std::string_view> ScramServer::mechanisms() const {
    if (binding_.empty()) return {kScramSha256};
    return {kScramSha256Plus, kScramSha256};
}

ScramStep ScramServer::fail(std::string_view sqlstate, std::string message, std::string detail) {
    state_ = State::failed;
    ScramStep s;
    s.kind = ScramStep::invalid;
    s.sqlstate = sqlstate;
    s.message = std::move(message);
    s.detail = std::move(detail);
    return s;
}

ScramStep ScramServer::initial(std::string_view mechanism,
                               std::optional<std::span<const std::uint8_t>> data) {
    if (state_ != State::init) return fail(kProtocolViolation, "invalid SCRAM exchange state");
    // -PLUS only where it was offered; anything else is a mechanism never offered.
    if (mechanism == kScramSha256Plus && !binding_.empty()) {
        plus_ = true;
        mechanism_ = kScramSha256Plus;
    } else if (mechanism == kScramSha256) {
        plus_ = false;
        mechanism_ = kScramSha256;
    } else {
        return fail(kProtocolViolation, "client selected an invalid SASL authentication mechanism");
    }
    if (!data) {
        // No initial response: an empty challenge, and the client-first-message comes next.
        state_ = State::awaiting_first;
        ScramStep s;
        s.kind = ScramStep::reply;
        return s;
    }
    return client_first(text(*data));
}

ScramStep ScramServer::response(std::span<const std::uint8_t> data) {
    switch (state_) {
        case State::awaiting_first:
            return client_first(text(data));
        case State::salt_sent:
            return client_final(text(data));
        default:
            return fail(kProtocolViolation, "invalid SCRAM exchange state");
    }
}

ScramStep ScramServer::client_first(std::string_view msg) {
    ScramError e;
    auto m = parse_client_first(msg, plus_, !binding_.empty(), e);
    if (!m) return fail(e.sqlstate, std::move(e.message), std::move(e.detail));
    cbind_flag_ = m->cbind_flag;
    client_nonce_ = std::move(m->nonce);
    client_first_bare_ = std::move(m->bare);

    if (!fixed_nonce_.empty()) {
        server_nonce_ = fixed_nonce_;
    } else {
        std::array<std::uint8_t, kRawNonceLength> raw{};
        if (!crypto_.random_bytes(raw))
            return fail("XX000", "could not generate random nonce");  // internal_error
        server_nonce_ = base64_encode(raw);
    }
    server_first_ =
        build_server_first(client_nonce_ + server_nonce_, secret_.salt, secret_.iterations);
    state_ = State::salt_sent;
    ScramStep s;
    s.kind = ScramStep::reply;
    s.data = server_first_;
    return s;
}

ScramStep ScramServer::client_final(std::string_view msg) {
    ScramError e;
    auto m = parse_client_final(msg, e);
    if (!m) return fail(e.sqlstate, std::move(e.message), std::move(e.detail));

    if (plus_) {
        // The client must have bound its proof to the certificate pggw presented.
        if (!constant_time_equal(m->channel_binding, channel_binding_attribute('p', binding_)))
            return fail(kInvalidAuthorizationSpecification, "SCRAM channel binding check failed");
    } else if (!(m->channel_binding == "biws" && cbind_flag_ == 'n') &&
               !(m->channel_binding == "eSws" && cbind_flag_ == 'y')) {
        // base64 of "n,," and "y,,": the flag must repeat the client-first-message's.
        return fail(kProtocolViolation,
                    "unexpected SCRAM channel-binding attribute in client-final-message");
    }

    if (!constant_time_equal(m->nonce, client_nonce_ + server_nonce_))
        return fail(kProtocolViolation, "invalid SCRAM response", "Nonce does not match.");

    const auto client_signature = scram_signature(crypto_, secret_.stored_key, client_first_bare_,
                                                  server_first_, m->without_proof);
    tls::Sha256Digest client_key{};
    for (std::size_t i = 0; i < client_key.size(); ++i)
        client_key[i] = m->proof[i] ^ client_signature[i];
    if (!constant_time_equal(crypto_.sha256(client_key), secret_.stored_key)) {
        state_ = State::failed;
        ScramStep s;
        s.kind = ScramStep::wrong_password;
        s.sqlstate = kInvalidPassword;
        return s;
    }

    client_key_ = client_key;
    state_ = State::finished;
    ScramStep s;
    s.kind = ScramStep::done;
    s.data = build_server_final(scram_signature(crypto_, secret_.server_key, client_first_bare_,
                                                server_first_, m->without_proof));
    return s;
}

}  // namespace pggw::auth
