// SCRAM channel binding through pggw.
//
// SCRAM-SHA-256-PLUS (tls-server-end-point) binds the client's proof to a hash of the
// certificate of the TLS peer the client sees: pggw's. PostgreSQL checks it against its own
// certificate, and offers -PLUS only on a TLS connection. So through pggw it passes when the
// server leg is plaintext (PostgreSQL never offers -PLUS) or when pggw presents the very
// certificate PostgreSQL presents. Otherwise a client that picks -PLUS would fail with a bare
// "SCRAM channel binding check failed"; pggw stops it at its SASLInitialResponse instead and
// says why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tls_backends/tls.hpp"

namespace pggw {

// Whether a -PLUS exchange can succeed through pggw: the server leg is plaintext
// (server_der empty), or pggw's client-leg leaf certificate is byte for byte the server's.
bool channel_binding_can_pass(const tls::Context* client_leg,
                              const std::vector<std::uint8_t>& server_der);

// What pggw tells a client that picked SCRAM-SHA-256-PLUS when it cannot pass (SQLSTATE 28000).
extern const std::string_view kChannelBindingRefusal;

// Watches the client-to-server stream after the StartupMessage for the first message; when
// it is a SASLInitialResponse ('p', mechanism name NUL-terminated) naming SCRAM-SHA-256-PLUS,
// the verdict is `plus`. Any other first message ends the watch (`other`). Bytes may come in
// any split.
class SaslMechanismWatch {
  public:
    enum Verdict { undecided, other, plus };
    Verdict feed(std::span<const std::uint8_t> data);
    Verdict verdict() const { return verdict_; }

  private:
    Verdict verdict_ = undecided;
    std::size_t seen_ = 0;  // bytes of the first message seen so far
    std::uint32_t length_ = 0;
};

}  // namespace pggw
