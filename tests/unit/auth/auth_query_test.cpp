// --auth-query's pure parts: the StartupMessage and the Parse/Bind/Execute/Sync pggw sends
// (the user name bound to $1, byte for byte; never in the SQL), the reading of PostgreSQL's
// answer (found, not found, NULL, md5, errors, broken rows), and the per-worker cache (fake
// clock) and bound on lookups in flight.
#include "gateway/auth/auth_query.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gateway/pg/protocol.hpp"

namespace pggw::auth {
namespace {

const std::string kSecret =
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

using Bytes = std::vector<std::uint8_t>;

struct Msg {
    char type;
    Bytes body;
};

// Splits a stream of backend-style messages (type, int32 length, body).
std::vector<Msg> split(const Bytes& b) {
    std::vector<Msg> out;
    std::size_t pos = 0;
    while (pos < b.size()) {
        EXPECT_GE(b.size() - pos, 5u);
        const std::uint32_t len = pg::read_u32(b.data() + pos + 1);
        EXPECT_GE(len, 4u);
        EXPECT_LE(pos + 1 + len, b.size());
        out.push_back({char(b[pos]), Bytes(b.begin() + std::ptrdiff_t(pos + 5),
                                           b.begin() + std::ptrdiff_t(pos + 1 + len))});
        pos += 1 + len;
    }
    return out;
}

Bytes str(std::string_view s, bool nul = true) {
    Bytes b(s.begin(), s.end());
    if (nul) b.push_back(0);
    return b;
}
Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}
Bytes u16(std::uint16_t v) {
    return {std::uint8_t(v >> 8), std::uint8_t(v)};
}
Bytes u32(std::uint32_t v) {
    Bytes b;
    pg::append_u32(b, v);
    return b;
}

// A DataRow body with these columns (nullopt: NULL).
Bytes data_row(std::initializer_list<std::optional<std::string>> cols) {
    Bytes out = u16(std::uint16_t(cols.size()));
    for (const auto& c : cols) {
        if (!c) {
            auto n = u32(0xffffffffu);
            out.insert(out.end(), n.begin(), n.end());
            continue;
        }
        auto l = u32(std::uint32_t(c->size()));
        out.insert(out.end(), l.begin(), l.end());
        out.insert(out.end(), c->begin(), c->end());
    }
    return out;
}

// Feeds the messages; returns whether the last one finished the reply.
bool feed_all(AuthQueryReply& r, const std::vector<Msg>& msgs) {
    bool done = false;
    for (const auto& m : msgs) {
        EXPECT_FALSE(done) << "message after the reply was final";
        done = r.feed(m.type, m.body);
    }
    return done;
}

const Msg kParseComplete{'1', {}};
const Msg kBindComplete{'2', {}};
const Msg kSelect1{'C', str("SELECT 1")};
const Msg kSelect0{'C', str("SELECT 0")};
const Msg kReady{'Z', {'I'}};

TEST(AuthQueryMessages, StartupMessageIsProtocol30WithUserDatabaseAndName) {
    Bytes m = startup_message("auth\"user", "db", "pggw auth_query");
    ASSERT_GE(m.size(), 8u);
    EXPECT_EQ(pg::read_u32(m.data()), m.size());
    EXPECT_EQ(pg::read_u32(m.data() + 4), pg::kProtocol30);
    Bytes params(m.begin() + 8, m.end());
    EXPECT_EQ(params, cat({str("user"), str("auth\"user"), str("database"), str("db"),
                           str("application_name"), str("pggw auth_query"), Bytes{0}}));
}

TEST(AuthQueryMessages, ParseBindExecuteSyncWithUserBoundToDollarOne) {
    const std::string user = "o'brien\"; DROP TABLE x; --";
    auto msgs = split(auth_query_messages(kDefaultAuthQuery, user));
    ASSERT_EQ(msgs.size(), 4u);
    EXPECT_EQ(msgs[0].type, 'P');
    EXPECT_EQ(msgs[0].body, cat({str(""), str(kDefaultAuthQuery), u16(1), u32(0)}));
    EXPECT_EQ(msgs[1].type, 'B');
    EXPECT_EQ(msgs[1].body,
              cat({str(""), str(""), u16(1), u16(0), u16(1), u32(std::uint32_t(user.size())),
                   str(user, false), u16(1), u16(0)}));
    EXPECT_EQ(msgs[2].type, 'E');
    EXPECT_EQ(msgs[2].body, cat({str(""), u32(0)}));
    EXPECT_EQ(msgs[3].type, 'S');
    EXPECT_TRUE(msgs[3].body.empty());
    // The user name is nowhere in the SQL text.
    EXPECT_EQ(std::string(kDefaultAuthQuery).find("brien"), std::string::npos);
    auto term = split(terminate_message());
    ASSERT_EQ(term.size(), 1u);
    EXPECT_EQ(term[0].type, 'X');
}

TEST(AuthQueryMessages, DefaultQueryReadsLoginRolesWithUnexpiredPasswords) {
    const std::string q(kDefaultAuthQuery);
    EXPECT_NE(q.find("pg_authid"), std::string::npos);
    EXPECT_NE(q.find("rolname = $1"), std::string::npos);
    EXPECT_NE(q.find("rolcanlogin"), std::string::npos);
    EXPECT_NE(q.find("rolvaliduntil"), std::string::npos);
}

TEST(AuthQueryReply, FoundRowGivesTheSecret) {
    AuthQueryReply r;
    EXPECT_TRUE(feed_all(
        r, {kParseComplete, kBindComplete, {'D', data_row({"alice", kSecret})}, kSelect1, kReady}));
    ASSERT_EQ(r.answer().kind, AuthQueryAnswer::found);
    ASSERT_TRUE(r.answer().secret);
    EXPECT_EQ(format_scram_secret(*r.answer().secret), kSecret);
}

TEST(AuthQueryReply, ToleratesRowDescriptionNoticesAndParameterStatus) {
    AuthQueryReply r;
    EXPECT_TRUE(feed_all(r, {kParseComplete,
                             {'S', cat({str("a"), str("b")})},
                             kBindComplete,
                             {'T', u16(0)},
                             {'N', str("")},
                             {'D', data_row({"alice", kSecret, "extra"})},
                             kSelect1,
                             kReady}));
    EXPECT_EQ(r.answer().kind, AuthQueryAnswer::found);
}

TEST(AuthQueryReply, NoRowIsNotFound) {
    AuthQueryReply r;
    EXPECT_TRUE(feed_all(r, {kParseComplete, kBindComplete, kSelect0, kReady}));
    EXPECT_EQ(r.answer().kind, AuthQueryAnswer::not_found);
    EXPECT_FALSE(r.answer().secret);
    EXPECT_NE(r.answer().detail.find("no row"), std::string::npos);
}

TEST(AuthQueryReply, NullSecretIsNotFound) {
    AuthQueryReply r;
    EXPECT_TRUE(feed_all(r, {kParseComplete,
                             kBindComplete,
                             {'D', data_row({"alice", std::nullopt})},
                             kSelect1,
                             kReady}));
    EXPECT_EQ(r.answer().kind, AuthQueryAnswer::not_found);
    EXPECT_NE(r.answer().detail.find("NULL"), std::string::npos);
}

TEST(AuthQueryReply, Md5AndPlaintextAndMalformedScramAreNotUsable) {
    for (const std::string& secret : {std::string("md5") + std::string(32, 'a'),
                                      std::string("hunter2"), std::string("SCRAM-SHA-256$x")}) {
        AuthQueryReply r;
        EXPECT_TRUE(feed_all(
            r, {kParseComplete, kBindComplete, {'D', data_row({"u", secret})}, kSelect1, kReady}));
        EXPECT_EQ(r.answer().kind, AuthQueryAnswer::not_found) << secret;
        EXPECT_EQ(r.answer().detail.find(secret), std::string::npos) << "secret in the detail";
    }
}

TEST(AuthQueryReply, ErrorResponseIsAnErrorWithTheServersText) {
    AuthQueryReply r;
    Bytes err = cat({str("SERROR", false), Bytes{0}, str("C42883", false), Bytes{0},
                     str("Mfunction pgbouncer.get_auth(unknown) does not exist", false), Bytes{0},
                     Bytes{0}});
    EXPECT_FALSE(r.feed('E', err));
    EXPECT_TRUE(r.feed('Z', Bytes{'I'}));
    EXPECT_EQ(r.answer().kind, AuthQueryAnswer::error);
    EXPECT_NE(r.answer().detail.find("42883"), std::string::npos);
    EXPECT_NE(r.answer().detail.find("get_auth"), std::string::npos);
}

TEST(AuthQueryReply, TwoRowsOrOneColumnAreErrors) {
    {
        AuthQueryReply r;
        EXPECT_TRUE(feed_all(
            r,
            {{'D', data_row({"a", kSecret})}, {'D', data_row({"a", kSecret})}, kSelect1, kReady}));
        EXPECT_EQ(r.answer().kind, AuthQueryAnswer::error);
        EXPECT_FALSE(r.answer().secret);
    }
    {
        AuthQueryReply r;
        EXPECT_TRUE(feed_all(r, {{'D', data_row({kSecret})}, kSelect1, kReady}));
        EXPECT_EQ(r.answer().kind, AuthQueryAnswer::error);
        EXPECT_NE(r.answer().detail.find("two columns"), std::string::npos);
    }
}

TEST(AuthQueryReply, TruncatedRowsAreErrorsAtEverySplit) {
    Bytes row = data_row({"alice", kSecret});
    for (std::size_t cut = 0; cut < row.size(); ++cut) {
        AuthQueryReply r;
        r.feed('D', std::span(row).first(cut));
        r.feed('C', str("SELECT 1"));
        EXPECT_TRUE(r.feed('Z', Bytes{'I'}));
        EXPECT_EQ(r.answer().kind, AuthQueryAnswer::error) << cut;
        EXPECT_FALSE(r.answer().secret) << cut;
    }
}

TEST(AuthQueryReply, UnexpectedMessagesEmptyQueryAndMissingCompleteAreErrors) {
    {
        AuthQueryReply r;
        EXPECT_TRUE(r.feed('R', u32(0)));
        EXPECT_EQ(r.answer().kind, AuthQueryAnswer::error);
    }
    {
        AuthQueryReply r;
        EXPECT_TRUE(feed_all(r, {kParseComplete, kBindComplete, {'I', {}}, kReady}));
        EXPECT_EQ(r.answer().kind, AuthQueryAnswer::error);
    }
    {
        AuthQueryReply r;
        EXPECT_TRUE(feed_all(r, {kParseComplete, {'D', data_row({"a", kSecret})}, kReady}));
        EXPECT_EQ(r.answer().kind, AuthQueryAnswer::error);
    }
}

using namespace std::chrono_literals;
using TimePoint = AuthQueryCache::Clock::time_point;

TEST(AuthQueryCache, FoundAnswersLiveForTheTtl) {
    AuthQueryCache c;
    const TimePoint t0{};
    EXPECT_EQ(c.find("alice", t0), nullptr);
    c.put("alice", parse_scram_secret(kSecret), t0, 30s);
    auto* hit = c.find("alice", t0 + 29s);
    ASSERT_NE(hit, nullptr);
    ASSERT_TRUE(*hit);
    EXPECT_EQ(format_scram_secret(**hit), kSecret);
    EXPECT_EQ(c.find("bob", t0 + 1s), nullptr);
    EXPECT_EQ(c.find("alice", t0 + 30s), nullptr);  // expired, and gone
    EXPECT_EQ(c.size(), 0u);
}

TEST(AuthQueryCache, NotFoundAnswersLiveShorter) {
    AuthQueryCache c;
    const TimePoint t0{};
    c.put("ghost", std::nullopt, t0, 30s);
    auto* hit = c.find("ghost", t0 + 4s);
    ASSERT_NE(hit, nullptr);
    EXPECT_FALSE(*hit);
    EXPECT_EQ(c.find("ghost", t0 + AuthQueryCache::kNotFoundMax), nullptr);
    // A TTL below the cap applies as is.
    c.put("ghost", std::nullopt, t0, 2s);
    EXPECT_NE(c.find("ghost", t0 + 1s), nullptr);
    EXPECT_EQ(c.find("ghost", t0 + 2s), nullptr);
}

TEST(AuthQueryCache, ZeroTtlStoresNothingAndALaterAnswerReplaces) {
    AuthQueryCache c;
    const TimePoint t0{};
    c.put("alice", parse_scram_secret(kSecret), t0, 0s);
    EXPECT_EQ(c.find("alice", t0), nullptr);
    c.put("alice", std::nullopt, t0, 30s);
    c.put("alice", parse_scram_secret(kSecret), t0 + 1s, 30s);
    auto* hit = c.find("alice", t0 + 20s);
    ASSERT_NE(hit, nullptr);
    EXPECT_TRUE(*hit);
}

TEST(AuthQueryCache, ForgetDropsOneUser) {
    AuthQueryCache c;
    const TimePoint t0{};
    c.put("alice", parse_scram_secret(kSecret), t0, 30s);
    c.put("bob", parse_scram_secret(kSecret), t0, 30s);
    c.forget("alice");
    c.forget("nobody");
    EXPECT_EQ(c.find("alice", t0 + 1s), nullptr);
    EXPECT_NE(c.find("bob", t0 + 1s), nullptr);
}

TEST(AuthQueryCache, StaysBoundedUnderAFloodOfNames) {
    AuthQueryCache c;
    const TimePoint t0{};
    for (std::size_t i = 0; i < AuthQueryCache::kMaxEntries + 10; ++i)
        c.put("u" + std::to_string(i), std::nullopt, t0, 30s);
    EXPECT_LE(c.size(), AuthQueryCache::kMaxEntries);
    EXPECT_GE(c.size(), 1u);
}

TEST(AuthLookupGate, AdmitsAtMostKMax) {
    AuthLookupGate g;
    for (unsigned i = 0; i < AuthLookupGate::kMax; ++i) EXPECT_TRUE(g.try_enter());
    EXPECT_FALSE(g.try_enter());
    EXPECT_EQ(g.in_flight(), AuthLookupGate::kMax);
    g.leave();
    EXPECT_TRUE(g.try_enter());
    EXPECT_FALSE(g.try_enter());
}

}  // namespace
}  // namespace pggw::auth
