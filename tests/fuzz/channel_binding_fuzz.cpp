// The two stream watchers of channel_binding.hpp on arbitrary bytes in random splits.
//
// SaslOfferFilter (server to client): what it sends on, split or whole, is the same; it is the
// input itself unless it stripped SCRAM-SHA-256-PLUS (then it is shorter, and no longer offers
// it); and the bytes it holds back while it waits for the first message stay bounded.
//
// SaslMechanismWatch (client to server): split or whole, the same verdict, and the verdict a
// plain reading of the first message gives.
#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "gateway/pg/channel_binding.hpp"
#include "gateway/pg/protocol.hpp"

using namespace pggw;

namespace {

constexpr std::string_view kPlus = "SCRAM-SHA-256-PLUS";
// What the filter may hold back beyond the bytes of the last feed: a PostgreSQL server sends
// its first authentication request (and at most a NegotiateProtocolVersion) in well under
// this (channel_binding.cpp's kMaxFirstMessage is 8192 per message).
constexpr std::size_t kMaxHeld = 2 * (8192 + 1);

std::vector<std::uint8_t> filter(std::span<const std::uint8_t> in, fuzz::Splits* splits,
                                 bool& stripped) {
    SaslOfferFilter f;
    std::vector<std::uint8_t> out;
    std::size_t fed = 0;
    auto feed = [&](std::span<const std::uint8_t> c) {
        fed += c.size();
        std::span<const std::uint8_t> o = f.feed(c);
        out.insert(out.end(), o.begin(), o.end());
        // Held back: what went in and has not come out (stripping only makes this larger).
        if (!f.stripped()) FUZZ_CHECK(fed - out.size() <= kMaxHeld + c.size());
    };
    if (splits)
        fuzz::for_each_chunk(in, *splits, 512, feed);
    else
        feed(in);
    stripped = f.stripped();
    return out;
}

bool contains(std::span<const std::uint8_t> hay, std::string_view needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

void check_filter(std::span<const std::uint8_t> in) {
    bool stripped_whole = false, stripped_split = false;
    const std::vector<std::uint8_t> whole = filter(in, nullptr, stripped_whole);
    fuzz::Splits splits(in);
    const std::vector<std::uint8_t> split = filter(in, &splits, stripped_split);
    FUZZ_CHECK(whole == split && stripped_whole == stripped_split);
    if (!stripped_whole) {
        // Passed on unchanged (all of it, or nothing while the first message is incomplete).
        FUZZ_CHECK(whole.empty() || (whole.size() == in.size() &&
                                     std::equal(whole.begin(), whole.end(), in.begin())));
    } else {
        FUZZ_CHECK(whole.size() < in.size() && contains(in, kPlus));
        // The name and its NUL are gone; the list is rebuilt with its terminators, which adds
        // at most two bytes to a list that lacked them.
        FUZZ_CHECK(whole.size() + kPlus.size() + 1 <= in.size() + 2);
    }
}

SaslMechanismWatch::Verdict reference_verdict(std::span<const std::uint8_t> in) {
    // 'p', int32 length, "SCRAM-SHA-256-PLUS\0": a byte-by-byte prefix match.
    std::vector<std::uint8_t> want{'p', 0, 0, 0, 0};
    want.insert(want.end(), kPlus.begin(), kPlus.end());
    want.push_back(0);
    for (std::size_t i = 0; i < want.size(); ++i) {
        if (i >= in.size()) return SaslMechanismWatch::undecided;
        if (i >= 1 && i <= 4) {
            if (i == 4 && pg::read_u32(&in[1]) < 4 + kPlus.size() + 1)
                return SaslMechanismWatch::other;
            continue;
        }
        if (in[i] != want[i]) return SaslMechanismWatch::other;
    }
    return SaslMechanismWatch::plus;
}

void check_watch(std::span<const std::uint8_t> in) {
    SaslMechanismWatch whole;
    const auto v = whole.feed(in);
    FUZZ_CHECK(v == whole.verdict() && v == reference_verdict(in));
    SaslMechanismWatch split;
    fuzz::Splits splits(in, 1);
    fuzz::for_each_chunk(in, splits, 8, [&](std::span<const std::uint8_t> c) { split.feed(c); });
    FUZZ_CHECK(split.verdict() == v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::uint8_t> in(data, size);
    check_filter(in);
    check_watch(in);
    return 0;
}
