// SCRAM-SHA-256 messages (RFC 5802 section 7, RFC 7677), parsed and built as PostgreSQL's
// server (src/backend/libpq/auth-scram.c) and libpq (src/interfaces/libpq/fe-auth-scram.c)
// do, with their error texts. Pure functions on whole messages (the SASL payload of one
// PostgreSQL message); every parser is bounded and safe on any input (fuzz entry points:
// parse_client_first, parse_client_final, parse_server_first, parse_server_final).
//
// What PostgreSQL refuses, pggw refuses with the same errmsg/errdetail/SQLSTATE: an empty
// message or one with a NUL byte, an unknown gs2 flag, an authzid ("a="), a channel-binding
// type other than tls-server-end-point, a mandatory extension ("m="), a nonce with characters
// outside printable ASCII or a comma, a missing or malformed proof, garbage after the proof.
// Like PostgreSQL, pggw ignores (but syntax-checks) optional extensions after the nonce in
// client-first and client-final, and ignores the user name of client-first (the startup
// message names the user).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tls_backends/tls.hpp"

namespace pggw::auth {

inline constexpr std::string_view kScramSha256 = "SCRAM-SHA-256";
inline constexpr std::string_view kScramSha256Plus = "SCRAM-SHA-256-PLUS";
inline constexpr std::string_view kTlsServerEndPoint = "tls-server-end-point";

// SQLSTATEs PostgreSQL uses in SCRAM (errcodes.txt).
inline constexpr std::string_view kProtocolViolation = "08P01";
inline constexpr std::string_view kInvalidAuthorizationSpecification = "28000";
inline constexpr std::string_view kInvalidPassword = "28P01";
inline constexpr std::string_view kFeatureNotSupported = "0A000";

// Bounds for hostile input. PostgreSQL bounds an authentication message at 65535 bytes
// (PG_MAX_AUTH_TOKEN_LENGTH); pggw's SCRAM messages are far smaller: libpq's longest is a
// client-final with SHA-512 binding data (about 200 bytes).
inline constexpr std::size_t kMaxScramMessage = 4096;
inline constexpr std::size_t kMaxNonce = 1024;  // characters of a nonce (libpq sends 24)

// What was wrong, as PostgreSQL reports it: SQLSTATE, errmsg, errdetail (may be empty). Texts
// name no client-supplied byte except PostgreSQL's sanitized character ('x' or 0xNN).
struct ScramError {
    std::string_view sqlstate;
    std::string message;
    std::string detail;
};

// ---- client-first-message: gs2-header client-first-message-bare ----
struct ClientFirstMessage {
    char cbind_flag = 'n';   // 'n' (no binding support), 'y' (supported, not offered), 'p'
    std::string gs2_header;  // "n,,", "y,," or "p=tls-server-end-point,,"
    std::string bare;        // client-first-message-bare: part of AuthMessage
    std::string user;        // n= value; ignored, as PostgreSQL ignores it
    std::string nonce;       // c-nonce
};
// plus_selected: the client chose SCRAM-SHA-256-PLUS (the server offered it); binding_offered:
// the server offered -PLUS (it could bind), which turns a 'y' flag into a downgrade, refused
// with 28000 "SCRAM channel binding negotiation error". The checks run in PostgreSQL's order.
std::optional<ClientFirstMessage> parse_client_first(std::string_view msg, bool plus_selected,
                                                     bool binding_offered, ScramError& error);
// gs2 header for a flag: 'n' -> "n,,", 'y' -> "y,,", 'p' -> "p=tls-server-end-point,,".
std::string gs2_header(char cbind_flag);
// libpq's client-first-message: gs2 header, empty user name, nonce.
std::string build_client_first(char cbind_flag, std::string_view nonce);

// ---- server-first-message: r=<client+server nonce>,s=<salt>,i=<iterations> ----
struct ServerFirstMessage {
    std::string nonce;  // the whole nonce (client's part first)
    std::vector<std::uint8_t> salt;
    std::uint32_t iterations = 0;
};
// As libpq reads it: the nonce must start with client_nonce (compared in constant time) and be
// longer than it; the salt valid base64; iterations a positive decimal int; nothing after.
// Errors are libpq's texts (sqlstate 08P01).
std::optional<ServerFirstMessage> parse_server_first(std::string_view msg,
                                                     std::string_view client_nonce,
                                                     ScramError& error);
std::string build_server_first(std::string_view nonce, std::span<const std::uint8_t> salt,
                               std::uint32_t iterations);

// ---- client-final-message: c=<base64 cbind-input>,r=<nonce>[,ext...],p=<proof> ----
struct ClientFinalMessage {
    std::string channel_binding;  // the c= value as sent (base64 of gs2 header + cbind data)
    std::string nonce;
    tls::Sha256Digest proof{};
    std::string without_proof;  // client-final-message-without-proof: part of AuthMessage
};
// Syntax only; the server checks c= against what it expects (channel_binding_attribute) and
// the nonce against its own.
std::optional<ClientFinalMessage> parse_client_final(std::string_view msg, ScramError& error);
// The c= value: base64(gs2_header(flag) + cbind_data); cbind_data only with flag 'p'.
std::string channel_binding_attribute(char cbind_flag, std::span<const std::uint8_t> cbind_data);
// "c=<channel_binding>,r=<nonce>"
std::string build_client_final_without_proof(std::string_view channel_binding,
                                             std::string_view nonce);
// without_proof ",p=<base64 proof>"
std::string build_client_final(std::string_view without_proof, const tls::Sha256Digest& proof);

// ---- server-final-message: v=<base64 ServerSignature> or e=<server-error-value> ----
struct ServerFinalMessage {
    std::optional<tls::Sha256Digest> verifier;  // v=
    std::string error;                          // e= value, when no verifier
};
// As libpq reads it: e= is reported by the caller ("error received from server in SCRAM
// exchange: ..."); v= must decode to 32 bytes; nothing may follow.
std::optional<ServerFinalMessage> parse_server_final(std::string_view msg, ScramError& error);
std::string build_server_final(const tls::Sha256Digest& server_signature);

// Whether every byte is SCRAM "printable" (%x21-2B / %x2D-7E: printable ASCII but ',').
bool scram_printable(std::string_view s);

}  // namespace pggw::auth
