// SCRAM channel binding through pggw.
//
// SCRAM-SHA-256-PLUS (tls-server-end-point) binds the client's proof to a hash of the
// certificate of the TLS peer the client sees: pggw's. PostgreSQL checks it against its own
// certificate, and offers -PLUS only on a TLS connection. So through pggw it passes when the
// server leg is plaintext (PostgreSQL never offers -PLUS) or when pggw presents the very
// certificate PostgreSQL presents. Otherwise a client that picks -PLUS would fail with a bare
// "SCRAM channel binding check failed"; pggw stops it at its SASLInitialResponse instead and
// says why.
//
// A plaintext client leg in front of a TLS server leg is the other trap: PostgreSQL offers
// -PLUS (its connection is TLS) and libpq refuses such an offer over a non-SSL connection
// ("server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection"). There pggw
// drops -PLUS from the server's AuthenticationSASL list: the client answers with gs2 flag 'n'
// (no binding support), which PostgreSQL accepts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "tls_backends/tls.hpp"

namespace pggw {

// Whether a -PLUS exchange over a TLS server leg can succeed through pggw: pggw's client-leg
// leaf certificate is the server's (same SHA-256 of the DER encoding). A plaintext server leg
// never offers -PLUS: the question does not arise.
bool channel_binding_can_pass(const tls::Context* client_leg,
                              const tls::CertificateHash& server_certificate);

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

// Rewrites the server's first authentication request: AuthenticationSASL (R, code 10) loses
// SCRAM-SHA-256-PLUS from its mechanism list. NegotiateProtocolVersion messages before it pass
// unchanged; any other first message ends the filter. Holds bytes back until that first
// message is complete.
class SaslOfferFilter {
  public:
    // The bytes to send on now (a view of `in`, or of held bytes; empty: need more).
    // Valid until the next call.
    std::span<const std::uint8_t> feed(std::span<const std::uint8_t> in);
    bool stripped() const { return stripped_; }
    // What feed() returned has been sent: once the filter is done, the bytes it held go (an
    // idle session keeps none).
    void sent() {
        if (done_ && !held_.empty()) std::vector<std::uint8_t>().swap(held_);
    }

  private:
    void strip(std::size_t pos, std::uint32_t len);
    bool done_ = false;
    bool stripped_ = false;
    std::vector<std::uint8_t> held_;
};

// What a session runs when channel binding cannot pass:
//  - server leg TLS, client leg plaintext: the -PLUS offer is filtered (libpq would refuse it);
//  - server leg TLS, client leg TLS with another certificate: a -PLUS choice is refused;
//  - server leg plaintext: PostgreSQL offers -PLUS only over TLS, so an offer there comes from
//    something that is not a genuine PostgreSQL (or from a man in the middle): filtered.
class ChannelBindingGuard {
  public:
    enum Action { strip_offer, refuse_plus };
    explicit ChannelBindingGuard(Action a) : action_(a) {}
    // The guard for a session, if it needs one.
    static std::optional<ChannelBindingGuard> for_legs(bool client_tls, bool server_tls,
                                                       bool channel_binding_ok) {
        if (!server_tls) return ChannelBindingGuard(strip_offer);
        if (!client_tls) return ChannelBindingGuard(strip_offer);
        if (!channel_binding_ok) return ChannelBindingGuard(refuse_plus);
        return std::nullopt;
    }
    // server to client: what to send on now (empty: wait for more).
    std::span<const std::uint8_t> server_bytes(std::span<const std::uint8_t> in) {
        return action_ == strip_offer ? filter_.feed(in) : in;
    }
    // client to server: true when the client chose SCRAM-SHA-256-PLUS (refuse it).
    bool client_chose_plus(std::span<const std::uint8_t> in) {
        return action_ == refuse_plus && watch_.feed(in) == SaslMechanismWatch::plus;
    }
    // server_bytes' answer has been sent on.
    void server_bytes_sent() { filter_.sent(); }
    // strip_offer: the server did offer -PLUS (and it was removed).
    bool stripped() const { return filter_.stripped(); }

  private:
    Action action_;
    SaslOfferFilter filter_;
    SaslMechanismWatch watch_;
};

}  // namespace pggw
