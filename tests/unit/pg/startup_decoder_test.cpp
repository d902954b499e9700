#include "gateway/pg/startup_decoder.hpp"

#include <gtest/gtest.h>

#include <random>

#include "tests/unit/pg/packets.hpp"

namespace pggw {
namespace {

using test::request;
using test::startup;

// Feeds `bytes` one prefix at a time: every proper prefix must ask for more, the whole packet
// must decode. This covers every split point a socket can produce.
DecodeResult decode_at_every_split(const std::vector<std::uint8_t>& bytes, bool first = true) {
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        auto r = decode_startup(std::span(bytes.data(), n), first);
        EXPECT_EQ(r.status, DecodeResult::need_more) << "prefix of " << n << " bytes";
    }
    return decode_startup(bytes, first);
}

TEST(StartupDecoder, EmptyInputNeedsMore) {
    EXPECT_EQ(decode_startup({}, true).status, DecodeResult::need_more);
}

struct RequestCase {
    std::uint32_t code;
    StartupKind kind;
};
class FixedRequests : public ::testing::TestWithParam<RequestCase> {};

TEST_P(FixedRequests, DecodeAtEverySplit) {
    auto bytes = request(GetParam().code);
    auto r = decode_at_every_split(bytes);
    ASSERT_EQ(r.status, DecodeResult::complete);
    EXPECT_EQ(r.packet.kind, GetParam().kind);
    EXPECT_EQ(r.consumed, 8u);
}

TEST_P(FixedRequests, WrongLengthIsInvalidBeforeTheBody) {
    auto bytes = request(GetParam().code, 12);
    auto r = decode_startup(std::span(bytes.data(), 8), true);  // body not yet here
    EXPECT_EQ(r.status, DecodeResult::invalid);
}

INSTANTIATE_TEST_SUITE_P(
    Requests, FixedRequests,
    ::testing::Values(RequestCase{pg::kSslRequestCode, StartupKind::ssl_request},
                      RequestCase{pg::kGssEncRequestCode, StartupKind::gssenc_request}));

TEST(StartupDecoder, PipelinedBytesAfterSslRequestAreNotConsumed) {
    auto bytes = request(pg::kSslRequestCode);
    auto next = startup({{"user", "bob"}});
    bytes.insert(bytes.end(), next.begin(), next.end());
    auto r = decode_startup(bytes, true);
    ASSERT_EQ(r.status, DecodeResult::complete);
    EXPECT_EQ(r.consumed, 8u);  // the caller sees the rest and closes (CVE-2021-23214)
    EXPECT_GT(bytes.size(), r.consumed);
}

TEST(StartupDecoder, CancelRequest30) {
    auto bytes = request(pg::kCancelRequestCode, 16);
    bytes[8] = 0x12;   // pid
    bytes[15] = 0x34;  // key
    auto r = decode_at_every_split(bytes);
    ASSERT_EQ(r.status, DecodeResult::complete);
    EXPECT_EQ(r.packet.kind, StartupKind::cancel_request);
    EXPECT_EQ(r.packet.bytes.size(), 16u);
    EXPECT_EQ(r.packet.bytes[15], 0x34);
}

TEST(StartupDecoder, CancelRequest32LongKey) {
    auto bytes = request(pg::kCancelRequestCode, 12 + 256);
    auto r = decode_at_every_split(bytes);
    ASSERT_EQ(r.status, DecodeResult::complete);
    EXPECT_EQ(r.packet.kind, StartupKind::cancel_request);
    EXPECT_EQ(r.consumed, 268u);
}

TEST(StartupDecoder, CancelRequestKeyTooLong) {
    auto bytes = request(pg::kCancelRequestCode, 12 + 257);
    EXPECT_EQ(decode_startup(std::span(bytes.data(), 8), true).status, DecodeResult::invalid);
}

TEST(StartupDecoder, CancelRequestTooShort) {
    auto bytes = request(pg::kCancelRequestCode, 12);
    EXPECT_EQ(decode_startup(bytes, true).status, DecodeResult::invalid);
}

TEST(StartupDecoder, StartupMessageAtEverySplit) {
    auto bytes = startup({{"user", "alice"}, {"database", "appdb"}, {"application_name", "psql"}});
    auto r = decode_at_every_split(bytes);
    ASSERT_EQ(r.status, DecodeResult::complete);
    EXPECT_EQ(r.packet.kind, StartupKind::startup_message);
    EXPECT_EQ(r.packet.user, "alice");
    EXPECT_EQ(r.packet.database, "appdb");
    EXPECT_EQ(r.packet.application_name, "psql");
    EXPECT_EQ(r.consumed, bytes.size());
    EXPECT_EQ(r.packet.bytes.size(), bytes.size());
}

TEST(StartupDecoder, DatabaseDefaultsToUser) {
    auto r = decode_startup(startup({{"user", "bob"}}), true);
    ASSERT_EQ(r.status, DecodeResult::complete);
    EXPECT_EQ(r.packet.database, "bob");
}

TEST(StartupDecoder, Protocol32PassesThrough) {
    auto r = decode_startup(startup({{"user", "bob"}}, pg::kProtocol32), true);
    ASSERT_EQ(r.status, DecodeResult::complete);
    EXPECT_EQ(r.packet.code, pg::kProtocol32);
}

TEST(StartupDecoder, Protocol2IsRefused) {
    auto r = decode_startup(startup({{"user", "bob"}}, 2u << 16), true);
    EXPECT_EQ(r.status, DecodeResult::invalid);
    EXPECT_NE(r.error.find("unsupported frontend protocol 2.0"), std::string::npos);
}

TEST(StartupDecoder, MissingTerminatorIsInvalid) {
    auto bytes = startup({{"user", "bob"}});
    bytes.back() = 'x';
    EXPECT_EQ(decode_startup(bytes, true).status, DecodeResult::invalid);
}

TEST(StartupDecoder, NameWithoutValueIsInvalid) {
    std::vector<std::uint8_t> bytes = {0, 0, 0, 14, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0, 0};
    // "user\0" then the final terminator: the value is missing.
    EXPECT_EQ(decode_startup(bytes, true).status, DecodeResult::invalid);
}

TEST(StartupDecoder, OversizedIsInvalidWithoutWaitingForTheBody) {
    std::vector<std::uint8_t> bytes;
    pg::append_u32(bytes, 10000 + 4 + 1);
    EXPECT_EQ(decode_startup(bytes, true).status, DecodeResult::invalid);
}

TEST(StartupDecoder, MaximumSizeIsAccepted) {
    std::string big(10000 - 4 - 2 - 1 - 1, 'x');  // version + "a\0" + big + "\0" + final "\0"
    auto bytes = startup({{"a", big}});
    ASSERT_EQ(bytes.size(), 10004u);
    EXPECT_EQ(decode_startup(bytes, true).status, DecodeResult::complete);
}

TEST(StartupDecoder, TooShortLengthIsInvalid) {
    std::vector<std::uint8_t> bytes = {0, 0, 0, 7};
    EXPECT_EQ(decode_startup(bytes, true).status, DecodeResult::invalid);
}

TEST(StartupDecoder, DirectTlsOnlyAsFirstPacket) {
    std::vector<std::uint8_t> hello = {0x16, 0x03, 0x01, 0x02, 0x00};
    auto r = decode_startup(std::span(hello.data(), 1), true);
    ASSERT_EQ(r.status, DecodeResult::complete);
    EXPECT_EQ(r.packet.kind, StartupKind::direct_tls);
    EXPECT_EQ(r.consumed, 0u);
    // Later on the connection, 0x16 is just a (huge, invalid) length.
    EXPECT_EQ(decode_startup(hello, false).status, DecodeResult::invalid);
}

TEST(StartupDecoder, HttpRequestIsInvalid) {
    std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    std::vector<std::uint8_t> bytes(get.begin(), get.end());
    EXPECT_EQ(decode_startup(bytes, true).status, DecodeResult::invalid);
}

TEST(StartupDecoder, UnknownCodeIsInvalid) {
    auto bytes = request((1234u << 16) | 9999u);
    EXPECT_EQ(decode_startup(bytes, true).status, DecodeResult::invalid);
}

TEST(StartupDecoder, RandomBytesNeverCrashOrOverread) {
    std::mt19937 rng(42);
    for (int i = 0; i < 20000; ++i) {
        std::vector<std::uint8_t> bytes(rng() % 64);
        for (auto& b : bytes) b = std::uint8_t(rng());
        if (i % 3 == 0 && bytes.size() >= 4) {  // plausible lengths reach the body parser
            bytes[0] = bytes[1] = 0;
            bytes[2] = 0;
            bytes[3] = std::uint8_t(bytes.size());
            if (bytes.size() >= 8) {
                bytes[4] = 0;
                bytes[5] = 3;
            }
        }
        auto r = decode_startup(bytes, i % 2 == 0);
        if (r.status == DecodeResult::complete) {
            EXPECT_LE(r.consumed, bytes.size());
        }
    }
}

}  // namespace
}  // namespace pggw
