// wolfSSL and BoringSSL in one process: proof that neither library's OpenSSL-named symbols can
// interpose on the other's.
//
// libwolfssl exports six functions that BoringSSL's libssl also exports (ERR_load_SSL_strings,
// SSL_COMP_get_compression_methods, SSL_CTX_set_tmp_dh_callback, SSL_SESSION_get0_id_context,
// SSL_SESSION_set1_id, SSL_SESSION_set1_id_context). Each backend module is loaded with
// dlopen(RTLD_LOCAL) (loader.cpp), so its library stays out of the global scope: these tests
// check that no clashing name is visible globally, that a lookup in each module's own scope
// finds its own library's definition (and that the two definitions are different code in
// different files), and that handshakes across the two libraries work in one process.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <link.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/tls/pump.hpp"
#include "tests/tls/test_support.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::tls::test {
namespace {

constexpr const char* kClashing[] = {
    "ERR_load_SSL_strings",        "SSL_COMP_get_compression_methods",
    "SSL_CTX_set_tmp_dh_callback", "SSL_SESSION_get0_id_context",
    "SSL_SESSION_set1_id",         "SSL_SESSION_set1_id_context",
};

// The file a loaded address belongs to ("" if none).
std::string file_of(const void* address) {
    Dl_info info{};
    if (!address || dladdr(address, &info) == 0 || !info.dli_fname) return {};
    return info.dli_fname;
}

// Paths of every loaded object whose path contains `part`.
std::vector<std::string> loaded_objects(const std::string& part) {
    struct Ctx {
        const std::string* part;
        std::vector<std::string> found;
    } ctx{&part, {}};
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) {
            auto* c = static_cast<Ctx*>(data);
            std::string name = info->dlpi_name ? info->dlpi_name : "";
            if (name.find(*c->part) != std::string::npos) c->found.push_back(name);
            return 0;
        },
        &ctx);
    return ctx.found;
}

// A handle on an object that is already loaded (RTLD_NOLOAD: nothing new enters any scope).
struct Handle {
    void* h = nullptr;
    explicit Handle(const std::string& path) : h(dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD)) {}
    ~Handle() {
        if (h) dlclose(h);
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
};

class WolfsslIsolation : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!compiled("wolfssl")) GTEST_SKIP() << "wolfssl is not compiled into this build";
        wolf_ = load("wolfssl");
        ASSERT_NE(wolf_, nullptr);
        if (compiled("boringssl")) {
            boring_ = load("boringssl");
            ASSERT_NE(boring_, nullptr);
        }
    }
    // Visible skip where the other library is not compiled in.
    bool without_boringssl() const { return boring_ == nullptr; }

    Backend* wolf_ = nullptr;
    Backend* boring_ = nullptr;
};

TEST_F(WolfsslIsolation, ClashingSymbolsAreNotGlobal) {
    // With both modules loaded, the global scope (the executable and what it links) knows none
    // of the clashing names, nor either library's own entry points.
    for (const char* sym : kClashing) {
        EXPECT_EQ(dlsym(RTLD_DEFAULT, sym), nullptr) << sym;
    }
    EXPECT_EQ(dlsym(RTLD_DEFAULT, "wolfSSL_Init"), nullptr);
    EXPECT_EQ(dlsym(RTLD_DEFAULT, "SSL_CTX_new"), nullptr);
    // The modules themselves export only their entry point.
    Handle module(file_of(wolf_));
    ASSERT_NE(module.h, nullptr) << file_of(wolf_);
    EXPECT_NE(dlsym(module.h, "pggw_tls_backend_v1"), nullptr);
    EXPECT_EQ(file_of(dlsym(module.h, "pggw_tls_backend_v1")), file_of(wolf_));
}

TEST_F(WolfsslIsolation, EachModuleBindsItsOwnLibrary) {
    if (without_boringssl()) GTEST_SKIP() << "boringssl is not compiled into this build";
    auto wolf_libs = loaded_objects("libwolfssl.so");
    auto boring_libs = loaded_objects("/android/libssl.so");
    ASSERT_EQ(wolf_libs.size(), 1u) << "libwolfssl loaded " << wolf_libs.size() << " times";
    ASSERT_EQ(boring_libs.size(), 1u)
        << "BoringSSL libssl loaded " << boring_libs.size() << " times";
    Handle wolf_lib(wolf_libs[0]), boring_lib(boring_libs[0]);
    Handle wolf_module(file_of(wolf_)), boring_module(file_of(boring_));
    ASSERT_NE(wolf_lib.h, nullptr);
    ASSERT_NE(boring_lib.h, nullptr);
    ASSERT_NE(wolf_module.h, nullptr);
    ASSERT_NE(boring_module.h, nullptr);

    for (const char* sym : kClashing) {
        SCOPED_TRACE(sym);
        void* in_wolf = dlsym(wolf_lib.h, sym);
        void* in_boring = dlsym(boring_lib.h, sym);
        // Both libraries define it (the clash is real)...
        ASSERT_NE(in_wolf, nullptr);
        ASSERT_NE(in_boring, nullptr);
        // ...as two different functions, each in its own file.
        EXPECT_NE(in_wolf, in_boring);
        EXPECT_EQ(file_of(in_wolf), wolf_libs[0]);
        EXPECT_NE(file_of(in_boring).find("/android/"), std::string::npos) << file_of(in_boring);
        // A lookup in a module's scope (the module and its dependencies, as its relocations
        // were resolved) finds that module's library, never the other one.
        EXPECT_EQ(dlsym(wolf_module.h, sym), in_wolf);
        EXPECT_EQ(dlsym(boring_module.h, sym), in_boring);
    }
    // And each module's library resolves its own references the same way: libwolfssl's scope
    // holds no BoringSSL, BoringSSL's holds no wolfSSL.
    EXPECT_EQ(dlsym(boring_module.h, "wolfSSL_Init"), nullptr);
    EXPECT_EQ(dlsym(wolf_module.h, "SSL_CTX_set_select_certificate_cb"), nullptr);
}

TEST_F(WolfsslIsolation, HandshakesAcrossLibraries) {
    if (without_boringssl()) GTEST_SKIP() << "boringssl is not compiled into this build";
    Options so;
    so.role = Role::server;
    so.cert_file = fixture("server.crt");
    so.key_file = fixture("server.key");
    so.alpn = {"postgresql"};
    Options co;
    co.role = Role::client;
    co.verify = Verify::chain_and_hostname;
    co.ca_file = fixture("ca.crt");
    co.alpn = {"postgresql"};
    EngineOptions ceo;
    ceo.hostname = "localhost";

    for (auto [server, client] : {std::pair{boring_, wolf_}, std::pair{wolf_, boring_}}) {
        for (Version v : {Version::tls1_2, Version::tls1_3}) {
            SCOPED_TRACE(std::string(server->name()) + " server, " + std::string(client->name()) +
                         (v == Version::tls1_3 ? " client, TLS 1.3" : " client, TLS 1.2"));
            auto c = co;
            c.max_version = v;
            std::string error;
            auto sctx = server->new_context(so, error);
            ASSERT_NE(sctx, nullptr) << error;
            auto cctx = client->new_context(c, error);
            ASSERT_NE(cctx, nullptr) << error;
            // Several connections from one context: session objects (where the clashing
            // SSL_SESSION_* names live) are made and freed by each library on its own.
            for (int i = 0; i < 3; ++i) {
                auto s = sctx->new_engine({});
                auto e = cctx->new_engine(ceo);
                auto r = run_handshake(*s, *e);
                ASSERT_TRUE(r.ok())
                    << failure_name(s->failure()) << ": " << s->failure_reason() << " / "
                    << failure_name(e->failure()) << ": " << e->failure_reason();
                EXPECT_EQ(s->info().cipher, e->info().cipher);
                EXPECT_EQ(s->info().version, v == Version::tls1_3 ? "TLSv1.3" : "TLSv1.2");
                EXPECT_EQ(s->info().alpn, "postgresql");
                EXPECT_EQ(s->info().sni, "localhost");
                EXPECT_EQ(send(*e, *s, "ping").data, "ping");
                EXPECT_EQ(send(*s, *e, "pong").data, "pong");
                ASSERT_EQ(e->shutdown(), Result::ok);
                EXPECT_EQ(deliver(*e, *s).result, Result::closed);
            }
        }
    }
}

}  // namespace
}  // namespace pggw::tls::test
