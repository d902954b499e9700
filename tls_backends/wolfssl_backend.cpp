// wolfSSL: the Backend and the module's entry point (see wolfssl_internal.hpp).
#include "tls_backends/wolfssl_internal.hpp"

namespace pggw::tls::wolfssl {
namespace {

class WolfsslBackend final : public Backend {
  public:
    WolfsslBackend() { wolfSSL_Init(); }
    std::string_view name() const override { return "wolfssl"; }
    std::string version() const override { return std::string("wolfSSL ") + wolfSSL_lib_version(); }
    std::uint32_t capabilities() const override {
        return cap_tls1_2 | cap_tls1_3 | cap_alpn | cap_client_certificates |
               cap_generate_certificates | cap_cipher_list;
    }
    std::unique_ptr<Context> new_context(const Options& opts, std::string& error) override {
        return create_context(opts, error);
    }
    bool generate_certificates(const CertificateRequest& req, std::string& error) override {
        return create_certificates(req, error);
    }
    const Crypto& crypto() const override { return crypto_primitives(); }
};

}  // namespace
}  // namespace pggw::tls::wolfssl

extern "C" __attribute__((visibility("default"))) pggw::tls::Backend* pggw_tls_backend_v1() {
    static pggw::tls::wolfssl::WolfsslBackend backend;
    return &backend;
}
