// pggw as the SCRAM-SHA-256(-PLUS) server toward the client (client leg), from a secret it
// holds (ScramSecret): PostgreSQL's auth-scram.c behaviour and texts, sans-IO. The caller
// (session glue) sends AuthenticationSASL with mechanisms(), feeds SASLInitialResponse to
// initial() and SASLResponse to response(), and sends what each step says:
//   reply          -> AuthenticationSASLContinue with data (server-first-message);
//   done           -> AuthenticationSASLFinal with data (server-final-message); the client is
//                     authenticated and client_key() is its ClientKey;
//   wrong_password -> ErrorResponse FATAL 28P01
//                     password_authentication_failed(user) (PostgreSQL sends no e=);
//   invalid        -> ErrorResponse FATAL sqlstate/message/detail (PostgreSQL's texts).
// After done, wrong_password or invalid the exchange is over.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/auth/scram_messages.hpp"
#include "gateway/auth/scram_secret.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::auth {

struct ScramStep {
    enum Kind {
        reply,           // data: the next message to send
        done,            // data: server-final (server), or nothing to send (client)
        wrong_password,  // server: the proof does not match StoredKey
        invalid,         // malformed or refused: sqlstate, message, detail
        stale,           // client: PostgreSQL's salt or iteration count is not the secret's
    } kind = invalid;
    std::string data;
    std::string_view sqlstate;
    std::string message;
    std::string detail;
};

// PostgreSQL's text for a failed password (SQLSTATE 28P01, kInvalidPassword).
std::string password_authentication_failed(std::string_view user);

// Raw bytes of the server nonce (PostgreSQL's SCRAM_RAW_NONCE_LEN), sent base64-encoded.
inline constexpr std::size_t kRawNonceLength = 18;

class ScramServer {
  public:
    // channel_binding: tls-server-end-point data of pggw's own certificate on the client leg
    // (tls::HandshakeInfo::server_end_point); empty when the client leg is plaintext or the
    // certificate names no hash: then -PLUS is not offered.
    ScramServer(const tls::Crypto& crypto, const ScramSecret& secret,
                std::vector<std::uint8_t> channel_binding);
    // For tests (RFC 7677's vector): the server nonce to use instead of a random one.
    ScramServer(const tls::Crypto& crypto, const ScramSecret& secret,
                std::vector<std::uint8_t> channel_binding, std::string fixed_server_nonce);

    // AuthenticationSASL's list: "SCRAM-SHA-256-PLUS" first when binding is possible, then
    // "SCRAM-SHA-256".
    std::vector<std::string_view> mechanisms() const;

    // SASLInitialResponse: the chosen mechanism and its data; nullopt when the message carried
    // no initial response (length -1): then the reply is an empty challenge and response()
    // takes the client-first-message. -> reply (server-first) or invalid.
    ScramStep initial(std::string_view mechanism,
                      std::optional<std::span<const std::uint8_t>> data);
    // SASLResponse. -> reply (server-first, after an empty challenge), done (server-final),
    // wrong_password or invalid.
    ScramStep response(std::span<const std::uint8_t> data);

    // After done: the client's ClientKey (proof XOR ClientSignature), checked against StoredKey.
    const tls::Sha256Digest& client_key() const { return client_key_; }
    std::string_view mechanism() const { return mechanism_; }
    // After done: whether the exchange was SCRAM-SHA-256-PLUS (the proof covers pggw's cert).
    bool channel_bound() const { return state_ == State::finished && plus_; }

  private:
    enum class State { init, awaiting_first, salt_sent, finished, failed };
    ScramStep client_first(std::string_view msg);
    ScramStep client_final(std::string_view msg);
    ScramStep fail(std::string_view sqlstate, std::string message, std::string detail = {});

    const tls::Crypto& crypto_;
    ScramSecret secret_;
    std::vector<std::uint8_t> binding_;
    std::string fixed_nonce_;
    State state_ = State::init;
    bool plus_ = false;
    std::string_view mechanism_;
    char cbind_flag_ = 'n';
    std::string client_nonce_;
    std::string server_nonce_;
    std::string client_first_bare_;
    std::string server_first_;
    tls::Sha256Digest client_key_{};
};

}  // namespace pggw::auth
