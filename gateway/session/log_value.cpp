#include "gateway/session/log_value.hpp"

namespace pggw {

namespace {

bool bare(unsigned char c) {
    return c > 0x20 && c < 0x7f && c != '"' && c != '=' && c != '\\';
}

}  // namespace

std::string log_value(std::string_view v) {
    bool plain = !v.empty();
    for (unsigned char c : v) plain = plain && bare(c);
    if (plain) return std::string(v);
    std::string out = "\"";
    for (unsigned char c : v) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20 || c >= 0x7f) {
                    static constexpr char hex[] = "0123456789abcdef";
                    out += "\\x";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += char(c);
                }
        }
    }
    out += '"';
    return out;
}

}  // namespace pggw
