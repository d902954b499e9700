#include <gtest/gtest.h>
TEST(TlsPlaceholder, Builds) { EXPECT_EQ(1 + 1, 2); }
