// Whole SCRAM exchanges: ScramServer against RFC 7677's vector, and ScramClient against
// ScramServer in memory (both mechanisms, channel binding, wrong password, stale secret, bad
// server signature), on every compiled TLS library's crypto.
#include <gtest/gtest.h>

#include "gateway/auth/base64.hpp"
#include "gateway/auth/scram_client.hpp"
#include "gateway/auth/scram_server.hpp"
#include "tests/unit/auth/crypto_backends.hpp"

namespace pggw::auth {
namespace {

using testing::backend_name;
using testing::backends;
using testing::bytes;
using testing::crypto_of;

// RFC 7677 section 3.
constexpr std::string_view kClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

class ScramExchangeTest : public ::testing::TestWithParam<std::string> {
  protected:
    const tls::Crypto& crypto = crypto_of(GetParam());
    const std::vector<std::uint8_t> salt = *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==");
    const ScramSecret secret = scram_secret_from_password(crypto, "pencil", salt, 4096);
    // Two different certificate hashes (tls-server-end-point data).
    const std::vector<std::uint8_t> cert_a = std::vector<std::uint8_t>(32, 0xaa);
    const std::vector<std::uint8_t> cert_b = std::vector<std::uint8_t>(48, 0xbb);

    // Runs client against server; returns the last step of whichever side ended it.
    struct Outcome {
        ScramStep client_first_error;  // kind invalid with message when client_first failed
        ScramStep server_step;         // the server's last step
        ScramStep client_step;         // the client's last step
    };
    Outcome run(ScramServer& server, ScramClient& client,
                const std::vector<std::uint8_t>& client_binding) {
        Outcome o;
        std::vector<std::string> offered;
        for (auto m : server.mechanisms()) offered.emplace_back(m);
        std::string error;
        auto first = client.client_first(offered, client_binding, error);
        if (!first) {
            o.client_first_error.message = error;
            return o;
        }
        o.server_step = server.initial(client.mechanism(), bytes(*first));
        if (o.server_step.kind != ScramStep::reply) return o;
        o.client_step = client.server_first(o.server_step.data);
        if (o.client_step.kind != ScramStep::reply) return o;
        o.server_step = server.response(bytes(o.client_step.data));
        if (o.server_step.kind != ScramStep::done) return o;
        o.client_step = client.server_final(o.server_step.data);
        return o;
    }
};

TEST_P(ScramExchangeTest, ServerReproducesRfc7677) {
    ScramServer server(crypto, secret, {}, std::string(kServerNonce));
    ASSERT_EQ(server.mechanisms(), std::vector<std::string_view>{"SCRAM-SHA-256"});
    auto step = server.initial("SCRAM-SHA-256", bytes(kClientFirst));
    ASSERT_EQ(step.kind, ScramStep::reply) << step.message << " " << step.detail;
    EXPECT_EQ(step.data, kServerFirst);
    step = server.response(bytes(kClientFinal));
    ASSERT_EQ(step.kind, ScramStep::done) << step.message << " " << step.detail;
    EXPECT_EQ(step.data, kServerFinal);
    EXPECT_EQ(server.client_key(), scram_client_key_from_password(crypto, "pencil", salt, 4096));
    EXPECT_EQ(server.mechanism(), "SCRAM-SHA-256");
    EXPECT_FALSE(server.channel_bound());
    // The exchange is over.
    EXPECT_EQ(server.response(bytes(kClientFinal)).kind, ScramStep::invalid);
}

TEST_P(ScramExchangeTest, ServerRefusesRfcProofForAnotherPassword) {
    ScramServer server(crypto, scram_secret_from_password(crypto, "pencil!", salt, 4096), {},
                       std::string(kServerNonce));
    ASSERT_EQ(server.initial("SCRAM-SHA-256", bytes(kClientFirst)).kind, ScramStep::reply);
    auto step = server.response(bytes(kClientFinal));
    EXPECT_EQ(step.kind, ScramStep::wrong_password);
    EXPECT_EQ(step.sqlstate, "28P01");
    EXPECT_EQ(password_authentication_failed("alice"),
              "password authentication failed for user \"alice\"");
}

TEST_P(ScramExchangeTest, ServerWithoutInitialResponse) {
    ScramServer server(crypto, secret, {}, std::string(kServerNonce));
    auto step = server.initial("SCRAM-SHA-256", std::nullopt);
    ASSERT_EQ(step.kind, ScramStep::reply);
    EXPECT_EQ(step.data, "");
    step = server.response(bytes(kClientFirst));
    ASSERT_EQ(step.kind, ScramStep::reply);
    EXPECT_EQ(step.data, kServerFirst);
    EXPECT_EQ(server.response(bytes(kClientFinal)).kind, ScramStep::done);
}

TEST_P(ScramExchangeTest, ClientAgainstServerPlain) {
    ScramServer server(crypto, secret, {});
    ScramClient client(crypto, ScramCredentials::from_password("pencil"));
    auto o = run(server, client, {});
    ASSERT_EQ(o.server_step.kind, ScramStep::done) << o.server_step.message;
    EXPECT_EQ(o.client_step.kind, ScramStep::done) << o.client_step.message;
    EXPECT_EQ(client.mechanism(), "SCRAM-SHA-256");
    EXPECT_FALSE(server.channel_bound());
    EXPECT_EQ(server.client_key(), scram_client_key_from_password(crypto, "pencil", salt, 4096));
}

TEST_P(ScramExchangeTest, ClientAgainstServerPlus) {
    ScramServer server(crypto, secret, cert_a);
    ASSERT_EQ(server.mechanisms(),
              (std::vector<std::string_view>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));
    ScramClient client(crypto, ScramCredentials::from_password("pencil"));
    auto o = run(server, client, cert_a);
    ASSERT_EQ(o.server_step.kind, ScramStep::done) << o.server_step.message;
    EXPECT_EQ(o.client_step.kind, ScramStep::done) << o.client_step.message;
    EXPECT_EQ(client.mechanism(), "SCRAM-SHA-256-PLUS");
    EXPECT_EQ(server.mechanism(), "SCRAM-SHA-256-PLUS");
    EXPECT_TRUE(server.channel_bound());
}

TEST_P(ScramExchangeTest, MismatchedBindingRefused) {
    ScramServer server(crypto, secret, cert_a);
    ScramClient client(crypto, ScramCredentials::from_password("pencil"));
    auto o = run(server, client, cert_b);  // the client sees another certificate
    EXPECT_EQ(o.server_step.kind, ScramStep::invalid);
    EXPECT_EQ(o.server_step.sqlstate, "28000");
    EXPECT_EQ(o.server_step.message, "SCRAM channel binding check failed");
}

TEST_P(ScramExchangeTest, DowngradeToYRefused) {
    // pggw offers -PLUS; a client that says 'y' ("server cannot bind") is refused, as by
    // PostgreSQL: someone stripped -PLUS from the offer.
    ScramServer server(crypto, secret, cert_a);
    ScramClient client(crypto, ScramCredentials::from_password("pencil"));
    std::string error;
    const std::vector<std::string> offered{"SCRAM-SHA-256"};  // -PLUS stripped on the way
    auto first = client.client_first(offered, cert_a, error);
    ASSERT_TRUE(first.has_value());
    EXPECT_TRUE(first->starts_with("y,,"));
    auto step = server.initial("SCRAM-SHA-256", bytes(*first));
    EXPECT_EQ(step.kind, ScramStep::invalid);
    EXPECT_EQ(step.sqlstate, "28000");
    EXPECT_EQ(step.message, "SCRAM channel binding negotiation error");
}

TEST_P(ScramExchangeTest, ClientYAcceptedWhereServerCannotBind) {
    ScramServer server(crypto, secret, {});  // plaintext client leg: no -PLUS offered
    ScramClient client(crypto, ScramCredentials::from_password("pencil"));
    auto o = run(server, client, cert_a);  // pggw could bind, but -PLUS is not offered
    EXPECT_EQ(o.server_step.kind, ScramStep::done) << o.server_step.message;
    EXPECT_EQ(o.client_step.kind, ScramStep::done);
    EXPECT_EQ(client.mechanism(), "SCRAM-SHA-256");
}

TEST_P(ScramExchangeTest, SecretAndClientKeyCredentials) {
    // The pass-through: the client leg recovered ClientKey, the server leg proves with it.
    ScramServer client_leg(crypto, secret, cert_a);
    ScramClient user(crypto, ScramCredentials::from_password("pencil"));
    auto o = run(client_leg, user, cert_a);
    ASSERT_EQ(o.server_step.kind, ScramStep::done);

    ScramServer postgres(crypto, secret, cert_b);
    ScramClient pggw(crypto, ScramCredentials::from_secret(secret, client_leg.client_key()));
    o = run(postgres, pggw, cert_b);
    ASSERT_EQ(o.server_step.kind, ScramStep::done) << o.server_step.message;
    EXPECT_EQ(o.client_step.kind, ScramStep::done) << o.client_step.message;
    EXPECT_TRUE(postgres.channel_bound());
}

TEST_P(ScramExchangeTest, WrongPassword) {
    ScramServer server(crypto, secret, cert_a);
    ScramClient client(crypto, ScramCredentials::from_password("pencil2"));
    auto o = run(server, client, cert_a);
    EXPECT_EQ(o.server_step.kind, ScramStep::wrong_password);
    EXPECT_EQ(o.server_step.sqlstate, "28P01");
}

TEST_P(ScramExchangeTest, StaleSecret) {
    // PostgreSQL's secret was made again (new salt); pggw still holds the old one.
    const std::vector<std::uint8_t> new_salt(16, 7);
    ScramServer postgres(crypto, scram_secret_from_password(crypto, "pencil", new_salt, 4096), {});
    ScramClient pggw(crypto,
                     ScramCredentials::from_secret(
                         secret, scram_client_key_from_password(crypto, "pencil", salt, 4096)));
    auto o = run(postgres, pggw, {});
    EXPECT_EQ(o.client_step.kind, ScramStep::stale);
    EXPECT_NE(o.client_step.message.find("auth source out of date"), std::string::npos);
    // Another iteration count: stale too.
    ScramServer postgres2(crypto, scram_secret_from_password(crypto, "pencil", salt, 4097), {});
    ScramClient pggw2(crypto,
                      ScramCredentials::from_secret(
                          secret, scram_client_key_from_password(crypto, "pencil", salt, 4096)));
    EXPECT_EQ(run(postgres2, pggw2, {}).client_step.kind, ScramStep::stale);
    // A password credential adapts to any salt.
    ScramServer postgres3(crypto, scram_secret_from_password(crypto, "pencil", new_salt, 4096), {});
    ScramClient pggw3(crypto, ScramCredentials::from_password("pencil"));
    EXPECT_EQ(run(postgres3, pggw3, {}).client_step.kind, ScramStep::done);
}

TEST_P(ScramExchangeTest, BadServerSignature) {
    // A server that does not know ServerKey (it has the right StoredKey only) cannot sign.
    ScramSecret impostor = secret;
    impostor.server_key[0] ^= 1;
    ScramServer server(crypto, impostor, {});
    ScramClient client(crypto, ScramCredentials::from_password("pencil"));
    auto o = run(server, client, {});
    ASSERT_EQ(o.server_step.kind, ScramStep::done);
    EXPECT_EQ(o.client_step.kind, ScramStep::invalid);
    EXPECT_EQ(o.client_step.message, "incorrect server signature");

    ScramClient client2(crypto, ScramCredentials::from_password("pencil"));
    ScramServer server2(crypto, secret, {});
    std::string error;
    auto first = client2.client_first(std::vector<std::string>{"SCRAM-SHA-256"}, {}, error);
    auto step = client2.server_first(server2.initial("SCRAM-SHA-256", bytes(*first)).data);
    ASSERT_EQ(step.kind, ScramStep::reply);
    step = client2.server_final("e=invalid-proof");
    EXPECT_EQ(step.kind, ScramStep::invalid);
    EXPECT_EQ(step.message, "error received from server in SCRAM exchange: invalid-proof");
}

TEST_P(ScramExchangeTest, ServerRefusesMechanismsNotOffered) {
    ScramServer plain(crypto, secret, {});
    auto step = plain.initial("SCRAM-SHA-256-PLUS", bytes("p=tls-server-end-point,,n=,r=abc"));
    EXPECT_EQ(step.kind, ScramStep::invalid);
    EXPECT_EQ(step.sqlstate, "08P01");
    EXPECT_EQ(step.message, "client selected an invalid SASL authentication mechanism");
    ScramServer other(crypto, secret, cert_a);
    EXPECT_EQ(other.initial("SCRAM-SHA-1", bytes("n,,n=,r=abc")).message,
              "client selected an invalid SASL authentication mechanism");
    // 'p' with the plain mechanism.
    ScramServer p_plain(crypto, secret, cert_a);
    step = p_plain.initial("SCRAM-SHA-256", bytes("p=tls-server-end-point,,n=,r=abc"));
    EXPECT_EQ(step.kind, ScramStep::invalid);
    EXPECT_EQ(step.detail,
              "The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message "
              "includes channel binding data.");
}

TEST_P(ScramExchangeTest, ServerRefusesBadFinalMessages) {
    auto start = [&](ScramServer& s) {
        auto step = s.initial("SCRAM-SHA-256", bytes(kClientFirst));
        ASSERT_EQ(step.kind, ScramStep::reply);
    };
    const std::string nonce = "rOprNGfwEbeRWgbNEkqO" + std::string(kServerNonce);
    const std::string proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    struct Case {
        std::string msg;
        std::string_view message;
    } cases[] = {
        {"c=eSws,r=" + nonce + ",p=" + proof,
         "unexpected SCRAM channel-binding attribute in client-final-message"},
        {"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=" + nonce + ",p=" + proof,
         "unexpected SCRAM channel-binding attribute in client-final-message"},
        {"c=biws,r=" + nonce + "x,p=" + proof, "invalid SCRAM response"},
        {"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=" + proof, "invalid SCRAM response"},
        {"c=biws,r=" + nonce, "malformed SCRAM message"},
    };
    for (const auto& c : cases) {
        ScramServer s(crypto, secret, {}, std::string(kServerNonce));
        start(s);
        auto step = s.response(bytes(c.msg));
        EXPECT_EQ(step.kind, ScramStep::invalid) << c.msg;
        EXPECT_EQ(step.message, c.message) << c.msg;
        EXPECT_EQ(step.sqlstate, "08P01") << c.msg;
    }
}

TEST_P(ScramExchangeTest, ClientRefusesBadOffersAndMessages) {
    std::string error;
    ScramClient none(crypto, ScramCredentials{});
    EXPECT_FALSE(none.client_first(std::vector<std::string>{"SCRAM-SHA-256"}, {}, error));
    EXPECT_FALSE(error.empty());
    ScramClient only_plus(crypto, ScramCredentials::from_password("x"));
    // -PLUS offered but pggw has no binding data (plaintext server leg): nothing it can use.
    EXPECT_FALSE(only_plus.client_first(std::vector<std::string>{"SCRAM-SHA-256-PLUS"}, {}, error));
    EXPECT_EQ(error, "none of the server's SASL authentication mechanisms are supported");

    ScramClient c(crypto, ScramCredentials::from_password("pencil"), "fixednonce");
    auto first = c.client_first(std::vector<std::string>{"SCRAM-SHA-256"}, {}, error);
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(*first, "n,,n=,r=fixednonce");
    auto step = c.server_first("r=othernonce,s=AAAA,i=1");
    EXPECT_EQ(step.kind, ScramStep::invalid);
    EXPECT_EQ(step.message, "invalid SCRAM response (nonce mismatch)");
    // Out of order after a failure.
    EXPECT_EQ(c.server_final("v=AAAA").kind, ScramStep::invalid);
}

INSTANTIATE_TEST_SUITE_P(Backends, ScramExchangeTest, ::testing::ValuesIn(backends()),
                         backend_name);

}  // namespace
}  // namespace pggw::auth
