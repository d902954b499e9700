// Definitions the parser sources refer to but the fuzz targets never reach, so that the fuzz
// library need not compile the TLS-context code they live in.
#include "gateway/app/tls_contexts.hpp"

namespace pggw {

// gateway/app/tls_contexts.cpp; used by load_auth_file (file permissions), which no target
// calls (they fuzz parse_auth_file, the text).
std::string key_permission_problem(unsigned, unsigned, unsigned) {
    return "not available in the fuzz build";
}

}  // namespace pggw
