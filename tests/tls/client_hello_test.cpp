// The ClientHello pre-parser (tls_backends/client_hello.hpp): hellos built byte by byte, fed
// whole, at every split, truncated and corrupted; random bytes never crash it.
#include "tls_backends/client_hello.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "tls_backends/tls.hpp"

namespace pggw::tls::test {
namespace {

using Bytes = std::vector<std::uint8_t>;

void u8(Bytes& b, std::size_t v) {
    b.push_back(static_cast<std::uint8_t>(v));
}
void u16(Bytes& b, std::size_t v) {
    u8(b, v >> 8);
    u8(b, v & 0xff);
}
void u24(Bytes& b, std::size_t v) {
    u8(b, v >> 16);
    u16(b, v & 0xffff);
}
void append(Bytes& b, const Bytes& more) {
    b.insert(b.end(), more.begin(), more.end());
}

Bytes extension(std::uint16_t type, const Bytes& body) {
    Bytes e;
    u16(e, type);
    u16(e, body.size());
    append(e, body);
    return e;
}
Bytes alpn_ext(const std::string& protocol) {
    Bytes list;
    u8(list, protocol.size());
    list.insert(list.end(), protocol.begin(), protocol.end());
    Bytes body;
    u16(body, list.size());
    append(body, list);
    return extension(0x0010, body);
}
Bytes groups_ext(const std::vector<std::uint16_t>& groups) {
    Bytes body;
    u16(body, groups.size() * 2);
    for (auto g : groups) u16(body, g);
    return extension(0x000a, body);
}
Bytes versions_ext(const std::vector<std::uint16_t>& versions) {
    Bytes body;
    u8(body, versions.size() * 2);
    for (auto v : versions) u16(body, v);
    return extension(0x002b, body);
}

// A ClientHello body: legacy_version, random, session id, suites, compression, extensions.
// extensions == nullptr: no extensions block at all.
Bytes hello_body(const Bytes* extensions, std::uint16_t legacy_version = 0x0303) {
    Bytes b;
    u16(b, legacy_version);
    b.insert(b.end(), 32, 0xab);  // random
    u8(b, 32);                    // legacy_session_id
    b.insert(b.end(), 32, 0xcd);
    u16(b, 4);  // cipher_suites
    u16(b, 0x1301);
    u16(b, 0xc02b);
    u8(b, 1);  // legacy_compression_methods: null
    u8(b, 0);
    if (extensions) {
        u16(b, extensions->size());
        append(b, *extensions);
    }
    return b;
}

// Record header + handshake header around a body.
Bytes record(const Bytes& body, std::uint8_t handshake_type = 1) {
    Bytes r;
    u8(r, 22);  // handshake
    u16(r, 0x0301);
    u16(r, body.size() + 4);
    u8(r, handshake_type);
    u24(r, body.size());
    append(r, body);
    return r;
}

Bytes full_hello() {
    Bytes exts;
    append(exts, extension(0x0000, {0x00, 0x0c, 0x00, 0x00, 0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o',
                                    's', 't'}));  // server_name
    append(exts, groups_ext({0x001d, 0x0017}));
    append(exts, alpn_ext("postgresql"));
    append(exts, versions_ext({0x0304, 0x0303}));
    return record(hello_body(&exts));
}

HelloParse parse(const Bytes& in, bool eof, ClientHello& hello) {
    return parse_client_hello(std::span<const std::uint8_t>(in.data(), in.size()), eof, hello);
}
HelloParse parse(const Bytes& in, bool eof = false) {
    ClientHello hello;
    return parse(in, eof, hello);
}

TEST(ClientHello, ReadsAlpnGroupsVersions) {
    ClientHello hello;
    ASSERT_EQ(parse(full_hello(), false, hello), HelloParse::ok);
    EXPECT_TRUE(hello.alpn);
    EXPECT_EQ(hello.groups, (std::vector<std::uint16_t>{0x001d, 0x0017}));
    EXPECT_EQ(hello.versions, (std::vector<std::uint16_t>{0x0304, 0x0303}));
    EXPECT_EQ(hello.legacy_version, 0x0303);
}

TEST(ClientHello, NoExtensions) {
    ClientHello hello;
    ASSERT_EQ(parse(record(hello_body(nullptr, 0x0302)), false, hello), HelloParse::ok);
    EXPECT_FALSE(hello.alpn);
    EXPECT_TRUE(hello.groups.empty());
    EXPECT_TRUE(hello.versions.empty());
    EXPECT_EQ(hello.legacy_version, 0x0302);
}

TEST(ClientHello, EmptyExtensionsAndUnknownOnes) {
    Bytes none;
    ClientHello hello;
    ASSERT_EQ(parse(record(hello_body(&none)), false, hello), HelloParse::ok);
    EXPECT_FALSE(hello.alpn);
    Bytes unknown = extension(0xff01, {0x00});
    append(unknown, extension(0x0017, {}));
    ASSERT_EQ(parse(record(hello_body(&unknown)), false, hello), HelloParse::ok);
    EXPECT_FALSE(hello.alpn);
    EXPECT_TRUE(hello.groups.empty());
}

TEST(ClientHello, EveryPrefixNeedsMoreAndEofLeavesItToTheLibrary) {
    const Bytes hello = full_hello();
    EXPECT_EQ(parse(Bytes{}, false), HelloParse::need_more);
    EXPECT_EQ(parse(Bytes{}, true), HelloParse::unparsed);
    for (std::size_t n = 1; n < hello.size(); ++n) {
        SCOPED_TRACE(n);
        Bytes prefix(hello.begin(), hello.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_EQ(parse(prefix, false), HelloParse::need_more);
        EXPECT_EQ(parse(prefix, true), HelloParse::unparsed);
    }
    EXPECT_EQ(parse(hello, true), HelloParse::ok);
}

TEST(ClientHello, FedAtEverySplit) {
    // As the engine sees it: the first piece arrives, then the rest; the answer only turns ok
    // once the whole record is there, and is the same whatever the split.
    const Bytes hello = full_hello();
    for (std::size_t split = 1; split < hello.size(); ++split) {
        SCOPED_TRACE(split);
        Bytes buffered(hello.begin(), hello.begin() + static_cast<std::ptrdiff_t>(split));
        ASSERT_EQ(parse(buffered), HelloParse::need_more);
        buffered.insert(buffered.end(), hello.begin() + static_cast<std::ptrdiff_t>(split),
                        hello.end());
        ClientHello h;
        ASSERT_EQ(parse(buffered, false, h), HelloParse::ok);
        EXPECT_TRUE(h.alpn);
        EXPECT_EQ(h.groups.size(), 2u);
        EXPECT_EQ(h.versions.size(), 2u);
    }
}

TEST(ClientHello, BytesAfterTheRecordAreIgnored) {
    Bytes in = full_hello();
    append(in, {0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5});
    EXPECT_EQ(parse(in), HelloParse::ok);
}

TEST(ClientHello, NotAHandshakeRecord) {
    for (const Bytes& in : {Bytes{'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P'},
                            Bytes{0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f},  // SSLRequest
                            Bytes{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28}}) {     // an alert
        EXPECT_EQ(parse(in, false), HelloParse::unparsed);
        EXPECT_EQ(parse(in, true), HelloParse::unparsed);
    }
}

TEST(ClientHello, HeadersItDoesNotReadAreLeftToTheLibrary) {
    Bytes hello = full_hello();
    Bytes bad_version = hello;
    bad_version[1] = 2;  // record version 2.x
    EXPECT_EQ(parse(bad_version), HelloParse::unparsed);
    EXPECT_EQ(parse(record(hello_body(nullptr), 2)), HelloParse::unparsed);  // ServerHello

    // The handshake message longer than its record: fragmented over records.
    Bytes fragmented = hello;
    fragmented[8] = static_cast<std::uint8_t>(fragmented[8] + 1);
    EXPECT_EQ(parse(fragmented), HelloParse::unparsed);

    // A record longer than TLS allows.
    Bytes oversized{22, 3, 1, 0x48, 0x00, 1, 0x00, 0x47, 0xfc};
    EXPECT_EQ(parse(oversized), HelloParse::unparsed);
}

TEST(ClientHello, MalformedBodies) {
    // The body ends inside the random.
    Bytes short_body{0x03, 0x03};
    short_body.insert(short_body.end(), 10, 0);
    EXPECT_EQ(parse(record(short_body)), HelloParse::unparsed);
    // A session id longer than the body.
    Bytes body = hello_body(nullptr);
    body[34] = 200;
    EXPECT_EQ(parse(record(body)), HelloParse::unparsed);
    // An extension longer than the extensions block.
    Bytes exts = alpn_ext("postgresql");
    exts[3] = static_cast<std::uint8_t>(exts[3] + 5);
    EXPECT_EQ(parse(record(hello_body(&exts))), HelloParse::unparsed);
    // An extensions block longer than the body is read as far as the body goes.
    Bytes more = groups_ext({0x001d});
    Bytes long_block = hello_body(&more);
    long_block[long_block.size() - more.size() - 1] += 40;
    ClientHello hello;
    EXPECT_EQ(parse(record(long_block), false, hello), HelloParse::ok);
    EXPECT_EQ(hello.groups, std::vector<std::uint16_t>{0x001d});
}

TEST(ClientHello, RandomBytesNeverCrash) {
    std::mt19937 rng(7);
    const Bytes hello = full_hello();
    for (int i = 0; i < 20000; ++i) {
        Bytes in;
        if (i % 2 == 0) {
            // Pure garbage, sometimes behind a plausible record and handshake header.
            in.resize(rng() % 700);
            for (auto& b : in) b = static_cast<std::uint8_t>(rng());
            if (i % 4 == 0 && in.size() >= 9) {
                in[0] = 22;
                in[1] = 3;
                in[5] = 1;
            }
        } else {
            // A valid hello with a few bytes changed and perhaps cut short.
            in = hello;
            for (int k = 0, flips = 1 + static_cast<int>(rng() % 4); k < flips; ++k) {
                in[rng() % in.size()] = static_cast<std::uint8_t>(rng());
            }
            if (rng() % 3 == 0) in.resize(rng() % in.size());
        }
        ClientHello h;
        HelloParse r = parse(in, rng() % 2 == 0, h);
        EXPECT_TRUE(r == HelloParse::ok || r == HelloParse::need_more || r == HelloParse::unparsed);
    }
}

// In place: a server that requires ALPN (direct TLS) refuses a real ClientHello without it,
// whatever the split of its first record (the wolfSSL engine checks it with the pre-parser
// before wolfSSL reads it; BoringSSL in its select-certificate callback).
class ClientHelloSplit : public ::testing::TestWithParam<std::string> {};

TEST_P(ClientHelloSplit, RequiredAlpnMissingIsRefusedAtEverySplit) {
    std::string error;
    Backend* backend = load_backend(GetParam(), error);
    ASSERT_NE(backend, nullptr) << error;
    const auto fixtures = std::filesystem::path(__FILE__).parent_path() / "fixtures";
    Options so;
    so.role = Role::server;
    so.cert_file = (fixtures / "server.crt").string();
    so.key_file = (fixtures / "server.key").string();
    so.alpn = {"postgresql"};
    Options co;
    co.role = Role::client;
    auto sctx = backend->new_context(so, error);
    ASSERT_NE(sctx, nullptr) << error;
    auto cctx = backend->new_context(co, error);
    ASSERT_NE(cctx, nullptr) << error;
    auto client = cctx->new_engine({});
    ASSERT_EQ(client->handshake(), Result::want_input);
    const auto out = client->output();
    const Bytes hello(out.begin(), out.end());
    ASSERT_GT(hello.size(), 9u);

    EngineOptions direct;
    direct.require_alpn = true;
    for (std::size_t split = 1; split < hello.size(); ++split) {
        SCOPED_TRACE(split);
        auto server = sctx->new_engine(direct);
        server->feed(std::span<const std::uint8_t>(hello.data(), split));
        ASSERT_EQ(server->handshake(), Result::want_input);
        server->feed(std::span<const std::uint8_t>(hello.data() + split, hello.size() - split));
        ASSERT_EQ(server->handshake(), Result::error);
        EXPECT_EQ(server->failure(), Failure::no_alpn) << server->failure_reason();
        EXPECT_FALSE(server->output().empty());  // the alert
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, ClientHelloSplit, ::testing::ValuesIn(compiled_backends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace pggw::tls::test
