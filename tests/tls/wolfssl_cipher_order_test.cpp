// The wolfSSL backend's suite order (tls_backends/wolfssl_cipher_order.hpp): with no list given,
// a wolfSSL server prefers ChaCha20-Poly1305 where its AES-GCM has no hardware under it (Debian
// 12's 5.5.4: table-driven AES, about twice the CPU per byte), AES-GCM where it has; it picks in
// its own order, whatever the client's (a client that offers AES first still gets ChaCha20); and
// a list the operator gave keeps its order. What a handshake must negotiate is decided as the
// module decides it, from the build options of the wolfSSL it links (wolfssl/options.h).
#if __has_include(<wolfssl/options.h>)

#include "tls_backends/wolfssl_cipher_order.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "tests/tls/pump.hpp"
#include "tests/tls/test_support.hpp"
#include "tls_backends/shared.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::tls::test {
namespace {

Options client_options(const std::string& ciphers = {}) {
    Options o;
    o.role = Role::client;
    o.verify = Verify::chain_and_hostname;
    o.ca_file = fixture("ca.crt");
    o.alpn = {"postgresql"};
    o.ciphers = ciphers;
    return o;
}

// The cipher suites of the ClientHello at the start of `out` (the client's first flight), in
// the client's order; empty if it is not one whole ClientHello record.
std::vector<std::uint16_t> offered_suites(std::span<const std::uint8_t> out) {
    auto u16 = [&](std::size_t at) {
        return static_cast<std::uint16_t>(out[at] << 8 | out[at + 1]);
    };
    // record header (5), handshake header (4), legacy_version (2), random (32), session id
    std::size_t at = 5 + 4 + 2 + 32;
    if (out.size() < at + 1 || out[0] != shared::kRecordHandshake || out[5] != 1) return {};
    at += 1 + out[at];
    if (out.size() < at + 2) return {};
    std::size_t len = u16(at);
    at += 2;
    if (out.size() < at + len) return {};
    std::vector<std::uint16_t> suites;
    for (std::size_t i = 0; i + 1 < len; i += 2) suites.push_back(u16(at + i));
    return suites;
}

bool is_chacha20(std::uint16_t s) {
    return s == 0x1303 || s == 0xcca8 || s == 0xcca9;  // TLS 1.3; ECDHE-RSA, ECDHE-ECDSA
}
bool is_aes_gcm(std::uint16_t s) {
    return s == 0x1301 || s == 0x1302 || (s >= 0xc02b && s <= 0xc030);
}
// Whether the client offers an AES-GCM suite before any ChaCha20-Poly1305 one, and both.
bool offers_aes_first(const std::vector<std::uint16_t>& suites) {
    auto aes = std::find_if(suites.begin(), suites.end(), is_aes_gcm);
    auto chacha = std::find_if(suites.begin(), suites.end(), is_chacha20);
    return aes != suites.end() && chacha != suites.end() && aes < chacha;
}
bool offers_chacha20_first(const std::vector<std::uint16_t>& suites) {
    auto aes = std::find_if(suites.begin(), suites.end(), is_aes_gcm);
    auto chacha = std::find_if(suites.begin(), suites.end(), is_chacha20);
    return aes != suites.end() && chacha != suites.end() && chacha < aes;
}

// Without the TLS 1.3 suites (0x13xx): a wolfSSL client offers them also when it is capped at
// TLS 1.2, in its own order.
std::vector<std::uint16_t> tls12_suites(std::vector<std::uint16_t> suites) {
    std::erase_if(suites, [](std::uint16_t s) { return (s >> 8) == 0x13; });
    return suites;
}

struct Negotiated {
    std::vector<std::uint16_t> offered;  // the client's suites, in its order
    std::string server, client;          // the IANA name each side reports (HandshakeInfo)
};

// One handshake through the pump; the client's suites read off its first flight.
Negotiated negotiate(Backend& sb, const Options& so, Backend& cb, const Options& co) {
    Negotiated n;
    std::string error;
    auto sctx = sb.new_context(so, error);
    EXPECT_NE(sctx, nullptr) << sb.name() << " server context: " << error;
    auto cctx = cb.new_context(co, error);
    EXPECT_NE(cctx, nullptr) << cb.name() << " client context: " << error;
    if (!sctx || !cctx) return n;
    EngineOptions ceo;
    ceo.hostname = "localhost";
    auto s = sctx->new_engine({});
    auto c = cctx->new_engine(ceo);
    EXPECT_EQ(c->handshake(), Result::want_input);
    n.offered = offered_suites(c->output());
    EXPECT_FALSE(n.offered.empty()) << "no ClientHello in the client's first flight";
    auto r = run_handshake(*s, *c);
    EXPECT_TRUE(r.ok()) << failure_name(s->failure()) << ": " << s->failure_reason() << " / "
                        << failure_name(c->failure()) << ": " << c->failure_reason();
    n.server = s->info().cipher;
    n.client = c->info().cipher;
    return n;
}

// wolfSSL's TLS 1.3 suites in AES-first order: a wolfSSL client given this list offers AES
// first (with no list it follows this module's decision, as a server does).
constexpr const char* kAesFirstTls13 =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256";

class WolfsslCipherOrder : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!compiled("wolfssl")) GTEST_SKIP() << "wolfssl is not compiled into this build";
        wolf_ = load("wolfssl");
        ASSERT_NE(wolf_, nullptr);
        if (compiled("boringssl")) {
            boring_ = load("boringssl");
            ASSERT_NE(boring_, nullptr);
        }
    }
    // What the module decided, in the test's output.
    static void print_decision() {
        std::printf("  wolfSSL AES-GCM %s: default order %s first\n",
                    wolfssl::aes_accelerated() ? "on AES instructions" : "table-driven",
                    wolfssl::aes_accelerated() ? "AES-GCM" : "ChaCha20-Poly1305");
    }
    std::vector<Backend*> clients() const {
        std::vector<Backend*> v{wolf_};
        if (boring_) v.push_back(boring_);
        return v;
    }

    Backend* wolf_ = nullptr;
    Backend* boring_ = nullptr;
};

TEST_F(WolfsslCipherOrder, Chacha20FirstKeepsEachPartsOrder) {
    EXPECT_EQ(wolfssl::chacha20_first(kAesFirstTls13),
              "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384");
    EXPECT_EQ(wolfssl::chacha20_first(shared::kDefaultTls12Ciphers),
              "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
              "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
              "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384");
    EXPECT_EQ(wolfssl::chacha20_first("A:B"), "A:B");
    EXPECT_EQ(wolfssl::chacha20_first("X-CHACHA20:Y-CHACHA20"), "X-CHACHA20:Y-CHACHA20");
    EXPECT_EQ(wolfssl::chacha20_first("A:X-CHACHA20:B"), "X-CHACHA20:A:B");
    EXPECT_EQ(wolfssl::chacha20_first(""), "");
}

// TLS 1.3, server with no list: ChaCha20 without AES hardware, from every client, also one that
// offers AES-GCM first (the server's order wins); AES-128-GCM where AES is fast. The same for a
// server given a TLS 1.2 list only: the TLS 1.3 suites are pggw's own, in its default order.
TEST_F(WolfsslCipherOrder, DefaultTls13OrderPrefersChacha20WithoutAesHardware) {
    print_decision();
    const std::string expected =
        wolfssl::aes_accelerated() ? "TLS_AES_128_GCM_SHA256" : "TLS_CHACHA20_POLY1305_SHA256";
    for (const std::string& server_list :
         {std::string(), std::string("ECDHE-ECDSA-AES128-GCM-SHA256")}) {
        auto so = server_options();
        so.ciphers = server_list;
        for (Backend* cb : clients()) {
            for (const char* client_list : {"", kAesFirstTls13}) {
                if (cb != wolf_ && *client_list) continue;  // BoringSSL: TLS 1.3 suites are fixed
                SCOPED_TRACE(std::string(cb->name()) + " client, list \"" + client_list +
                             "\"; server list \"" + server_list + "\"");
                auto n = negotiate(*wolf_, so, *cb, client_options(client_list));
                if (*client_list) {
                    ASSERT_TRUE(offers_aes_first(n.offered));
                }
                EXPECT_EQ(n.server, expected);
                EXPECT_EQ(n.client, expected);
            }
        }
    }
}

// TLS 1.2, server with no list, ECDSA and RSA certificates: ECDHE with ChaCha20 without AES
// hardware, from clients that offer AES-GCM first (pggw's default TLS 1.2 list, AES first).
TEST_F(WolfsslCipherOrder, DefaultTls12OrderPrefersChacha20WithoutAesHardware) {
    print_decision();
    const bool aes = wolfssl::aes_accelerated();
    for (const char* cert : {"server", "server-rsa"}) {
        const std::string kx = std::string(cert) == "server" ? "ECDSA" : "RSA";
        const std::string expected = "TLS_ECDHE_" + kx + "_WITH_" +
                                     (aes ? "AES_128_GCM_SHA256" : "CHACHA20_POLY1305_SHA256");
        for (Backend* cb : clients()) {
            for (const std::string& client_list :
                 {std::string(), std::string(shared::kDefaultTls12Ciphers)}) {
                SCOPED_TRACE(std::string(cert) + ", " + std::string(cb->name()) +
                             " client, list \"" + client_list + "\"");
                auto co = client_options(client_list);
                co.max_version = Version::tls1_2;
                auto n = negotiate(*wolf_, server_options(cert), *cb, co);
                if (!client_list.empty()) {
                    ASSERT_TRUE(offers_aes_first(tls12_suites(n.offered)));
                }
                EXPECT_EQ(n.server, expected);
                EXPECT_EQ(n.client, expected);
            }
        }
    }
}

// A list the operator gave is used in its order, AES first, though AES is slow here and the
// client offers ChaCha20 first: the server's order decides, and it is the operator's.
TEST_F(WolfsslCipherOrder, OperatorListKeepsItsOrder) {
    for (Backend* cb : clients()) {
        SCOPED_TRACE(std::string(cb->name()) + " client");
        {
            SCOPED_TRACE("TLS 1.2");
            auto so = server_options();
            so.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305";
            auto co = client_options("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256");
            co.max_version = Version::tls1_2;
            auto n = negotiate(*wolf_, so, *cb, co);
            ASSERT_TRUE(offers_chacha20_first(tls12_suites(n.offered)));
            EXPECT_EQ(n.server, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
            EXPECT_EQ(n.client, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
        }
        {
            SCOPED_TRACE("TLS 1.3");
            auto so = server_options();
            so.ciphers =
                "TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"
                "ECDHE-ECDSA-AES128-GCM-SHA256";
            // wolfSSL's client offers ChaCha20 first; BoringSSL's offers its fixed order.
            auto co = client_options(
                cb == wolf_ ? "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES256-GCM-SHA384" : "");
            auto n = negotiate(*wolf_, so, *cb, co);
            if (cb == wolf_) {
                ASSERT_TRUE(offers_chacha20_first(n.offered));
            }
            EXPECT_EQ(n.server, "TLS_AES_256_GCM_SHA384");
            EXPECT_EQ(n.client, "TLS_AES_256_GCM_SHA384");
        }
    }
}

}  // namespace
}  // namespace pggw::tls::test

#endif  // __has_include(<wolfssl/options.h>)
