// Loads TLS backend modules with dlopen(RTLD_NOW | RTLD_LOCAL).
//
// Why modules: libwolfssl exports six OpenSSL-named symbols that BoringSSL's libssl also
// exports (SSL_SESSION_set1_id, ...). Linked into one executable, whichever library the
// dynamic linker sees first would serve both. Loaded RTLD_LOCAL, neither module's libraries
// enter the global scope, so each library only ever binds to itself.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>

#include "tls_backends/tls.hpp"

namespace pggw::tls {
namespace {

std::filesystem::path executable_dir() {
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path{} : p.parent_path();
}

}  // namespace

std::vector<std::string> compiled_backends() {
    return {PGGW_BACKEND_LIST};
}

Backend* load_backend(std::string_view name, std::string& error) {
    static std::mutex mu;
    static std::map<std::string, Backend*, std::less<>> loaded;
    std::lock_guard lock(mu);
    if (auto it = loaded.find(name); it != loaded.end()) return it->second;

    auto compiled = compiled_backends();
    if (std::find(compiled.begin(), compiled.end(), name) == compiled.end()) {
        error = "TLS library \"" + std::string(name) + "\" is not compiled into this build";
        return nullptr;
    }
    std::string file = "libpggw_tls_" + std::string(name) + ".so";
    std::vector<std::filesystem::path> dirs;
    if (const char* env = std::getenv("PGGW_TLS_MODULE_DIR"); env && *env) dirs.emplace_back(env);
    dirs.push_back(executable_dir());
    dirs.emplace_back(PGGW_MODULE_INSTALL_DIR);

    std::string tried;
    for (const auto& dir : dirs) {
        auto path = dir / file;
        if (!std::filesystem::exists(path)) {
            tried += " " + path.string();
            continue;
        }
        void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            error = "cannot load " + path.string() + ": " + dlerror();
            return nullptr;
        }
        using Entry = Backend* (*)();
        auto entry = reinterpret_cast<Entry>(dlsym(handle, "pggw_tls_backend_v1"));
        if (!entry) {
            error = path.string() + " has no pggw_tls_backend_v1";
            return nullptr;
        }
        Backend* backend = entry();
        loaded.emplace(std::string(name), backend);
        return backend;
    }
    error = "TLS module " + file + " not found (looked in" + tried + ")";
    return nullptr;
}

}  // namespace pggw::tls
