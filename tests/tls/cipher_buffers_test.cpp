// CipherBuffers (tls_backends/cipher_buffers.hpp), the ciphertext buffers of every engine: what
// release_if_empty() frees and what it must keep.
#include "tls_backends/cipher_buffers.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace pggw::tls {
namespace {

void commit(CipherBuffers& b, const std::string& bytes) {
    auto space = b.input_space();
    ASSERT_GE(space.size(), bytes.size());
    std::memcpy(space.data(), bytes.data(), bytes.size());
    b.commit_input(bytes.size());
}

std::string pull(CipherBuffers& b, std::size_t n) {
    std::string s(n, '\0');
    s.resize(b.pull(s.data(), n));
    return s;
}

TEST(CipherBuffers, InputGrowsOnceToAFullRecord) {
    CipherBuffers b;
    EXPECT_EQ(b.input_space().size(), CipherBuffers::kInputInitial);
    b.commit_input(CipherBuffers::kInputInitial);  // a read that filled it
    EXPECT_EQ(pull(b, 10).size(), 10u);
    EXPECT_EQ(b.input_space().size() + b.unread().size(), CipherBuffers::kInputCapacity);
}

TEST(CipherBuffers, ReleaseFreesWhatHoldsNothing) {
    CipherBuffers b;
    b.commit_input(b.input_space().size());
    (void)b.input_space();  // grown to a full record
    std::vector<std::uint8_t> sink(CipherBuffers::kInputCapacity);
    while (b.pull(sink.data(), sink.size()) > 0) {
    }
    b.push("record", 6);
    b.consume_output(6);
    b.release_if_empty();
    // Allocated again, small first: the grown buffer is gone.
    EXPECT_EQ(b.input_space().size(), CipherBuffers::kInputInitial);
    EXPECT_TRUE(b.output().empty());
    b.push("again", 5);
    EXPECT_EQ(std::string(b.output().begin(), b.output().end()), "again");
}

TEST(CipherBuffers, ReleaseKeepsUnreadInputAndUnsentOutput) {
    CipherBuffers b;
    commit(b, "half a record");
    EXPECT_EQ(pull(b, 5), "half ");
    b.push("unsent", 6);
    b.consume_output(2);
    b.release_if_empty();
    EXPECT_EQ(pull(b, 100), "a record");
    EXPECT_EQ(std::string(b.output().begin(), b.output().end()), "sent");
    // The input is empty now, the output not: only the input goes.
    b.release_if_empty();
    EXPECT_TRUE(b.unread().empty());
    EXPECT_EQ(b.input_space().size(), CipherBuffers::kInputInitial);
    EXPECT_EQ(std::string(b.output().begin(), b.output().end()), "sent");
}

TEST(CipherBuffers, ReleaseOfNothingIsHarmless) {
    CipherBuffers b;
    b.release_if_empty();
    b.release_if_empty();
    EXPECT_TRUE(b.unread().empty());
    EXPECT_TRUE(b.output().empty());
    EXPECT_TRUE(b.input_from(1).empty());
    commit(b, "x");
    EXPECT_EQ(pull(b, 1), "x");
}

}  // namespace
}  // namespace pggw::tls
