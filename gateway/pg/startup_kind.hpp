// The kinds of packet a client may open a connection with: one enum for the decoder, the
// negotiation and the `kind` label of pggw_startup_requests_total (metrics/metric_table.hpp
// names them in this order: ssl, gssenc, cancel, startup, direct_tls, invalid).
#pragma once

namespace pggw {

enum class StartupKind {
    ssl_request,
    gssenc_request,
    cancel_request,
    startup_message,
    direct_tls,  // a TLS ClientHello as the first bytes (PostgreSQL 17, sslnegotiation=direct)
    invalid,     // counted only: the decoder answers DecodeResult::invalid
};

}  // namespace pggw
