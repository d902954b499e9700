// The pure part of the server leg: libpq's sslmode semantics, README.SSL's answers, the
// unverified text of an 'E' answer, and the settings the server leg needs.
#include "gateway/pg/server_negotiation.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gateway/app/tls_contexts.hpp"
#include "gateway/pg/protocol.hpp"
#include "packets.hpp"

namespace pggw {
namespace {

namespace neg = server_negotiation;

TEST(ServerNegotiation, Answers) {
    EXPECT_EQ(neg::classify_ssl_answer('S'), neg::SslAnswer::tls);
    EXPECT_EQ(neg::classify_ssl_answer('N'), neg::SslAnswer::plaintext);
    EXPECT_EQ(neg::classify_ssl_answer('E'), neg::SslAnswer::error);
    for (int b : {0, int('s'), int('n'), int('e'), int('R'), 0x16, 0xff})
        EXPECT_EQ(neg::classify_ssl_answer(std::uint8_t(b)), neg::SslAnswer::unknown) << b;
}

TEST(ServerNegotiation, PlansFollowSslmode) {
    using tls::Verify;
    struct Row {
        TlsMode mode;
        bool have_ca;
        bool tls_first, fallback, retry;
        Verify verify;
    };
    const Row rows[] = {
        {TlsMode::disable, false, false, false, false, Verify::none},
        {TlsMode::allow, false, false, false, true, Verify::none},
        {TlsMode::prefer, false, true, true, false, Verify::none},
        {TlsMode::prefer, true, true, true, false, Verify::none},
        {TlsMode::require, false, true, false, false, Verify::none},
        // libpq: require with a root certificate behaves as verify-ca.
        {TlsMode::require, true, true, false, false, Verify::chain},
        {TlsMode::verify_ca, true, true, false, false, Verify::chain},
        {TlsMode::verify_full, true, true, false, false, Verify::chain_and_hostname},
    };
    for (const Row& r : rows) {
        auto p = neg::plan_for(r.mode, r.have_ca);
        SCOPED_TRACE(std::string(tls_mode_name(r.mode)) + (r.have_ca ? " with CA" : ""));
        EXPECT_EQ(p.try_tls_first, r.tls_first);
        EXPECT_EQ(p.plaintext_fallback, r.fallback);
        EXPECT_EQ(p.tls_retry_on_error, r.retry);
        EXPECT_EQ(p.verify, r.verify);
    }
    EXPECT_FALSE(neg::uses_tls(TlsMode::disable));
    EXPECT_TRUE(neg::uses_tls(TlsMode::allow));
}

TEST(ServerNegotiation, SslRequestBytes) {
    auto p = neg::ssl_request();
    EXPECT_EQ(std::vector<std::uint8_t>(p.begin(), p.end()), test::request(pg::kSslRequestCode));
}

TEST(ServerNegotiation, CancelOrStartup) {
    auto cancel = test::request(pg::kCancelRequestCode, 16);
    EXPECT_TRUE(neg::is_cancel_request(cancel));
    EXPECT_FALSE(neg::is_cancel_request(test::startup({{"user", "bob"}})));
    EXPECT_FALSE(neg::is_cancel_request(std::vector<std::uint8_t>{0, 0, 0}));
}

TEST(ServerNegotiation, HostnameDefaultsToBackendHost) {
    Config c;
    c.server = {"db.internal", 5432};
    EXPECT_EQ(neg::tls_hostname(c), "db.internal");
    c.server_sni = "pg.example.com";
    EXPECT_EQ(neg::tls_hostname(c), "pg.example.com");
    c.server_sni.clear();
    c.server = {"10.0.0.5", 5432};  // the engines send no SNI for an IP literal
    EXPECT_EQ(neg::tls_hostname(c), "10.0.0.5");
}

TEST(ServerNegotiation, UnverifiedTextKeepsTheMessageFieldEscaped) {
    auto e = pg::error_response("0A000", "unsupported frontend protocol\n\x1b[31mred");
    EXPECT_EQ(neg::unverified_text(e), "unsupported frontend protocol\\x0a\\x1b[31mred");
    // Not an ErrorResponse: the printable bytes, escaped.
    std::string raw = "E\x01hello";
    EXPECT_EQ(neg::unverified_text(
                  std::span(reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size())),
              "E\\x01hello");
    // Capped.
    std::string big(1000, 'x');
    auto t = neg::unverified_text(
        std::span(reinterpret_cast<const std::uint8_t*>(big.data()), big.size()), 10);
    EXPECT_EQ(t, "xxxxxxxxxx...");
    // Truncated ErrorResponse (no NUL at the end of M): still bounded and escaped.
    auto cut = pg::error_response("XX000", "abc");
    cut.resize(cut.size() - 3);
    EXPECT_EQ(neg::unverified_text(cut), "ab");
}

TEST(ServerTlsSettings, Validation) {
    Config c;
    std::string err;
    EXPECT_TRUE(validate_server_tls_settings(c, err));
    c.server_tls = TlsMode::verify_ca;
    EXPECT_FALSE(validate_server_tls_settings(c, err));
    EXPECT_NE(err.find("--server-ca"), std::string::npos) << err;
    c.server_tls = TlsMode::verify_full;
    EXPECT_FALSE(validate_server_tls_settings(c, err));
    c.server_ca = "/ca.crt";
    EXPECT_TRUE(validate_server_tls_settings(c, err)) << err;
    c.server_cert = "/pggw.crt";
    EXPECT_FALSE(validate_server_tls_settings(c, err));
    EXPECT_NE(err.find("--server-key"), std::string::npos) << err;
    c.server_key = "/pggw.key";
    EXPECT_TRUE(validate_server_tls_settings(c, err)) << err;
    c.server_tls = TlsMode::require;
    c.server_ca.clear();
    EXPECT_TRUE(validate_server_tls_settings(c, err)) << err;
    EXPECT_TRUE(validate_tls_settings(c, err)) << err;
}

}  // namespace
}  // namespace pggw
