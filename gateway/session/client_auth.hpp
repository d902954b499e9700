// The client leg of SCRAM in the gateway (--auth-file): pggw is the SCRAM server. It offers
// SCRAM-SHA-256-PLUS (bound to its own certificate, when the client leg is TLS) and
// SCRAM-SHA-256 with the salt and iteration count of the user's secret, checks the client's
// proof against StoredKey and recovers ClientKey, which the server leg then logs in with
// (server_auth.hpp). No server connection is opened for a client that fails here.
#pragma once

#include <string>
#include <string_view>

#include "gateway/auth/scram_secret.hpp"
#include "gateway/net/stream.hpp"
#include "gateway/session/session_env.hpp"
#include "gateway/session/session_record.hpp"

namespace pggw {

struct ClientAuthOutcome {
    bool ok = false;
    // ok: AuthenticationSASLFinal's data (v=ServerSignature), sent to the client once the
    // server leg has logged in too, so that a server-side failure still reaches the client
    // as an error during authentication.
    std::string server_final;
    tls::Sha256Digest client_key{};
    std::string_view mechanism;  // "SCRAM-SHA-256" or "SCRAM-SHA-256-PLUS"
};

// Runs the exchange. On failure the client has been sent PostgreSQL's error (28P01 for a wrong
// password) and the failure is counted and logged. user: the StartupMessage's, unquoted.
awaitable<ClientAuthOutcome> authenticate_client(SessionEnv& env, SessionRecord& rec,
                                                 Stream& client, const auth::ScramSecret& secret,
                                                 std::string_view user);

// A secret no proof matches, with a salt that depends only on the user name and this process
// (PostgreSQL's scram_mock_salt): an unknown user refused by --auth-unknown-users refuse goes
// through the same exchange as a known one and fails it the same way, so the answer does not
// tell which users exist.
auth::ScramSecret mock_secret(const tls::Crypto& crypto, std::string_view user);

}  // namespace pggw
