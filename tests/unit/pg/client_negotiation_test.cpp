// ClientNegotiation: the server side of README.SSL without I/O. Every conversation is fed at
// every split point of its bytes, and must give the same actions.
#include "gateway/pg/client_negotiation.hpp"

#include <gtest/gtest.h>

#include <random>

#include "gateway/pg/protocol.hpp"
#include "tests/unit/pg/packets.hpp"

namespace pggw {
namespace {

using A = NegotiationAction;
using Bytes = std::vector<std::uint8_t>;

// What the session would do, condensed to a string per action: "reply:S", "tls", "tls-direct",
// "refuse:28000:tls_required", "close:<reason>", "cancel:<n bytes>", "startup:<user>".
struct Transcript {
    std::vector<std::string> actions;
    std::vector<StartupKind> decoded;
};

std::string describe(const A& a) {
    switch (a.kind) {
        case A::read:
            return "read";
        case A::reply:
            return std::string("reply:") + a.reply_byte;
        case A::start_tls:
            return a.direct ? "tls-direct:" + std::to_string(a.bytes.size()) : "tls";
        case A::refuse:
            return "refuse:" + std::string(a.sqlstate) + ":" + std::string(refusal_name(a.refusal));
        case A::close:
            return "close:" + std::string(negotiation_end_name(a.end));
        case A::cancel:
            return "cancel:" + std::to_string(a.bytes.size());
        case A::startup:
            return "startup:" + std::to_string(a.bytes.size());
    }
    return "?";
}

// Feeds `input` in the chunks given by `cuts` (offsets), running next() until it says read;
// a start_tls is answered with tls_established(cn). Stops at the first final action.
Transcript run(TlsMode mode, const Bytes& input, std::vector<std::size_t> cuts,
               std::string cn = "") {
    ClientNegotiation n(mode, "192.0.2.7");
    Transcript t;
    std::size_t pos = 0;
    cuts.push_back(input.size());
    std::size_t cut = 0;
    for (;;) {
        A a = n.next();
        if (a.decoded) t.decoded.push_back(*a.decoded);
        if (a.kind == A::read) {
            while (cut < cuts.size() && cuts[cut] <= pos) ++cut;
            if (cut == cuts.size()) {
                t.actions.push_back("eof:" + std::string(negotiation_end_name(n.peer_closed())));
                return t;
            }
            n.feed(std::span(input).subspan(pos, cuts[cut] - pos));
            pos = cuts[cut];
            continue;
        }
        t.actions.push_back(describe(a));
        if (a.kind == A::start_tls) {
            n.tls_established(cn);
            continue;
        }
        if (a.kind == A::reply) continue;
        return t;
    }
}

// The same conversation at every single split point, and byte by byte.
void expect_every_split(TlsMode mode, const Bytes& input, const std::vector<std::string>& want,
                        std::string cn = "") {
    EXPECT_EQ(run(mode, input, {}, cn).actions, want) << "whole";
    std::vector<std::size_t> bytewise;
    for (std::size_t i = 1; i < input.size(); ++i) bytewise.push_back(i);
    EXPECT_EQ(run(mode, input, bytewise, cn).actions, want) << "byte by byte";
    for (std::size_t i = 1; i < input.size(); ++i)
        EXPECT_EQ(run(mode, input, {i}, cn).actions, want) << "split at " << i;
}

Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

const Bytes kStartup = test::startup({{"user", "alice"}, {"database", "db"}});
const Bytes kSsl = test::request(pg::kSslRequestCode);
const Bytes kGss = test::request(pg::kGssEncRequestCode);

TEST(ClientNegotiation, PlaintextStartupWhenTlsIsOff) {
    expect_every_split(TlsMode::disable, kStartup, {"startup:" + std::to_string(kStartup.size())});
}

TEST(ClientNegotiation, SslRequestAnsweredNWhenTlsIsOff) {
    // After 'N' the client goes on in plaintext on the same connection.
    expect_every_split(TlsMode::disable, cat({kSsl}), {"reply:N", "eof:incomplete startup packet"});
}

TEST(ClientNegotiation, SslRequestThenTlsThenStartup) {
    // Bytes after the handshake come through the TLS stream: fed after tls_established.
    ClientNegotiation n(TlsMode::require, "192.0.2.7");
    EXPECT_EQ(n.next().kind, A::read);
    n.feed(kSsl);
    A a = n.next();
    ASSERT_EQ(a.kind, A::reply);
    EXPECT_EQ(a.reply_byte, 'S');
    EXPECT_EQ(a.decoded, StartupKind::ssl_request);
    a = n.next();
    ASSERT_EQ(a.kind, A::start_tls);
    EXPECT_FALSE(a.direct);
    EXPECT_FALSE(a.decoded);
    n.tls_established("");
    EXPECT_TRUE(n.encrypted());
    EXPECT_EQ(n.next().kind, A::read);
    n.feed(kStartup);
    a = n.next();
    ASSERT_EQ(a.kind, A::startup);
    EXPECT_EQ(Bytes(a.bytes.begin(), a.bytes.end()), kStartup);
    EXPECT_TRUE(n.got_startup());
    EXPECT_EQ(n.user(), "alice");
    EXPECT_EQ(n.database(), "db");
}

TEST(ClientNegotiation, PlaintextStartupRefusedWhenTlsIsRequired) {
    expect_every_split(TlsMode::require, kStartup, {"refuse:28000:tls_required"});
    ClientNegotiation n(TlsMode::require, "192.0.2.7");
    n.feed(kStartup);
    A a = n.next();
    EXPECT_NE(a.message.find("\"192.0.2.7\""), std::string::npos) << a.message;
    EXPECT_TRUE(n.got_startup());  // the refusal's log names the user
    EXPECT_EQ(n.user(), "alice");
}

TEST(ClientNegotiation, PreferAndAllowAcceptPlaintext) {
    for (TlsMode m : {TlsMode::allow, TlsMode::prefer})
        expect_every_split(m, kStartup, {"startup:" + std::to_string(kStartup.size())});
}

TEST(ClientNegotiation, GssEncRequestAnsweredNThenSslRequest) {
    // libpq's gssencmode=prefer: GSSENCRequest, 'N', then SSLRequest on the same connection.
    ClientNegotiation n(TlsMode::require, "192.0.2.7");
    n.feed(kGss);
    A a = n.next();
    EXPECT_EQ(a.reply_byte, 'N');
    EXPECT_EQ(a.decoded, StartupKind::gssenc_request);
    n.feed(kSsl);
    a = n.next();
    EXPECT_EQ(a.reply_byte, 'S');
    EXPECT_EQ(n.next().kind, A::start_tls);
}

TEST(ClientNegotiation, SecondSslRequestIsAProtocolViolation) {
    ClientNegotiation n(TlsMode::disable, "192.0.2.7");
    n.feed(kSsl);
    EXPECT_EQ(n.next().reply_byte, 'N');
    n.feed(kSsl);
    A a = n.next();
    EXPECT_EQ(describe(a), "refuse:0A000:protocol_violation");
    EXPECT_EQ(a.message, "unsupported frontend protocol 1234.5679: server supports 3.0 to 3.2");
}

TEST(ClientNegotiation, SslRequestInsideTlsIsAProtocolViolation) {
    ClientNegotiation n(TlsMode::require, "192.0.2.7");
    n.feed(kSsl);
    n.next();
    n.next();
    n.tls_established("");
    n.feed(kGss);  // a GSSENCRequest inside TLS, too
    EXPECT_EQ(describe(n.next()), "refuse:0A000:protocol_violation");
}

// CVE-2021-23214: bytes behind the SSLRequest in the same read were sent before the answer.
TEST(ClientNegotiation, PlaintextBehindSslRequestCloses) {
    auto t = run(TlsMode::require, cat({kSsl, kStartup}), {});
    EXPECT_EQ(t.actions, std::vector<std::string>{"close:unencrypted data after SSL request"});
    ClientNegotiation n(TlsMode::require, "192.0.2.7");
    n.feed(cat({kGss, Bytes{1}}));
    A a = n.next();
    EXPECT_EQ(a.end, NegotiationEnd::plaintext_after_gssenc);
    EXPECT_EQ(a.decoded, StartupKind::gssenc_request);
}

TEST(ClientNegotiation, DirectTlsTakesEveryByteRead) {
    Bytes hello = {pg::kTlsHandshakeRecord, 3, 1, 0, 5, 1, 2, 3, 4, 5};
    auto t = run(TlsMode::require, hello, {});
    ASSERT_EQ(t.actions.size(), 2u);
    EXPECT_EQ(t.actions[0], "tls-direct:" + std::to_string(hello.size()));
    EXPECT_EQ(t.decoded, std::vector<StartupKind>{StartupKind::direct_tls});
    // Only as the first bytes: after an 'N', 0x16 is a (bad) length word.
    ClientNegotiation n(TlsMode::disable, "192.0.2.7");
    n.feed(hello);
    EXPECT_EQ(describe(n.next()), "close:direct TLS refused");
}

TEST(ClientNegotiation, DirectTlsThenSslRequestIsAProtocolViolation) {
    ClientNegotiation n(TlsMode::require, "192.0.2.7");
    n.feed(Bytes{pg::kTlsHandshakeRecord});
    EXPECT_TRUE(n.next().direct);
    n.tls_established("");
    n.feed(kSsl);
    EXPECT_EQ(describe(n.next()), "refuse:0A000:protocol_violation");
}

TEST(ClientNegotiation, CancelRequestForwardedInEveryMode) {
    Bytes cancel = test::request(pg::kCancelRequestCode, 16);
    for (TlsMode m : {TlsMode::disable, TlsMode::require, TlsMode::verify_full})
        expect_every_split(m, cancel, {"cancel:16"});
}

TEST(ClientNegotiation, VerifyFullComparesCommonNameWithUser) {
    ClientNegotiation ok(TlsMode::verify_full, "192.0.2.7");
    ok.feed(kSsl);
    ok.next();
    ok.next();
    ok.tls_established("alice");
    ok.feed(kStartup);
    EXPECT_EQ(ok.next().kind, A::startup);

    ClientNegotiation bad(TlsMode::verify_full, "192.0.2.7");
    bad.feed(kSsl);
    bad.next();
    bad.next();
    bad.tls_established("mallory");
    bad.feed(kStartup);
    A a = bad.next();
    EXPECT_EQ(describe(a), "refuse:28000:certificate_cn_mismatch");
    EXPECT_NE(a.message.find("user \"alice\": CN mismatch"), std::string::npos);
}

// PostgreSQL truncates the user name to 63 bytes before comparing it with the CN; a
// certificate without a CN matches no user (an empty user is refused by the decoder's caller
// long before, but an empty CN must never equal anything).
TEST(ClientNegotiation, VerifyFullTruncatesTheUserAndRefusesAnEmptyCn) {
    auto run_with = [](const std::string& user, const std::string& cn) {
        ClientNegotiation n(TlsMode::verify_full, "192.0.2.7");
        n.feed(kSsl);
        n.next();
        n.next();
        n.tls_established(cn);
        n.feed(test::startup({{"user", user}}));
        return n.next().kind;
    };
    const std::string long_user(70, 'u');
    EXPECT_EQ(run_with(long_user, long_user.substr(0, 63)), A::startup);
    EXPECT_EQ(run_with(long_user, long_user), A::refuse);  // PostgreSQL sees 63 bytes
    EXPECT_EQ(run_with("", ""), A::refuse);
    EXPECT_EQ(run_with("alice", ""), A::refuse);
}

TEST(ClientNegotiation, InvalidPacketsCloseOrRefuse) {
    // A length below 8: closed, counted as invalid, the decoder's reason kept for the log.
    Bytes bad = {0, 0, 0, 4, 0, 0, 0, 0};
    auto t = run(TlsMode::disable, bad, {});
    EXPECT_EQ(t.actions, std::vector<std::string>{"close:invalid startup packet"});
    EXPECT_EQ(t.decoded, std::vector<StartupKind>{StartupKind::invalid});
    // An unsupported protocol version gets PostgreSQL's 0A000.
    Bytes v4 = test::startup({{"user", "a"}}, 4u << 16);
    expect_every_split(TlsMode::disable, v4, {"refuse:0A000:protocol_violation"});
}

TEST(ClientNegotiation, EofBeforeAnythingAndInsideAPacket) {
    EXPECT_EQ(run(TlsMode::disable, {}, {}).actions,
              std::vector<std::string>{"eof:closed before startup"});
    Bytes half(kStartup.begin(), kStartup.begin() + 5);
    EXPECT_EQ(run(TlsMode::disable, half, {}).actions,
              std::vector<std::string>{"eof:incomplete startup packet"});
}

// Random bytes never crash it and always end in a final action or a read.
TEST(ClientNegotiation, RandomBytes) {
    std::mt19937 rng(12345);
    for (int i = 0; i < 2000; ++i) {
        Bytes junk(rng() % 64);
        for (auto& b : junk) b = std::uint8_t(rng());
        if (i % 3 == 0 && junk.size() >= 8) std::copy(kSsl.begin(), kSsl.end(), junk.begin());
        auto t = run(TlsMode(rng() % 6), junk, {std::size_t(rng() % (junk.size() + 1))});
        ASSERT_FALSE(t.actions.empty());
    }
}

}  // namespace
}  // namespace pggw
