// The pggw process: workers, the admin endpoint, signals (SIGTERM/SIGINT drain, SIGHUP reload).
#pragma once

#include "gateway/app/config.hpp"

namespace pggw {

// Runs until drained or stopped; returns the process exit code.
int run_gateway(const Config& cfg);

std::string compiled_libraries_csv();

}  // namespace pggw
