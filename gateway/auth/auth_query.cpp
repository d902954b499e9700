#include "gateway/auth/auth_query.hpp"

#include "gateway/pg/protocol.hpp"

namespace pggw::auth {

namespace {

void append_u16(std::vector<std::uint8_t>& out, std::uint16_t v) {
    out.push_back(std::uint8_t(v >> 8));
    out.push_back(std::uint8_t(v));
}
void append_cstring(std::vector<std::uint8_t>& out, std::string_view s) {
    out.insert(out.end(), s.begin(), s.end());
    out.push_back(0);
}
// type, length placeholder; finish() fills the length in.
std::size_t begin_message(std::vector<std::uint8_t>& out, char type) {
    out.push_back(std::uint8_t(type));
    const std::size_t at = out.size();
    pg::append_u32(out, 0);
    return at;
}
void finish_message(std::vector<std::uint8_t>& out, std::size_t at) {
    const auto len = std::uint32_t(out.size() - at);
    out[at] = std::uint8_t(len >> 24);
    out[at + 1] = std::uint8_t(len >> 16);
    out[at + 2] = std::uint8_t(len >> 8);
    out[at + 3] = std::uint8_t(len);
}

std::uint16_t read_u16(const std::uint8_t* p) {
    return std::uint16_t((p[0] << 8) | p[1]);
}

}  // namespace

std::vector<std::uint8_t> startup_message(std::string_view user, std::string_view database,
                                          std::string_view application_name) {
    std::vector<std::uint8_t> out;
    pg::append_u32(out, 0);
    pg::append_u32(out, pg::kProtocol30);
    for (auto [name, value] : {std::pair{std::string_view("user"), user},
                               std::pair{std::string_view("database"), database},
                               std::pair{std::string_view("application_name"), application_name}}) {
        append_cstring(out, name);
        append_cstring(out, value);
    }
    out.push_back(0);
    const auto len = std::uint32_t(out.size());
    out[0] = std::uint8_t(len >> 24);
    out[1] = std::uint8_t(len >> 16);
    out[2] = std::uint8_t(len >> 8);
    out[3] = std::uint8_t(len);
    return out;
}

std::vector<std::uint8_t> auth_query_messages(std::string_view query, std::string_view user) {
    std::vector<std::uint8_t> out;
    // Parse: unnamed statement, the query, one parameter of unspecified type (OID 0).
    std::size_t at = begin_message(out, 'P');
    append_cstring(out, "");
    append_cstring(out, query);
    append_u16(out, 1);
    pg::append_u32(out, 0);
    finish_message(out, at);
    // Bind: unnamed portal and statement; $1 in text format; results in text format.
    at = begin_message(out, 'B');
    append_cstring(out, "");
    append_cstring(out, "");
    append_u16(out, 1);
    append_u16(out, 0);
    append_u16(out, 1);
    pg::append_u32(out, std::uint32_t(user.size()));
    out.insert(out.end(), user.begin(), user.end());
    append_u16(out, 1);
    append_u16(out, 0);
    finish_message(out, at);
    // Execute the unnamed portal, all rows.
    at = begin_message(out, 'E');
    append_cstring(out, "");
    pg::append_u32(out, 0);
    finish_message(out, at);
    at = begin_message(out, 'S');
    finish_message(out, at);
    return out;
}

std::vector<std::uint8_t> terminate_message() {
    std::vector<std::uint8_t> out;
    finish_message(out, begin_message(out, 'X'));
    return out;
}

std::optional<ScramSecret> usable_secret(std::string_view text, std::string& why) {
    if (looks_like_scram_secret(text)) {
        auto s = parse_scram_secret(text);
        if (!s) why = "its secret is a malformed SCRAM secret";
        return s;
    }
    why = text.starts_with("md5") ? "its secret is an md5 hash, which cannot serve SCRAM"
                                  : "its secret is not a SCRAM secret";
    return std::nullopt;
}

void AuthQueryReply::fail(std::string why) {
    if (failed_) return;  // the first problem is the one reported
    failed_ = true;
    answer_.kind = AuthQueryAnswer::error;
    answer_.secret.reset();
    answer_.detail = std::move(why);
}

void AuthQueryReply::data_row(std::span<const std::uint8_t> body) {
    if (++rows_ > 1) {
        fail("the query returned more than one row");
        return;
    }
    if (body.size() < 2) {
        fail("malformed DataRow");
        return;
    }
    const std::size_t columns = read_u16(body.data());
    if (columns < 2) {
        fail("the query must return two columns (user name, secret), it returned " +
             std::to_string(columns));
        return;
    }
    std::size_t pos = 2;
    for (std::size_t c = 0; c < 2; ++c) {
        if (body.size() - pos < 4) {
            fail("malformed DataRow");
            return;
        }
        const std::uint32_t len = pg::read_u32(body.data() + pos);
        pos += 4;
        if (len == 0xffffffffu) {  // NULL
            if (c == 1) secret_text_.reset();
            continue;
        }
        if (len > body.size() - pos) {
            fail("malformed DataRow");
            return;
        }
        if (c == 1) secret_text_.emplace(reinterpret_cast<const char*>(body.data() + pos), len);
        pos += len;
    }
}

bool AuthQueryReply::feed(char type, std::span<const std::uint8_t> body) {
    switch (type) {
        case '1':  // ParseComplete
        case '2':  // BindComplete
        case 'T':  // RowDescription (only with Describe; tolerated)
        case 'N':  // NoticeResponse
        case 'S':  // ParameterStatus (asynchronous)
        case 'A':  // NotificationResponse
            return false;
        case 'D':
            data_row(body);
            return false;
        case 'C':
            completed_ = true;
            return false;
        case 'I':
            fail("the query is empty");
            return false;
        case 's':
            fail("the query was suspended (PortalSuspended)");
            return false;
        case 'E': {
            // Fields: type byte, NUL-terminated text; the server's message never holds the
            // secret (the parameter is a user name).
            std::string sqlstate, message;
            std::size_t pos = 0;
            while (pos < body.size() && body[pos] != 0) {
                const char field = char(body[pos++]);
                std::string value;
                while (pos < body.size() && body[pos] != 0) value += char(body[pos++]);
                ++pos;
                if (field == 'C') sqlstate = value;
                if (field == 'M') message = value;
            }
            fail("the server answered the query with " + sqlstate + " " + message);
            return false;
        }
        case 'Z':
            if (failed_) return true;
            if (!completed_) {
                fail("ReadyForQuery before CommandComplete");
                return true;
            }
            if (rows_ == 0) {
                answer_.kind = AuthQueryAnswer::not_found;
                answer_.detail = "the query returned no row";
            } else if (!secret_text_) {
                answer_.kind = AuthQueryAnswer::not_found;
                answer_.detail = "the query returned no secret (NULL: no password, or expired)";
            } else {
                std::string why;
                answer_.secret = usable_secret(*secret_text_, why);
                answer_.kind = answer_.secret ? AuthQueryAnswer::found : AuthQueryAnswer::not_found;
                answer_.detail = why;
            }
            secret_text_.reset();
            return true;
        default:
            fail("unexpected message type " + std::to_string(int(std::uint8_t(type))) +
                 " in the answer to the query");
            return true;
    }
}

const std::optional<ScramSecret>* AuthQueryCache::find(std::string_view user,
                                                       Clock::time_point now) {
    auto it = entries_.find(user);
    if (it == entries_.end()) return nullptr;
    if (now >= it->second.expires) {
        entries_.erase(it);
        return nullptr;
    }
    return &it->second.secret;
}

void AuthQueryCache::forget(std::string_view user) {
    if (auto it = entries_.find(user); it != entries_.end()) entries_.erase(it);
}

void AuthQueryCache::put(std::string_view user, std::optional<ScramSecret> secret,
                         Clock::time_point now, std::chrono::duration<double> ttl) {
    if (!secret && ttl > kNotFoundMax) ttl = kNotFoundMax;
    if (ttl.count() <= 0) return;
    if (entries_.size() >= kMaxEntries) {
        std::erase_if(entries_, [now](const auto& e) { return now >= e.second.expires; });
        // Still full of live entries (a flood of distinct names): start over rather than grow.
        if (entries_.size() >= kMaxEntries) entries_.clear();
    }
    const auto expires = now + std::chrono::duration_cast<Clock::duration>(ttl);
    auto it = entries_.find(user);
    if (it == entries_.end()) {
        entries_.emplace(std::string(user), Entry{std::move(secret), expires});
    } else {
        it->second = Entry{std::move(secret), expires};
    }
}

}  // namespace pggw::auth
