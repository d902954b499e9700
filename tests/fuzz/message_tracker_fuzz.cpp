// MessageTracker on an arbitrary server-to-client stream. Checks: fed in random splits it
// ends in the same state as fed in one piece, and both agree with a plain reference walk over
// the messages (type byte, int32 length including itself).
#include <array>

#include "fuzz_check.hpp"
#include "gateway/pg/message_tracker.hpp"
#include "gateway/pg/protocol.hpp"

using namespace pggw;

namespace {

struct Reference {
    bool in_sync = true;
    bool at_boundary = true;
    char status = 0;
    std::uint64_t messages = 0;
    std::array<std::uint64_t, 256> counts{};
};

Reference walk(std::span<const std::uint8_t> in) {
    Reference r;
    std::size_t at = 0;
    while (at < in.size()) {
        if (in.size() - at < 5) {
            r.at_boundary = false;
            return r;
        }
        const std::uint32_t len = pg::read_u32(&in[at + 1]);
        if (len < 4) {
            r.in_sync = false;
            return r;
        }
        ++r.messages;
        ++r.counts[in[at]];
        const std::size_t end = at + 1 + std::size_t(len);
        if (in[at] == 'Z' && len > 4 && at + 5 < in.size()) r.status = char(in[at + 5]);
        if (end > in.size()) {
            r.at_boundary = false;
            return r;
        }
        at = end;
    }
    return r;
}

void check(const MessageTracker& t, bool ok, const Reference& r) {
    FUZZ_CHECK(ok == r.in_sync);
    FUZZ_CHECK(t.messages() == r.messages);
    FUZZ_CHECK(t.transaction_status() == r.status);
    for (int c = 0; c < 256; ++c) {
        bool counted = false;
        for (char k : MessageTracker::kCounted) counted = counted || k == char(c);
        FUZZ_CHECK(t.count(char(c)) == (counted ? r.counts[std::uint8_t(c)] : 0));
    }
    // Out of sync, the tracker's boundary is not to be trusted (message_tracker.hpp).
    if (ok) FUZZ_CHECK(t.at_boundary() == r.at_boundary);
    FUZZ_CHECK(t.idle() == (t.at_boundary() && t.transaction_status() == 'I'));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::uint8_t> in(data, size);
    const Reference ref = walk(in);

    MessageTracker whole;
    check(whole, whole.feed(in), ref);

    MessageTracker split;
    fuzz::Splits splits(in);
    bool ok = true;
    fuzz::for_each_chunk(in, splits, 64, [&](std::span<const std::uint8_t> c) {
        if (ok) ok = split.feed(c);  // after a false, the relay's counts are void anyway
    });
    check(split, ok, ref);
    return 0;
}
