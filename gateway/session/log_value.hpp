// Values in pggw's log lines, logfmt style: a value that a client chose (user, database, ...)
// or that has spaces is quoted, with quotes, backslashes and control bytes escaped, so that
// no client string can forge a line, a key=value pair or a terminal escape sequence.
#pragma once

#include <string>
#include <string_view>

namespace pggw {

// Bare when it is non-empty and has nothing but printable ASCII without space, '"', '=' and
// '\\'; else "quoted" with \" \\ \n \r \t and \xNN escapes (bytes >= 0x7f too).
std::string log_value(std::string_view v);

}  // namespace pggw
