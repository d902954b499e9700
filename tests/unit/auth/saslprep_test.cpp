// SASLprep with PostgreSQL's leniency: RFC 4013's examples, and the raw bytes wherever
// PostgreSQL falls back to them (invalid UTF-8, prohibited, unassigned, bidi, empty result).
#include "gateway/auth/saslprep.hpp"

#include <gtest/gtest.h>

namespace pggw::auth {
namespace {

TEST(SaslprepTest, AsciiIsUnchanged) {
    EXPECT_EQ(saslprep("pencil"), "pencil");
    EXPECT_EQ(saslprep(""), "");
    EXPECT_EQ(saslprep("with space and ~!@#$%^&*()"), "with space and ~!@#$%^&*()");
    // PostgreSQL's ASCII shortcut skips the prohibition check: control characters stay.
    EXPECT_EQ(saslprep("bell\x07tab\t"), "bell\x07tab\t");
}

TEST(SaslprepTest, Rfc4013Examples) {
    EXPECT_EQ(saslprep("I\xC2\xAD"
                       "X"),
              "IX");                            // SOFT HYPHEN mapped to nothing
    EXPECT_EQ(saslprep("\xC2\xAA"), "a");       // FEMININE ORDINAL INDICATOR, NFKC
    EXPECT_EQ(saslprep("\xE2\x85\xA8"), "IX");  // ROMAN NUMERAL NINE, NFKC
    EXPECT_EQ(saslprep("a\xC2\xA0"
                       "b"),
              "a b");                           // NO-BREAK SPACE mapped to SPACE
    EXPECT_EQ(saslprep("\xEF\xAC\x81"), "fi");  // LATIN SMALL LIGATURE FI
    // Already-prepared non-ASCII text is kept.
    EXPECT_EQ(saslprep("p\xC3\xA4ssw\xC3\xB6rd"), "p\xC3\xA4ssw\xC3\xB6rd");
    // Decomposed form is composed (NFKC): a + COMBINING DIAERESIS -> U+00E4.
    EXPECT_EQ(saslprep("a\xCC\x88"), "\xC3\xA4");
}

TEST(SaslprepTest, RawBytesWherePostgresFallsBack) {
    // Prohibited: ASCII control character in a non-ASCII string (RFC 4013 example 5).
    EXPECT_EQ(saslprep("\xC3\xA4\x07"), "\xC3\xA4\x07");
    // Bidi violation: RandALCat then a digit (RFC 4013 example 7).
    EXPECT_EQ(saslprep("\xD8\xA7"
                       "1"),
              "\xD8\xA7"
              "1");
    // Unassigned in Unicode 3.2 (U+0221, assigned in 4.0): PostgreSQL refuses unassigned.
    EXPECT_EQ(saslprep("\xC8\xA1"), "\xC8\xA1");
    // Maps to nothing at all: PostgreSQL refuses the empty result.
    EXPECT_EQ(saslprep("\xC2\xAD"), "\xC2\xAD");
    // Private use (C.3) is prohibited.
    EXPECT_EQ(saslprep("x\xEE\x80\x80"), "x\xEE\x80\x80");
}

TEST(SaslprepTest, InvalidUtf8IsRaw) {
    const std::string_view bad[] = {
        "\xC3",              // truncated
        "\xC0\xAF",          // overlong
        "\xE0\x80\xAF",      // overlong
        "\xED\xA0\x80",      // surrogate
        "\xF4\x90\x80\x80",  // beyond U+10FFFF
        "\xFF",              // never valid
        "abc\x80",           // lone continuation
        "\xC3\xA4\xC3",      // valid then truncated
    };
    for (auto s : bad) {
        EXPECT_FALSE(valid_utf8(s));
        EXPECT_EQ(saslprep(s), s);
    }
    EXPECT_TRUE(valid_utf8("\xF0\x9F\x98\x80"));  // U+1F600
    EXPECT_TRUE(valid_utf8("\xEF\xBF\xBF"));
    // NUL: not a C string; raw.
    EXPECT_EQ(saslprep(std::string_view("\xC3\xA4\0x", 4)), std::string_view("\xC3\xA4\0x", 4));
}

}  // namespace
}  // namespace pggw::auth
