// SCRAM message parsing: what PostgreSQL accepts is accepted, and every variant it refuses is
// refused with its errmsg/errdetail and SQLSTATE.
#include "gateway/auth/scram_messages.hpp"

#include <gtest/gtest.h>

#include "gateway/auth/base64.hpp"

namespace pggw::auth {
namespace {

struct Refused {
    std::string_view sqlstate;
    std::string message;
    std::string detail;
};

Refused first_error(std::string_view msg, bool plus_selected = false,
                    bool binding_offered = false) {
    ScramError e;
    auto m = parse_client_first(msg, plus_selected, binding_offered, e);
    EXPECT_FALSE(m.has_value()) << msg;
    return {e.sqlstate, e.message, e.detail};
}

void expect_refused(std::string_view msg, std::string_view sqlstate, std::string_view message,
                    std::string_view detail, bool plus_selected = false,
                    bool binding_offered = false) {
    auto r = first_error(msg, plus_selected, binding_offered);
    EXPECT_EQ(r.sqlstate, sqlstate) << msg;
    EXPECT_EQ(r.message, message) << msg;
    EXPECT_EQ(r.detail, detail) << msg;
}

TEST(ScramMessagesTest, ClientFirstAccepted) {
    ScramError e;
    auto m = parse_client_first("n,,n=,r=rOprNGfwEbeRWgbNEkqO", false, false, e);
    ASSERT_TRUE(m.has_value()) << e.message << e.detail;
    EXPECT_EQ(m->cbind_flag, 'n');
    EXPECT_EQ(m->gs2_header, "n,,");
    EXPECT_EQ(m->bare, "n=,r=rOprNGfwEbeRWgbNEkqO");
    EXPECT_EQ(m->nonce, "rOprNGfwEbeRWgbNEkqO");

    m = parse_client_first("y,,n=user,r=abc", false, false, e);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->cbind_flag, 'y');
    EXPECT_EQ(m->user, "user");
    EXPECT_EQ(m->gs2_header, "y,,");

    m = parse_client_first("p=tls-server-end-point,,n=,r=abc", true, true, e);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->cbind_flag, 'p');
    EXPECT_EQ(m->gs2_header, "p=tls-server-end-point,,");
    EXPECT_EQ(m->bare, "n=,r=abc");

    // Extensions after the nonce are ignored, as PostgreSQL ignores them; so is a trailing
    // comma (PostgreSQL's reader consumes it).
    m = parse_client_first("n,,n=,r=abc,x=ext,Z=", false, false, e);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->bare, "n=,r=abc,x=ext,Z=");
    EXPECT_TRUE(parse_client_first("n,,n=,r=abc,", false, false, e).has_value());
    // 'n' when -PLUS was offered but not chosen: fine.
    EXPECT_TRUE(parse_client_first("n,,n=,r=abc", false, true, e).has_value());
}

TEST(ScramMessagesTest, ClientFirstRefusedAsPostgres) {
    constexpr std::string_view pv = "08P01", malformed = "malformed SCRAM message";
    expect_refused("", pv, malformed, "The message is empty.");
    expect_refused(std::string_view("n,,n=,r=a\0b", 11), pv, malformed,
                   "Message length does not match input length.");
    expect_refused("n,,n=,r=" + std::string(kMaxScramMessage, 'a'), pv, malformed,
                   "The message is too long.");
    // Unknown gs2 flags.
    expect_refused("x,,n=,r=abc", pv, malformed, "Unexpected channel-binding flag \"'x'\".");
    expect_refused("\x01,,n=,r=abc", pv, malformed, "Unexpected channel-binding flag \"0x01\".");
    expect_refused("N,,n=,r=abc", pv, malformed, "Unexpected channel-binding flag \"'N'\".");
    expect_refused("n;,n=,r=abc", pv, malformed, "Comma expected, but found character \"';'\".");
    expect_refused("n", pv, malformed, "Comma expected, but found character \"0x00\".");
    // authzid.
    expect_refused("n,a=admin,n=,r=abc", "0A000",
                   "client uses authorization identity, but it is not supported", "");
    expect_refused("n,x,n=,r=abc", pv, malformed,
                   "Unexpected attribute \"'x'\" in client-first-message.");
    // Channel binding versus the chosen mechanism.
    expect_refused("n,,n=,r=abc", pv, malformed,
                   "The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not "
                   "include channel binding data.",
                   true, true);
    expect_refused("y,,n=,r=abc", pv, malformed,
                   "The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not "
                   "include channel binding data.",
                   true, true);
    expect_refused("y,,n=,r=abc", "28000", "SCRAM channel binding negotiation error",
                   "The client supports SCRAM channel binding but thinks the server does not.  "
                   "However, this server does support channel binding.",
                   false, true);
    expect_refused("p=tls-server-end-point,,n=,r=abc", pv, malformed,
                   "The client selected SCRAM-SHA-256 without channel binding, but the SCRAM "
                   "message includes channel binding data.");
    expect_refused("p=tls-unique,,n=,r=abc", pv,
                   "unsupported SCRAM channel-binding type \"tls-unique\"", "", true, true);
    expect_refused("p=tls-exporter\x01,,n=,r=abc", pv,
                   "unsupported SCRAM channel-binding type \"tls-exporter?\"", "", true, true);
    expect_refused("pxtls-server-end-point,,n=,r=abc", pv, malformed,
                   "Expected character \"=\" for attribute \"p\".", true, true);
    // Mandatory extension, user, nonce.
    expect_refused("n,,m=ext,n=,r=abc", "0A000", "client requires an unsupported SCRAM extension",
                   "");
    expect_refused("n,,r=abc", pv, malformed, "Expected attribute \"n\" but found \"'r'\".");
    expect_refused("n,,n=", pv, malformed, "Expected attribute \"r\" but found \"0x00\".");
    expect_refused("n,,n=,rabc", pv, malformed, "Expected character \"=\" for attribute \"r\".");
    expect_refused("n,,n=,r=ab c", pv, "non-printable characters in SCRAM nonce", "");
    expect_refused("n,,n=,r=ab\x7f", pv, "non-printable characters in SCRAM nonce", "");
    expect_refused("n,,n=,r=ab\xc3\xa4", pv, "non-printable characters in SCRAM nonce", "");
    expect_refused("n,,n=,r=" + std::string(kMaxNonce + 1, 'a'), pv, malformed,
                   "The nonce is too long.");
    // Malformed extensions.
    expect_refused("n,,n=,r=abc,1=x", pv, malformed,
                   "Attribute expected, but found invalid character \"'1'\".");
    expect_refused("n,,n=,r=abc,xx", pv, malformed,
                   "Expected character \"=\" for attribute \"x\".");
    expect_refused("n,,n=,r=abc,,", pv, malformed,
                   "Attribute expected, but found invalid character \"','\".");
}

TEST(ScramMessagesTest, ClientFinal) {
    ScramError e;
    auto proof = std::string(43, 'A') + "=";
    auto m = parse_client_final("c=biws,r=abcdef,p=" + proof, e);
    ASSERT_TRUE(m.has_value()) << e.message << " " << e.detail;
    EXPECT_EQ(m->channel_binding, "biws");
    EXPECT_EQ(m->nonce, "abcdef");
    EXPECT_EQ(m->without_proof, "c=biws,r=abcdef");
    EXPECT_EQ(m->proof, tls::Sha256Digest{});
    // Extensions before the proof are part of without_proof, as in PostgreSQL.
    m = parse_client_final("c=biws,r=abc,x=1,p=" + proof, e);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->without_proof, "c=biws,r=abc,x=1");

    auto refused = [&](std::string_view msg, std::string_view message, std::string_view detail) {
        ScramError err;
        EXPECT_FALSE(parse_client_final(msg, err).has_value()) << msg;
        EXPECT_EQ(err.sqlstate, "08P01") << msg;
        EXPECT_EQ(err.message, message) << msg;
        EXPECT_EQ(err.detail, detail) << msg;
    };
    constexpr std::string_view malformed = "malformed SCRAM message";
    refused("", malformed, "The message is empty.");
    refused("r=abc,c=biws,p=" + proof, malformed, "Expected attribute \"c\" but found \"'r'\".");
    refused("c=biws,p=" + proof, malformed, "Expected attribute \"r\" but found \"'p'\".");
    refused("c=biws,r=abc", malformed, "Attribute expected, but found end of string.");
    refused("c=biws,r=abc,x=1", malformed, "Attribute expected, but found end of string.");
    refused("c=biws,r=abc,p=", malformed, "Malformed proof in client-final-message.");
    refused("c=biws,r=abc,p=AAAA", malformed, "Malformed proof in client-final-message.");
    refused("c=biws,r=abc,p=" + std::string(43, 'A'), malformed,
            "Malformed proof in client-final-message.");
    refused("c=biws,r=abc,p=" + proof + ",x=1", malformed,
            "Garbage found at the end of client-final-message.");
    refused("c=biws,r=abc,p=" + proof + ",,", malformed,
            "Garbage found at the end of client-final-message.");
}

TEST(ScramMessagesTest, ServerFirst) {
    ScramError e;
    auto m = parse_server_first("r=abcXYZ,s=QSXCR+Q6sek8bf92,i=4096", "abc", e);
    ASSERT_TRUE(m.has_value()) << e.message;
    EXPECT_EQ(m->nonce, "abcXYZ");
    EXPECT_EQ(base64_encode(m->salt), "QSXCR+Q6sek8bf92");
    EXPECT_EQ(m->iterations, 4096u);
    EXPECT_EQ(build_server_first("abcXYZ", m->salt, 4096), "r=abcXYZ,s=QSXCR+Q6sek8bf92,i=4096");

    auto refused = [&](std::string_view msg, std::string_view message) {
        ScramError err;
        EXPECT_FALSE(parse_server_first(msg, "abc", err).has_value()) << msg;
        EXPECT_EQ(err.message, message) << msg;
    };
    refused("", "malformed SCRAM message (empty message)");
    refused(std::string_view("r=abc\0", 6), "malformed SCRAM message (length mismatch)");
    refused("s=AAAA,r=abc,i=1", "malformed SCRAM message (attribute \"r\" expected)");
    refused("r", "malformed SCRAM message (expected character \"=\" for attribute \"r\")");
    refused("r=abXYZ,s=AAAA,i=1", "invalid SCRAM response (nonce mismatch)");
    refused("r=ab,s=AAAA,i=1", "invalid SCRAM response (nonce mismatch)");
    refused("r=abcX,i=1", "malformed SCRAM message (attribute \"s\" expected)");
    refused("r=abcX,s=AAA,i=1", "malformed SCRAM message (invalid salt)");
    refused("r=abcX,s=AAAA", "malformed SCRAM message (attribute \"i\" expected)");
    refused("r=abcX,s=AAAA,i=0", "malformed SCRAM message (invalid iteration count)");
    refused("r=abcX,s=AAAA,i=-1", "malformed SCRAM message (invalid iteration count)");
    refused("r=abcX,s=AAAA,i=", "malformed SCRAM message (invalid iteration count)");
    refused("r=abcX,s=AAAA,i=1x", "malformed SCRAM message (invalid iteration count)");
    refused("r=abcX,s=AAAA,i=2147483648", "malformed SCRAM message (invalid iteration count)");
    refused("r=abcX,s=AAAA,i=99999999999999999999",
            "malformed SCRAM message (invalid iteration count)");
    refused("r=abcX,s=AAAA,i=1,x=2",
            "malformed SCRAM message (garbage at end of server-first-message)");
}

TEST(ScramMessagesTest, ServerFinal) {
    ScramError e;
    tls::Sha256Digest sig{};
    sig[0] = 1;
    auto m = parse_server_final(build_server_final(sig), e);
    ASSERT_TRUE(m.has_value());
    ASSERT_TRUE(m->verifier.has_value());
    EXPECT_EQ(*m->verifier, sig);
    m = parse_server_final("e=invalid-proof", e);
    ASSERT_TRUE(m.has_value());
    EXPECT_FALSE(m->verifier.has_value());
    EXPECT_EQ(m->error, "invalid-proof");

    auto refused = [&](std::string_view msg, std::string_view message) {
        ScramError err;
        EXPECT_FALSE(parse_server_final(msg, err).has_value()) << msg;
        EXPECT_EQ(err.message, message) << msg;
    };
    refused("", "malformed SCRAM message (empty message)");
    refused("x=1", "malformed SCRAM message (attribute \"v\" expected)");
    refused("v=AAAA", "malformed SCRAM message (invalid server signature)");
    refused(build_server_final(sig) + ",x=1",
            "malformed SCRAM message (garbage at end of server-final-message)");
}

TEST(ScramMessagesTest, Builders) {
    EXPECT_EQ(gs2_header('n'), "n,,");
    EXPECT_EQ(gs2_header('y'), "y,,");
    EXPECT_EQ(gs2_header('p'), "p=tls-server-end-point,,");
    EXPECT_EQ(build_client_first('n', "abc"), "n,,n=,r=abc");
    EXPECT_EQ(channel_binding_attribute('n', {}), "biws");
    EXPECT_EQ(channel_binding_attribute('y', {}), "eSws");
    const std::vector<std::uint8_t> hash{1, 2, 3};
    std::string input = "p=tls-server-end-point,,\x01\x02\x03";
    EXPECT_EQ(channel_binding_attribute('p', hash), base64_encode(input));
    EXPECT_EQ(build_client_final_without_proof("biws", "abc"), "c=biws,r=abc");
    EXPECT_EQ(build_client_final("c=biws,r=abc", tls::Sha256Digest{}),
              "c=biws,r=abc,p=" + std::string(43, 'A') + "=");
    EXPECT_TRUE(scram_printable("!+-~"));
    EXPECT_FALSE(scram_printable("a,b"));
    EXPECT_FALSE(scram_printable(" "));
}

}  // namespace
}  // namespace pggw::auth
