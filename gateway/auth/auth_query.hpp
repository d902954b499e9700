// --auth-query, the pure parts (PgBouncer's auth_query): the extended-protocol messages that
// run the query with the user name bound to $1 (never interpolated into the SQL), the reading
// of PostgreSQL's answer, and the per-worker cache and bound on lookups in flight. The I/O
// (logging in as --auth-user, sending, reading) is gateway/session/auth_lookup.hpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/auth/scram_secret.hpp"

namespace pggw::auth {

// Close to PgBouncer's default, but only roles that may log in now: a role without LOGIN or
// whose password expired (rolvaliduntil) gets no secret, as PostgreSQL would refuse it.
inline constexpr std::string_view kDefaultAuthQuery =
    "SELECT rolname, CASE WHEN rolvaliduntil IS NULL OR rolvaliduntil > now() THEN rolpassword "
    "END FROM pg_catalog.pg_authid WHERE rolname = $1 AND rolcanlogin";

// The StartupMessage (protocol 3.0) pggw logs in with as the auth user.
std::vector<std::uint8_t> startup_message(std::string_view user, std::string_view database,
                                          std::string_view application_name);

// Parse (unnamed statement, $1 of unspecified type so that name and text parameters both
// work), Bind ($1 = user in text format, results in text), Execute (all rows), Sync.
std::vector<std::uint8_t> auth_query_messages(std::string_view query, std::string_view user);
// Terminate, sent before closing the lookup connection.
std::vector<std::uint8_t> terminate_message();

// What PostgreSQL answered.
struct AuthQueryAnswer {
    enum Kind { found, not_found, error } kind = error;
    std::optional<ScramSecret> secret;  // found
    // not_found: why (no row, NULL secret, an md5 hash or something not a SCRAM secret);
    // error: the server's error or what was wrong with the answer. For the log: never holds
    // a secret.
    std::string detail;
};

// Reads the replies to auth_query_messages(), one message at a time (type and body, as
// pg::MessageReader gives them), until ReadyForQuery.
class AuthQueryReply {
  public:
    // True once ReadyForQuery was read (or the answer is broken beyond reading on): answer()
    // is then final.
    bool feed(char type, std::span<const std::uint8_t> body);
    const AuthQueryAnswer& answer() const { return answer_; }

  private:
    void fail(std::string why);
    void data_row(std::span<const std::uint8_t> body);

    AuthQueryAnswer answer_;
    std::size_t rows_ = 0;
    bool failed_ = false;
    bool completed_ = false;  // CommandComplete seen
    std::optional<std::string> secret_text_;
};

// The secret of a found row: SCRAM only (an md5 hash cannot serve SCRAM; PostgreSQL stores no
// plaintext). nullopt and why otherwise.
std::optional<ScramSecret> usable_secret(std::string_view text, std::string& why);

// One worker's cache of answers (found and not found; errors are never cached). Times are
// passed in, so that tests use a fake clock. Not thread-safe: one per worker.
class AuthQueryCache {
  public:
    using Clock = std::chrono::steady_clock;
    // Users not found are remembered for at most this long (a role just created logs in soon).
    static constexpr std::chrono::seconds kNotFoundMax{5};
    static constexpr std::size_t kMaxEntries = 10000;

    // nullptr: not cached (or expired). Else the cached answer: a secret, or nullopt (not found).
    const std::optional<ScramSecret>* find(std::string_view user, Clock::time_point now);
    // ttl: --auth-query-cache-seconds (<= 0: nothing is stored).
    void put(std::string_view user, std::optional<ScramSecret> secret, Clock::time_point now,
             std::chrono::duration<double> ttl);
    // Drops user's answer: the login it served failed (the password may have changed since).
    void forget(std::string_view user);
    std::size_t size() const { return entries_.size(); }

  private:
    struct Entry {
        std::optional<ScramSecret> secret;
        Clock::time_point expires;
    };
    std::map<std::string, Entry, std::less<>> entries_;
};

// Lookups in flight on one worker, at most kMax; beyond that a login waits for a slot.
class AuthLookupGate {
  public:
    static constexpr unsigned kMax = 4;
    bool try_enter() {
        if (in_flight_ >= kMax) return false;
        ++in_flight_;
        return true;
    }
    void leave() { --in_flight_; }
    unsigned in_flight() const { return in_flight_; }

  private:
    unsigned in_flight_ = 0;
};

// Per worker (SessionEnv::auth_query).
struct AuthQueryState {
    AuthQueryCache cache;
    AuthLookupGate gate;
};

}  // namespace pggw::auth
