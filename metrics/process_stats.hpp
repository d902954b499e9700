// process_* metrics read from /proc/self, with the standard Prometheus client semantics.
#pragma once

#include <optional>

namespace pggw::metrics::detail {

struct ProcessStats {
    std::optional<double> cpu_seconds;     // utime + stime
    std::optional<double> start_time;      // unix seconds
    std::optional<double> virtual_bytes;   // vsize
    std::optional<double> resident_bytes;  // rss pages * page size
    std::optional<double> open_fds;        // entries of /proc/self/fd
    std::optional<double> max_fds;         // soft "Max open files"
};

// Any field that cannot be read is left empty (its series is then omitted).
ProcessStats read_process_stats();

}  // namespace pggw::metrics::detail
