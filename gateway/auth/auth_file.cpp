#include "gateway/auth/auth_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gateway/app/tls_contexts.hpp"

namespace pggw::auth {

namespace {

bool md5_hash(std::string_view s) {
    // PostgreSQL's isMD5: "md5" and 32 lowercase hex digits.
    if (s.size() != 35 || !s.starts_with("md5")) return false;
    for (char c : s.substr(3)) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

// A user name as it may appear in an error: printable ASCII, anything else '?'.
std::string printable(std::string_view s) {
    std::string out;
    for (char c : s) out += (c >= 0x20 && c <= 0x7e) ? c : '?';
    return out;
}

bool blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// One quoted field starting at line[pos] == '"': "" inside is one quote. The field must end
// on this line. pos ends after the closing quote.
std::optional<std::string> quoted(std::string_view line, std::size_t& pos) {
    std::string out;
    for (std::size_t i = pos + 1; i < line.size(); ++i) {
        if (line[i] != '"') {
            out += line[i];
            continue;
        }
        if (i + 1 < line.size() && line[i + 1] == '"') {
            out += '"';
            ++i;
            continue;
        }
        pos = i + 1;
        return out;
    }
    return std::nullopt;
}

// Parses one non-comment line into entry; error without the line number.
bool parse_line(std::string_view line, const tls::Crypto& crypto, AuthEntry& entry,
                std::string& error) {
    std::size_t pos = 0;
    while (pos < line.size() && blank(line[pos])) ++pos;
    if (pos >= line.size() || line[pos] != '"') {
        error = "expected a quoted user name";
        return false;
    }
    auto user = quoted(line, pos);
    if (!user) {
        error = "unterminated quoted user name";
        return false;
    }
    if (user->empty()) {
        error = "empty user name";
        return false;
    }
    if (user->size() > kMaxAuthUser) {
        error = "user name too long (at most " + std::to_string(kMaxAuthUser) + " bytes)";
        return false;
    }
    if (pos >= line.size() || !blank(line[pos])) {
        error = "expected blanks and a quoted secret after the user name";
        return false;
    }
    while (pos < line.size() && blank(line[pos])) ++pos;
    if (pos >= line.size() || line[pos] != '"') {
        error = "expected a quoted secret after the user name";
        return false;
    }
    // From here on, nothing of the field may reach the error text.
    auto secret = quoted(line, pos);
    if (!secret) {
        error = "unterminated quoted secret";
        return false;
    }
    if (secret->empty()) {
        error = "empty secret for user \"" + printable(*user) + "\"";
        return false;
    }
    if (secret->size() > kMaxAuthSecret) {
        error = "secret too long for user \"" + printable(*user) + "\" (at most " +
                std::to_string(kMaxAuthSecret) + " bytes)";
        return false;
    }
    if (user->find('\0') != std::string::npos || secret->find('\0') != std::string::npos) {
        error = "NUL byte in user name or secret";
        return false;
    }
    // The rest of the line is ignored, as PgBouncer does.

    entry = AuthEntry{};
    entry.user = std::move(*user);
    if (looks_like_scram_secret(*secret)) {
        entry.kind = AuthEntry::scram;
        entry.secret = parse_scram_secret(*secret);
        if (!entry.secret) {
            error = "malformed SCRAM secret for user \"" + printable(entry.user) +
                    "\" (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)";
            return false;
        }
    } else if (md5_hash(*secret)) {
        entry.kind = AuthEntry::md5;
        entry.md5_secret = std::move(*secret);
    } else {
        if (secret->size() > kMaxPlaintextPassword) {
            error = "password too long for user \"" + printable(entry.user) + "\" (at most " +
                    std::to_string(kMaxPlaintextPassword) + " bytes)";
            return false;
        }
        entry.kind = AuthEntry::plaintext;
        std::vector<std::uint8_t> salt(kDefaultSaltLength);
        if (!crypto.random_bytes(salt)) {
            error = "could not generate random salt";
            return false;
        }
        entry.secret = scram_secret_from_password(crypto, *secret, salt, kDefaultIterations);
        entry.password = std::move(*secret);
    }
    return true;
}

}  // namespace

const AuthEntry* AuthTable::find(std::string_view user) const {
    auto it = entries_.find(user);
    return it == entries_.end() ? nullptr : &it->second;
}

void AuthTable::put(AuthEntry entry) {
    std::string key = entry.user;
    entries_.insert_or_assign(std::move(key), std::move(entry));
}

std::optional<AuthTable> parse_auth_file(std::string_view text, const tls::Crypto& crypto,
                                         std::string& error) {
    AuthTable table;
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);

        std::size_t first = 0;
        while (first < line.size() && blank(line[first])) ++first;
        if (first == line.size() || line[first] == ';' || line[first] == '#') continue;

        AuthEntry entry;
        std::string why;
        if (!parse_line(line, crypto, entry, why)) {
            error = "line " + std::to_string(line_no) + ": " + why;
            return std::nullopt;
        }
        table.put(std::move(entry));
    }
    return table;
}

std::shared_ptr<const AuthTable> load_auth_file(const std::string& path, const tls::Crypto& crypto,
                                                std::string& error) {
    const std::string where = "auth file \"" + path + "\"";
    // Open first, then check what was opened: no window between the check and the read.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        error = "could not open " + where + ": " + std::strerror(errno);
        return nullptr;
    }
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        error = "could not stat " + where + ": " + std::strerror(errno);
        return nullptr;
    }
    if (!S_ISREG(st.st_mode)) {
        error = where + " is not a regular file";
        return nullptr;
    }
    // The private key rule: it holds passwords and secrets.
    if (std::string problem = key_permission_problem(st.st_uid, st.st_mode, ::geteuid());
        !problem.empty()) {
        error = where + " " + problem;
        return nullptr;
    }
    if (std::size_t(st.st_size) > kMaxAuthFileSize) {
        error = where + " is too large (more than " + std::to_string(kMaxAuthFileSize) + " bytes)";
        return nullptr;
    }
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            error = "could not read " + where + ": " + std::strerror(errno);
            return nullptr;
        }
        if (n == 0) break;
        text.append(buf, std::size_t(n));
        if (text.size() > kMaxAuthFileSize) {
            error =
                where + " is too large (more than " + std::to_string(kMaxAuthFileSize) + " bytes)";
            return nullptr;
        }
    }
    std::string why;
    auto table = parse_auth_file(text, crypto, why);
    if (!table) {
        error = where + " " + why;
        return nullptr;
    }
    return std::make_shared<const AuthTable>(std::move(*table));
}

}  // namespace pggw::auth
