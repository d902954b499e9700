// What the TLS test files share: the fixture certificates (tests/tls/fixtures, make.sh), which
// backends this build has, loading one, and the server options pggw itself uses.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "tls_backends/tls.hpp"

namespace pggw::tls::test {

inline std::string fixture(const std::string& name) {
    return (std::filesystem::path(__FILE__).parent_path() / "fixtures" / name).string();
}

inline bool compiled(const std::string& name) {
    auto v = compiled_backends();
    return std::find(v.begin(), v.end(), name) != v.end();
}

inline Backend* load(const std::string& name) {
    std::string error;
    Backend* b = load_backend(name, error);
    EXPECT_NE(b, nullptr) << name << ": " << error;
    return b;
}

inline Options server_options(const std::string& cert = "server") {
    Options o;
    o.role = Role::server;
    o.cert_file = fixture(cert + ".crt");
    o.key_file = fixture(cert + ".key");
    o.alpn = {"postgresql"};
    return o;
}

}  // namespace pggw::tls::test
