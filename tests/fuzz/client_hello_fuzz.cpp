// tls::parse_client_hello on arbitrary bytes. Checks: at EOF it never asks for more; as the
// bytes arrive chunk by chunk it answers need_more until it answers exactly what the whole
// input answers; what it extracts fits in the record.
#include "fuzz_check.hpp"
#include "tls_backends/client_hello.hpp"

using namespace pggw;
using tls::ClientHello;
using tls::HelloParse;

namespace {

bool same(const ClientHello& a, const ClientHello& b) {
    return a.alpn == b.alpn && a.groups == b.groups && a.versions == b.versions &&
           a.legacy_version == b.legacy_version;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::uint8_t> in(data, size);
    ClientHello whole;
    const HelloParse r = tls::parse_client_hello(in, false, whole);
    if (r == HelloParse::ok) {
        FUZZ_CHECK(size >= 9);
        const std::size_t record = std::size_t{data[3]} << 8 | data[4];
        FUZZ_CHECK(5 + record <= size);
        FUZZ_CHECK(2 * (whole.groups.size() + whole.versions.size()) <= record);
    }
    ClientHello at_eof;
    const HelloParse e = tls::parse_client_hello(in, true, at_eof);
    FUZZ_CHECK(e != HelloParse::need_more);
    if (r != HelloParse::need_more) FUZZ_CHECK(e == r && same(at_eof, whole));

    fuzz::Splits splits(in);
    std::size_t have = 0;
    while (have < size) {
        have = std::min(size, have + splits.next(64));
        ClientHello part;
        const HelloParse p = tls::parse_client_hello(in.first(have), false, part);
        if (p == HelloParse::need_more) continue;
        FUZZ_CHECK(p == r && same(part, whole));
        break;
    }
    return 0;
}
