// Strict base64: RFC 4648's test vectors both ways, round trips of every length, and every
// kind of malformed input refused.
#include "gateway/auth/base64.hpp"

#include <gtest/gtest.h>

#include <random>

namespace pggw::auth {
namespace {

std::string decode_text(std::string_view s) {
    auto d = base64_decode(s);
    EXPECT_TRUE(d.has_value()) << s;
    return d ? std::string(d->begin(), d->end()) : std::string("<invalid>");
}

TEST(Base64Test, Rfc4648Vectors) {
    const std::pair<std::string_view, std::string_view> vectors[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (auto [plain, encoded] : vectors) {
        EXPECT_EQ(base64_encode(plain), encoded);
        EXPECT_EQ(decode_text(encoded), plain);
    }
    // SCRAM's fixed channel-binding values.
    EXPECT_EQ(base64_encode(std::string_view("n,,")), "biws");
    EXPECT_EQ(base64_encode(std::string_view("y,,")), "eSws");
}

TEST(Base64Test, RoundTripsEveryLengthAndByte) {
    std::mt19937 rng(7);
    for (std::size_t len = 0; len < 200; ++len) {
        std::vector<std::uint8_t> data(len);
        for (auto& b : data) b = std::uint8_t(rng());
        auto text = base64_encode(data);
        EXPECT_EQ(text.size(), (len + 2) / 3 * 4);
        auto back = base64_decode(text);
        ASSERT_TRUE(back.has_value()) << text;
        EXPECT_EQ(*back, data);
    }
    std::vector<std::uint8_t> all(256);
    for (int i = 0; i < 256; ++i) all[i] = std::uint8_t(i);
    EXPECT_EQ(*base64_decode(base64_encode(all)), all);
}

TEST(Base64Test, RejectsMalformed) {
    const std::string_view bad[] = {
        "Zg",                          // no padding
        "Zg=",                         // short padding
        "Zm9",                         // length not a multiple of 4
        "Z===",                        // three pads
        "====",                        // only pads
        "Zg==Zg==",                    // padding in the middle
        "Zm=v",                        // pad before data
        "Zm9v\n",                      // whitespace
        " Zm9v",                       // whitespace
        "Zm9-",                        // URL-safe alphabet
        "Zm9_",                        // URL-safe alphabet
        "Zh==",                        // unused bits set (canonical form is Zg==)
        "Zm9=",                        // unused bits set (canonical form is Zm8=)
        "Zm\x80v",                     // high byte
        std::string_view("Zm\0v", 4),  // NUL
    };
    for (auto s : bad) EXPECT_FALSE(base64_decode(s).has_value()) << s;
}

}  // namespace
}  // namespace pggw::auth
