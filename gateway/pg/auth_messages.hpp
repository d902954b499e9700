// The authentication messages of the PostgreSQL protocol that pggw itself reads and writes
// when it authenticates a client (--auth-file) and then authenticates to the server on its
// behalf: AuthenticationSASL / SASLContinue / SASLFinal / Ok ('R') from the server side,
// SASLInitialResponse / SASLResponse ('p') from the client side, and the framing that reads
// one typed message at a time. Pure: bytes in, values out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pggw::pg {

// Authentication request codes of an 'R' message.
enum class AuthCode : std::uint32_t {
    ok = 0,
    cleartext_password = 3,
    md5_password = 5,
    sasl = 10,
    sasl_continue = 11,
    sasl_final = 12,
};

// PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH: the most a client's SASL message may hold.
constexpr std::uint32_t kMaxAuthMessageBody = 65535;
// What pggw accepts from a server before the session proper (an ErrorResponse with a long
// detail is still far below it).
constexpr std::uint32_t kMaxServerAuthMessageBody = 256 * 1024;

// One typed message: its type byte and its body (after the length word).
struct Message {
    char type = 0;
    std::vector<std::uint8_t> body;
};

// Cuts a byte stream into typed messages. Bytes after the messages taken stay buffered.
class MessageReader {
  public:
    explicit MessageReader(std::uint32_t max_body) : max_body_(max_body) {}
    enum Status { need_more, message, invalid };
    void feed(std::span<const std::uint8_t> bytes) {
        buf_.insert(buf_.end(), bytes.begin(), bytes.end());
    }
    // message: out holds the next message; invalid: a length below 4 or above max_body.
    Status next(Message& out);
    // Bytes fed and not yet taken as messages (what follows the last message taken).
    std::span<const std::uint8_t> rest() const { return std::span(buf_).subspan(pos_); }

  private:
    std::uint32_t max_body_;
    std::vector<std::uint8_t> buf_;
    std::size_t pos_ = 0;
};

// ---- server side: what pggw sends a client it authenticates ----
std::vector<std::uint8_t> authentication_sasl(std::span<const std::string_view> mechanisms);
std::vector<std::uint8_t> authentication_sasl_continue(std::string_view data);
std::vector<std::uint8_t> authentication_sasl_final(std::string_view data);

// SASLInitialResponse body: mechanism NUL, int32 length (-1: no data), data.
struct SaslInitialResponse {
    std::string mechanism;
    std::optional<std::vector<std::uint8_t>> data;  // nullopt: length -1
};
std::optional<SaslInitialResponse> parse_sasl_initial_response(std::span<const std::uint8_t> body);

// ---- client side: what pggw sends the server it authenticates to ----
std::vector<std::uint8_t> sasl_initial_response(std::string_view mechanism, std::string_view data);
std::vector<std::uint8_t> sasl_response(std::string_view data);
std::vector<std::uint8_t> password_message(std::string_view password);

// An 'R' body: the code and what follows it.
struct AuthRequest {
    std::uint32_t code = 0;
    std::span<const std::uint8_t> data;
};
std::optional<AuthRequest> parse_auth_request(std::span<const std::uint8_t> body);
// AuthenticationSASL's data: NUL-terminated names, then an empty one. nullopt when malformed.
std::optional<std::vector<std::string>> parse_sasl_mechanisms(std::span<const std::uint8_t> data);

// The message back as bytes (type, length, body), e.g. to relay an ErrorResponse unchanged.
std::vector<std::uint8_t> serialize(const Message& m);
// The 'M' field of an ErrorResponse / NoticeResponse body (empty when absent), for logs.
std::string error_message_field(std::span<const std::uint8_t> body, char field = 'M');

}  // namespace pggw::pg
