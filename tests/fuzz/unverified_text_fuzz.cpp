// server_negotiation::unverified_text: what pggw logs of a reply it cannot trust. Checks: the
// output is printable ASCII, bounded by max_len, every backslash starts a \xNN escape (so
// nothing in it can forge a line or an escape), and undone, it is a piece of the input.
#include <algorithm>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "gateway/pg/server_negotiation.hpp"

using namespace pggw;

namespace {

int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

void check(std::span<const std::uint8_t> in, std::size_t max_len) {
    const std::string out = server_negotiation::unverified_text(in, max_len);
    FUZZ_CHECK(out.size() <= max_len + 3 + 3);  // the last escape may start at max_len - 1
    std::string_view body = out;
    if (body.size() >= 3 && body.substr(body.size() - 3) == "..." && out.size() > max_len)
        body.remove_suffix(3);
    std::vector<std::uint8_t> raw;
    for (std::size_t i = 0; i < body.size(); ++i) {
        const char c = body[i];
        FUZZ_CHECK(c >= 0x20 && c < 0x7f);
        if (c != '\\') {
            raw.push_back(std::uint8_t(c));
            continue;
        }
        FUZZ_CHECK(i + 3 < body.size() && body[i + 1] == 'x');
        const int hi = hex(body[i + 2]), lo = hex(body[i + 3]);
        FUZZ_CHECK(hi >= 0 && lo >= 0);
        raw.push_back(std::uint8_t(hi << 4 | lo));
        i += 3;
    }
    FUZZ_CHECK(raw.empty() ||
               std::search(in.begin(), in.end(), raw.begin(), raw.end()) != in.end());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::uint8_t> in(data, size);
    check(in, 200);  // the default, as server_connection.cpp logs
    if (size > 0) check(in.subspan(1), data[0] % 64);
    return 0;
}
