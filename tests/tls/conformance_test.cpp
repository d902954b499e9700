// TLS conformance: every compiled backend as server against every compiled backend as client,
// in one process, through the in-memory pump (pump.hpp). Certificates: fixtures/ (make.sh).
// A backend module that cannot be loaded fails its tests; a feature a library lacks is skipped
// visibly, by capability.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "tests/tls/pump.hpp"
#include "tests/tls/test_support.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::tls::test {
namespace {

namespace fs = std::filesystem;

// Validity of the fixtures (make.sh): 2125-01-01 and, for expired.crt, 2021-01-01.
constexpr std::int64_t kFixtureNotAfter = 4891363200;
constexpr std::int64_t kExpiredNotAfter = 1609459200;

Options client_options(Verify verify = Verify::chain_and_hostname, const std::string& ca = "ca") {
    Options o;
    o.role = Role::client;
    o.verify = verify;
    if (verify != Verify::none) o.ca_file = fixture(ca + ".crt");
    o.alpn = {"postgresql"};
    return o;
}

EngineOptions host(const std::string& name) {
    EngineOptions e;
    e.hostname = name;
    return e;
}

Backend* load(const std::string& name) {
    std::string error;
    Backend* b = load_backend(name, error);
    EXPECT_NE(b, nullptr) << "TLS backend \"" << name << "\" did not load: " << error;
    return b;
}

// Two contexts and one engine each; the contexts outlive the engines.
struct Conn {
    std::unique_ptr<Context> server_ctx, client_ctx;
    std::unique_ptr<Engine> server, client;
    bool ok() const { return server && client; }
};

Conn make_conn(Backend& sb, const Options& so, Backend& cb, const Options& co,
               const EngineOptions& seo = {}, const EngineOptions& ceo = host("localhost")) {
    Conn c;
    std::string error;
    c.server_ctx = sb.new_context(so, error);
    EXPECT_NE(c.server_ctx, nullptr) << sb.name() << " server context: " << error;
    error.clear();
    c.client_ctx = cb.new_context(co, error);
    EXPECT_NE(c.client_ctx, nullptr) << cb.name() << " client context: " << error;
    if (c.server_ctx) c.server = c.server_ctx->new_engine(seo);
    if (c.client_ctx) c.client = c.client_ctx->new_engine(ceo);
    return c;
}

std::string describe(const Engine& e) {
    return std::string(failure_name(e.failure())) + ": " + e.failure_reason();
}

std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    std::mt19937 rng(seed);
    for (auto& ch : s) ch = static_cast<char>(rng());
    return s;
}

// ---------------------------------------------------------------------------------------------
// Every (server backend, client backend) pair.

struct PairParam {
    std::string server, client;
};

void PrintTo(const PairParam& p, std::ostream* os) {
    *os << p.server << " server, " << p.client << " client";
}

std::vector<PairParam> all_pairs() {
    std::vector<PairParam> v;
    for (const auto& s : compiled_backends())
        for (const auto& c : compiled_backends()) v.push_back({s, c});
    return v;
}

class TlsPair : public ::testing::TestWithParam<PairParam> {
  protected:
    void SetUp() override {
        sb_ = load(GetParam().server);
        cb_ = load(GetParam().client);
        ASSERT_NE(sb_, nullptr);
        ASSERT_NE(cb_, nullptr);
    }
    // Skips, visibly, when either side lacks the capability.
    bool lacks(Capability cap, const char* what) {
        for (Backend* b : {sb_, cb_}) {
            if (!b->has(cap)) {
                skip_reason_ = std::string(b->name()) + " lacks " + what;
                return true;
            }
        }
        return false;
    }
    Conn conn(const Options& so, const Options& co, const EngineOptions& seo = {},
              const EngineOptions& ceo = host("localhost")) {
        return make_conn(*sb_, so, *cb_, co, seo, ceo);
    }
    // Handshake that must succeed.
    void handshake_ok(Conn& c, std::size_t piece = kAll) {
        ASSERT_TRUE(c.ok());
        auto r = run_handshake(*c.server, *c.client, piece);
        ASSERT_EQ(r.server, Result::ok) << "server: " << describe(*c.server);
        ASSERT_EQ(r.client, Result::ok) << "client: " << describe(*c.client);
    }

    Backend* sb_ = nullptr;
    Backend* cb_ = nullptr;
    std::string skip_reason_;
};

#define SKIP_UNLESS(cap, what) \
    if (lacks(cap, what)) GTEST_SKIP() << skip_reason_

TEST_P(TlsPair, HandshakeTls13) {
    SKIP_UNLESS(cap_tls1_3, "TLS 1.3");
    auto c = conn(server_options(), client_options());
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    EXPECT_EQ(c.server->info().version, "TLSv1.3");
    EXPECT_EQ(c.client->info().version, "TLSv1.3");
    EXPECT_EQ(c.server->info().cipher, c.client->info().cipher);
    EXPECT_EQ(c.client->info().cipher.rfind("TLS_AES_", 0) == 0 ||
                  c.client->info().cipher.rfind("TLS_CHACHA20_", 0) == 0,
              true)
        << c.client->info().cipher;
    EXPECT_EQ(c.server->failure(), Failure::none);
    EXPECT_TRUE(c.server->failure_reason().empty());
    EXPECT_TRUE(c.client->info().peer_certificate);
    EXPECT_EQ(c.client->info().peer_common_name, "localhost");
    EXPECT_EQ(c.client->info().peer_subject, "CN=localhost");
    EXPECT_FALSE(c.server->info().peer_certificate);
    // A second call after completion is harmless.
    EXPECT_EQ(c.server->handshake(), Result::ok);
    EXPECT_EQ(c.client->handshake(), Result::ok);
}

TEST_P(TlsPair, HandshakeTls12) {
    SKIP_UNLESS(cap_tls1_2, "TLS 1.2");
    auto co = client_options();
    co.max_version = Version::tls1_2;
    auto c = conn(server_options(), co);
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    EXPECT_EQ(c.server->info().version, "TLSv1.2");
    EXPECT_EQ(c.client->info().version, "TLSv1.2");
    EXPECT_EQ(c.server->info().cipher, c.client->info().cipher);
    EXPECT_EQ(c.client->info().cipher.rfind("TLS_ECDHE_ECDSA_WITH_", 0), 0u)
        << c.client->info().cipher;
    EXPECT_EQ(c.client->info().peer_common_name, "localhost");
}

TEST_P(TlsPair, ServerMaxTls12) {
    SKIP_UNLESS(cap_tls1_2, "TLS 1.2");
    auto so = server_options();
    so.max_version = Version::tls1_2;
    auto c = conn(so, client_options());
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    EXPECT_EQ(c.client->info().version, "TLSv1.2");
}

TEST_P(TlsPair, DataBothWays) {
    for (Version v : {Version::tls1_2, Version::tls1_3}) {
        SCOPED_TRACE(v == Version::tls1_2 ? "TLS 1.2" : "TLS 1.3");
        auto co = client_options();
        co.max_version = v;
        co.min_version = v;
        auto c = conn(server_options(), co);
        ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
        for (int i = 0; i < 3; ++i) {
            std::string q = "SELECT " + std::to_string(i);
            auto got = send(*c.client, *c.server, q);
            EXPECT_EQ(got.result, Result::want_input) << describe(*c.server);
            EXPECT_EQ(got.data, q);
            std::string a = "row " + std::to_string(i) + std::string(100 * i, 'x');
            got = send(*c.server, *c.client, a);
            EXPECT_EQ(got.result, Result::want_input) << describe(*c.client);
            EXPECT_EQ(got.data, a);
        }
        // An empty write is a no-op.
        EXPECT_EQ(c.client->write({}), Result::ok);
        EXPECT_TRUE(c.client->output().empty());
    }
}

// The driver frees the engines' empty buffers whenever it waits (Stream::wait_readable): an
// engine must carry on after it, and keep a partial record and unsent output through it.
TEST_P(TlsPair, ReleaseBuffersWhileIdle) {
    auto c = conn(server_options(), client_options());
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    for (int i = 0; i < 3; ++i) {
        c.server->release_buffers();
        c.client->release_buffers();
        std::string q = "SELECT " + std::to_string(i) + std::string(5000 * i, 'q');
        ASSERT_EQ(c.client->write(bytes(q)), Result::ok) << describe(*c.client);
        c.client->release_buffers();  // unsent output: kept
        std::size_t half = c.client->output().size() / 2;
        EXPECT_EQ(transfer(*c.client, *c.server, half), half);
        c.server->release_buffers();  // half a record not pulled yet: kept
        std::vector<std::uint8_t> buf(64);
        std::size_t n = 0;
        EXPECT_EQ(c.server->read(buf, n), Result::want_input) << describe(*c.server);
        c.server->release_buffers();  // pulled into the library's own buffer
        c.client->release_buffers();
        auto got = deliver(*c.client, *c.server);
        EXPECT_EQ(got.result, Result::want_input) << describe(*c.server);
        EXPECT_EQ(got.data, q);
        c.server->release_buffers();
        got = send(*c.server, *c.client, "row " + std::to_string(i));
        EXPECT_EQ(got.result, Result::want_input) << describe(*c.client);
        EXPECT_EQ(got.data, "row " + std::to_string(i));
    }
}

TEST_P(TlsPair, OneBytePieces) {
    for (Version v : {Version::tls1_2, Version::tls1_3}) {
        SCOPED_TRACE(v == Version::tls1_2 ? "TLS 1.2" : "TLS 1.3");
        auto co = client_options();
        co.max_version = v;
        co.min_version = v;
        auto c = conn(server_options(), co);
        ASSERT_NO_FATAL_FAILURE(handshake_ok(c, 1));
        std::string msg = pattern(3000, 1);
        auto got = send(*c.client, *c.server, msg, 1);
        EXPECT_EQ(got.result, Result::want_input) << describe(*c.server);
        EXPECT_EQ(got.data, msg);
        got = send(*c.server, *c.client, msg, 1);
        EXPECT_EQ(got.result, Result::want_input) << describe(*c.client);
        EXPECT_EQ(got.data, msg);
    }
}

TEST_P(TlsPair, Chunks16KiB) {
    auto c = conn(server_options(), client_options());
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    for (unsigned i = 0; i < 16; ++i) {
        std::string chunk = pattern(16 * 1024, i);
        auto got = send(*c.client, *c.server, chunk);
        ASSERT_EQ(got.result, Result::want_input) << describe(*c.server);
        ASSERT_EQ(got.data, chunk);
        got = send(*c.server, *c.client, chunk, 1000);
        ASSERT_EQ(got.result, Result::want_input) << describe(*c.client);
        ASSERT_EQ(got.data, chunk);
    }
}

TEST_P(TlsPair, LargeWrite1MiB) {
    auto c = conn(server_options(), client_options());
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    std::string big = pattern(1024 * 1024, 7);
    ASSERT_EQ(c.server->write(bytes(big)), Result::ok) << describe(*c.server);
    EXPECT_GT(c.server->output().size(), big.size());
    auto got = deliver(*c.server, *c.client);
    EXPECT_EQ(got.result, Result::want_input) << describe(*c.client);
    EXPECT_TRUE(got.data == big) << "received " << got.data.size() << " bytes";
    EXPECT_TRUE(c.server->output().empty());
    got = send(*c.client, *c.server, big, 4096);
    EXPECT_EQ(got.result, Result::want_input) << describe(*c.server);
    EXPECT_TRUE(got.data == big) << "received " << got.data.size() << " bytes";
}

TEST_P(TlsPair, PartiallySentOutputThenMoreWrites) {
    // The socket took only part of output(); more records are queued behind the rest.
    auto c = conn(server_options(), client_options());
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    std::string a = pattern(100 * 1024, 11), b = pattern(70 * 1024, 12);
    ASSERT_EQ(c.server->write(bytes(a)), Result::ok);
    std::string got;
    std::vector<std::uint8_t> buf(20000);
    auto drain = [&](std::size_t limit) {
        for (std::size_t moved = 0; moved < limit;) {
            std::size_t n =
                transfer(*c.server, *c.client, std::min<std::size_t>(limit - moved, 5000));
            if (n == 0) break;
            moved += n;
            std::size_t r = 0;
            while (c.client->read(buf, r) == Result::ok) {
                got.append(reinterpret_cast<const char*>(buf.data()), r);
            }
        }
    };
    drain(60 * 1024);
    ASSERT_EQ(c.server->write(bytes(b)), Result::ok);
    drain(kAll);
    EXPECT_TRUE(got == a + b) << "received " << got.size() << " bytes";
    EXPECT_TRUE(c.server->output().empty());
}

TEST_P(TlsPair, CloseNotify) {
    auto c = conn(server_options(), client_options());
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    ASSERT_EQ(send(*c.client, *c.server, "bye").data, "bye");
    ASSERT_EQ(c.client->shutdown(), Result::ok) << describe(*c.client);
    EXPECT_FALSE(c.client->output().empty());
    auto got = deliver(*c.client, *c.server);
    EXPECT_EQ(got.result, Result::closed) << describe(*c.server);
    EXPECT_EQ(c.server->failure(), Failure::none);
    // The server answers with its own close_notify.
    ASSERT_EQ(c.server->shutdown(), Result::ok) << describe(*c.server);
    got = deliver(*c.server, *c.client);
    EXPECT_EQ(got.result, Result::closed) << describe(*c.client);
    // EOF after close_notify is not a truncation.
    c.server->input_eof();
    std::uint8_t buf[16];
    std::size_t n = 0;
    EXPECT_EQ(c.server->read(buf, n), Result::closed);
    EXPECT_EQ(c.server->failure(), Failure::none);
}

TEST_P(TlsPair, DataThenCloseNotifyInOneFlight) {
    auto c = conn(server_options(), client_options());
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    ASSERT_EQ(c.client->write(bytes("last words")), Result::ok);
    ASSERT_EQ(c.client->shutdown(), Result::ok);
    auto got = deliver(*c.client, *c.server);
    EXPECT_EQ(got.data, "last words");
    EXPECT_EQ(got.result, Result::closed) << describe(*c.server);
}

TEST_P(TlsPair, TruncationIsEof) {
    auto c = conn(server_options(), client_options());
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    ASSERT_EQ(send(*c.client, *c.server, "hello").data, "hello");
    ASSERT_EQ(send(*c.server, *c.client, "hi").data, "hi");
    // The client vanishes: the server's socket reads EOF with no close_notify.
    c.server->input_eof();
    std::uint8_t buf[64];
    std::size_t n = 0;
    EXPECT_EQ(c.server->read(buf, n), Result::error);
    EXPECT_EQ(c.server->failure(), Failure::eof) << describe(*c.server);
    EXPECT_FALSE(c.server->failure_reason().empty());
    EXPECT_EQ(c.server->read(buf, n), Result::error);  // stays dead
}

TEST_P(TlsPair, TruncationMidRecordIsEof) {
    auto c = conn(server_options(), client_options());
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    ASSERT_EQ(send(*c.server, *c.client, "hi").data, "hi");
    ASSERT_EQ(c.client->write(bytes(std::string(1000, 'q'))), Result::ok);
    std::size_t half = c.client->output().size() / 2;
    transfer(*c.client, *c.server, half);
    std::uint8_t buf[2000];
    std::size_t n = 0;
    EXPECT_EQ(c.server->read(buf, n), Result::want_input);
    c.server->input_eof();
    EXPECT_EQ(c.server->read(buf, n), Result::error);
    EXPECT_EQ(c.server->failure(), Failure::eof) << describe(*c.server);
}

TEST_P(TlsPair, EofDuringHandshake) {
    auto c = conn(server_options(), client_options());
    ASSERT_TRUE(c.ok());
    ASSERT_EQ(c.client->handshake(), Result::want_input);
    transfer(*c.client, *c.server, 20);  // part of the ClientHello
    EXPECT_EQ(c.server->handshake(), Result::want_input);
    c.server->input_eof();
    EXPECT_EQ(c.server->handshake(), Result::error);
    EXPECT_EQ(c.server->failure(), Failure::eof) << describe(*c.server);
}

TEST_P(TlsPair, UntrustedCa) {
    auto c = conn(server_options("rogue-server"), client_options(Verify::chain));
    ASSERT_TRUE(c.ok());
    auto r = run_handshake(*c.server, *c.client);
    EXPECT_EQ(r.client, Result::error);
    EXPECT_EQ(c.client->failure(), Failure::unknown_ca) << describe(*c.client);
    EXPECT_NE(c.client->failure_reason().find("certificate verify failed"), std::string::npos)
        << c.client->failure_reason();
    EXPECT_EQ(r.server, Result::error);
    EXPECT_EQ(c.server->failure(), Failure::unknown_ca) << describe(*c.server);
}

TEST_P(TlsPair, UntrustedCaAcceptedWithoutVerification) {
    // sslmode=require: encryption without any certificate check.
    auto c = conn(server_options("rogue-server"), client_options(Verify::none));
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    EXPECT_EQ(c.client->info().peer_common_name, "localhost");
}

TEST_P(TlsPair, UnencryptedAlertDuringTls13Handshake) {
    // OpenSSL clients (libpq, psql) reject the server's certificate in TLS 1.3 with an alert
    // sent before they switch to handshake keys: a plaintext record the server cannot decrypt.
    auto c = conn(server_options(), client_options());
    ASSERT_TRUE(c.ok());
    ASSERT_EQ(c.client->handshake(), Result::want_input);
    transfer(*c.client, *c.server);
    ASSERT_EQ(c.server->handshake(), Result::want_input) << describe(*c.server);
    ASSERT_FALSE(c.server->output().empty());
    c.server->consume_output(c.server->output().size());
    const std::uint8_t alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x30};  // fatal unknown_ca
    c.server->feed(alert);
    EXPECT_EQ(c.server->handshake(), Result::error);
    EXPECT_EQ(c.server->failure(), Failure::unknown_ca) << describe(*c.server);
}

TEST_P(TlsPair, ExpiredCertificate) {
    auto c = conn(server_options("expired"), client_options(Verify::chain));
    ASSERT_TRUE(c.ok());
    auto r = run_handshake(*c.server, *c.client);
    EXPECT_EQ(r.client, Result::error);
    EXPECT_EQ(c.client->failure(), Failure::certificate_expired) << describe(*c.client);
    EXPECT_EQ(r.server, Result::error);
    EXPECT_EQ(c.server->failure(), Failure::certificate_expired) << describe(*c.server);
}

TEST_P(TlsPair, WrongHostname) {
    auto c = conn(server_options(), client_options(), {}, host("db.example.com"));
    ASSERT_TRUE(c.ok());
    auto r = run_handshake(*c.server, *c.client);
    EXPECT_EQ(r.client, Result::error);
    EXPECT_EQ(c.client->failure(), Failure::hostname_mismatch) << describe(*c.client);
    EXPECT_NE(c.client->failure_reason().find("db.example.com"), std::string::npos)
        << c.client->failure_reason();
    EXPECT_EQ(r.server, Result::error);
    EXPECT_EQ(c.server->failure(), Failure::bad_certificate) << describe(*c.server);
}

TEST_P(TlsPair, VerifyFullWithoutHostnameFails) {
    // verify-full with no name to check must never degrade to verify-ca.
    auto c = conn(server_options(), client_options(), {}, EngineOptions{});
    ASSERT_TRUE(c.ok());
    auto r = run_handshake(*c.server, *c.client);
    EXPECT_EQ(r.client, Result::error);
    EXPECT_NE(c.client->failure(), Failure::none);
    EXPECT_FALSE(c.client->failure_reason().empty());
}

TEST_P(TlsPair, VerifyCaIgnoresHostname) {
    auto c = conn(server_options(), client_options(Verify::chain), {}, host("db.example.com"));
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
}

TEST_P(TlsPair, HostnameIpLiterals) {
    for (const char* ip : {"127.0.0.1", "::1"}) {
        SCOPED_TRACE(ip);
        auto c = conn(server_options(), client_options(), {}, host(ip));
        ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
        EXPECT_EQ(c.server->info().sni, "");  // no SNI for IP literals (RFC 6066)
    }
    auto c = conn(server_options(), client_options(), {}, host("127.0.0.2"));
    ASSERT_TRUE(c.ok());
    auto r = run_handshake(*c.server, *c.client);
    EXPECT_EQ(r.client, Result::error);
    EXPECT_EQ(c.client->failure(), Failure::hostname_mismatch) << describe(*c.client);
}

TEST_P(TlsPair, CommonNameFallback) {
    // No subjectAltName: the CN is checked, as libpq does.
    auto c = conn(server_options("server-cn"), client_options());
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    auto bad = conn(server_options("server-cn"), client_options(), {}, host("other.example"));
    ASSERT_TRUE(bad.ok());
    run_handshake(*bad.server, *bad.client);
    EXPECT_EQ(bad.client->failure(), Failure::hostname_mismatch) << describe(*bad.client);
}

TEST_P(TlsPair, CommonNameFallbackForIpHost) {
    // libpq: no dNSName/iPAddress subjectAltName at all, so the CN is compared as text.
    auto c = conn(server_options("server-cn-ip"), client_options(), {}, host("127.0.0.1"));
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    auto bad = conn(server_options("server-cn-ip"), client_options(), {}, host("127.0.0.2"));
    ASSERT_TRUE(bad.ok());
    run_handshake(*bad.server, *bad.client);
    EXPECT_EQ(bad.client->failure(), Failure::hostname_mismatch) << describe(*bad.client);
    // A certificate with iPAddress SANs is never matched through its CN.
    auto san = conn(server_options("server"), client_options(), {}, host("127.0.0.2"));
    ASSERT_TRUE(san.ok());
    run_handshake(*san.server, *san.client);
    EXPECT_EQ(san.client->failure(), Failure::hostname_mismatch) << describe(*san.client);
}

TEST_P(TlsPair, CertificateChain) {
    // Leaf signed by an intermediate that the server sends; the client trusts only the root.
    auto c = conn(server_options("server-chain"), client_options());
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    EXPECT_EQ(c.client->info().peer_common_name, "localhost");
}

TEST_P(TlsPair, RsaCertificate) {
    for (Version v : {Version::tls1_2, Version::tls1_3}) {
        SCOPED_TRACE(v == Version::tls1_2 ? "TLS 1.2" : "TLS 1.3");
        auto co = client_options();
        co.max_version = v;
        auto c = conn(server_options("server-rsa"), co);
        ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
        if (v == Version::tls1_2) {
            EXPECT_EQ(c.client->info().cipher.rfind("TLS_ECDHE_RSA_WITH_", 0), 0u)
                << c.client->info().cipher;
        }
        auto got = send(*c.client, *c.server, "rsa");
        EXPECT_EQ(got.data, "rsa");
    }
}

TEST_P(TlsPair, CipherList) {
    SKIP_UNLESS(cap_cipher_list, "cipher lists");
    auto so = server_options();
    so.ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384";
    auto co = client_options();
    co.max_version = Version::tls1_2;
    auto c = conn(so, co);
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    EXPECT_EQ(c.client->info().cipher, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
    EXPECT_EQ(c.server->info().cipher, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
}

// With no cipher list given, TLS 1.2 is pinned to ECDHE + AEAD on either side: a peer that
// offers (client) or accepts (server) only a static-RSA, CBC or NULL suite gets no handshake.
// An RSA certificate, so that every one of these suites could otherwise be chosen.
TEST_P(TlsPair, DefaultTls12CiphersAreEcdheAead) {
    SKIP_UNLESS(cap_cipher_list, "cipher lists");
    static constexpr const char* kWeak[] = {"AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA",
                                            "ECDHE-RSA-AES128-SHA256", "NULL-SHA256", "NULL-SHA"};
    int ran = 0;
    for (bool weak_server : {false, true}) {
        for (const char* suite : kWeak) {
            SCOPED_TRACE(std::string(weak_server ? "server" : "client") + " offers only " + suite);
            auto so = server_options("server-rsa");
            auto co = client_options();
            so.max_version = co.max_version = Version::tls1_2;
            (weak_server ? so : co).ciphers = suite;
            std::string error;
            auto sctx = sb_->new_context(so, error);
            auto cctx = cb_->new_context(co, error);
            if (!sctx || !cctx) continue;  // that library does not know the suite at all
            auto s = sctx->new_engine({});
            auto c = cctx->new_engine(host("localhost"));
            auto r = run_handshake(*s, *c);
            ++ran;
            EXPECT_FALSE(r.ok()) << "negotiated " << c->info().cipher;
            EXPECT_NE(r.server, Result::ok) << s->info().cipher;
            EXPECT_NE(r.client, Result::ok) << c->info().cipher;
        }
    }
    EXPECT_GE(ran, 4) << "too few weak suites known to both libraries to test anything";
    // The default list itself works, both ways, with both kinds of certificate.
    for (const char* cert : {"server", "server-rsa"}) {
        SCOPED_TRACE(cert);
        auto so = server_options(cert);
        auto co = client_options();
        so.max_version = co.max_version = Version::tls1_2;
        auto c = conn(so, co);
        ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
        const std::string& cipher = c.client->info().cipher;
        EXPECT_EQ(cipher.rfind("TLS_ECDHE_", 0), 0u) << cipher;
        EXPECT_TRUE(cipher.find("_GCM_") != std::string::npos ||
                    cipher.find("CHACHA20_POLY1305") != std::string::npos)
            << cipher;
    }
}

TEST_P(TlsPair, Groups) {
    for (const char* g : {"P-256", "X25519"}) {
        SCOPED_TRACE(g);
        auto so = server_options();
        so.groups = g;
        auto c = conn(so, client_options());
        ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    }
    auto so = server_options();
    so.groups = "P-256";
    auto co = client_options();
    co.groups = "X25519";
    auto c = conn(so, co);
    ASSERT_TRUE(c.ok());
    auto r = run_handshake(*c.server, *c.client);
    EXPECT_EQ(r.server, Result::error);
    EXPECT_EQ(c.server->failure(), Failure::handshake_failure) << describe(*c.server);
    EXPECT_EQ(r.client, Result::error);
    EXPECT_EQ(c.client->failure(), Failure::handshake_failure) << describe(*c.client);
}

TEST_P(TlsPair, AlpnAgreed) {
    SKIP_UNLESS(cap_alpn, "ALPN");
    auto so = server_options();
    so.alpn = {"postgresql"};
    auto co = client_options();
    co.alpn = {"http/1.1", "postgresql"};
    auto c = conn(so, co);
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    EXPECT_EQ(c.server->info().alpn, "postgresql");
    EXPECT_EQ(c.client->info().alpn, "postgresql");
}

TEST_P(TlsPair, AlpnNotOfferedIsAccepted) {
    SKIP_UNLESS(cap_alpn, "ALPN");
    auto co = client_options();
    co.alpn.clear();
    auto c = conn(server_options(), co);
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    EXPECT_EQ(c.server->info().alpn, "");
    EXPECT_EQ(c.client->info().alpn, "");
}

TEST_P(TlsPair, AlpnMismatch) {
    SKIP_UNLESS(cap_alpn, "ALPN");
    auto co = client_options();
    co.alpn = {"http/1.1"};
    auto c = conn(server_options(), co);
    ASSERT_TRUE(c.ok());
    auto r = run_handshake(*c.server, *c.client);
    EXPECT_EQ(r.server, Result::error);
    EXPECT_EQ(c.server->failure(), Failure::no_alpn) << describe(*c.server);
    EXPECT_EQ(r.client, Result::error);
    EXPECT_EQ(c.client->failure(), Failure::no_alpn) << describe(*c.client);
}

TEST_P(TlsPair, RequireAlpnWithoutAlpn) {
    SKIP_UNLESS(cap_alpn, "ALPN");
    auto co = client_options();
    co.alpn.clear();
    EngineOptions direct;
    direct.require_alpn = true;
    auto c = conn(server_options(), co, direct);
    ASSERT_TRUE(c.ok());
    auto r = run_handshake(*c.server, *c.client);
    EXPECT_EQ(r.server, Result::error);
    EXPECT_EQ(c.server->failure(), Failure::no_alpn) << describe(*c.server);
    EXPECT_EQ(r.client, Result::error) << describe(*c.client);
}

TEST_P(TlsPair, RequireAlpnWithAlpn) {
    SKIP_UNLESS(cap_alpn, "ALPN");
    EngineOptions direct;
    direct.require_alpn = true;
    auto c = conn(server_options(), client_options(), direct);
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    EXPECT_EQ(c.server->info().alpn, "postgresql");
}

TEST_P(TlsPair, VersionFloor) {
    SKIP_UNLESS(cap_tls1_3, "TLS 1.3");
    auto so = server_options();
    so.min_version = Version::tls1_3;
    auto co = client_options();
    co.max_version = Version::tls1_2;
    auto c = conn(so, co);
    ASSERT_TRUE(c.ok());
    auto r = run_handshake(*c.server, *c.client);
    EXPECT_EQ(r.server, Result::error);
    EXPECT_EQ(c.server->failure(), Failure::protocol_version) << describe(*c.server);
    EXPECT_EQ(r.client, Result::error);
    EXPECT_EQ(c.client->failure(), Failure::protocol_version) << describe(*c.client);
}

TEST_P(TlsPair, VersionCeiling) {
    SKIP_UNLESS(cap_tls1_3, "TLS 1.3");
    auto so = server_options();
    so.max_version = Version::tls1_2;
    auto co = client_options();
    co.min_version = Version::tls1_3;
    auto c = conn(so, co);
    ASSERT_TRUE(c.ok());
    auto r = run_handshake(*c.server, *c.client);
    EXPECT_EQ(r.client, Result::error);
    EXPECT_EQ(c.client->failure(), Failure::protocol_version) << describe(*c.client);
    EXPECT_EQ(r.server, Result::error) << describe(*c.server);
}

TEST_P(TlsPair, ClientCertificateRequiredAndMissing) {
    SKIP_UNLESS(cap_client_certificates, "client certificates");
    for (Version v : {Version::tls1_2, Version::tls1_3}) {
        SCOPED_TRACE(v == Version::tls1_2 ? "TLS 1.2" : "TLS 1.3");
        auto so = server_options();
        so.verify = Verify::chain;
        so.ca_file = fixture("ca.crt");
        auto co = client_options();
        co.max_version = v;
        auto c = conn(so, co);
        ASSERT_TRUE(c.ok());
        auto r = run_handshake(*c.server, *c.client);
        EXPECT_EQ(r.server, Result::error);
        EXPECT_EQ(c.server->failure(), Failure::bad_certificate) << describe(*c.server);
        // In TLS 1.3 the client has finished before the server looks at its certificate: it
        // learns of the refusal from the alert on its first read.
        if (r.client == Result::ok) {
            auto got = deliver(*c.server, *c.client);
            if (got.result == Result::want_input) {
                c.client->input_eof();
                got = deliver(*c.server, *c.client);
            }
            EXPECT_EQ(got.result, Result::error);
        } else {
            EXPECT_EQ(r.client, Result::error);
        }
        if (v == Version::tls1_2) {
            // RFC 5246 7.4.6: a TLS 1.2 server answers a missing certificate with
            // handshake_failure (BoringSSL does) or bad_certificate.
            EXPECT_TRUE(c.client->failure() == Failure::bad_certificate ||
                        c.client->failure() == Failure::handshake_failure)
                << describe(*c.client);
        } else {
            // TLS 1.3: certificate_required.
            EXPECT_EQ(c.client->failure(), Failure::bad_certificate) << describe(*c.client);
        }
    }
}

TEST_P(TlsPair, ClientCertificateRequiredAndPresent) {
    SKIP_UNLESS(cap_client_certificates, "client certificates");
    for (Version v : {Version::tls1_2, Version::tls1_3}) {
        SCOPED_TRACE(v == Version::tls1_2 ? "TLS 1.2" : "TLS 1.3");
        auto so = server_options();
        so.verify = Verify::chain;
        so.ca_file = fixture("ca.crt");
        auto co = client_options();
        co.max_version = v;
        co.cert_file = fixture("client.crt");
        co.key_file = fixture("client.key");
        auto c = conn(so, co);
        ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
        EXPECT_TRUE(c.server->info().peer_certificate);
        EXPECT_EQ(c.server->info().peer_common_name, "pggw-test-client");
        EXPECT_EQ(c.server->info().peer_subject, "CN=pggw-test-client");
        auto got = send(*c.client, *c.server, "authenticated");
        EXPECT_EQ(got.data, "authenticated") << describe(*c.server);
    }
}

TEST_P(TlsPair, ClientCertificateFromUntrustedCa) {
    SKIP_UNLESS(cap_client_certificates, "client certificates");
    auto so = server_options();
    so.verify = Verify::chain;
    so.ca_file = fixture("ca.crt");
    auto co = client_options();
    co.cert_file = fixture("rogue-client.crt");
    co.key_file = fixture("rogue-client.key");
    auto c = conn(so, co);
    ASSERT_TRUE(c.ok());
    auto r = run_handshake(*c.server, *c.client);
    EXPECT_EQ(r.server, Result::error);
    EXPECT_EQ(c.server->failure(), Failure::unknown_ca) << describe(*c.server);
}

TEST_P(TlsPair, SniCaptured) {
    auto c = conn(server_options(), client_options(Verify::chain), {}, host("db.example.com"));
    ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
    EXPECT_EQ(c.server->info().sni, "db.example.com");
    EXPECT_EQ(c.client->info().sni, "");
    auto none = conn(server_options(), client_options(Verify::none), {}, EngineOptions{});
    ASSERT_NO_FATAL_FAILURE(handshake_ok(none));
    EXPECT_EQ(none.server->info().sni, "");
}

// The server leg never issues session tickets (PostgreSQL sets SSL_OP_NO_TICKET): a resumed
// session would skip the certificate checks, expiry among them. Observed on the wire: TLS 1.2
// sends NewSessionTicket (handshake type 4) in clear before the server's ChangeCipherSpec;
// TLS 1.3 sends it encrypted after the handshake, so any byte the server emits once the client
// has finished its handshake (and before anyone writes data) is a ticket.
struct ServerWire {
    std::vector<std::uint8_t> bytes;  // everything the server sent
    std::size_t after_client_done = 0;
    // Handshake message types sent in clear before the server's ChangeCipherSpec (TLS 1.2).
    std::vector<int> clear_handshake_types() const {
        std::vector<int> types;
        std::vector<std::uint8_t> hs;  // handshake bodies, concatenated
        for (std::size_t pos = 0; pos + 5 <= bytes.size();) {
            std::uint8_t type = bytes[pos];
            std::size_t len = (std::size_t{bytes[pos + 3]} << 8) | bytes[pos + 4];
            if (type == 20 || pos + 5 + len > bytes.size()) break;  // ChangeCipherSpec
            if (type == 22)
                hs.insert(hs.end(), bytes.begin() + pos + 5, bytes.begin() + pos + 5 + len);
            pos += 5 + len;
        }
        for (std::size_t pos = 0; pos + 4 <= hs.size();) {
            types.push_back(hs[pos]);
            pos += 4 + ((std::size_t{hs[pos + 1]} << 16) | (std::size_t{hs[pos + 2]} << 8) |
                        hs[pos + 3]);
        }
        return types;
    }
};

ServerWire handshake_watching_server(Engine& server, Engine& client) {
    ServerWire w;
    Result rs = Result::want_input, rc = Result::want_input;
    for (int step = 0; step < 1000; ++step) {
        if (rc == Result::want_input) rc = client.handshake();
        if (rs == Result::want_input) rs = server.handshake();
        bool moved = transfer(client, server) > 0;
        auto out = server.output();
        if (!out.empty()) {
            w.bytes.insert(w.bytes.end(), out.begin(), out.end());
            if (rc == Result::ok) w.after_client_done += out.size();
            moved |= transfer(server, client) > 0;
        }
        if (!moved && rs != Result::want_input && rc != Result::want_input) break;
    }
    EXPECT_EQ(rs, Result::ok) << describe(server);
    EXPECT_EQ(rc, Result::ok) << describe(client);
    return w;
}

TEST_P(TlsPair, ServerSendsNoSessionTicket) {
    for (Version v : {Version::tls1_2, Version::tls1_3}) {
        SCOPED_TRACE(v == Version::tls1_2 ? "TLS 1.2" : "TLS 1.3");
        auto co = client_options();
        co.min_version = co.max_version = v;
        auto c = conn(server_options(), co);
        ASSERT_TRUE(c.ok());
        ServerWire w = handshake_watching_server(*c.server, *c.client);
        if (v == Version::tls1_2) {
            auto types = w.clear_handshake_types();
            ASSERT_FALSE(types.empty());
            EXPECT_EQ(types.front(), 2) << "the parse must see the ServerHello";
            EXPECT_EQ(std::count(types.begin(), types.end(), 4), 0) << "NewSessionTicket sent";
        } else {
            EXPECT_EQ(w.after_client_done, 0u) << "the server sent a post-handshake message";
        }
        // The connection still works.
        EXPECT_EQ(send(*c.client, *c.server, "after").data, "after");
        EXPECT_EQ(send(*c.server, *c.client, "back").data, "back");
    }
}

TEST_P(TlsPair, ManyEnginesFromOneContext) {
    std::string error;
    auto sctx = sb_->new_context(server_options(), error);
    ASSERT_NE(sctx, nullptr) << error;
    auto cctx = cb_->new_context(client_options(), error);
    ASSERT_NE(cctx, nullptr) << error;
    for (int i = 0; i < 20; ++i) {
        auto s = sctx->new_engine({});
        auto c = cctx->new_engine(host("localhost"));
        auto r = run_handshake(*s, *c);
        ASSERT_TRUE(r.ok()) << describe(*s) << " / " << describe(*c);
        ASSERT_EQ(send(*c, *s, "x" + std::to_string(i)).data, "x" + std::to_string(i));
    }
}

TEST_P(TlsPair, GeneratedCertificates) {
    if (!sb_->has(cap_generate_certificates)) {
        GTEST_SKIP() << sb_->name() << " lacks certificate generation";
    }
    for (const std::string type : {"ecdsa-p256", "rsa-2048"}) {
        SCOPED_TRACE(type);
        char tmpl[] = "/tmp/pggw-tls-gen-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        fs::path dir = fs::path(tmpl) / "certs";  // created by generate_certificates
        CertificateRequest req;
        req.dir = dir.string();
        req.hostnames = {"localhost", "127.0.0.1", "pggw.example.com"};
        req.key_type = type;
        req.days = 30;
        std::string error;
        ASSERT_TRUE(sb_->generate_certificates(req, error)) << error;
        for (const char* f : {"ca.crt", "ca.key", "server.crt", "server.key"}) {
            EXPECT_TRUE(fs::exists(dir / f)) << f;
        }
        for (const char* key : {"ca.key", "server.key"}) {
            struct stat st {};
            ASSERT_EQ(stat((dir / key).c_str(), &st), 0);
            EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
        }
        Options so;
        so.role = Role::server;
        so.cert_file = (dir / "server.crt").string();
        so.key_file = (dir / "server.key").string();
        so.alpn = {"postgresql"};
        Options co = client_options();
        co.ca_file = (dir / "ca.crt").string();
        for (const char* name : {"localhost", "127.0.0.1", "pggw.example.com"}) {
            SCOPED_TRACE(name);
            auto c = conn(so, co, {}, host(name));
            ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
            EXPECT_EQ(c.client->info().version, "TLSv1.3");
            // tls-server-end-point: SHA-256, from ecdsa-with-SHA256 / sha256WithRSAEncryption.
            EXPECT_EQ(c.server->info().server_end_point.size(), 32u);
            EXPECT_EQ(c.client->info().server_end_point.size(), 32u);
            EXPECT_EQ(send(*c.client, *c.server, type).data, type);
        }
        auto c = conn(so, co, {}, host("elsewhere.example.com"));
        ASSERT_TRUE(c.ok());
        run_handshake(*c.server, *c.client);
        EXPECT_EQ(c.client->failure(), Failure::hostname_mismatch) << describe(*c.client);

        auto ctx = sb_->new_context(so, error);
        ASSERT_NE(ctx, nullptr) << error;
        ASSERT_EQ(ctx->certificates().size(), 1u);
        auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
        EXPECT_NEAR(static_cast<double>(ctx->certificates()[0].not_after),
                    static_cast<double>(now + 30 * 86400), 3600.0);
        fs::remove_all(tmpl);
    }
}

// gen-cert --key-type ed25519 (RFC 8410: the signature algorithm is Ed25519, no digest), every
// pair, TLS 1.3 and 1.2. wolfSSL 5.5.4's X509 layer (wolfSSL_X509_load_certificate_buffer,
// wolfSSL_X509_d2i, wolfSSL_get_peer_certificate) answers NULL for an Ed25519 certificate: the
// context lists it through wolfCrypt's decoder instead (wolfssl_context.cpp), and a wolfSSL
// client verifies it but reports no peer certificate (pinned). BoringSSL's default verify
// algorithms leave Ed25519 out: boringssl_context.cpp adds it.
TEST_P(TlsPair, GeneratedEd25519Certificates) {
    if (!sb_->has(cap_generate_certificates)) {
        GTEST_SKIP() << sb_->name() << " lacks certificate generation";
    }
    char tmpl[] = "/tmp/pggw-tls-gen-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    fs::path dir = fs::path(tmpl) / "certs";
    CertificateRequest req;
    req.dir = dir.string();
    req.hostnames = {"localhost", "127.0.0.1"};
    req.key_type = "ed25519";
    req.days = 30;
    std::string error;
    ASSERT_TRUE(sb_->generate_certificates(req, error)) << error;
    for (const char* key : {"ca.key", "server.key"}) {
        struct stat st {};
        ASSERT_EQ(stat((dir / key).c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
    }
    Options so;
    so.role = Role::server;
    so.cert_file = (dir / "server.crt").string();
    so.key_file = (dir / "server.key").string();
    so.alpn = {"postgresql"};
    Options co = client_options();
    co.ca_file = (dir / "ca.crt").string();
    Backend* serving = sb_;
    for (Version v : {Version::tls1_3, Version::tls1_2}) {
        for (const char* name : {"localhost", "127.0.0.1"}) {
            SCOPED_TRACE(std::string(name) + (v == Version::tls1_2 ? ", TLS 1.2" : ", TLS 1.3"));
            co.max_version = v;
            auto c = make_conn(*serving, so, *cb_, co, {}, host(name));
            ASSERT_NO_FATAL_FAILURE(handshake_ok(c));
            EXPECT_EQ(c.client->info().version, v == Version::tls1_2 ? "TLSv1.2" : "TLSv1.3");
            // A wolfSSL client verified chain and name (the mismatch below fails), but
            // wolfSSL_get_peer_certificate answers NULL for an Ed25519 certificate (the X509
            // layer again): no peer subject for the logs.
            if (cb_->name() == "wolfssl") {
                EXPECT_FALSE(c.client->info().peer_certificate);
            } else {
                EXPECT_EQ(c.client->info().peer_common_name, "localhost");
            }
            // tls-server-end-point names no hash for an Ed25519 signature (RFC 5929 section
            // 4.1): no binding data on either side, so SCRAM-SHA-256-PLUS is not offered
            // (ScramServer with empty data; libpq computes none either).
            EXPECT_TRUE(c.server->info().server_end_point.empty());
            EXPECT_TRUE(c.client->info().server_end_point.empty());
            EXPECT_EQ(send(*c.client, *c.server, "ed25519").data, "ed25519");
        }
    }
    {
        auto c = make_conn(*serving, so, *cb_, co, {}, host("elsewhere.example.com"));
        ASSERT_TRUE(c.ok());
        run_handshake(*c.server, *c.client);
        EXPECT_EQ(c.client->failure(), Failure::hostname_mismatch) << describe(*c.client);
    }
    auto ctx = serving->new_context(so, error);
    ASSERT_NE(ctx, nullptr) << error;
    ASSERT_EQ(ctx->certificates().size(), 1u);
    EXPECT_EQ(ctx->certificates()[0].subject, "CN=localhost");
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    EXPECT_NEAR(static_cast<double>(ctx->certificates()[0].not_after),
                static_cast<double>(now + 30 * 86400), 3600.0);
    fs::remove_all(tmpl);
}

std::string pair_name(const ::testing::TestParamInfo<PairParam>& info) {
    return info.param.server + "_server_" + info.param.client + "_client";
}

INSTANTIATE_TEST_SUITE_P(Backends, TlsPair, ::testing::ValuesIn(all_pairs()), pair_name);

// ---------------------------------------------------------------------------------------------
// One backend at a time.

class TlsBackend : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        b_ = load(GetParam());
        ASSERT_NE(b_, nullptr);
    }
    Backend* b_ = nullptr;
};

TEST_P(TlsBackend, Identity) {
    EXPECT_EQ(b_->name(), GetParam());
    EXPECT_FALSE(b_->version().empty());
    EXPECT_TRUE(b_->has(cap_tls1_2));
    EXPECT_TRUE(b_->has(cap_tls1_3));
    std::printf("  %s: %s, capabilities 0x%x\n", GetParam().c_str(), b_->version().c_str(),
                b_->capabilities());
}

TEST_P(TlsBackend, GarbageInsteadOfClientHello) {
    std::string error;
    auto ctx = b_->new_context(server_options(), error);
    ASSERT_NE(ctx, nullptr) << error;
    for (std::string_view garbage :
         {std::string_view("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
          std::string_view("\x00\x00\x00\x08\x04\xd2\x16\x2f", 8),  // a second SSLRequest
          std::string_view("\x00\x00\x00\x29\x00\x03\x00\x00user\0postgres\0\0", 22)}) {
        SCOPED_TRACE(::testing::PrintToString(std::string(garbage)));
        auto e = ctx->new_engine({});
        e->feed(bytes(garbage));
        EXPECT_EQ(e->handshake(), Result::error);
        EXPECT_EQ(e->failure(), Failure::not_tls) << describe(*e);
        EXPECT_FALSE(e->failure_reason().empty());
        EXPECT_EQ(e->handshake(), Result::error);
    }
}

TEST_P(TlsBackend, RandomBytesNeverCrash) {
    std::string error;
    auto sctx = b_->new_context(server_options(), error);
    ASSERT_NE(sctx, nullptr) << error;
    auto cctx = b_->new_context(client_options(), error);
    ASSERT_NE(cctx, nullptr) << error;
    std::mt19937 rng(42);
    for (int i = 0; i < 300; ++i) {
        std::string junk = pattern(1 + rng() % 600, static_cast<unsigned>(i));
        if (i % 3 == 0) junk.replace(0, 3, "\x16\x03\x01");  // looks like a handshake record
        auto e = (i % 2 ? cctx : sctx)->new_engine(host("localhost"));
        if (i % 2) e->handshake();  // the client speaks first
        e->consume_output(e->output().size());
        e->feed(bytes(junk));
        Result r = e->handshake();
        EXPECT_TRUE(r == Result::error || r == Result::want_input);
        if (r == Result::error) {
            EXPECT_NE(e->failure(), Failure::none);
        }
    }
}

TEST_P(TlsBackend, ContextErrors) {
    std::string error;
    auto expect_refused = [&](Options o, const char* what) {
        error.clear();
        EXPECT_EQ(b_->new_context(o, error), nullptr) << what;
        EXPECT_FALSE(error.empty()) << what;
    };
    auto o = server_options();
    o.cert_file = fixture("missing.crt");
    expect_refused(o, "missing certificate file");
    o = server_options();
    o.key_file = fixture("client.key");
    expect_refused(o, "key that does not match the certificate");
    o = server_options();
    o.cert_file.clear();
    o.key_file.clear();
    expect_refused(o, "server without a certificate");
    o = server_options();
    o.verify = Verify::chain;
    o.ca_file = fixture("missing-ca.crt");
    expect_refused(o, "missing CA file");
    o = server_options();
    o.groups = "NOT-A-GROUP";
    expect_refused(o, "unknown group");
    if (b_->has(cap_cipher_list)) {
        o = server_options();
        o.ciphers = "NOT-A-CIPHER";
        expect_refused(o, "unknown cipher");
    }
    o = server_options();
    o.min_version = Version::tls1_3;
    o.max_version = Version::tls1_2;
    expect_refused(o, "min_version above max_version");
}

TEST_P(TlsBackend, CertificatesReportNotAfter) {
    std::string error;
    auto ctx = b_->new_context(server_options(), error);
    ASSERT_NE(ctx, nullptr) << error;
    ASSERT_EQ(ctx->certificates().size(), 1u);
    EXPECT_EQ(ctx->certificates()[0].subject, "CN=localhost");
    EXPECT_EQ(ctx->certificates()[0].not_after, kFixtureNotAfter);

    ctx = b_->new_context(server_options("server-chain"), error);
    ASSERT_NE(ctx, nullptr) << error;
    ASSERT_EQ(ctx->certificates().size(), 2u);
    EXPECT_EQ(ctx->certificates()[0].subject, "CN=localhost");
    EXPECT_EQ(ctx->certificates()[1].subject, "CN=pggw test intermediate CA");
    EXPECT_EQ(ctx->certificates()[1].not_after, kFixtureNotAfter);

    // An expired certificate still loads (the gateway warns; metrics show it).
    ctx = b_->new_context(server_options("expired"), error);
    ASSERT_NE(ctx, nullptr) << error;
    ASSERT_EQ(ctx->certificates().size(), 1u);
    EXPECT_EQ(ctx->certificates()[0].not_after, kExpiredNotAfter);
}

TEST_P(TlsBackend, GenerateCertificatesRejectsBadInput) {
    if (!b_->has(cap_generate_certificates)) {
        GTEST_SKIP() << b_->name() << " lacks certificate generation";
    }
    char tmpl[] = "/tmp/pggw-tls-gen-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    CertificateRequest req;
    req.dir = tmpl;
    req.hostnames = {"localhost"};
    req.key_type = "dsa-512";
    std::string error;
    EXPECT_FALSE(b_->generate_certificates(req, error));
    EXPECT_FALSE(error.empty());
    req.key_type = "ecdsa-p256";
    req.hostnames = {"bad,name"};
    error.clear();
    EXPECT_FALSE(b_->generate_certificates(req, error));
    EXPECT_FALSE(error.empty());
    fs::remove_all(tmpl);
}

INSTANTIATE_TEST_SUITE_P(Backends, TlsBackend, ::testing::ValuesIn(compiled_backends()),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------------------------------------

TEST(TlsInterface, FailureNamesAreStable) {
    // Metrics labels and log fields: changing one breaks dashboards.
    const std::pair<Failure, const char*> names[] = {
        {Failure::none, "none"},
        {Failure::unknown_ca, "unknown_ca"},
        {Failure::bad_certificate, "bad_certificate"},
        {Failure::certificate_expired, "certificate_expired"},
        {Failure::hostname_mismatch, "hostname_mismatch"},
        {Failure::no_alpn, "no_alpn"},
        {Failure::protocol_version, "protocol_version"},
        {Failure::handshake_failure, "handshake_failure"},
        {Failure::not_tls, "not_tls"},
        {Failure::eof, "eof"},
        {Failure::other, "other"},
    };
    for (const auto& [f, name] : names) EXPECT_EQ(failure_name(f), name);
}

TEST(TlsInterface, UnknownBackendIsAnError) {
    std::string error;
    EXPECT_EQ(load_backend("no-such-tls-library", error), nullptr);
    EXPECT_FALSE(error.empty());
}

TEST(TlsInterface, BothLibrariesInOneProcess) {
    // RTLD_LOCAL isolation: neither library's symbols are visible in the global scope.
    auto backends = compiled_backends();
    for (const auto& name : backends) ASSERT_NE(load(name), nullptr);
    EXPECT_EQ(dlsym(RTLD_DEFAULT, "wolfSSL_Init"), nullptr);
    EXPECT_EQ(dlsym(RTLD_DEFAULT, "SSL_CTX_new"), nullptr);
    EXPECT_EQ(dlsym(RTLD_DEFAULT, "SSL_SESSION_set1_id"), nullptr);
    auto has = [&](const char* n) {
        return std::find(backends.begin(), backends.end(), n) != backends.end();
    };
    if (!has("boringssl") || !has("wolfssl")) {
        GTEST_SKIP() << "needs both boringssl and wolfssl compiled in";
    }
    Backend* boring = load("boringssl");
    Backend* wolf = load("wolfssl");
    for (auto [server, client] : {std::pair{boring, wolf}, std::pair{wolf, boring}}) {
        SCOPED_TRACE(std::string(server->name()) + " server, " + std::string(client->name()) +
                     " client");
        auto c = make_conn(*server, server_options(), *client, client_options());
        ASSERT_TRUE(c.ok());
        auto r = run_handshake(*c.server, *c.client);
        ASSERT_TRUE(r.ok()) << describe(*c.server) << " / " << describe(*c.client);
        EXPECT_EQ(send(*c.client, *c.server, "ping").data, "ping");
        EXPECT_EQ(send(*c.server, *c.client, "pong").data, "pong");
    }
}

}  // namespace
}  // namespace pggw::tls::test
