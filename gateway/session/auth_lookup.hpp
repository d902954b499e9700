// --auth-user/--auth-query, the I/O part: looks up the SCRAM secret of a user not in
// --auth-file in PostgreSQL itself, as PgBouncer's auth_query does. pggw opens one connection
// per lookup (the same server leg as sessions: --server, --server-tls, --server-cert), logs in
// as --auth-user to the database the client asked for (authenticate_server, with the auth
// user's plaintext --auth-file password, or none: trust or certificate authentication), runs
// the query with the extended protocol ($1 bound to the user name) and closes. Answers are
// cached per worker (--auth-query-cache-seconds); at most AuthLookupGate::kMax lookups run at
// once per worker, later logins wait for a slot. Everything, the wait included, is bounded by
// --server-connect-timeout: a lookup never hangs a login.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/auth/scram_secret.hpp"
#include "gateway/net/asio.hpp"
#include "gateway/session/session_env.hpp"
#include "gateway/session/session_record.hpp"

namespace pggw {

struct AuthLookupOutcome {
    enum Kind { found, not_found, error } kind = error;
    std::optional<auth::ScramSecret> secret;  // found
    // error: what the client is told (never the server's address), and the log line's text.
    std::string client_detail;
    std::string log_error;
};

// Whether users not in --auth-file are looked up (--auth-user given, and a crypto library).
bool auth_query_enabled(const SessionEnv& env);

// startup_packet: the client's StartupMessage (its database is where the query runs).
awaitable<AuthLookupOutcome> look_up_secret(SessionEnv& env, const SessionRecord& rec,
                                            std::string_view user,
                                            std::span<const std::uint8_t> startup_packet);

}  // namespace pggw
