// BoringSSL: the Backend and the module's entry point (see boringssl_internal.hpp).
#include <openssl/crypto.h>

#include "tls_backends/boringssl_internal.hpp"

namespace pggw::tls::boringssl {
namespace {

class BoringsslBackend final : public Backend {
  public:
    std::string_view name() const override { return "boringssl"; }
    std::string version() const override {
        return std::string(OpenSSL_version(OPENSSL_VERSION)) +
               " (Debian android-libboringssl, API " + std::to_string(BORINGSSL_API_VERSION) + ")";
    }
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
}  // namespace pggw::tls::boringssl

extern "C" __attribute__((visibility("default"))) pggw::tls::Backend* pggw_tls_backend_v1() {
    static pggw::tls::boringssl::BoringsslBackend backend;
    return &backend;
}
