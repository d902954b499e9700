// pggw's log: stderr, one line per event, as text (the default) or JSON (--log-format json:
// one object per line with stable keys: time, level, pid, msg, and the key=value fields the
// message carries: peer, via, user, database, worker, reason, ...).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>

namespace pggw {

enum class LogFormat { text, json };
bool parse_log_format(std::string_view s, LogFormat& out);

// Installs the stderr logger with the given format (called before anything is logged, and
// again once the command line is read).
void setup_logging(LogFormat format);

// The JSON formatter, for tests.
std::unique_ptr<spdlog::formatter> make_json_formatter();

}  // namespace pggw
