// PostgreSQL's SCRAM secret format, strictly parsed, and the key derivations against RFC 7677's
// vector (StoredKey/ServerKey/ClientKey computed independently with Python's hashlib) on every
// compiled TLS library.
#include "gateway/auth/scram_secret.hpp"

#include <gtest/gtest.h>

#include "gateway/auth/base64.hpp"
#include "tests/unit/auth/crypto_backends.hpp"

namespace pggw::auth {
namespace {

using testing::backend_name;
using testing::backends;
using testing::crypto_of;

// RFC 7677 section 3: password "pencil", this salt, 4096 iterations.
constexpr std::string_view kRfcSalt = "W22ZaJ0SNY7soEsUEjb6gQ==";
constexpr std::string_view kRfcStoredKey = "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=";
constexpr std::string_view kRfcServerKey = "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
constexpr std::string_view kRfcClientKey = "pg/JI9Z+hkSpLRa5btpe9GVrDHJcSEN0viVTVXaZbos=";
const std::string kRfcSecret = "SCRAM-SHA-256$4096:" + std::string(kRfcSalt) + "$" +
                               std::string(kRfcStoredKey) + ":" + std::string(kRfcServerKey);

TEST(ScramSecretTest, ParsesPostgresFormat) {
    auto s = parse_scram_secret(kRfcSecret);
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->iterations, 4096u);
    EXPECT_EQ(base64_encode(s->salt), kRfcSalt);
    EXPECT_EQ(base64_encode(s->stored_key), kRfcStoredKey);
    EXPECT_EQ(base64_encode(s->server_key), kRfcServerKey);
    EXPECT_EQ(format_scram_secret(*s), kRfcSecret);
    EXPECT_TRUE(looks_like_scram_secret(kRfcSecret));
    EXPECT_FALSE(looks_like_scram_secret("md5abc"));
    // Any salt length PostgreSQL could hold.
    EXPECT_TRUE(parse_scram_secret("SCRAM-SHA-256$1:AA==$" + std::string(kRfcStoredKey) + ":" +
                                   std::string(kRfcServerKey)));
    EXPECT_TRUE(parse_scram_secret("SCRAM-SHA-256$2147483647:" + std::string(kRfcSalt) + "$" +
                                   std::string(kRfcStoredKey) + ":" + std::string(kRfcServerKey)));
}

TEST(ScramSecretTest, RefusesEachMalformedField) {
    const std::string salt(kRfcSalt), stored(kRfcStoredKey), server(kRfcServerKey);
    const std::string bad[] = {
        "",
        "SCRAM-SHA-256",
        "SCRAM-SHA-256$",
        "scram-sha-256$4096:" + salt + "$" + stored + ":" + server,  // scheme is case-sensitive
        "SCRAM-SHA-1$4096:" + salt + "$" + stored + ":" + server,
        "SCRAM-SHA-256$:" + salt + "$" + stored + ":" + server,       // no iterations
        "SCRAM-SHA-256$0:" + salt + "$" + stored + ":" + server,      // zero
        "SCRAM-SHA-256$-1:" + salt + "$" + stored + ":" + server,     // sign
        "SCRAM-SHA-256$+4096:" + salt + "$" + stored + ":" + server,  // sign
        "SCRAM-SHA-256$04096:" + salt + "$" + stored + ":" + server,  // leading zero
        "SCRAM-SHA-256$ 4096:" + salt + "$" + stored + ":" + server,  // blank
        "SCRAM-SHA-256$4096x:" + salt + "$" + stored + ":" + server,
        "SCRAM-SHA-256$2147483648:" + salt + "$" + stored + ":" + server,  // > INT_MAX
        "SCRAM-SHA-256$99999999999:" + salt + "$" + stored + ":" + server,
        "SCRAM-SHA-256$4096$" + stored + ":" + server,                         // no salt field
        "SCRAM-SHA-256$4096:$" + stored + ":" + server,                        // empty salt
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ$" + stored + ":" + server,  // bad base64
        "SCRAM-SHA-256$4096:" + salt + "$" + stored,                           // no ServerKey
        "SCRAM-SHA-256$4096:" + salt + "$" + stored + ":",                     // empty ServerKey
        "SCRAM-SHA-256$4096:" + salt + "$:" + server,                          // empty StoredKey
        "SCRAM-SHA-256$4096:" + salt + "$" + salt + ":" + server,              // StoredKey 16 bytes
        "SCRAM-SHA-256$4096:" + salt + "$" + stored + ":" + salt,              // ServerKey 16 bytes
        "SCRAM-SHA-256$4096:" + salt + "$" + stored + ":" + server + ":",      // trailing
        "SCRAM-SHA-256$4096:" + salt + "$" + stored + ":" + server + " ",
        "SCRAM-SHA-256$4096:" + salt + "$" + stored + ":" + server + "$",
        "SCRAM-SHA-256$4096:" + salt + ":x$" + stored + ":" + server,
        " SCRAM-SHA-256$4096:" + salt + "$" + stored + ":" + server,
        "SCRAM-SHA-256$4096:" + std::string(2000, 'A') + "$" + stored + ":" + server,  // bound
    };
    for (const auto& s : bad) EXPECT_FALSE(parse_scram_secret(s).has_value()) << s;
}

class ScramDerivationTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScramDerivationTest, Rfc7677Keys) {
    const tls::Crypto& crypto = crypto_of(GetParam());
    const auto salt = *base64_decode(kRfcSalt);
    ScramSecret s = scram_secret_from_password(crypto, "pencil", salt, 4096);
    EXPECT_EQ(format_scram_secret(s), kRfcSecret);
    EXPECT_EQ(base64_encode(scram_client_key_from_password(crypto, "pencil", salt, 4096)),
              kRfcClientKey);
    // StoredKey is H(ClientKey).
    EXPECT_EQ(base64_encode(crypto.sha256(*base64_decode(kRfcClientKey))), kRfcStoredKey);
    // Another password, another secret.
    EXPECT_NE(format_scram_secret(scram_secret_from_password(crypto, "pencil2", salt, 4096)),
              kRfcSecret);
    // SASLprep applies: U+00AD is mapped to nothing, so "pen\u00ADcil" is "pencil".
    EXPECT_EQ(format_scram_secret(scram_secret_from_password(crypto,
                                                             "pen\xC2\xAD"
                                                             "cil",
                                                             salt, 4096)),
              kRfcSecret);
    tls::Sha256Digest out{};
    EXPECT_FALSE(salted_password(crypto, "pencil", salt, 0, out));
}

INSTANTIATE_TEST_SUITE_P(Backends, ScramDerivationTest, ::testing::ValuesIn(backends()),
                         backend_name);

}  // namespace
}  // namespace pggw::auth
