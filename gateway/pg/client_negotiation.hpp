// The server side of README.SSL, PostgreSQL's ProcessStartupPacket, as a pure step machine:
// bytes from the client go in (feed), the next thing to do comes out (next). No I/O: the
// session does what each Action says and reports back (feed, tls_established, peer_closed).
// Tested by feeding bytes at every split (tests/unit/pg/client_negotiation_test.cpp).
//
//   SSLRequest      'S' then a TLS handshake (TLS on), else 'N'; at most once
//   GSSENCRequest   'N' (pggw has no GSSAPI); at most once
//   direct TLS      a ClientHello as the first bytes: handshake requiring ALPN, if TLS is on
//   CancelRequest   forwarded to the server, in any mode, plaintext too
//   StartupMessage  the session starts, once the TLS policy (--client-tls) allows it
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/app/config.hpp"
#include "gateway/pg/refusal.hpp"
#include "gateway/pg/startup_kind.hpp"

namespace pggw {

// Why a negotiation ended without a session and without an ErrorResponse: the socket closes.
enum class NegotiationEnd {
    closed_before_startup,   // EOF before any byte
    incomplete_startup,      // EOF inside a packet, or between packets
    invalid_startup,         // malformed packet (detail says why)
    direct_tls_refused,      // a ClientHello while TLS is off
    plaintext_after_ssl,     // CVE-2021-23214: bytes behind an SSLRequest
    plaintext_after_gssenc,  // ... behind a GSSENCRequest
};
// The session's close reason for each (its log line's reason=).
std::string_view negotiation_end_name(NegotiationEnd e);

struct NegotiationAction {
    enum Kind {
        read,       // feed() more bytes (or peer_closed())
        reply,      // write the one byte `reply_byte` ('S' or 'N'), then next()
        start_tls,  // run the TLS handshake over `bytes` (already read ciphertext; direct TLS
                    // only) requiring ALPN when `direct`; then tls_established() or give up
        refuse,     // write ErrorResponse(sqlstate, message), close
        close,      // close without a word (`end` says why)
        cancel,     // forward the CancelRequest `bytes` to the server
        startup,    // the StartupMessage `bytes` goes to the server; the session begins
    } kind = read;
    // A packet of this kind was decoded to produce this action (pggw_startup_requests_total).
    std::optional<StartupKind> decoded;
    char reply_byte = 0;  // reply
    bool direct = false;
    std::span<const std::uint8_t> bytes;  // valid until the next feed()/next()
    std::string_view sqlstate;
    std::string message;
    Refusal refusal{};
    NegotiationEnd end{};
    std::string detail;  // invalid_startup: the decoder's reason, for the log
};

class ClientNegotiation {
  public:
    // client_host: the client's address, as the tls_required refusal names it.
    ClientNegotiation(TlsMode mode, std::string client_host);

    NegotiationAction next();
    void feed(std::span<const std::uint8_t> bytes);
    // The handshake start_tls asked for succeeded; peer_common_name: the verified client
    // certificate's CN (empty without one).
    void tls_established(std::string_view peer_common_name);
    // Why the connection ended when the peer closed it while next() said read.
    NegotiationEnd peer_closed() const;

    bool encrypted() const { return encrypted_; }
    // Set once a StartupMessage was decoded (also when it is then refused).
    bool got_startup() const { return got_startup_; }
    const std::string& user() const { return user_; }
    const std::string& database() const { return database_; }

  private:
    NegotiationAction decode();
    NegotiationAction refuse(std::string_view sqlstate, std::string message, Refusal why);
    NegotiationAction end(NegotiationEnd why);

    const TlsMode mode_;
    const std::string client_host_;
    std::vector<std::uint8_t> in_;
    std::vector<std::uint8_t> packet_;  // what a cancel/startup action's bytes point to
    bool first_ = true;                 // nothing decoded yet (direct TLS is recognised only then)
    bool ssl_done_ = false, gss_done_ = false;
    bool pending_tls_ = false;  // replied 'S': next() says start_tls
    bool encrypted_ = false;
    std::string peer_cn_;
    bool got_startup_ = false;
    std::string user_, database_;
};

}  // namespace pggw
