// --auth-file: PgBouncer's userlist.txt format, one user per line:
//
//   "user" "secret"
//
// Inside quotes, "" is one quote character. Leading whitespace and blank lines are skipped;
// a line whose first non-blank character is ';' (PgBouncer) or '#' is a comment. As in
// PgBouncer, whatever follows the closing quote of the secret on its line is ignored (old
// mkauth.py wrote a third "" field), and a user listed twice gets the later line's secret.
// Stricter than PgBouncer (which stops at the first broken line and keeps what came before):
// any broken line refuses the whole file, with its line number, and both fields must be on one
// line, separated by blanks only.
//
// The secret is one of (decided as PostgreSQL's get_password_type does):
//  - "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>": a SCRAM secret (refused
//    when malformed, rather than taken as a plaintext password as PgBouncer would);
//  - "md5" followed by 32 lowercase hex digits: an MD5 hash, which cannot serve SCRAM: such
//    users are relayed as before (PostgreSQL authenticates them itself);
//  - anything else: a plaintext password. pggw makes its own SCRAM secret from it at load time
//    (random 16-byte salt, 4096 iterations) for the client leg, and proves the password itself
//    to PostgreSQL with PostgreSQL's salt (ScramCredentials::password).
// Empty user names and empty secrets are refused. No error text ever contains a secret.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/auth/scram_secret.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::auth {

// Longest user name and secret pggw reads (PgBouncer's MAX_USERNAME and MAX_PASSWORD), and the
// longest plaintext password (PostgreSQL's MAX_PASSWORD_LENGTH: longer ones cannot be
// SASLprep'd by PostgreSQL or libpq).
inline constexpr std::size_t kMaxAuthUser = 128;
inline constexpr std::size_t kMaxAuthSecret = 2048;
inline constexpr std::size_t kMaxPlaintextPassword = 1024;
// Largest auth file pggw reads.
inline constexpr std::size_t kMaxAuthFileSize = 64 * 1024 * 1024;

struct AuthEntry {
    enum Kind { scram, md5, plaintext };
    Kind kind = scram;
    std::string user;
    // scram: the secret from the file; plaintext: pggw's own, made at load time (client leg
    // only: PostgreSQL's salt differs). Absent for md5.
    std::optional<ScramSecret> secret;
    std::string password;    // plaintext only: the password itself (server leg)
    std::string md5_secret;  // md5 only: the hash as written
};

class AuthTable {
  public:
    const AuthEntry* find(std::string_view user) const;
    std::size_t size() const { return entries_.size(); }
    // Adds or replaces (a later line wins).
    void put(AuthEntry entry);

  private:
    std::map<std::string, AuthEntry, std::less<>> entries_;
};

// Parses the file's text. nullopt and error ("line N: ...") when any line is broken.
std::optional<AuthTable> parse_auth_file(std::string_view text, const tls::Crypto& crypto,
                                         std::string& error);

// Reads and parses path. Refused, like PostgreSQL refuses a private key, when the file is not
// owned by pggw's user or root, or readable by group or others (0600, or 0640 when owned by
// root: key_permission_problem); also when not a regular file. nullptr and error (naming the
// path, never a secret) on any failure.
std::shared_ptr<const AuthTable> load_auth_file(const std::string& path, const tls::Crypto& crypto,
                                                std::string& error);

}  // namespace pggw::auth
