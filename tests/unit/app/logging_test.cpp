// Log values cannot forge lines; the JSON format is one object per line with stable keys.
#include "gateway/app/logging.hpp"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>

#include "gateway/session/log_value.hpp"

namespace pggw {
namespace {

TEST(LogValue, BareWhenSafeQuotedOtherwise) {
    EXPECT_EQ(log_value("alice"), "alice");
    EXPECT_EQ(log_value("app-db_1.x"), "app-db_1.x");
    EXPECT_EQ(log_value(""), "\"\"");
    EXPECT_EQ(log_value("two words"), "\"two words\"");
    EXPECT_EQ(log_value("a=b"), "\"a=b\"");
    // A user name that tries to end the line and start a forged one stays on one line.
    EXPECT_EQ(log_value("bob\ninfo: session closed: peer=x"),
              "\"bob\\ninfo: session closed: peer=x\"");
    EXPECT_EQ(log_value("x\ny"), "\"x\\ny\"");
    EXPECT_EQ(log_value("\x1b[31mred"), "\"\\x1b[31mred\"");  // no terminal escapes
    EXPECT_EQ(log_value("q\"uote\\"), "\"q\\\"uote\\\\\"");
    EXPECT_EQ(log_value("caf\xc3\xa9"), "\"caf\\xc3\\xa9\"");
    EXPECT_EQ(log_value("tab\there"), "\"tab\\there\"");
}

TEST(LogValue, NeverContainsANewline) {
    for (int c = 0; c < 256; ++c) {
        std::string v = log_value(std::string("a") + char(c) + "b");
        EXPECT_EQ(v.find('\n'), std::string::npos) << c;
        EXPECT_EQ(v.find('\r'), std::string::npos) << c;
        EXPECT_EQ(v.find('\x1b'), std::string::npos) << c;
    }
}

std::string json_line(spdlog::level::level_enum level, std::string_view text) {
    auto f = make_json_formatter();
    spdlog::details::log_msg msg("pggw", level, text);
    spdlog::memory_buf_t out;
    f->format(msg, out);
    return std::string(out.data(), out.size());
}

TEST(JsonLog, OneObjectPerLineWithStableKeys) {
    std::string line = json_line(
        spdlog::level::info,
        "session closed: peer=192.0.2.7:5000 via=127.0.0.3:4000 user=\"bob\\nx\" database=appdb "
        "worker=1 duration=0.100s bytes_in=10 bytes_out=20 tls=TLSv1.3 reason=\"client closed\"");
    ASSERT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1);
    EXPECT_EQ(line.rfind("{\"time\":\"", 0), 0u) << line;
    EXPECT_NE(line.find("\"level\":\"info\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"peer\":\"192.0.2.7:5000\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"via\":\"127.0.0.3:4000\""), std::string::npos) << line;
    // The client's newline comes back as JSON's \n, inside the string.
    EXPECT_NE(line.find("\"user\":\"bob\\nx\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"database\":\"appdb\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"worker\":\"1\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"reason\":\"client closed\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"msg\":\"session closed: peer=192.0.2.7:5000"), std::string::npos);
}

TEST(JsonLog, ProseIsNotAKeyAndPunctuationEndsAValue) {
    std::string line = json_line(spdlog::level::warn,
                                 "refused client: peer=192.0.2.7:5000 user=bob database=db "
                                 "sqlstate=28000: TLS required: note=x");
    EXPECT_NE(line.find("\"level\":\"warning\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"sqlstate\":\"28000\""), std::string::npos) << line;
    EXPECT_EQ(line.find("\"note\""), std::string::npos) << line;
    EXPECT_EQ(line.find("\"TLS"), std::string::npos) << line;
}

TEST(JsonLog, ControlBytesEscaped) {
    std::string line = json_line(spdlog::level::info, std::string("a\x01\x1b\"\\b"));
    EXPECT_NE(line.find("\"msg\":\"a\\u0001\\u001b\\\"\\\\b\""), std::string::npos) << line;
}

}  // namespace
}  // namespace pggw
