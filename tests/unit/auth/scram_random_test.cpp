// Random and mutated SCRAM messages: the parsers and both state machines never crash, never
// read out of bounds (run under ASan in build-asan), and always answer either a well-formed
// result or a refusal with a SQLSTATE and a message.
#include <gtest/gtest.h>

#include <random>

#include "gateway/auth/base64.hpp"
#include "gateway/auth/scram_client.hpp"
#include "gateway/auth/scram_messages.hpp"
#include "gateway/auth/scram_secret.hpp"
#include "gateway/auth/scram_server.hpp"
#include "tests/unit/auth/crypto_backends.hpp"

namespace pggw::auth {
namespace {

using testing::bytes;

// Valid messages to mutate.
const std::string kSeeds[] = {
    "n,,n=,r=rOprNGfwEbeRWgbNEkqO",
    "y,,n=user,r=abc,x=ext",
    "p=tls-server-end-point,,n=,r=abc",
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    "e=invalid-proof",
};

std::string mutate(std::mt19937& rng, std::string s) {
    const std::string_view interesting = ",=\0anyprcvsime+/";
    const int edits = 1 + int(rng() % 4);
    for (int k = 0; k < edits; ++k) {
        const std::size_t at = s.empty() ? 0 : rng() % (s.size() + 1);
        switch (rng() % 5) {
            case 0:  // flip a byte
                if (!s.empty()) s[at % s.size()] = char(rng());
                break;
            case 1:  // insert an interesting byte
                s.insert(s.begin() + at, interesting[rng() % interesting.size()]);
                break;
            case 2:  // delete a range
                if (!s.empty()) s.erase(at % s.size(), 1 + rng() % 8);
                break;
            case 3:  // truncate
                s.resize(at);
                break;
            default:  // duplicate a slice
                if (!s.empty()) {
                    const std::size_t from = rng() % s.size();
                    s.insert(at, s.substr(from, 1 + rng() % 16));
                }
        }
    }
    return s;
}

std::string random_bytes(std::mt19937& rng) {
    std::string s(rng() % 80, '\0');
    for (auto& c : s) c = char(rng());
    return s;
}

void check_error(bool ok, const ScramError& e, const std::string& input) {
    if (ok) return;
    EXPECT_FALSE(e.sqlstate.empty()) << ::testing::PrintToString(input);
    EXPECT_FALSE(e.message.empty()) << ::testing::PrintToString(input);
}

TEST(ScramRandomTest, ParsersSurviveMutatedAndRandomInput) {
    std::mt19937 rng(20240611);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 20000; ++i) {
        const std::string input =
            (i % 4 == 0) ? random_bytes(rng) : mutate(rng, kSeeds[rng() % std::size(kSeeds)]);
        ScramError e;
        const bool plus = rng() % 2, offered = plus || rng() % 2;
        bool ok = parse_client_first(input, plus, offered, e).has_value();
        check_error(ok, e, input);
        ok ? ++accepted : ++refused;
        e = {};
        ok = parse_client_final(input, e).has_value();
        check_error(ok, e, input);
        e = {};
        ok = parse_server_first(input, "rOprNGfwEbeRWgbNEkqO", e).has_value();
        check_error(ok, e, input);
        e = {};
        ok = parse_server_final(input, e).has_value();
        check_error(ok, e, input);
        (void)base64_decode(input);
        (void)parse_scram_secret(input);
    }
    // The mutations are mild enough that some survive: both outcomes are exercised.
    EXPECT_GT(accepted, 100);
    EXPECT_GT(refused, 1000);
}

class ScramRandomExchangeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScramRandomExchangeTest, StateMachinesSurviveMutatedMessages) {
    const tls::Crypto& crypto = testing::crypto_of(GetParam());
    const std::vector<std::uint8_t> salt(16, 1);
    const ScramSecret secret = scram_secret_from_password(crypto, "pw", salt, 1);
    const std::vector<std::uint8_t> cert(32, 9);
    std::mt19937 rng(42);
    int done = 0;
    for (int i = 0; i < 3000; ++i) {
        // An honest client produces the messages; one of them is mutated on the way.
        ScramServer server(crypto, secret, cert);
        ScramClient client(crypto, ScramCredentials::from_password("pw"));
        std::string error;
        auto first = client.client_first(
            std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}, cert, error);
        ASSERT_TRUE(first.has_value());
        const int which = int(rng() % 4);  // 0: client-first, 1: server-first, 2: client-final,
                                           // 3: server-final
        std::string m = which == 0 ? mutate(rng, *first) : *first;
        auto s = server.initial(client.mechanism(), bytes(m));
        if (s.kind != ScramStep::reply) {
            EXPECT_EQ(s.kind, ScramStep::invalid);
            EXPECT_FALSE(s.message.empty());
            continue;
        }
        m = which == 1 ? mutate(rng, s.data) : s.data;
        auto c = client.server_first(m);
        if (c.kind != ScramStep::reply) {
            EXPECT_EQ(c.kind, ScramStep::invalid);
            EXPECT_FALSE(c.message.empty());
            continue;
        }
        m = which == 2 ? mutate(rng, c.data) : c.data;
        s = server.response(bytes(m));
        if (s.kind != ScramStep::done) {
            EXPECT_TRUE(s.kind == ScramStep::invalid || s.kind == ScramStep::wrong_password);
            EXPECT_FALSE(s.sqlstate.empty());
            continue;
        }
        m = which == 3 ? mutate(rng, s.data) : s.data;
        c = client.server_final(m);
        if (c.kind == ScramStep::done)
            ++done;
        else
            EXPECT_FALSE(c.message.empty());
    }
    EXPECT_GT(done, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, ScramRandomExchangeTest,
                         ::testing::ValuesIn(testing::backends()), testing::backend_name);

}  // namespace
}  // namespace pggw::auth
