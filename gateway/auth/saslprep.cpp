#include "gateway/auth/saslprep.hpp"

#include <stringprep.h>

#include <cstdlib>
#include <memory>

namespace pggw::auth {

namespace {

bool ascii(std::string_view s) {
    for (char c : s) {
        if (static_cast<unsigned char>(c) >= 0x80) return false;
    }
    return true;
}

}  // namespace

bool valid_utf8(std::string_view text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        std::size_t len;
        unsigned char lo = 0x80, hi = 0xbf;  // range of the second byte
        if (c < 0x80) {
            ++i;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;  // overlong
            if (c == 0xed) hi = 0x9f;  // surrogates
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;  // overlong
            if (c == 0xf4) hi = 0x8f;  // beyond U+10FFFF
        } else {
            return false;  // continuation byte, 0xc0/0xc1 (overlong), 0xf5..
        }
        if (n - i < len) return false;
        if (p[i + 1] < lo || p[i + 1] > hi) return false;
        for (std::size_t k = 2; k < len; ++k) {
            if (p[i + k] < 0x80 || p[i + k] > 0xbf) return false;
        }
        i += len;
    }
    return true;
}

std::string saslprep(std::string_view password) {
    std::string raw(password);
    // PostgreSQL's shortcut: pure ASCII needs no preparation (and is not checked for
    // prohibited control characters either).
    if (ascii(password)) return raw;
    // A NUL cannot be part of a PostgreSQL password (C strings); libidn would stop at it.
    if (password.find('\0') != std::string_view::npos || !valid_utf8(password)) return raw;

    char* out = nullptr;
    // STRINGPREP_NO_UNASSIGNED: PostgreSQL refuses unassigned code points (RFC 3454 A.1)
    // and then uses the raw bytes; so does pggw.
    int rc = stringprep_profile(raw.c_str(), &out, "SASLprep", STRINGPREP_NO_UNASSIGNED);
    std::unique_ptr<char, decltype(&std::free)> owned(out, &std::free);
    if (rc != STRINGPREP_OK || !out) return raw;
    std::string prepared(out);
    // PostgreSQL refuses a password that maps to nothing (only B.1 characters).
    if (prepared.empty()) return raw;
    return prepared;
}

}  // namespace pggw::auth
