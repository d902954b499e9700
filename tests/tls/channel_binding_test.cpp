// tls-server-end-point channel binding (RFC 5929 section 4.1), HandshakeInfo::server_end_point:
// every compiled backend as server against every compiled backend as client, for certificates
// signed with SHA-256, SHA-384, SHA-512 (RSA) and SHA-1, ECDSA and RSA keys. The expected data
// is hashed by the openssl CLI when the fixtures are made (fixtures/make.sh: *.end-point), so
// neither library grades itself.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/tls/pump.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::tls::test {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) {
    return (fs::path(__FILE__).parent_path() / "fixtures" / name).string();
}

std::string read_hex(const std::string& name) {
    std::ifstream in(fixture(name));
    std::string hex;
    in >> hex;
    return hex;
}

template <typename Bytes>
std::string hex(const Bytes& b) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (std::uint8_t x : b) {
        out += kDigits[x >> 4];
        out += kDigits[x & 15];
    }
    return out;
}

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

// A server certificate of the fixtures and what its channel-binding data must be.
struct ServerCertificate {
    std::string name;
    std::size_t hash_size;  // of the signature's digest; SHA-256 for SHA-1
    bool self_signed;       // not from ca.crt: the client does not verify it
};

const ServerCertificate kCertificates[] = {
    {"server", 32, false},            // ecdsa-with-SHA256, ECDSA P-256 key
    {"server-rsa", 32, false},        // ecdsa-with-SHA256 (by the CA), RSA key
    {"server-chain", 32, false},      // the leaf's, not the intermediate's
    {"server-sha384", 48, false},     // ecdsa-with-SHA384
    {"server-rsa-sha512", 64, true},  // sha512WithRSAEncryption
    {"server-sha1", 32, true},        // ecdsa-with-SHA1: SHA-256, as RFC 5929 says
};

class ChannelBinding : public ::testing::TestWithParam<PairParam> {
  protected:
    void SetUp() override {
        std::string error;
        sb_ = load_backend(GetParam().server, error);
        ASSERT_NE(sb_, nullptr) << GetParam().server << ": " << error;
        cb_ = load_backend(GetParam().client, error);
        ASSERT_NE(cb_, nullptr) << GetParam().client << ": " << error;
    }

    struct Conn {
        std::unique_ptr<Context> server_ctx, client_ctx;
        std::unique_ptr<Engine> server, client;
    };
    // A completed handshake with the named certificate, or a fatal failure.
    void connect(Conn& c, const ServerCertificate& cert, Version max, bool client_certificate) {
        Options so;
        so.role = Role::server;
        so.cert_file = fixture(cert.name + ".crt");
        so.key_file = fixture(cert.name + ".key");
        Options co;
        co.role = Role::client;
        co.max_version = max;
        if (!cert.self_signed) {
            co.verify = Verify::chain_and_hostname;
            co.ca_file = fixture("ca.crt");
        }
        if (client_certificate) {
            so.verify = Verify::chain;
            so.ca_file = fixture("ca.crt");
            co.cert_file = fixture("client.crt");
            co.key_file = fixture("client.key");
        }
        std::string error;
        c.server_ctx = sb_->new_context(so, error);
        ASSERT_NE(c.server_ctx, nullptr) << error;
        c.client_ctx = cb_->new_context(co, error);
        ASSERT_NE(c.client_ctx, nullptr) << error;
        c.server = c.server_ctx->new_engine({});
        EngineOptions ceo;
        ceo.hostname = "localhost";
        c.client = c.client_ctx->new_engine(ceo);
        auto r = run_handshake(*c.server, *c.client);
        ASSERT_EQ(r.server, Result::ok) << c.server->failure_reason();
        ASSERT_EQ(r.client, Result::ok) << c.client->failure_reason();
    }

    Backend* sb_ = nullptr;
    Backend* cb_ = nullptr;
};

TEST_P(ChannelBinding, ServerEndPointIsTheServerCertificatesHash) {
    for (const ServerCertificate& cert : kCertificates) {
        const std::string expected = read_hex(cert.name + ".end-point");
        ASSERT_EQ(expected.size(), 2 * cert.hash_size) << cert.name << ".end-point (make.sh)";
        for (Version v : {Version::tls1_2, Version::tls1_3}) {
            SCOPED_TRACE(cert.name + (v == Version::tls1_2 ? ", TLS 1.2" : ", TLS 1.3"));
            Conn c;
            ASSERT_NO_FATAL_FAILURE(connect(c, cert, v, false));
            // Server role: our own certificate; client role: the peer's. Both the same data.
            EXPECT_EQ(hex(c.server->info().server_end_point), expected);
            EXPECT_EQ(hex(c.client->info().server_end_point), expected);
            EXPECT_EQ(c.client->info().server_end_point.size(), cert.hash_size);
            if (cert.hash_size == 32) {  // SHA-256 of the DER, as the client's library saw it
                EXPECT_EQ(hex(c.client->info().server_end_point),
                          hex(c.client->info().peer_certificate_sha256));
            }
        }
    }
}

// With client certificates on both sides, each side still binds to the server's certificate:
// the server to its own, not to the client's it received.
TEST_P(ChannelBinding, ClientCertificateDoesNotChangeIt) {
    // SHA-256-signed: were the server to hash the client's certificate, the data would equal
    // peer_certificate_sha256.
    const ServerCertificate& cert = kCertificates[0];  // server
    const std::string expected = read_hex(cert.name + ".end-point");
    Conn c;
    ASSERT_NO_FATAL_FAILURE(connect(c, cert, Version::tls1_3, true));
    ASSERT_TRUE(c.server->info().peer_certificate);
    EXPECT_EQ(hex(c.server->info().server_end_point), expected);
    EXPECT_EQ(hex(c.client->info().server_end_point), expected);
    EXPECT_NE(hex(c.server->info().server_end_point),
              hex(c.server->info().peer_certificate_sha256));
}

// The data is hashed once per context and copied into each engine: every engine of a context
// answers the same, and two contexts with different certificates answer differently.
TEST_P(ChannelBinding, EveryEngineOfAContext) {
    Conn a, b;
    ASSERT_NO_FATAL_FAILURE(connect(a, kCertificates[0], Version::tls1_3, false));
    ASSERT_NO_FATAL_FAILURE(connect(b, kCertificates[1], Version::tls1_3, false));
    EXPECT_NE(a.server->info().server_end_point, b.server->info().server_end_point);
    for (int i = 0; i < 3; ++i) {
        auto server = a.server_ctx->new_engine({});
        EngineOptions ceo;
        ceo.hostname = "localhost";
        auto client = a.client_ctx->new_engine(ceo);
        ASSERT_TRUE(run_handshake(*server, *client).ok());
        EXPECT_EQ(server->info().server_end_point, a.server->info().server_end_point);
        EXPECT_EQ(client->info().server_end_point, a.server->info().server_end_point);
    }
}

// Before the handshake completes there is nothing to bind to.
TEST_P(ChannelBinding, EmptyBeforeTheHandshake) {
    Options so;
    so.cert_file = fixture("server.crt");
    so.key_file = fixture("server.key");
    std::string error;
    auto ctx = sb_->new_context(so, error);
    ASSERT_NE(ctx, nullptr) << error;
    EXPECT_TRUE(ctx->new_engine({})->info().server_end_point.empty());
}

std::string pair_name(const ::testing::TestParamInfo<PairParam>& info) {
    return info.param.server + "_server_" + info.param.client + "_client";
}

INSTANTIATE_TEST_SUITE_P(Backends, ChannelBinding, ::testing::ValuesIn(all_pairs()), pair_name);

}  // namespace
}  // namespace pggw::tls::test
