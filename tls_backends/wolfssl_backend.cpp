// Placeholder: the wolfSSL backend.
#include "tls_backends/tls.hpp"
extern "C" __attribute__((visibility("default"))) pggw::tls::Backend* pggw_tls_backend_v1() { return nullptr; }
