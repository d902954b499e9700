// The pure part of the server leg's negotiation: libpq's sslmode semantics as a plan, the
// one-byte answer to an SSLRequest, and what pggw may log of a reply it cannot trust. No I/O;
// server_connection.cpp drives it.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "gateway/app/config.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::server_negotiation {

// README.SSL's client flow: the single byte PostgreSQL answers an SSLRequest with.
enum class SslAnswer {
    tls,        // 'S': TLS handshake on the same connection
    plaintext,  // 'N': the server has no TLS (ssl = off); startup may go on in plaintext
    error,      // 'E': a server too old to know the request; its text is unauthenticated
    unknown,    // anything else: fail
};
SslAnswer classify_ssl_answer(std::uint8_t byte);

// How one --server-tls mode connects (libpq's sslmode):
//   disable     plaintext only
//   allow       plaintext first; TLS on a fresh connection only when the first reply to the
//               StartupMessage is an ErrorResponse (nothing relayed to the client yet)
//   prefer      SSLRequest; plaintext if the server answers 'N', or on a fresh connection
//               if it answers 'E' or the TLS handshake fails
//   require     SSLRequest; TLS or nothing (verifies the chain when --server-ca is given,
//               as libpq does when a root certificate file exists)
//   verify-ca   TLS, chain verified against --server-ca
//   verify-full TLS, chain and host name (SAN, then CN) verified
struct Plan {
    bool try_tls_first = false;       // send an SSLRequest on the first connection
    bool plaintext_fallback = false;  // 'N' / 'E' may go on without TLS
    bool tls_retry_on_error = false;  // allow: retry with TLS after an ErrorResponse
    tls::Verify verify = tls::Verify::none;
};
Plan plan_for(TlsMode mode, bool have_ca);

// Whether the server leg can use TLS in this mode at all (a context must be built).
inline bool uses_tls(TlsMode mode) {
    return mode != TlsMode::disable;
}

// SNI and the name verify-full checks: --server-sni, else the --server host (the engines send
// no SNI for an IP literal, and check an IP literal against IP SANs / the CN as libpq does).
std::string tls_hostname(const Config& cfg);

// The SSLRequest packet.
std::span<const std::uint8_t> ssl_request();

// Whether bytes start a CancelRequest (which gets no reply) rather than a StartupMessage.
bool is_cancel_request(std::span<const std::uint8_t> packet);

// For the log only, marked as unverified: the M field of an ErrorResponse (or the printable
// bytes when it is not one), control characters escaped, at most max_len characters.
std::string unverified_text(std::span<const std::uint8_t> bytes, std::size_t max_len = 200);

}  // namespace pggw::server_negotiation
