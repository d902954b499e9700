// proxy_protocol::decode on arbitrary bytes, in every mode. Checks: a header lies inside the
// input and within the spec's size; v1 and v2 answer only their own version and auto answers
// as the version the first byte names; as bytes arrive chunk by chunk the decoder says
// need_more until it says exactly what the whole input says.
#include "fuzz_check.hpp"
#include "gateway/net/proxy_protocol.hpp"

using namespace pggw;
namespace pp = proxy_protocol;

namespace {

bool same(const pp::Result& a, const pp::Result& b) {
    return a.status == b.status && a.consumed == b.consumed && a.version == b.version &&
           a.has_address == b.has_address && a.source == b.source &&
           a.source_port == b.source_port && a.error == b.error && a.detail == b.detail;
}

pp::Result check(std::span<const std::uint8_t> in, pp::Mode mode) {
    const pp::Result r = pp::decode(in, mode);
    switch (r.status) {
        case pp::Result::complete:
            FUZZ_CHECK(r.consumed > 0 && r.consumed <= in.size());
            FUZZ_CHECK(r.error == pp::Error::none);
            if (r.version == 1) {
                FUZZ_CHECK(mode != pp::Mode::v2 && r.consumed <= pp::kMaxV1Length);
                FUZZ_CHECK(in[r.consumed - 2] == '\r' && in[r.consumed - 1] == '\n');
            } else {
                FUZZ_CHECK(r.version == 2 && mode != pp::Mode::v1);
                FUZZ_CHECK(r.consumed >= 16 && r.consumed <= pp::kMaxV2Length);
            }
            if (r.has_address) FUZZ_CHECK(r.source.is_v4() || r.source.is_v6());
            break;
        case pp::Result::invalid:
            FUZZ_CHECK(r.error != pp::Error::none && !r.detail.empty());
            break;
        case pp::Result::need_more:
            FUZZ_CHECK(in.size() < pp::kMaxV2Length);
            break;
    }
    fuzz::Splits splits(in, std::uint64_t(mode));
    std::size_t have = 0;
    while (have < in.size()) {
        have = std::min(in.size(), have + splits.next(32));
        const pp::Result p = pp::decode(in.first(have), mode);
        if (p.status == pp::Result::need_more) continue;
        FUZZ_CHECK(same(p, r));
        break;
    }
    return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::uint8_t> in(data, size);
    const pp::Result v1 = check(in, pp::Mode::v1);
    const pp::Result v2 = check(in, pp::Mode::v2);
    const pp::Result any = check(in, pp::Mode::any);
    if (size > 0 && data[0] == 'P') FUZZ_CHECK(same(any, v1));
    if (size > 0 && data[0] == 0x0D) FUZZ_CHECK(same(any, v2));
    return 0;
}
