// The watch that spots SCRAM-SHA-256-PLUS in a client's first message after startup, and the
// certificate comparison that decides whether channel binding can pass through pggw.
#include "gateway/pg/channel_binding.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gateway/pg/protocol.hpp"

namespace pggw {
namespace {

std::vector<std::uint8_t> message(char type, const std::string& body) {
    std::vector<std::uint8_t> m{std::uint8_t(type)};
    pg::append_u32(m, std::uint32_t(body.size() + 4));
    m.insert(m.end(), body.begin(), body.end());
    return m;
}

std::vector<std::uint8_t> sasl_initial(const std::string& mechanism) {
    std::string first = "p=tls-server-end-point,,n=,r=abc";
    std::string body = mechanism + std::string(1, '\0');
    std::vector<std::uint8_t> len;
    pg::append_u32(len, std::uint32_t(first.size()));
    body.append(len.begin(), len.end());
    body += first;
    return message('p', body);
}

using V = SaslMechanismWatch::Verdict;

V feed_split(const std::vector<std::uint8_t>& bytes, std::size_t step) {
    SaslMechanismWatch w;
    V v = V::undecided;
    for (std::size_t i = 0; i < bytes.size(); i += step) {
        std::size_t n = std::min(step, bytes.size() - i);
        v = w.feed(std::span(bytes.data() + i, n));
    }
    EXPECT_EQ(v, w.verdict());
    return v;
}

TEST(SaslMechanismWatch, PlusAtEverySplit) {
    auto plus = sasl_initial("SCRAM-SHA-256-PLUS");
    for (std::size_t step = 1; step <= plus.size(); ++step)
        EXPECT_EQ(feed_split(plus, step), V::plus) << step;
}

TEST(SaslMechanismWatch, OtherFirstMessages) {
    for (std::size_t step : {std::size_t(1), std::size_t(3), std::size_t(1000)}) {
        EXPECT_EQ(feed_split(sasl_initial("SCRAM-SHA-256"), step), V::other);
        // A longer name that starts with the -PLUS one.
        EXPECT_EQ(feed_split(sasl_initial("SCRAM-SHA-256-PLUSX"), step), V::other);
        EXPECT_EQ(feed_split(message('p', std::string("md5abc\0", 7)), step), V::other);
        EXPECT_EQ(feed_split(message('Q', "select 1"), step), V::other);
        EXPECT_EQ(feed_split(message('X', ""), step), V::other);
        // A short 'p' message cannot hold the -PLUS name.
        EXPECT_EQ(feed_split(message('p', "SCRAM"), step), V::other);
    }
}

TEST(SaslMechanismWatch, OnlyTheFirstMessageCounts) {
    SaslMechanismWatch w;
    EXPECT_EQ(w.feed(message('Q', "select 1")), V::other);
    EXPECT_EQ(w.feed(sasl_initial("SCRAM-SHA-256-PLUS")), V::other);
}

TEST(SaslMechanismWatch, UndecidedUntilTheNameEnds) {
    auto plus = sasl_initial("SCRAM-SHA-256-PLUS");
    SaslMechanismWatch w;
    EXPECT_EQ(w.feed(std::span(plus.data(), 5 + 18)), V::undecided);
    EXPECT_EQ(w.feed(std::span(plus.data() + 23, 1)), V::plus);
    EXPECT_EQ(w.feed(std::span(plus.data() + 24, plus.size() - 24)), V::plus);
}

std::vector<std::uint8_t> auth_sasl(const std::vector<std::string>& mechanisms) {
    std::string body("\0\0\0\x0a", 4);
    for (const auto& m : mechanisms) body += m + std::string(1, '\0');
    body += std::string(1, '\0');
    return message('R', body);
}

std::vector<std::uint8_t> cat(std::vector<std::uint8_t> a, const std::vector<std::uint8_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// Feeds in pieces of `step` bytes; returns everything the filter let through.
std::vector<std::uint8_t> filter_split(SaslOfferFilter& f, const std::vector<std::uint8_t>& in,
                                       std::size_t step) {
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i < in.size(); i += step) {
        auto got = f.feed(std::span(in.data() + i, std::min(step, in.size() - i)));
        out.insert(out.end(), got.begin(), got.end());
    }
    return out;
}

TEST(SaslOfferFilter, DropsPlusAtEverySplit) {
    auto offer = auth_sasl({"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
    auto after = message('R', std::string("\0\0\0\x0b", 4) + "r=abc");  // more data follows
    auto in = cat(offer, after);
    auto want = cat(auth_sasl({"SCRAM-SHA-256"}), after);
    for (std::size_t step = 1; step <= in.size(); ++step) {
        SaslOfferFilter f;
        EXPECT_EQ(filter_split(f, in, step), want) << step;
        EXPECT_TRUE(f.stripped());
    }
}

TEST(SaslOfferFilter, NegotiateProtocolVersionFirst) {
    auto v = message('v', std::string("\0\0\0\0\0\0\0\0", 8));
    SaslOfferFilter f;
    EXPECT_EQ(filter_split(f, cat(v, auth_sasl({"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"})), 3),
              cat(v, auth_sasl({"SCRAM-SHA-256"})));
}

// Found by tests/fuzz/channel_binding_fuzz.cpp: NegotiateProtocolVersion messages were all
// skipped, so a stream of them was held back without bound. PostgreSQL sends one at most; a
// second is passed on as any other first message would be.
TEST(SaslOfferFilter, HoldsAtMostOneNegotiateProtocolVersion) {
    auto v = message('v', std::string("\0\0\0\0\0\0\0\0", 8));
    std::vector<std::uint8_t> in;
    for (int i = 0; i < 4000; ++i) in = cat(in, v);
    SaslOfferFilter f;
    auto out = filter_split(f, in, 512);
    EXPECT_EQ(out, in);
    EXPECT_FALSE(f.stripped());
}

TEST(SaslOfferFilter, OtherFirstMessagesPassUnchanged) {
    const std::vector<std::vector<std::uint8_t>> cases = {
        auth_sasl({"SCRAM-SHA-256"}),
        message('R', std::string("\0\0\0\0", 4)),             // AuthenticationOk (trust)
        message('R', std::string("\0\0\0\x05", 4) + "salt"),  // MD5
        pg::error_response("28P01", "password authentication failed"),
    };
    for (const auto& first : cases) {
        // A later AuthenticationSASL (it cannot be, but) is not touched either.
        auto in = cat(first, auth_sasl({"SCRAM-SHA-256-PLUS"}));
        for (std::size_t step : {std::size_t(1), std::size_t(7), in.size()}) {
            SaslOfferFilter f;
            EXPECT_EQ(filter_split(f, in, step), in);
            EXPECT_FALSE(f.stripped());
        }
    }
}

TEST(ChannelBindingGuard, ByClientLeg) {
    auto offer = auth_sasl({"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
    auto plus = sasl_initial("SCRAM-SHA-256-PLUS");
    ChannelBindingGuard plain(
        ChannelBindingGuard::strip_offer);  // plaintext client leg: the offer is filtered
    auto got = plain.server_bytes(offer);
    EXPECT_EQ(std::vector<std::uint8_t>(got.begin(), got.end()), auth_sasl({"SCRAM-SHA-256"}));
    EXPECT_FALSE(plain.client_chose_plus(plus));
    ChannelBindingGuard tls(
        ChannelBindingGuard::refuse_plus);  // TLS client leg: the offer passes, -PLUS is refused
    got = tls.server_bytes(offer);
    EXPECT_EQ(std::vector<std::uint8_t>(got.begin(), got.end()), offer);
    EXPECT_TRUE(tls.client_chose_plus(plus));
}

class FakeContext : public tls::Context {
  public:
    explicit FakeContext(std::vector<tls::CertificateInfo> c) : certs_(std::move(c)) {}
    std::unique_ptr<tls::Engine> new_engine(const tls::EngineOptions&) override { return {}; }
    const std::vector<tls::CertificateInfo>& certificates() const override { return certs_; }

  private:
    std::vector<tls::CertificateInfo> certs_;
};

TEST(ChannelBinding, CanPassOnlyWithTheServersCertificate) {
    tls::CertificateHash server{}, other{};
    server[0] = 0x30;
    other[0] = 0x31;
    FakeContext same({{"CN=pg", 0, server}, {"CN=ca", 0, other}});
    FakeContext different({{"CN=pggw", 0, other}});
    FakeContext none({});
    EXPECT_TRUE(channel_binding_can_pass(&same, server));  // the leaf compared, not the chain
    EXPECT_FALSE(channel_binding_can_pass(&different, server));
    EXPECT_FALSE(channel_binding_can_pass(&none, server));
    EXPECT_FALSE(channel_binding_can_pass(nullptr, server));  // plaintext client leg
}

}  // namespace
}  // namespace pggw

namespace pggw {
namespace {

// Which guard a session gets: none only where binding can pass (TLS on both legs with the
// server's own certificate).
TEST(ChannelBindingGuard, ForLegs) {
    using G = ChannelBindingGuard;
    EXPECT_FALSE(G::for_legs(true, true, true).has_value());
    EXPECT_TRUE(G::for_legs(true, true, false).has_value());
    EXPECT_TRUE(G::for_legs(false, true, true).has_value());
    // A plaintext server leg: a -PLUS offer there is never genuine; it is stripped for
    // every client leg.
    for (bool client_tls : {false, true}) {
        auto g = G::for_legs(client_tls, false, true);
        ASSERT_TRUE(g.has_value());
        std::vector<std::uint8_t> sasl = {'R', 0, 0, 0, 0, 0, 0, 0, 10};
        const std::string mechs =
            std::string("SCRAM-SHA-256-PLUS") + '\0' + "SCRAM-SHA-256" + '\0' + '\0';
        sasl.insert(sasl.end(), mechs.begin(), mechs.end());
        sasl[4] = std::uint8_t(sasl.size() - 1);
        auto out = g->server_bytes(sasl);
        std::string seen(out.begin(), out.end());
        EXPECT_EQ(seen.find("PLUS"), std::string::npos);
        EXPECT_NE(seen.find("SCRAM-SHA-256"), std::string::npos);
        EXPECT_TRUE(g->stripped());
        EXPECT_FALSE(g->client_chose_plus(sasl));
    }
}

}  // namespace
}  // namespace pggw
