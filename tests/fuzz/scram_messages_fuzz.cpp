// The SCRAM message parsers (gateway/auth/scram_messages.hpp) and parse_scram_secret on
// arbitrary text. Checks: a refusal always carries PostgreSQL's SQLSTATE and a message; what a
// parser accepts, built again with the matching build_* function, parses to the same values;
// every accepted nonce is SCRAM-printable and bounded; a parsed secret formats back to text
// that parses to the same secret.
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "gateway/auth/scram_messages.hpp"
#include "gateway/auth/scram_secret.hpp"

using namespace pggw;
using namespace pggw::auth;

namespace {

void check_error(const ScramError& e) {
    FUZZ_CHECK(e.sqlstate.size() == 5 && !e.message.empty());
}

void client_first(std::string_view msg, bool plus_selected, bool binding_offered) {
    ScramError e;
    auto m = parse_client_first(msg, plus_selected, binding_offered, e);
    if (!m) return check_error(e);
    FUZZ_CHECK(msg.size() <= kMaxScramMessage);
    FUZZ_CHECK(m->cbind_flag == 'n' || m->cbind_flag == 'y' || m->cbind_flag == 'p');
    FUZZ_CHECK((m->cbind_flag == 'p') == plus_selected);
    if (m->cbind_flag == 'y') FUZZ_CHECK(!binding_offered);
    FUZZ_CHECK(m->gs2_header == gs2_header(m->cbind_flag));
    FUZZ_CHECK(std::string(msg) == m->gs2_header + m->bare);
    // May be empty: PostgreSQL's read_client_first_message accepts "r=" (the server's part
    // of the nonce is what makes it fresh).
    FUZZ_CHECK(m->nonce.size() <= kMaxNonce && scram_printable(m->nonce));
    ScramError e2;
    auto again = parse_client_first(build_client_first(m->cbind_flag, m->nonce), plus_selected,
                                    binding_offered, e2);
    FUZZ_CHECK(again && again->nonce == m->nonce && again->cbind_flag == m->cbind_flag);
}

void server_first(std::string_view msg, std::string_view client_nonce) {
    ScramError e;
    auto m = parse_server_first(msg, client_nonce, e);
    if (!m) return check_error(e);
    // Not necessarily longer: libpq's read_server_first_message accepts a server that added
    // nothing to the client's nonce.
    FUZZ_CHECK(m->nonce.size() >= client_nonce.size() && m->nonce.rfind(client_nonce, 0) == 0);
    FUZZ_CHECK(m->iterations > 0 && m->iterations <= kMaxIterations);  // salt: may be empty (libpq)
    ScramError e2;
    auto again =
        parse_server_first(build_server_first(m->nonce, m->salt, m->iterations), client_nonce, e2);
    FUZZ_CHECK(again && again->nonce == m->nonce && again->salt == m->salt &&
               again->iterations == m->iterations);
}

void client_final(std::string_view msg) {
    ScramError e;
    auto m = parse_client_final(msg, e);
    if (!m) return check_error(e);
    FUZZ_CHECK(msg.rfind(m->without_proof, 0) == 0 && m->without_proof.size() < msg.size());
    // The nonce is not checked here (as in PostgreSQL): the server compares it with its own.
    ScramError e2;
    auto again = parse_client_final(build_client_final(m->without_proof, m->proof), e2);
    FUZZ_CHECK(again && again->channel_binding == m->channel_binding && again->nonce == m->nonce &&
               again->proof == m->proof && again->without_proof == m->without_proof);
}

void server_final(std::string_view msg) {
    ScramError e;
    auto m = parse_server_final(msg, e);
    if (!m) return check_error(e);
    if (!m->verifier) return;
    ScramError e2;
    auto again = parse_server_final(build_server_final(*m->verifier), e2);
    FUZZ_CHECK(again && again->verifier == m->verifier);
}

void secret(std::string_view text) {
    auto s = parse_scram_secret(text);
    if (!s) return;
    FUZZ_CHECK(looks_like_scram_secret(text));
    FUZZ_CHECK(s->iterations >= 1 && s->iterations <= kMaxIterations && !s->salt.empty());
    auto again = parse_scram_secret(format_scram_secret(*s));
    FUZZ_CHECK(again && again->iterations == s->iterations && again->salt == s->salt &&
               again->stored_key == s->stored_key && again->server_key == s->server_key);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view msg(reinterpret_cast<const char*>(data), size);
    for (int flags = 0; flags < 4; ++flags) client_first(msg, flags & 1, flags & 2);
    server_first(msg, "rOprNGfwEbeRWgbNEkqO");  // RFC 7677's client nonce, as in the seeds
    // A client nonce taken from the message itself: up to its first comma after "r=".
    if (msg.size() > 3)
        server_first(msg, msg.substr(2, std::min<std::size_t>(msg[0] & 31, msg.size() - 2)));
    client_final(msg);
    server_final(msg);
    secret(msg);
    return 0;
}
