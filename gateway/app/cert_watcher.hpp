// Notices when a certificate, key or CA file pggw loaded changes on disk, so that it can be
// reloaded without a SIGHUP (cert-manager, a Kubernetes Secret mounted as files, certbot ...).
//
// inotify watches the DIRECTORIES, never the files: Kubernetes updates a mounted Secret by
// writing a new `..2026_...` directory and renaming a `..data` symlink over the old one (each
// file is a symlink through `..data`), and editors and certbot replace files by rename; a
// watch on the old inode would see none of that. Watched: the directory of each file as named
// and the directory of the file it resolves to (symlinks followed), re-evaluated after every
// change, so a chain of symlinks into another directory is followed too.
//
// Any event in those directories (create, rename in or out, write closed, delete, attributes)
// starts a debounce: on_change is called once `debounce` has passed with no further event, or
// `max_delay` after the first one at the latest. Whether anything the gateway reads really
// changed is for on_change to tell (files_digest). Runs on the io_context it is given (the
// gateway's main one); on_change runs there too.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <boost/asio/posix/stream_descriptor.hpp>

#include "gateway/net/asio.hpp"

namespace pggw {

struct CertWatcherOptions {
    std::chrono::steady_clock::duration debounce = std::chrono::milliseconds(500);
    std::chrono::steady_clock::duration max_delay = std::chrono::seconds(2);
    // A directory that cannot be watched (not there yet) is tried again this often.
    std::chrono::steady_clock::duration retry = std::chrono::seconds(5);
};

class CertWatcher {
  public:
    CertWatcher(asio::io_context& io, std::vector<std::string> files,
                std::function<void()> on_change, CertWatcherOptions options = {});
    ~CertWatcher();
    CertWatcher(const CertWatcher&) = delete;
    CertWatcher& operator=(const CertWatcher&) = delete;

    // Opens inotify and watches the directories. False (and error set) when inotify cannot be
    // used at all; a directory that cannot be watched yet is only logged, and retried.
    bool start(std::string& error);
    // Stops watching; on_change is not called afterwards.
    void stop();
    // The directories watched now.
    std::vector<std::string> directories() const;

  private:
    void sync_watches();
    void arm();
    void read_events();
    void changed();
    void fire();

    std::vector<std::string> files_;
    std::function<void()> on_change_;
    CertWatcherOptions options_;
    asio::posix::stream_descriptor inotify_;
    asio::steady_timer debounce_;
    asio::steady_timer retry_;
    std::map<int, std::string> watched_;  // watch descriptor -> directory
    std::vector<std::string> seen_;       // names in the events since the last on_change (log)
    bool pending_ = false;
    bool stopped_ = false;
    std::chrono::steady_clock::time_point first_event_{};
};

// The directories CertWatcher watches for these files.
std::vector<std::string> cert_watch_directories(const std::vector<std::string>& files);

// A digest of the files' contents (and of those that cannot be read): equal digests mean
// the files read the same as when the digest was taken.
std::string files_digest(const std::vector<std::string>& files);

}  // namespace pggw
