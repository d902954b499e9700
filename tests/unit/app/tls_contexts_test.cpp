// check_key_file_permissions: PostgreSQL's rule for private key files, and make_tls_contexts
// applying it to both legs' keys before any context is built.
#include "gateway/app/tls_contexts.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace pggw {
namespace {

namespace fs = std::filesystem;

struct TempDir {
    TempDir() {
        std::random_device rd;
        path = fs::temp_directory_path() /
               ("pggw-keyperm-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path path;
};

std::string key_file(const TempDir& dir, const std::string& name, mode_t mode) {
    fs::path p = dir.path / name;
    std::ofstream(p) << "-----BEGIN PRIVATE KEY-----\n";
    EXPECT_EQ(::chmod(p.c_str(), mode), 0);
    return p.string();
}

constexpr std::string_view kGroupOrWorld =
    "\" has group or world access; file must have permissions u=rw (0600) or less if owned by "
    "the current user, or permissions u=rw,g=r (0640) or less if owned by root";

TEST(KeyFilePermissions, OwnerOnlyIsAccepted) {
    TempDir dir;
    for (mode_t mode : {0600, 0400, 0200, 0000}) {
        SCOPED_TRACE(mode);
        std::string error;
        EXPECT_TRUE(check_key_file_permissions(key_file(dir, "k", mode), error)) << error;
    }
}

TEST(KeyFilePermissions, GroupOrWorldBitsAreRefused) {
    TempDir dir;
    for (mode_t mode : {0640, 0604, 0644, 0660, 0610, 0601, 0666}) {
        SCOPED_TRACE(mode);
        std::string path = key_file(dir, "k", mode);
        std::string error;
        EXPECT_FALSE(check_key_file_permissions(path, error));
        // Owned by the current user (root included): PostgreSQL's strict rule.
        EXPECT_EQ(error, "private key file \"" + path + std::string(kGroupOrWorld));
    }
}

TEST(KeyFilePermissions, SymlinkIsFollowed) {
    // A Kubernetes Secret volume: tls.key -> ..data/tls.key; the target's mode counts.
    TempDir dir;
    std::string target = key_file(dir, "target.key", 0644);
    fs::create_symlink(target, dir.path / "tls.key");
    std::string error;
    EXPECT_FALSE(check_key_file_permissions((dir.path / "tls.key").string(), error));
    ASSERT_EQ(::chmod(target.c_str(), 0600), 0);
    EXPECT_TRUE(check_key_file_permissions((dir.path / "tls.key").string(), error)) << error;
}

TEST(KeyFilePermissions, MissingOrNotARegularFile) {
    TempDir dir;
    std::string error;
    std::string missing = (dir.path / "missing.key").string();
    EXPECT_FALSE(check_key_file_permissions(missing, error));
    EXPECT_EQ(error,
              "could not access private key file \"" + missing + "\": No such file or directory");
    EXPECT_FALSE(check_key_file_permissions(dir.path.string(), error));
    EXPECT_EQ(error, "private key file \"" + dir.path.string() + "\" is not a regular file");
}

// The rule on owner and mode, for a pggw running as root (0) and as another user (1000): every
// case runs wherever the tests run, root or not.
TEST(KeyFilePermissions, RuleByOwnerAndMode) {
    const std::string group_or_world = "has group or world access";
    auto allowed = [](unsigned owner, unsigned mode, unsigned euid) {
        return key_permission_problem(owner, S_IFREG | mode, euid).empty();
    };
    // Owned by the user pggw runs as: 0600 or less.
    EXPECT_TRUE(allowed(1000, 0600, 1000));
    EXPECT_TRUE(allowed(1000, 0400, 1000));
    EXPECT_FALSE(allowed(1000, 0640, 1000));
    EXPECT_FALSE(allowed(1000, 0604, 1000));
    // Owned by root, pggw another user: group read allowed (a Secret with defaultMode 0440).
    EXPECT_TRUE(allowed(0, 0640, 1000));
    EXPECT_TRUE(allowed(0, 0440, 1000));
    EXPECT_FALSE(allowed(0, 0660, 1000));
    EXPECT_FALSE(allowed(0, 0650, 1000));
    EXPECT_FALSE(allowed(0, 0644, 1000));
    // pggw as root: the owner rule comes first, as in PostgreSQL.
    EXPECT_TRUE(allowed(0, 0600, 0));
    EXPECT_FALSE(allowed(0, 0640, 0));
    // Owned by anyone else.
    EXPECT_EQ(key_permission_problem(12345, S_IFREG | 0600, 1000),
              "must be owned by the user pggw runs as or root");
    EXPECT_NE(key_permission_problem(1000, S_IFREG | 0644, 1000).find(group_or_world),
              std::string::npos);
}

TEST(MakeTlsContexts, RefusesGroupReadableKeysOfEitherLegBeforeLoading) {
    TempDir dir;
    std::string loose = key_file(dir, "loose.key", 0644);
    {
        Config cfg;
        cfg.cert = (dir.path / "server.crt").string();
        cfg.key = loose;
        TlsContexts out;
        std::string error;
        // No backend is needed: the key is refused before any context is built.
        EXPECT_FALSE(make_tls_contexts(cfg, nullptr, out, error));
        EXPECT_EQ(error, "private key file \"" + loose + std::string(kGroupOrWorld));
    }
    {
        Config cfg;
        cfg.server_tls = TlsMode::require;
        cfg.server_cert = (dir.path / "client.crt").string();
        cfg.server_key = loose;
        TlsContexts out;
        std::string error;
        EXPECT_FALSE(make_tls_contexts(cfg, nullptr, out, error));
        EXPECT_EQ(error, "private key file \"" + loose + std::string(kGroupOrWorld));
    }
}

// --server-tls-ciphers / --server-tls-groups reach the server leg's context, and only it: a list
// the library refuses fails that leg by name, while the client leg's lists never apply there.
TEST(MakeTlsContexts, ServerLegTakesItsOwnCipherAndGroupLists) {
    for (const auto& name : tls::compiled_backends()) {
        SCOPED_TRACE(name);
        std::string error;
        tls::Backend* backend = tls::load_backend(name, error);
        ASSERT_NE(backend, nullptr) << error;
        Config cfg;
        cfg.server_tls = TlsMode::require;
        cfg.tls_ciphers = "NO-SUCH-CIPHER";  // client leg only (disabled here)
        cfg.tls_groups = "NO-SUCH-GROUP";
        TlsContexts out;
        EXPECT_TRUE(make_tls_contexts(cfg, backend, out, error)) << error;
        EXPECT_TRUE(out.server);

        cfg.server_tls_ciphers = "NO-SUCH-CIPHER";
        out = {};
        EXPECT_FALSE(make_tls_contexts(cfg, backend, out, error));
        EXPECT_EQ(error.rfind("server TLS (" + name + "): ", 0), 0u) << error;

        cfg.server_tls_ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
        cfg.server_tls_groups = "NO-SUCH-GROUP";
        EXPECT_FALSE(make_tls_contexts(cfg, backend, out, error));
        EXPECT_EQ(error.rfind("server TLS (" + name + "): ", 0), 0u) << error;

        cfg.server_tls_groups = "P-256";
        EXPECT_TRUE(make_tls_contexts(cfg, backend, out, error)) << error;
    }
}

}  // namespace
}  // namespace pggw
