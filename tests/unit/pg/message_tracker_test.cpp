#include "gateway/pg/message_tracker.hpp"

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

std::vector<std::uint8_t> stream_of(std::initializer_list<std::vector<std::uint8_t>> msgs) {
    std::vector<std::uint8_t> out;
    for (const auto& m : msgs) out.insert(out.end(), m.begin(), m.end());
    return out;
}

TEST(MessageTracker, StartsAtBoundaryWithoutStatus) {
    MessageTracker t;
    EXPECT_TRUE(t.at_boundary());
    EXPECT_EQ(t.transaction_status(), 0);
    EXPECT_FALSE(t.idle());
}

TEST(MessageTracker, FollowsReadyForQueryAtEverySplit) {
    auto bytes = stream_of({message('R', std::string(4, '\0')), message('S', "a\0b\0"),
                            message('K', std::string(8, 'k')), message('Z', "I"),
                            message('C', "BEGIN\0"), message('Z', "T")});
    for (std::size_t split = 0; split <= bytes.size(); ++split) {
        MessageTracker t;
        ASSERT_TRUE(t.feed(std::span(bytes.data(), split)));
        ASSERT_TRUE(t.feed(std::span(bytes.data() + split, bytes.size() - split)));
        EXPECT_TRUE(t.at_boundary());
        EXPECT_EQ(t.transaction_status(), 'T') << "split " << split;
        EXPECT_EQ(t.messages(), 6u);
        EXPECT_FALSE(t.idle());
    }
}

TEST(MessageTracker, ByteAtATime) {
    auto bytes =
        stream_of({message('Z', "E"), message('D', std::string(100, 'x')), message('Z', "I")});
    MessageTracker t;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        ASSERT_TRUE(t.feed(std::span(bytes.data() + i, 1)));
        if (i == 5) {
            EXPECT_EQ(t.transaction_status(), 'E');
        }
        if (i > 5 && i + 1 < bytes.size()) {
            EXPECT_FALSE(t.idle());
        }
    }
    EXPECT_TRUE(t.idle());
}

TEST(MessageTracker, MidMessageIsNotABoundary) {
    auto bytes = message('D', std::string(10, 'x'));
    MessageTracker t;
    t.feed(std::span(bytes.data(), 7));
    EXPECT_FALSE(t.at_boundary());
}

TEST(MessageTracker, CountsMessagesByType) {
    auto bytes = stream_of({message('Q', "select 1\0"), message('P', std::string(6, '\0')),
                            message('S', ""), message('Q', "select 2\0")});
    MessageTracker t;
    for (std::size_t i = 0; i < bytes.size(); ++i) t.feed(std::span(bytes.data() + i, 1));
    EXPECT_EQ(t.count('Q'), 2u);
    EXPECT_EQ(t.count('S'), 1u);
    EXPECT_EQ(t.count('P'), 1u);
    EXPECT_EQ(t.count('Z'), 0u);
}

// Only the types the relay needs are counted (two trackers live as long as each session).
TEST(MessageTracker, CountsOnlyTheTypesItTracks) {
    auto bytes = stream_of({message('D', "row"), message('Z', "I"), message('C', "SELECT 1\0")});
    MessageTracker t;
    t.feed(bytes);
    EXPECT_EQ(t.messages(), 3u);
    EXPECT_EQ(t.count('Z'), 1u);
    EXPECT_EQ(t.count('D'), 0u);
    EXPECT_EQ(t.count('C'), 0u);
    EXPECT_LE(sizeof(MessageTracker), 128u);
}

TEST(MessageTracker, LengthBelowFourIsOutOfSync) {
    std::vector<std::uint8_t> bad = {'Z', 0, 0, 0, 3};
    MessageTracker t;
    EXPECT_FALSE(t.feed(bad));
}

}  // namespace
}  // namespace pggw
