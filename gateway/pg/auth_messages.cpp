#include "gateway/pg/auth_messages.hpp"

#include <algorithm>

#include "gateway/pg/protocol.hpp"

namespace pggw::pg {
namespace {

// type, length word (patched by finish), body appended by the caller.
std::vector<std::uint8_t> start(char type, std::size_t body_hint) {
    std::vector<std::uint8_t> out;
    out.reserve(5 + body_hint);
    out.push_back(std::uint8_t(type));
    append_u32(out, 0);
    return out;
}

void finish(std::vector<std::uint8_t>& out) {
    const auto len = std::uint32_t(out.size() - 1);
    out[1] = std::uint8_t(len >> 24);
    out[2] = std::uint8_t(len >> 16);
    out[3] = std::uint8_t(len >> 8);
    out[4] = std::uint8_t(len);
}

void append(std::vector<std::uint8_t>& out, std::string_view s) {
    out.insert(out.end(), s.begin(), s.end());
}

std::vector<std::uint8_t> auth_request(AuthCode code, std::string_view data) {
    auto out = start('R', 4 + data.size());
    append_u32(out, static_cast<std::uint32_t>(code));
    append(out, data);
    finish(out);
    return out;
}

}  // namespace

MessageReader::Status MessageReader::next(Message& out) {
    const std::size_t have = buf_.size() - pos_;
    if (have < 5) return need_more;
    const std::uint8_t* p = buf_.data() + pos_;
    const std::uint32_t len = read_u32(p + 1);
    if (len < 4 || len - 4 > max_body_) return invalid;
    if (have < 1 + std::size_t(len)) return need_more;
    out.type = char(p[0]);
    out.body.assign(p + 5, p + 1 + len);
    pos_ += 1 + std::size_t(len);
    if (pos_ == buf_.size()) {
        buf_.clear();
        pos_ = 0;
    }
    return message;
}

std::vector<std::uint8_t> authentication_sasl(std::span<const std::string_view> mechanisms) {
    std::string data;
    for (auto m : mechanisms) {
        data.append(m);
        data.push_back('\0');
    }
    data.push_back('\0');
    return auth_request(AuthCode::sasl, data);
}

std::vector<std::uint8_t> authentication_sasl_continue(std::string_view data) {
    return auth_request(AuthCode::sasl_continue, data);
}

std::vector<std::uint8_t> authentication_sasl_final(std::string_view data) {
    return auth_request(AuthCode::sasl_final, data);
}

std::optional<SaslInitialResponse> parse_sasl_initial_response(std::span<const std::uint8_t> body) {
    auto nul = std::find(body.begin(), body.end(), std::uint8_t(0));
    if (nul == body.end()) return std::nullopt;
    SaslInitialResponse r;
    r.mechanism.assign(body.begin(), nul);
    auto rest = body.subspan(std::size_t(nul - body.begin()) + 1);
    if (rest.size() < 4) return std::nullopt;
    const std::uint32_t len = read_u32(rest.data());
    rest = rest.subspan(4);
    if (len == 0xffffffffu) {  // -1: no initial response
        if (!rest.empty()) return std::nullopt;
        return r;
    }
    if (len != rest.size()) return std::nullopt;
    r.data.emplace(rest.begin(), rest.end());
    return r;
}

std::vector<std::uint8_t> sasl_initial_response(std::string_view mechanism, std::string_view data) {
    auto out = start('p', mechanism.size() + 5 + data.size());
    append(out, mechanism);
    out.push_back(0);
    append_u32(out, std::uint32_t(data.size()));
    append(out, data);
    finish(out);
    return out;
}

std::vector<std::uint8_t> sasl_response(std::string_view data) {
    auto out = start('p', data.size());
    append(out, data);
    finish(out);
    return out;
}

std::vector<std::uint8_t> password_message(std::string_view password) {
    auto out = start('p', password.size() + 1);
    append(out, password);
    out.push_back(0);
    finish(out);
    return out;
}

std::optional<AuthRequest> parse_auth_request(std::span<const std::uint8_t> body) {
    if (body.size() < 4) return std::nullopt;
    return AuthRequest{read_u32(body.data()), body.subspan(4)};
}

std::optional<std::vector<std::string>> parse_sasl_mechanisms(std::span<const std::uint8_t> data) {
    std::vector<std::string> out;
    std::size_t i = 0;
    for (;;) {
        auto nul = std::find(data.begin() + std::ptrdiff_t(i), data.end(), std::uint8_t(0));
        if (nul == data.end()) return std::nullopt;  // unterminated
        const std::size_t end = std::size_t(nul - data.begin());
        if (end == i) return end + 1 == data.size() ? std::optional(out) : std::nullopt;
        out.emplace_back(data.begin() + std::ptrdiff_t(i), nul);
        i = end + 1;
    }
}

std::vector<std::uint8_t> serialize(const Message& m) {
    auto out = start(m.type, m.body.size());
    out.insert(out.end(), m.body.begin(), m.body.end());
    finish(out);
    return out;
}

std::string error_message_field(std::span<const std::uint8_t> body, char field) {
    std::size_t i = 0;
    while (i < body.size() && body[i] != 0) {
        const char type = char(body[i++]);
        auto nul = std::find(body.begin() + std::ptrdiff_t(i), body.end(), std::uint8_t(0));
        if (nul == body.end()) break;
        const std::size_t end = std::size_t(nul - body.begin());
        if (type == field) return std::string(body.begin() + std::ptrdiff_t(i), nul);
        i = end + 1;
    }
    return {};
}

}  // namespace pggw::pg
