// CertWatcher on real directories: the Kubernetes Secret layout and its ..data symlink swap,
// files replaced in place, the debounce, a directory that appears later; files_digest.
#include "gateway/app/cert_watcher.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

namespace pggw {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
}

struct TempDir {
    TempDir() {
        std::random_device rd;
        path = fs::temp_directory_path() /
               ("pggw-watch-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path path;
};

// A mounted Secret as the kubelet writes it: dir/..TS/{tls.crt,tls.key}, dir/..data -> ..TS,
// dir/tls.crt -> ..data/tls.crt.
struct SecretDir : TempDir {
    void version(const std::string& ts, const std::string& crt, const std::string& key) {
        fs::create_directory(path / ts);
        write_file(path / ts / "tls.crt", crt);
        write_file(path / ts / "tls.key", key);
    }
    void init(const std::string& ts) {
        fs::create_directory_symlink(ts, path / "..data");
        fs::create_symlink("..data/tls.crt", path / "tls.crt");
        fs::create_symlink("..data/tls.key", path / "tls.key");
    }
    // The atomic swap: a new symlink renamed over ..data, then the old version removed.
    void swap(const std::string& old_ts, const std::string& ts) {
        fs::create_directory_symlink(ts, path / "..data_tmp");
        fs::rename(path / "..data_tmp", path / "..data");
        fs::remove_all(path / old_ts);
    }
    std::vector<std::string> files() const {
        return {(path / "tls.crt").string(), (path / "tls.key").string()};
    }
};

std::function<void()> count(int& changes) {
    return [&changes] { ++changes; };
}

CertWatcherOptions fast() {
    CertWatcherOptions o;
    o.debounce = 100ms;
    o.max_delay = 400ms;
    o.retry = 100ms;
    return o;
}

TEST(CertWatcher, KubernetesSymlinkSwapIsOneChange) {
    SecretDir d;
    d.version("..2026_01", "crt-1", "key-1");
    d.init("..2026_01");
    const auto files = d.files();
    const auto before = files_digest(files);

    asio::io_context io;
    int changes = 0;
    CertWatcher w(io, files, count(changes), fast());
    std::string err;
    ASSERT_TRUE(w.start(err)) << err;
    auto dirs = w.directories();
    // The directory as named, and the one the files resolve to.
    EXPECT_NE(std::find(dirs.begin(), dirs.end(), d.path.string()), dirs.end());
    EXPECT_NE(std::find(dirs.begin(), dirs.end(), fs::canonical(d.path / "..2026_01").string()),
              dirs.end());

    io.run_for(200ms);
    EXPECT_EQ(changes, 0);
    d.version("..2026_02", "crt-2", "key-2");
    d.swap("..2026_01", "..2026_02");
    io.restart();
    io.run_for(1s);
    EXPECT_EQ(changes, 1);  // every event of the swap, debounced into one call
    EXPECT_NE(files_digest(files), before);
    dirs = w.directories();
    EXPECT_NE(std::find(dirs.begin(), dirs.end(), fs::canonical(d.path / "..2026_02").string()),
              dirs.end());
    EXPECT_EQ(std::count_if(dirs.begin(), dirs.end(),
                            [](const std::string& s) { return s.find("..2026_01") != s.npos; }),
              0);

    // And again, from the new version: the watch followed.
    d.version("..2026_03", "crt-3", "key-3");
    d.swap("..2026_02", "..2026_03");
    io.restart();
    io.run_for(1s);
    EXPECT_GE(changes, 2);
}

TEST(CertWatcher, FileRewrittenInPlaceOrReplacedByRename) {
    TempDir d;
    write_file(d.path / "server.crt", "a");
    asio::io_context io;
    int changes = 0;
    CertWatcher w(io, {(d.path / "server.crt").string()}, count(changes), fast());
    std::string err;
    ASSERT_TRUE(w.start(err)) << err;
    write_file(d.path / "server.crt", "b");
    io.run_for(500ms);
    EXPECT_EQ(changes, 1);
    write_file(d.path / "new.crt", "c");
    fs::rename(d.path / "new.crt", d.path / "server.crt");
    io.restart();
    io.run_for(500ms);
    EXPECT_EQ(changes, 2);
}

TEST(CertWatcher, ContinuousEventsStillReloadWithinMaxDelay) {
    TempDir d;
    write_file(d.path / "ca.crt", "a");
    asio::io_context io;
    int changes = 0;
    CertWatcher w(io, {(d.path / "ca.crt").string()}, count(changes), fast());
    std::string err;
    ASSERT_TRUE(w.start(err)) << err;
    // An event every 50 ms, closer than the 100 ms debounce, for 1 s: max_delay (400 ms) ends
    // the wait anyway.
    for (int i = 0; i < 20; ++i) {
        write_file(d.path / "noise", std::to_string(i));
        io.restart();
        io.run_for(50ms);
    }
    EXPECT_GE(changes, 2);
    EXPECT_LE(changes, 4);
}

TEST(CertWatcher, DirectoryThatAppearsLaterIsPickedUp) {
    TempDir d;
    const auto file = (d.path / "later" / "tls.crt").string();
    asio::io_context io;
    int changes = 0;
    CertWatcher w(io, {file}, count(changes), fast());
    std::string err;
    ASSERT_TRUE(w.start(err)) << err;
    EXPECT_TRUE(w.directories().empty());
    fs::create_directory(d.path / "later");
    write_file(file, "x");
    io.run_for(600ms);
    EXPECT_GE(changes, 1);
    EXPECT_EQ(w.directories(), std::vector<std::string>{(d.path / "later").string()});
}

TEST(CertWatcher, StopEndsTheCallbacks) {
    TempDir d;
    write_file(d.path / "tls.key", "a");
    asio::io_context io;
    int changes = 0;
    CertWatcher w(io, {(d.path / "tls.key").string()}, count(changes), fast());
    std::string err;
    ASSERT_TRUE(w.start(err)) << err;
    write_file(d.path / "tls.key", "b");
    io.run_for(20ms);
    w.stop();
    io.restart();
    io.run_for(300ms);
    EXPECT_EQ(changes, 0);
}

TEST(FilesDigest, FollowsContentsNotNames) {
    TempDir d;
    write_file(d.path / "a", "one");
    write_file(d.path / "b", "two");
    const std::vector<std::string> files{(d.path / "a").string(), (d.path / "b").string()};
    const auto first = files_digest(files);
    EXPECT_EQ(files_digest(files), first);
    write_file(d.path / "b", "two");  // rewritten, same bytes
    EXPECT_EQ(files_digest(files), first);
    write_file(d.path / "b", "TWO");
    EXPECT_NE(files_digest(files), first);
    fs::remove(d.path / "b");
    const auto missing = files_digest(files);
    EXPECT_NE(missing, first);
    EXPECT_NE(missing.find("unreadable"), std::string::npos);
}

TEST(CertWatchDirectories, NamedAndResolvedOnce) {
    TempDir d;
    fs::create_directory(d.path / "real");
    write_file(d.path / "real" / "x.crt", "x");
    fs::create_directory(d.path / "links");
    fs::create_symlink(d.path / "real" / "x.crt", d.path / "links" / "x.crt");
    auto dirs = cert_watch_directories({(d.path / "links" / "x.crt").string(),
                                        (d.path / "real" / "x.crt").string(), "", "rel.crt"});
    std::vector<std::string> want{(d.path / "links").string(),
                                  fs::canonical(d.path / "real").string()};
    if (want.back() != (d.path / "real").string()) want.push_back((d.path / "real").string());
    want.push_back(".");  // rel.crt: named only (it does not exist, so nothing resolves)
    EXPECT_EQ(dirs, want);
}

}  // namespace
}  // namespace pggw
