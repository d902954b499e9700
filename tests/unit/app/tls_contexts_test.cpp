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
    EXPECT_EQ(error, "could not access private key file \"" + missing +
                         "\": No such file or directory");
    EXPECT_FALSE(check_key_file_permissions(dir.path.string(), error));
    EXPECT_EQ(error, "private key file \"" + dir.path.string() + "\" is not a regular file");
}

TEST(KeyFilePermissions, OwnerOtherThanUsOrRootIsRefused) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file away";
    TempDir dir;
    std::string path = key_file(dir, "k", 0600);
    ASSERT_EQ(::chown(path.c_str(), 12345, 12345), 0);
    std::string error;
    EXPECT_FALSE(check_key_file_permissions(path, error));
    EXPECT_EQ(error,
              "private key file \"" + path + "\" must be owned by the user pggw runs as or root");
}

TEST(KeyFilePermissions, RootOwnedGroupReadableIsAcceptedWhenNotRoot) {
    // A root-owned 0640 key (a Kubernetes Secret with defaultMode 0440 or 0640) is fine for a
    // pggw that does not run as root; as root, the owner rule (0600) applies, as in PostgreSQL.
    if (::geteuid() == 0) GTEST_SKIP() << "the file would be owned by the current user";
    struct stat st {};
    for (const char* candidate : {"/etc/ssl/private", "/etc/shadow"}) {
        if (::stat(candidate, &st) == 0 && st.st_uid == 0 && S_ISREG(st.st_mode) &&
            (st.st_mode & 0777) == 0640) {
            std::string error;
            EXPECT_TRUE(check_key_file_permissions(candidate, error)) << error;
            return;
        }
    }
    GTEST_SKIP() << "no root-owned 0640 file to try";
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

}  // namespace
}  // namespace pggw
