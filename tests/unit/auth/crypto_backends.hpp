// The SCRAM tests run on the crypto of every compiled TLS library (tls::Crypto), loaded as
// pggw loads it: the modules sit next to the test binary in the build directory.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tls_backends/tls.hpp"

namespace pggw::auth::testing {

inline const tls::Crypto& crypto_of(const std::string& backend) {
    std::string error;
    tls::Backend* b = tls::load_backend(backend, error);
    if (!b) throw std::runtime_error("cannot load TLS backend " + backend + ": " + error);
    return b->crypto();
}

inline std::vector<std::string> backends() {
    return tls::compiled_backends();
}

// For INSTANTIATE_TEST_SUITE_P: the backend name as the test's suffix.
inline std::string backend_name(const ::testing::TestParamInfo<std::string>& info) {
    return info.param;
}

inline std::span<const std::uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace pggw::auth::testing
