#include "gateway/auth/scram_messages.hpp"

#include <cstdio>

#include "gateway/auth/base64.hpp"
#include "gateway/auth/constant_time.hpp"
#include "gateway/auth/scram_secret.hpp"

namespace pggw::auth {

namespace {

constexpr std::string_view kMalformed = "malformed SCRAM message";

// PostgreSQL's sanitize_char: 'c' when printable ASCII, else 0xNN (the end of input reads as
// 0x00, as PostgreSQL reads its terminating NUL).
std::string sanitize_char(char c) {
    char buf[8];
    if (c >= 0x21 && c <= 0x7e)
        std::snprintf(buf, sizeof buf, "'%c'", c);
    else
        std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned char>(c));
    return buf;
}

// PostgreSQL's sanitize_str: printable ASCII kept, anything else '?', at most 30 characters.
std::string sanitize_str(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 30)) out += (c >= 0x21 && c <= 0x7e) ? c : '?';
    return out;
}

bool fail(ScramError& e, std::string_view sqlstate, std::string message, std::string detail = {}) {
    e.sqlstate = sqlstate;
    e.message = std::move(message);
    e.detail = std::move(detail);
    return false;
}

// A cursor over one message, read as PostgreSQL reads its NUL-terminated copy: peek() is '\0'
// at the end (the whole-message checks have already refused NUL bytes inside).
struct Reader {
    std::string_view s;
    std::size_t pos = 0;

    char peek() const { return pos < s.size() ? s[pos] : '\0'; }
    bool at_end() const { return pos >= s.size(); }
    // The value up to the next ',' (or the end); the comma is consumed.
    std::string_view value() {
        const std::size_t begin = pos;
        std::size_t end = s.find(',', begin);
        if (end == std::string_view::npos) end = s.size();
        pos = end < s.size() ? end + 1 : end;
        return s.substr(begin, end - begin);
    }
};

// The server's read_attr_value.
std::optional<std::string_view> be_attr(Reader& r, char attr, ScramError& e) {
    if (r.peek() != attr) {
        fail(e, kProtocolViolation, std::string(kMalformed),
             "Expected attribute \"" + std::string(1, attr) + "\" but found \"" +
                 sanitize_char(r.peek()) + "\".");
        return std::nullopt;
    }
    ++r.pos;
    if (r.peek() != '=') {
        fail(e, kProtocolViolation, std::string(kMalformed),
             "Expected character \"=\" for attribute \"" + std::string(1, attr) + "\".");
        return std::nullopt;
    }
    ++r.pos;
    return r.value();
}

// The server's read_any_attr.
std::optional<std::string_view> be_any_attr(Reader& r, char& attr, ScramError& e) {
    const char c = r.peek();
    if (r.at_end()) {
        fail(e, kProtocolViolation, std::string(kMalformed),
             "Attribute expected, but found end of string.");
        return std::nullopt;
    }
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
        fail(e, kProtocolViolation, std::string(kMalformed),
             "Attribute expected, but found invalid character \"" + sanitize_char(c) + "\".");
        return std::nullopt;
    }
    attr = c;
    ++r.pos;
    if (r.peek() != '=') {
        fail(e, kProtocolViolation, std::string(kMalformed),
             "Expected character \"=\" for attribute \"" + std::string(1, attr) + "\".");
        return std::nullopt;
    }
    ++r.pos;
    return r.value();
}

// libpq's read_attr_value.
std::optional<std::string_view> fe_attr(Reader& r, char attr, ScramError& e) {
    if (r.peek() != attr) {
        fail(e, kProtocolViolation,
             "malformed SCRAM message (attribute \"" + std::string(1, attr) + "\" expected)");
        return std::nullopt;
    }
    ++r.pos;
    if (r.peek() != '=') {
        fail(e, kProtocolViolation,
             "malformed SCRAM message (expected character \"=\" for attribute \"" +
                 std::string(1, attr) + "\")");
        return std::nullopt;
    }
    ++r.pos;
    return r.value();
}

// The whole-message checks of PostgreSQL's scram_exchange, plus pggw's bound.
bool be_check_message(std::string_view msg, ScramError& e) {
    if (msg.empty())
        return fail(e, kProtocolViolation, std::string(kMalformed), "The message is empty.");
    if (msg.find('\0') != std::string_view::npos)
        return fail(e, kProtocolViolation, std::string(kMalformed),
                    "Message length does not match input length.");
    if (msg.size() > kMaxScramMessage)
        return fail(e, kProtocolViolation, std::string(kMalformed), "The message is too long.");
    return true;
}

// The same checks with libpq's texts.
bool fe_check_message(std::string_view msg, ScramError& e) {
    if (msg.empty()) return fail(e, kProtocolViolation, "malformed SCRAM message (empty message)");
    if (msg.find('\0') != std::string_view::npos)
        return fail(e, kProtocolViolation, "malformed SCRAM message (length mismatch)");
    if (msg.size() > kMaxScramMessage)
        return fail(e, kProtocolViolation, "malformed SCRAM message (message too long)");
    return true;
}

std::span<const std::uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

bool scram_printable(std::string_view s) {
    for (char c : s) {
        if (c < 0x21 || c > 0x7e || c == ',') return false;
    }
    return true;
}

std::string gs2_header(char cbind_flag) {
    if (cbind_flag == 'p') return "p=" + std::string(kTlsServerEndPoint) + ",,";
    return std::string(1, cbind_flag) + ",,";
}

std::optional<ClientFirstMessage> parse_client_first(std::string_view msg, bool plus_selected,
                                                     bool binding_offered, ScramError& e) {
    if (!be_check_message(msg, e)) return std::nullopt;
    Reader r{msg};
    ClientFirstMessage m;
    m.cbind_flag = r.peek();
    static const std::string kNoBindingData =
        "The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include "
        "channel binding data.";
    switch (r.peek()) {
        case 'n':
        case 'y':
            if (plus_selected) {
                fail(e, kProtocolViolation, std::string(kMalformed), kNoBindingData);
                return std::nullopt;
            }
            if (r.peek() == 'y' && binding_offered) {
                fail(e, kInvalidAuthorizationSpecification,
                     "SCRAM channel binding negotiation error",
                     "The client supports SCRAM channel binding but thinks the server does "
                     "not.  However, this server does support channel binding.");
                return std::nullopt;
            }
            ++r.pos;
            if (r.peek() != ',') {
                fail(e, kProtocolViolation, std::string(kMalformed),
                     "Comma expected, but found character \"" + sanitize_char(r.peek()) + "\".");
                return std::nullopt;
            }
            ++r.pos;
            break;
        case 'p': {
            if (!plus_selected) {
                fail(e, kProtocolViolation, std::string(kMalformed),
                     "The client selected SCRAM-SHA-256 without channel binding, but the SCRAM "
                     "message includes channel binding data.");
                return std::nullopt;
            }
            auto type = be_attr(r, 'p', e);
            if (!type) return std::nullopt;
            if (*type != kTlsServerEndPoint) {
                fail(e, kProtocolViolation,
                     "unsupported SCRAM channel-binding type \"" + sanitize_str(*type) + "\"");
                return std::nullopt;
            }
            break;
        }
        default:
            fail(e, kProtocolViolation, std::string(kMalformed),
                 "Unexpected channel-binding flag \"" + sanitize_char(r.peek()) + "\".");
            return std::nullopt;
    }
    m.gs2_header = gs2_header(m.cbind_flag);

    // No authzid: PostgreSQL does not support one.
    if (r.peek() == 'a') {
        fail(e, kFeatureNotSupported,
             "client uses authorization identity, but it is not supported");
        return std::nullopt;
    }
    if (r.peek() != ',') {
        fail(e, kProtocolViolation, std::string(kMalformed),
             "Unexpected attribute \"" + sanitize_char(r.peek()) + "\" in client-first-message.");
        return std::nullopt;
    }
    ++r.pos;
    m.bare = std::string(msg.substr(r.pos));

    if (r.peek() == 'm') {
        fail(e, kFeatureNotSupported, "client requires an unsupported SCRAM extension");
        return std::nullopt;
    }
    auto user = be_attr(r, 'n', e);
    if (!user) return std::nullopt;
    m.user = std::string(*user);
    auto nonce = be_attr(r, 'r', e);
    if (!nonce) return std::nullopt;
    if (!scram_printable(*nonce)) {
        fail(e, kProtocolViolation, "non-printable characters in SCRAM nonce");
        return std::nullopt;
    }
    if (nonce->size() > kMaxNonce) {
        fail(e, kProtocolViolation, std::string(kMalformed), "The nonce is too long.");
        return std::nullopt;
    }
    m.nonce = std::string(*nonce);
    // Optional extensions: syntax-checked, ignored (as PostgreSQL does).
    while (!r.at_end()) {
        char attr = 0;
        if (!be_any_attr(r, attr, e)) return std::nullopt;
    }
    return m;
}

std::string build_client_first(char cbind_flag, std::string_view nonce) {
    return gs2_header(cbind_flag) + "n=,r=" + std::string(nonce);
}

std::optional<ServerFirstMessage> parse_server_first(std::string_view msg,
                                                     std::string_view client_nonce, ScramError& e) {
    if (!fe_check_message(msg, e)) return std::nullopt;
    Reader r{msg};
    ServerFirstMessage m;
    auto nonce = fe_attr(r, 'r', e);
    if (!nonce) return std::nullopt;
    // The server must have kept the client's part of the nonce.
    if (nonce->size() < client_nonce.size() ||
        !constant_time_equal(nonce->substr(0, client_nonce.size()), client_nonce) ||
        nonce->size() > kMaxNonce) {
        fail(e, kProtocolViolation, "invalid SCRAM response (nonce mismatch)");
        return std::nullopt;
    }
    m.nonce = std::string(*nonce);
    auto salt = fe_attr(r, 's', e);
    if (!salt) return std::nullopt;
    std::optional<std::vector<std::uint8_t>> decoded;
    if (salt->size() <= kMaxSaltBase64) decoded = base64_decode(*salt);
    if (!decoded) {
        fail(e, kProtocolViolation, "malformed SCRAM message (invalid salt)");
        return std::nullopt;
    }
    m.salt = std::move(*decoded);
    auto iterations = fe_attr(r, 'i', e);
    if (!iterations) return std::nullopt;
    std::uint64_t n = 0;
    bool ok = !iterations->empty();
    for (char c : *iterations) {
        if (c < '0' || c > '9' || n > kMaxIterations) {
            ok = false;
            break;
        }
        n = n * 10 + std::uint64_t(c - '0');
    }
    if (!ok || n < 1 || n > kMaxIterations) {
        fail(e, kProtocolViolation, "malformed SCRAM message (invalid iteration count)");
        return std::nullopt;
    }
    m.iterations = std::uint32_t(n);
    if (!r.at_end()) {
        fail(e, kProtocolViolation,
             "malformed SCRAM message (garbage at end of server-first-message)");
        return std::nullopt;
    }
    return m;
}

std::string build_server_first(std::string_view nonce, std::span<const std::uint8_t> salt,
                               std::uint32_t iterations) {
    return "r=" + std::string(nonce) + ",s=" + base64_encode(salt) +
           ",i=" + std::to_string(iterations);
}

std::optional<ClientFinalMessage> parse_client_final(std::string_view msg, ScramError& e) {
    if (!be_check_message(msg, e)) return std::nullopt;
    Reader r{msg};
    ClientFinalMessage m;
    auto binding = be_attr(r, 'c', e);
    if (!binding) return std::nullopt;
    m.channel_binding = std::string(*binding);
    auto nonce = be_attr(r, 'r', e);
    if (!nonce) return std::nullopt;
    m.nonce = std::string(*nonce);
    // Extensions up to the proof: ignored, as PostgreSQL does.
    std::size_t proof_start = 0;
    std::optional<std::string_view> value;
    char attr = 0;
    do {
        proof_start = r.pos - 1;  // the comma before the attribute
        value = be_any_attr(r, attr, e);
        if (!value) return std::nullopt;
    } while (attr != 'p');
    auto proof = base64_decode(*value);
    if (!proof || proof->size() != m.proof.size()) {
        fail(e, kProtocolViolation, std::string(kMalformed),
             "Malformed proof in client-final-message.");
        return std::nullopt;
    }
    std::copy(proof->begin(), proof->end(), m.proof.begin());
    if (!r.at_end()) {
        fail(e, kProtocolViolation, std::string(kMalformed),
             "Garbage found at the end of client-final-message.");
        return std::nullopt;
    }
    m.without_proof = std::string(msg.substr(0, proof_start));
    return m;
}

std::string channel_binding_attribute(char cbind_flag, std::span<const std::uint8_t> cbind_data) {
    std::string input = gs2_header(cbind_flag);
    if (cbind_flag == 'p') input.append(cbind_data.begin(), cbind_data.end());
    return base64_encode(bytes(input));
}

std::string build_client_final_without_proof(std::string_view channel_binding,
                                             std::string_view nonce) {
    return "c=" + std::string(channel_binding) + ",r=" + std::string(nonce);
}

std::string build_client_final(std::string_view without_proof, const tls::Sha256Digest& proof) {
    return std::string(without_proof) + ",p=" + base64_encode(proof);
}

std::optional<ServerFinalMessage> parse_server_final(std::string_view msg, ScramError& e) {
    if (!fe_check_message(msg, e)) return std::nullopt;
    Reader r{msg};
    ServerFinalMessage m;
    if (r.peek() == 'e') {
        auto error = fe_attr(r, 'e', e);
        if (!error) return std::nullopt;
        m.error = std::string(*error);
        return m;
    }
    auto verifier = fe_attr(r, 'v', e);
    if (!verifier) return std::nullopt;
    if (!r.at_end()) {
        fail(e, kProtocolViolation,
             "malformed SCRAM message (garbage at end of server-final-message)");
        return std::nullopt;
    }
    auto signature = base64_decode(*verifier);
    if (!signature || signature->size() != tls::Sha256Digest{}.size()) {
        fail(e, kProtocolViolation, "malformed SCRAM message (invalid server signature)");
        return std::nullopt;
    }
    m.verifier.emplace();
    std::copy(signature->begin(), signature->end(), m.verifier->begin());
    return m;
}

std::string build_server_final(const tls::Sha256Digest& server_signature) {
    return "v=" + base64_encode(server_signature);
}

}  // namespace pggw::auth
