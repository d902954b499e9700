// decode_startup on arbitrary bytes, as the first packet and as a later one. Checks: what a
// complete packet reports lies inside the input; the buffer growing chunk by chunk (as reads
// arrive) answers need_more until it answers exactly what the whole input answers.
#include <cstring>

#include "fuzz_check.hpp"
#include "gateway/pg/protocol.hpp"
#include "gateway/pg/startup_decoder.hpp"

using namespace pggw;

namespace {

void check_complete(const DecodeResult& r, std::span<const std::uint8_t> in) {
    const StartupPacket& p = r.packet;
    if (p.kind == StartupKind::direct_tls) {
        FUZZ_CHECK(r.consumed == 0 && p.bytes.data() == in.data() && p.bytes.size() == in.size());
        FUZZ_CHECK(in[0] == pg::kTlsHandshakeRecord);
        return;
    }
    FUZZ_CHECK(r.consumed >= 8 && r.consumed <= in.size());
    FUZZ_CHECK(r.consumed - 4 <= pg::kMaxStartupPacketBody);
    FUZZ_CHECK(p.bytes.data() == in.data() && p.bytes.size() == r.consumed);
    FUZZ_CHECK(pg::read_u32(in.data()) == r.consumed);
    FUZZ_CHECK(pg::read_u32(in.data() + 4) == p.code);
    if (p.kind == StartupKind::startup_message) {
        FUZZ_CHECK((p.code >> 16) == 3);
        FUZZ_CHECK(p.user.size() < r.consumed && p.database.size() < r.consumed &&
                   p.application_name.size() < r.consumed);
        FUZZ_CHECK(!p.database.empty() || p.user.empty());
        FUZZ_CHECK(in[r.consumed - 1] == 0);
    } else if (p.kind == StartupKind::ssl_request || p.kind == StartupKind::gssenc_request) {
        FUZZ_CHECK(r.consumed == 8);
    } else {
        FUZZ_CHECK(p.kind == StartupKind::cancel_request);
        FUZZ_CHECK(r.consumed >= 16 && r.consumed <= 12 + pg::kMaxCancelKey);
    }
}

bool same(const DecodeResult& a, const DecodeResult& b) {
    if (a.status != b.status || a.unsupported_protocol != b.unsupported_protocol) return false;
    if (a.status == DecodeResult::invalid) return a.error == b.error;
    if (a.status != DecodeResult::complete) return true;
    const StartupPacket &p = a.packet, &q = b.packet;
    if (p.kind == StartupKind::direct_tls) return q.kind == StartupKind::direct_tls;
    return a.consumed == b.consumed && p.kind == q.kind && p.code == q.code && p.user == q.user &&
           p.database == q.database && p.application_name == q.application_name;
}

void run(std::span<const std::uint8_t> in, bool first) {
    const DecodeResult whole = decode_startup(in, first);
    if (whole.status == DecodeResult::complete) check_complete(whole, in);
    if (whole.status == DecodeResult::invalid) FUZZ_CHECK(!whole.error.empty());

    fuzz::Splits splits(in);
    std::size_t have = 0;
    while (have < in.size()) {
        have = std::min(in.size(), have + splits.next(48));
        const DecodeResult part = decode_startup(in.first(have), first);
        if (part.status == DecodeResult::need_more) continue;
        FUZZ_CHECK(same(part, whole));
        return;
    }
    FUZZ_CHECK(whole.status == DecodeResult::need_more || in.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::uint8_t> in(data, size);
    run(in, true);
    run(in, false);
    return 0;
}
