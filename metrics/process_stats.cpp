#include "metrics/process_stats.hpp"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace pggw::metrics::detail {
namespace {

std::optional<std::string> read_file(const char* path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Boot time (btime in /proc/stat), to turn starttime (clock ticks since boot) into unix time.
std::optional<double> boot_time() {
    auto stat = read_file("/proc/stat");
    if (!stat) return std::nullopt;
    std::istringstream in(*stat);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
    }
    return std::nullopt;
}

void read_stat(ProcessStats& out) {
    auto stat = read_file("/proc/self/stat");
    if (!stat) return;
    // Field 2 (comm) is in parentheses and may hold spaces: parse after the last ')'.
    const auto close = stat->rfind(')');
    if (close == std::string::npos) return;
    std::istringstream in(stat->substr(close + 1));
    std::vector<std::string> f;  // f[0] is field 3 (state)
    for (std::string tok; in >> tok;) f.push_back(tok);
    if (f.size() < 22) return;
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    try {
        out.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;             // utime, stime
        if (auto bt = boot_time()) out.start_time = *bt + std::stod(f[19]) / ticks;  // starttime
        out.virtual_bytes = std::stod(f[20]);                                        // vsize
        out.resident_bytes = std::stod(f[21]) * page;                                // rss
    } catch (const std::exception&) {
    }
}

void read_fds(ProcessStats& out) {
    DIR* d = opendir("/proc/self/fd");
    if (d == nullptr) return;
    double n = 0;
    while (const dirent* e = readdir(d)) {
        if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
    out.open_fds = n - 1;  // not counting the descriptor used to list the directory
}

void read_limits(ProcessStats& out) {
    auto limits = read_file("/proc/self/limits");
    if (!limits) return;
    std::istringstream in(*limits);
    std::string line;
    while (std::getline(in, line)) {
        static constexpr std::string_view key = "Max open files";
        if (line.rfind(key, 0) != 0) continue;
        std::istringstream rest(line.substr(key.size()));
        std::string soft;
        rest >> soft;
        if (soft == "unlimited") {
            out.max_fds = 1.8446744073709552e19;
        } else {
            try {
                out.max_fds = std::stod(soft);
            } catch (const std::exception&) {
            }
        }
        return;
    }
}

}  // namespace

ProcessStats read_process_stats() {
    ProcessStats s;
    read_stat(s);
    read_fds(s);
    read_limits(s);
    return s;
}

}  // namespace pggw::metrics::detail
