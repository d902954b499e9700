// The pggw process: workers, the admin endpoint, signals (SIGTERM/SIGINT drain, SIGHUP reload).
#pragma once

#include "gateway/config.hpp"

namespace pggw {

// Runs until drained or stopped; returns the process exit code.
int run_gateway(const Config& cfg);

// Loads the TLS library named by the config (or the first compiled one); nullptr and a
// message on failure.
namespace tls {
class Backend;
}
tls::Backend* load_tls_library(const std::string& name, std::string& error);
std::string compiled_libraries_csv();

}  // namespace pggw
