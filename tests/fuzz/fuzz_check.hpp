// What the fuzz targets share: an invariant check that aborts (libFuzzer saves the input),
// and a reader that splits one input into chunks the way a socket might deliver it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

// Unlike assert(), never compiled out.
#define FUZZ_CHECK(cond)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                     \
        }                                                                                     \
    } while (0)

namespace pggw::fuzz {

// Chunk sizes drawn from the input's own bytes (a hash of them seeds a xorshift), so that one
// input always splits the same way and the seed corpus can hold plain, real packets.
class Splits {
  public:
    explicit Splits(std::span<const std::uint8_t> in, std::uint64_t salt = 0) {
        std::uint64_t h = 1469598103934665603ull ^ salt;
        for (std::uint8_t b : in) h = (h ^ b) * 1099511628211ull;
        s_ = h | 1;
    }
    // 1..max_len
    std::size_t next(std::size_t max_len) {
        s_ ^= s_ << 13, s_ ^= s_ >> 7, s_ ^= s_ << 17;
        return std::size_t(s_ % max_len) + 1;
    }

  private:
    std::uint64_t s_;
};

// Calls on_chunk with consecutive pieces of in (1..max_len bytes each), covering all of it.
template <class F>
void for_each_chunk(std::span<const std::uint8_t> in, Splits& splits, std::size_t max_len,
                    F&& on_chunk) {
    std::size_t at = 0;
    while (at < in.size()) {
        std::size_t n = std::min(splits.next(max_len), in.size() - at);
        on_chunk(in.subspan(at, n));
        at += n;
    }
}

}  // namespace pggw::fuzz
