// The backends' library-independent code (tls_backends/shared.hpp).
#include "tls_backends/shared.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace pggw::tls::shared {
namespace {

TEST(TlsShared, AlertFailure) {
    EXPECT_EQ(alert_failure(kAlertUnknownCa), Failure::unknown_ca);
    EXPECT_EQ(alert_failure(kAlertCertificateExpired), Failure::certificate_expired);
    for (int a : {kAlertBadCertificate, kAlertUnsupportedCertificate, kAlertCertificateRevoked,
                  kAlertCertificateUnknown, kAlertCertificateRequired}) {
        EXPECT_EQ(alert_failure(a), Failure::bad_certificate) << a;
    }
    EXPECT_EQ(alert_failure(kAlertNoApplicationProtocol), Failure::no_alpn);
    EXPECT_EQ(alert_failure(kAlertProtocolVersion), Failure::protocol_version);
    EXPECT_EQ(alert_failure(kAlertHandshakeFailure), Failure::handshake_failure);
    EXPECT_EQ(alert_failure(kAlertInsufficientSecurity), Failure::handshake_failure);
    EXPECT_EQ(alert_failure(10), Failure::other);  // unexpected_message
    EXPECT_EQ(alert_failure(-1), Failure::other);
}

TEST(TlsShared, TransportFailure) {
    std::string reason;
    EXPECT_EQ(transport_failure(true, true, reason), Failure::eof);
    EXPECT_EQ(reason, "peer closed the connection during the TLS handshake");
    EXPECT_EQ(transport_failure(true, false, reason), Failure::eof);
    EXPECT_EQ(reason, "peer closed the connection without close_notify (truncated)");
    EXPECT_EQ(transport_failure(false, true, reason), Failure::other);
    EXPECT_EQ(reason, "transport error");
}

TEST(TlsShared, PresentedNames) {
    EXPECT_EQ(presented_names({"DNS:a", "", "IP:10.0.0.1"}, "a"), "DNS:a, IP:10.0.0.1 (CN=a)");
    EXPECT_EQ(presented_names({"DNS:a"}, ""), "DNS:a");
    EXPECT_EQ(presented_names({}, "localhost"), "CN=localhost");
    EXPECT_EQ(presented_names({}, ""), "no name");
    const std::uint8_t v4[] = {10, 0, 0, 1};
    const std::uint8_t v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    EXPECT_EQ(ip_alt_name(v4, 4), "IP:10.0.0.1");
    EXPECT_EQ(ip_alt_name(v6, 16), "IP:::1");
    EXPECT_EQ(ip_alt_name(v4, 3), "");
}

TEST(TlsShared, HostNames) {
    for (const char* ip : {"127.0.0.1", "::1", "fe80::1", "2001:db8::8"}) {
        EXPECT_TRUE(is_ip_literal(ip)) << ip;
    }
    for (const char* name : {"localhost", "", "1.2.3", "[::1]", "10.0.0.256"}) {
        EXPECT_FALSE(is_ip_literal(name)) << name;
    }
    for (const char* name : {"localhost", "db.example.com", "*.example.com", "a_b-c"}) {
        EXPECT_TRUE(valid_dns_name(name)) << name;
    }
    for (const char* name : {"", "bad,name", "a b", "caf\xc3\xa9"}) {
        EXPECT_FALSE(valid_dns_name(name)) << name;
    }
    EXPECT_TRUE(valid_dns_name(std::string(253, 'a')));
    EXPECT_FALSE(valid_dns_name(std::string(254, 'a')));
}

class TlsSharedFiles : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pggw-tls-shared-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::filesystem::path dir_;
};

TEST_F(TlsSharedFiles, PrepareCertificateRequest) {
    CertificateRequest req;
    req.dir = (dir_ / "a" / "b").string();
    std::string error;
    EXPECT_FALSE(prepare_certificate_request(req, error));
    EXPECT_EQ(error, "no host names for the server certificate");
    req.hostnames = {"localhost", "127.0.0.1", "::1"};
    req.days = 0;
    EXPECT_FALSE(prepare_certificate_request(req, error));
    EXPECT_EQ(error, "validity must be at least one day");
    req.days = 1;
    req.hostnames.push_back("bad,name");
    EXPECT_FALSE(prepare_certificate_request(req, error));
    EXPECT_EQ(error, "invalid host name \"bad,name\"");
    EXPECT_FALSE(std::filesystem::exists(req.dir));
    req.hostnames.pop_back();
    EXPECT_TRUE(prepare_certificate_request(req, error)) << error;
    EXPECT_TRUE(std::filesystem::is_directory(req.dir));
}

TEST_F(TlsSharedFiles, ParseKeyType) {
    KeyType type{};
    std::string error;
    EXPECT_TRUE(parse_key_type("ecdsa-p256", type, error));
    EXPECT_EQ(type, KeyType::ecdsa_p256);
    EXPECT_TRUE(parse_key_type("rsa-2048", type, error));
    EXPECT_EQ(type, KeyType::rsa_2048);
    EXPECT_TRUE(parse_key_type("ed25519", type, error));
    EXPECT_EQ(type, KeyType::ed25519);
    EXPECT_FALSE(parse_key_type("dsa-512", type, error));
    EXPECT_EQ(error, "unknown key type \"dsa-512\" (ecdsa-p256, rsa-2048 or ed25519)");
}

TEST_F(TlsSharedFiles, WritePem) {
    const auto path = dir_ / "x.key";
    std::string error;
    EXPECT_FALSE(write_pem(path, 0600, "", error));
    EXPECT_EQ(error, "cannot encode " + path.string());
    { std::ofstream(path) << "old, longer contents"; }
    std::filesystem::permissions(path, std::filesystem::perms::all);
    ASSERT_TRUE(write_pem(path, 0600, "-----BEGIN-----\n", error)) << error;
    std::stringstream text;
    text << std::ifstream(path).rdbuf();
    EXPECT_EQ(text.str(), "-----BEGIN-----\n");
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);  // also where the file existed
    EXPECT_FALSE(write_pem(dir_ / "missing" / "x.crt", 0644, "pem", error));
    EXPECT_NE(error.find("cannot create"), std::string::npos) << error;
}

// gen-cert never writes through a symlink planted where a key goes, never reuses an existing
// file (its inode, its owner, its mode) and leaves no temporary file behind.
TEST_F(TlsSharedFiles, WritePemReplacesAndNeverFollows) {
    const auto elsewhere = dir_ / "elsewhere";
    { std::ofstream(elsewhere) << "precious"; }
    std::filesystem::permissions(elsewhere, std::filesystem::perms::all);
    const auto path = dir_ / "server.key";
    std::filesystem::create_symlink(elsewhere, path);
    std::string error;
    ASSERT_TRUE(write_pem(path, 0600, "-----KEY-----\n", error)) << error;
    EXPECT_FALSE(std::filesystem::is_symlink(path));
    std::stringstream a, b;
    a << std::ifstream(elsewhere).rdbuf();
    b << std::ifstream(path).rdbuf();
    EXPECT_EQ(a.str(), "precious");
    EXPECT_EQ(b.str(), "-----KEY-----\n");
    struct stat st {};
    ASSERT_EQ(::stat(elsewhere.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0777u);

    // An existing file is replaced by a new inode (a reader holding it open keeps the old one).
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    const ino_t before = st.st_ino;
    ASSERT_TRUE(write_pem(path, 0644, "-----CRT-----\n", error)) << error;
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_NE(st.st_ino, before);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0644u);

    // Created 0600 whatever the umask, and nothing but the two files is left.
    mode_t old = ::umask(0);
    ASSERT_TRUE(write_pem(path, 0600, "-----KEY-----\n", error)) << error;
    ::umask(old);
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
        names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"elsewhere", "server.key"}));
}

}  // namespace
}  // namespace pggw::tls::shared
