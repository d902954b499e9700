// pggw as the SCRAM-SHA-256(-PLUS) client toward PostgreSQL (server leg): libpq's
// fe-auth-scram.c behaviour and texts, sans-IO. The caller (session glue) answers
// AuthenticationSASL with SASLInitialResponse(mechanism(), client_first(...)), then each
// AuthenticationSASLContinue with server_first() (reply: send data as SASLResponse) and
// AuthenticationSASLFinal with server_final() (done: PostgreSQL proved it knows the secret).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/auth/scram_secret.hpp"
#include "gateway/auth/scram_server.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::auth {

// What pggw proves itself with:
//  - secret + client_key: the user's SCRAM secret from the auth source and the ClientKey the
//    client leg recovered (ScramServer::client_key()). PostgreSQL must hold the same secret:
//    a different salt or iteration count in its server-first-message gives Kind stale.
//  - password: a plaintext auth-file entry; SaltedPassword is computed with PostgreSQL's salt
//    and iteration count, so any secret PostgreSQL holds for that password works (the
//    ServerKey that checks PostgreSQL's signature comes from the same computation). When a
//    password is given it is used, whatever else is.
struct ScramCredentials {
    std::optional<ScramSecret> secret;
    std::optional<tls::Sha256Digest> client_key;
    std::optional<std::string> password;

    static ScramCredentials from_secret(ScramSecret secret, const tls::Sha256Digest& client_key) {
        ScramCredentials c;
        c.secret = std::move(secret);
        c.client_key = client_key;
        return c;
    }
    static ScramCredentials from_password(std::string password) {
        ScramCredentials c;
        c.password = std::move(password);
        return c;
    }
};

class ScramClient {
  public:
    ScramClient(const tls::Crypto& crypto, ScramCredentials credentials);
    // For tests: the client nonce to use instead of a random one.
    ScramClient(const tls::Crypto& crypto, ScramCredentials credentials,
                std::string fixed_client_nonce);

    // Picks from the server's AuthenticationSASL list: SCRAM-SHA-256-PLUS when channel_binding
    // (the server leg's tls-server-end-point data, tls::HandshakeInfo::server_end_point) is
    // non-empty and it is offered, else SCRAM-SHA-256 (gs2 flag 'y' when pggw could bind but
    // -PLUS was not offered, as libpq does; 'n' without binding data). nullopt and error when
    // neither is offered, or the credentials cannot prove anything. Returns the
    // client-first-message (SASLInitialResponse data).
    std::optional<std::string> client_first(std::span<const std::string> offered,
                                            std::vector<std::uint8_t> channel_binding,
                                            std::string& error);
    std::string_view mechanism() const { return mechanism_; }

    // AuthenticationSASLContinue data -> reply (client-final-message), stale (the secret pggw
    // holds is not PostgreSQL's: "auth source out of date"), or invalid (message, detail).
    ScramStep server_first(std::string_view msg);
    // AuthenticationSASLFinal data -> done when v= is HMAC(ServerKey, AuthMessage) (constant
    // time): pggw reached a server that knows the secret; invalid otherwise ("incorrect server
    // signature"), or e= with libpq's text.
    ScramStep server_final(std::string_view msg);

  private:
    enum class State { init, nonce_sent, proof_sent, finished, failed };
    ScramStep fail(std::string message, std::string detail = {});

    const tls::Crypto& crypto_;
    ScramCredentials credentials_;
    std::string fixed_nonce_;
    State state_ = State::init;
    std::string_view mechanism_;
    char cbind_flag_ = 'n';
    std::vector<std::uint8_t> binding_;
    std::string client_nonce_;
    std::string client_first_bare_;
    std::string server_first_;
    std::string client_final_without_proof_;
    tls::Sha256Digest server_key_{};
};

}  // namespace pggw::auth
