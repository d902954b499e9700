#include "gateway/pg/auth_messages.hpp"

#include <gtest/gtest.h>

#include <random>

#include "gateway/pg/protocol.hpp"

namespace pggw::pg {
namespace {

std::vector<std::uint8_t> bytes(std::string_view s) {
    return {s.begin(), s.end()};
}

// Feeds `stream` one byte at a time: no message before its last byte, each exactly once.
std::vector<Message> read_bytewise(const std::vector<std::uint8_t>& stream, std::uint32_t max) {
    MessageReader r(max);
    std::vector<Message> out;
    for (std::uint8_t b : stream) {
        r.feed(std::span(&b, 1));
        Message m;
        MessageReader::Status s;
        while ((s = r.next(m)) == MessageReader::message) out.push_back(m);
        EXPECT_NE(s, MessageReader::invalid);
    }
    return out;
}

TEST(AuthMessages, AuthenticationSaslListsMechanismsThenAnEmptyOne) {
    std::array<std::string_view, 2> mechs{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
    auto m = authentication_sasl(mechs);
    const std::string body = std::string("\0\0\0\x0a", 4) + "SCRAM-SHA-256-PLUS" +
                             std::string(1, '\0') + "SCRAM-SHA-256" + std::string(2, '\0');
    ASSERT_EQ(m.size(), 5 + body.size());
    EXPECT_EQ(m[0], 'R');
    EXPECT_EQ(read_u32(m.data() + 1), 4 + body.size());
    EXPECT_EQ(std::string(m.begin() + 5, m.end()), body);

    auto req = parse_auth_request(std::span(m).subspan(5));
    ASSERT_TRUE(req);
    EXPECT_EQ(req->code, 10u);
    auto parsed = parse_sasl_mechanisms(req->data);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));
}

TEST(AuthMessages, MechanismListsThatAreNotTerminatedAreRefused) {
    EXPECT_FALSE(parse_sasl_mechanisms(bytes("SCRAM-SHA-256")));
    EXPECT_FALSE(parse_sasl_mechanisms(bytes(std::string("SCRAM-SHA-256\0", 14))));
    EXPECT_FALSE(parse_sasl_mechanisms(bytes(std::string("A\0\0B", 4))));  // bytes after the end
    EXPECT_FALSE(parse_sasl_mechanisms({}));
    auto empty = parse_sasl_mechanisms(bytes(std::string("\0", 1)));
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->empty());
}

TEST(AuthMessages, SaslInitialResponseRoundTrip) {
    auto m = sasl_initial_response("SCRAM-SHA-256", "n,,n=,r=abc");
    EXPECT_EQ(m[0], 'p');
    auto r = parse_sasl_initial_response(std::span(m).subspan(5));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->mechanism, "SCRAM-SHA-256");
    ASSERT_TRUE(r->data);
    EXPECT_EQ(std::string(r->data->begin(), r->data->end()), "n,,n=,r=abc");
}

TEST(AuthMessages, SaslInitialResponseWithoutDataIsLengthMinusOne) {
    auto body = bytes(std::string("SCRAM-SHA-256\0\xff\xff\xff\xff", 18));
    auto r = parse_sasl_initial_response(body);
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->data);
    body.push_back('x');  // nothing may follow -1
    EXPECT_FALSE(parse_sasl_initial_response(body));
}

TEST(AuthMessages, SaslInitialResponseLengthMustMatch) {
    auto m = sasl_initial_response("SCRAM-SHA-256", "n,,n=,r=abc");
    std::vector<std::uint8_t> body(m.begin() + 5, m.end());
    body.pop_back();
    EXPECT_FALSE(parse_sasl_initial_response(body));  // short
    body.push_back('c');
    body.push_back('d');
    EXPECT_FALSE(parse_sasl_initial_response(body));                              // long
    EXPECT_FALSE(parse_sasl_initial_response(bytes("SCRAM-SHA-256")));            // no NUL
    EXPECT_FALSE(parse_sasl_initial_response(bytes(std::string("M\0\0\0", 4))));  // no length
}

TEST(AuthMessages, ReaderCutsMessagesAtEverySplit) {
    std::vector<std::uint8_t> stream;
    for (const auto& m : {authentication_sasl_continue("r=x,s=c2FsdA==,i=4096"),
                          authentication_sasl_final("v=sig"), error_response("28P01", "no")}) {
        stream.insert(stream.end(), m.begin(), m.end());
    }
    auto msgs = read_bytewise(stream, 1024);
    ASSERT_EQ(msgs.size(), 3u);
    EXPECT_EQ(msgs[0].type, 'R');
    EXPECT_EQ(msgs[1].type, 'R');
    EXPECT_EQ(msgs[2].type, 'E');
    EXPECT_EQ(error_message_field(msgs[2].body, 'C'), "28P01");
    EXPECT_EQ(error_message_field(msgs[2].body), "no");
    EXPECT_EQ(serialize(msgs[1]), authentication_sasl_final("v=sig"));
}

TEST(AuthMessages, ReaderKeepsWhatFollowsTheMessagesTaken) {
    auto a = authentication_sasl_final("v=sig");
    std::vector<std::uint8_t> stream = a;
    stream.insert(stream.end(), {'R', 0, 0, 0});  // the start of the next message
    MessageReader r(1024);
    r.feed(stream);
    Message m;
    ASSERT_EQ(r.next(m), MessageReader::message);
    EXPECT_EQ(r.next(m), MessageReader::need_more);
    EXPECT_EQ(std::vector<std::uint8_t>(r.rest().begin(), r.rest().end()),
              (std::vector<std::uint8_t>{'R', 0, 0, 0}));
}

TEST(AuthMessages, ReaderRefusesLengthsBelowFourAndAboveTheBound) {
    for (std::uint32_t len : {0u, 3u, 4u + 101u, 0xffffffffu}) {
        MessageReader r(100);
        std::vector<std::uint8_t> m{'p'};
        append_u32(m, len);
        r.feed(m);
        Message out;
        EXPECT_EQ(r.next(out), MessageReader::invalid) << len;
    }
    MessageReader ok(100);
    std::vector<std::uint8_t> m{'p'};
    append_u32(m, 4 + 100);
    ok.feed(m);
    Message out;
    EXPECT_EQ(ok.next(out), MessageReader::need_more);  // at the bound: waits for the body
}

TEST(AuthMessages, ErrorFieldOfATruncatedBodyIsEmpty) {
    EXPECT_EQ(error_message_field(bytes("SFATAL")), "");  // unterminated
    EXPECT_EQ(error_message_field({}), "");
}

TEST(AuthMessages, RandomBytesNeverCrashTheParsers) {
    std::mt19937 rng(7);
    for (int i = 0; i < 20000; ++i) {
        std::vector<std::uint8_t> b(rng() % 64);
        for (auto& x : b) x = std::uint8_t(rng() % 4 == 0 ? 0 : rng());
        (void)parse_sasl_initial_response(b);
        (void)parse_sasl_mechanisms(b);
        (void)parse_auth_request(b);
        (void)error_message_field(b);
        MessageReader r(32);
        r.feed(b);
        Message m;
        while (r.next(m) == MessageReader::message) EXPECT_LE(m.body.size(), 32u);
    }
}

TEST(Protocol, ErrorResponseCarriesADetailWhenGiven) {
    auto e = error_response("28P01", "msg", "FATAL", "why");
    std::span body = std::span(e).subspan(5);
    EXPECT_EQ(error_message_field(body, 'D'), "why");
    auto plain = error_response("28P01", "msg");
    EXPECT_EQ(error_message_field(std::span(plain).subspan(5), 'D'), "");
}

}  // namespace
}  // namespace pggw::pg
