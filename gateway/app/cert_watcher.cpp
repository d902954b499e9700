#include "gateway/app/cert_watcher.hpp"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace pggw {

namespace {

namespace fs = std::filesystem;

// What changes a file's contents or what a name points to; IN_ONLYDIR: a directory or nothing.
constexpr std::uint32_t kMask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE |
                                IN_MODIFY | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF |
                                IN_ONLYDIR;

constexpr std::size_t kNamesLogged = 8;

}  // namespace

std::vector<std::string> cert_watch_directories(const std::vector<std::string>& files) {
    std::vector<std::string> dirs;
    auto add = [&](const fs::path& file) {
        fs::path dir = file.parent_path();
        std::string d = dir.empty() ? std::string(".") : dir.string();
        if (std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(std::move(d));
    };
    for (const auto& f : files) {
        if (f.empty()) continue;
        add(fs::path(f));
        std::error_code ec;
        fs::path real = fs::canonical(f, ec);
        if (!ec) add(real);
    }
    return dirs;
}

std::string files_digest(const std::vector<std::string>& files) {
    std::string out;
    for (const auto& f : files) {
        out += f;
        out += '\0';
        std::ifstream in(f, std::ios::binary);
        if (!in) {
            out += "unreadable:" + std::to_string(errno);
        } else {
            std::string body((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
            if (in.bad()) {
                out += "unreadable";
            } else {
                out += std::to_string(body.size()) + ":" +
                       std::to_string(std::hash<std::string>{}(body));
            }
        }
        out += '\n';
    }
    return out;
}

CertWatcher::CertWatcher(asio::io_context& io, std::vector<std::string> files,
                         std::function<void()> on_change, CertWatcherOptions options)
    : files_(std::move(files)),
      on_change_(std::move(on_change)),
      options_(options),
      inotify_(io),
      debounce_(io),
      retry_(io) {}

CertWatcher::~CertWatcher() {
    stop();
}

bool CertWatcher::start(std::string& error) {
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        error = std::string("inotify_init1: ") + std::strerror(errno);
        return false;
    }
    inotify_.assign(fd);
    sync_watches();
    arm();
    return true;
}

void CertWatcher::stop() {
    stopped_ = true;
    error_code ignored;
    debounce_.cancel();
    retry_.cancel();
    inotify_.close(ignored);
    watched_.clear();
}

std::vector<std::string> CertWatcher::directories() const {
    std::vector<std::string> out;
    for (const auto& [wd, dir] : watched_) out.push_back(dir);
    return out;
}

// Watches every directory the files name or resolve to now, and drops the others (such as a
// Kubernetes `..2026_...` directory that `..data` no longer points to).
void CertWatcher::sync_watches() {
    if (stopped_ || !inotify_.is_open()) return;
    const int fd = inotify_.native_handle();
    std::map<int, std::string> now;
    bool missing = false;
    for (const auto& dir : cert_watch_directories(files_)) {
        int wd = ::inotify_add_watch(fd, dir.c_str(), kMask);
        if (wd < 0) {
            if (!missing)
                spdlog::warn(
                    "certificate watch: cannot watch {}: {}; retrying every {} s", dir,
                    std::strerror(errno),
                    std::chrono::duration_cast<std::chrono::seconds>(options_.retry).count());
            missing = true;
            continue;
        }
        now.emplace(wd, dir);  // two names of one directory share a descriptor: the first wins
    }
    for (const auto& [wd, dir] : watched_) {
        if (!now.count(wd)) ::inotify_rm_watch(fd, wd);  // fails harmlessly if already gone
    }
    if (now != watched_) {
        std::string list;
        for (const auto& [wd, dir] : now) list += (list.empty() ? "" : ", ") + dir;
        spdlog::debug("certificate watch: watching {}", list);
    }
    watched_ = std::move(now);
    if (missing) {
        retry_.expires_after(options_.retry);
        retry_.async_wait([this](error_code ec) {
            if (!ec && !stopped_) changed();  // fire() syncs again; on_change reads the files
        });
    }
}

void CertWatcher::arm() {
    inotify_.async_wait(asio::posix::descriptor_base::wait_read, [this](error_code ec) {
        if (ec || stopped_) return;
        read_events();
        arm();
    });
}

void CertWatcher::read_events() {
    alignas(inotify_event) char buf[16 * 1024];
    bool any = false;
    for (;;) {
        const ssize_t n = ::read(inotify_.native_handle(), buf, sizeof buf);
        if (n <= 0) break;  // EAGAIN: all read
        for (char* p = buf; p < buf + n;) {
            const auto* ev = reinterpret_cast<const inotify_event*>(p);
            p += sizeof(inotify_event) + ev->len;
            any = true;
            std::string name;
            if (ev->mask & IN_Q_OVERFLOW) {
                name = "(event queue overflow)";
            } else {
                auto it = watched_.find(ev->wd);
                name = it == watched_.end() ? std::string("?") : it->second;
                if (ev->len > 0 && ev->name[0] != '\0') name += "/" + std::string(ev->name);
            }
            if (seen_.size() < kNamesLogged &&
                std::find(seen_.begin(), seen_.end(), name) == seen_.end())
                seen_.push_back(std::move(name));
        }
    }
    if (any) changed();
}

void CertWatcher::changed() {
    const auto now = std::chrono::steady_clock::now();
    if (!pending_) {
        pending_ = true;
        first_event_ = now;
    }
    debounce_.expires_at(std::min(now + options_.debounce, first_event_ + options_.max_delay));
    debounce_.async_wait([this](error_code ec) {
        if (!ec && !stopped_) fire();
    });
}

void CertWatcher::fire() {
    pending_ = false;
    std::string names;
    for (const auto& n : seen_) names += (names.empty() ? "" : ", ") + n;
    seen_.clear();
    spdlog::debug("certificate watch: changes in {}", names.empty() ? "(retry)" : names);
    sync_watches();
    on_change_();
}

}  // namespace pggw
