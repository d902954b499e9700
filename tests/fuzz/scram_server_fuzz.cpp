// ScramServer (pggw as the SCRAM server of the client leg) driven through a whole exchange.
//
// Input: [flags] [length of the client-first-message] [client-first-message] [client-final].
// flags: bit 0 the client leg has channel-binding data (so -PLUS is offered), bit 1 the client
// picks SCRAM-SHA-256-PLUS, bit 2 no initial response (an empty challenge first), bit 3 the
// target writes a correct client-final itself (the input's tail is then ignored).
// Checks: steps come in PostgreSQL's order and nothing follows the end; a correct proof is
// accepted exactly when the exchange was well-formed (with the client's channel binding) and
// yields the ClientKey; an arbitrary client-final is never accepted; refusals carry a
// SQLSTATE and a message.
#include <array>
#include <string>
#include <vector>

#include "fake_crypto.hpp"
#include "fuzz_check.hpp"
#include "gateway/auth/base64.hpp"
#include "gateway/auth/scram_messages.hpp"
#include "gateway/auth/scram_secret.hpp"
#include "gateway/auth/scram_server.hpp"

using namespace pggw;
using namespace pggw::auth;

namespace {

std::span<const std::uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

bool over(const ScramStep& s) {
    return s.kind != ScramStep::reply;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::uint8_t flags = data[0];
    const std::size_t first_len = std::min<std::size_t>(data[1], size - 2);
    const std::string_view first(reinterpret_cast<const char*>(data + 2), first_len);
    const std::string_view final_in(reinterpret_cast<const char*>(data + 2 + first_len),
                                    size - 2 - first_len);

    fuzz::FakeCrypto crypto;
    // A secret whose ClientKey the target knows, so that it can write a correct proof.
    tls::Sha256Digest client_key{};
    for (std::size_t i = 0; i < client_key.size(); ++i) client_key[i] = std::uint8_t(i * 7 + 1);
    ScramSecret secret;
    secret.iterations = 4096;
    secret.salt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    secret.stored_key = crypto.sha256(client_key);
    secret.server_key = crypto.sha256(secret.stored_key);
    std::vector<std::uint8_t> binding;
    if (flags & 1) binding = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04};
    ScramServer server(crypto, secret, binding);
    const auto mechs = server.mechanisms();
    FUZZ_CHECK(mechs.size() == (binding.empty() ? 1u : 2u) && mechs.back() == kScramSha256);

    const std::string_view mech = (flags & 2) ? kScramSha256Plus : kScramSha256;
    ScramStep s =
        (flags & 4) ? server.initial(mech, std::nullopt) : server.initial(mech, bytes(first));
    if ((flags & 2) && binding.empty()) {  // -PLUS was never offered
        FUZZ_CHECK(s.kind == ScramStep::invalid);
        return 0;
    }
    if (flags & 4) {
        FUZZ_CHECK(s.kind == ScramStep::reply && s.data.empty());
        s = server.response(bytes(first));
    }
    if (s.kind == ScramStep::invalid) {
        FUZZ_CHECK(s.sqlstate.size() == 5 && !s.message.empty());
        FUZZ_CHECK(server.response(bytes(final_in)).kind == ScramStep::invalid);  // over
        return 0;
    }
    FUZZ_CHECK(s.kind == ScramStep::reply && !s.data.empty());
    const std::string server_first = s.data;

    // The client-first as the server read it.
    ScramError e;
    auto cf = parse_client_first(first, flags & 2, !binding.empty(), e);
    FUZZ_CHECK(cf);
    auto sf = parse_server_first(server_first, cf->nonce, e);
    FUZZ_CHECK(sf && sf->salt == secret.salt && sf->iterations == secret.iterations);

    std::string final_msg(final_in);
    if (flags & 8) {
        const std::string without_proof = build_client_final_without_proof(
            channel_binding_attribute(cf->cbind_flag, cf->cbind_flag == 'p'
                                                          ? std::span<const std::uint8_t>(binding)
                                                          : std::span<const std::uint8_t>()),
            sf->nonce);
        const auto signature =
            scram_signature(crypto, secret.stored_key, cf->bare, server_first, without_proof);
        tls::Sha256Digest proof{};
        for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = client_key[i] ^ signature[i];
        final_msg = build_client_final(without_proof, proof);
    }
    s = server.response(bytes(final_msg));
    FUZZ_CHECK(over(s));
    if (flags & 8) {
        FUZZ_CHECK(s.kind == ScramStep::done);
        FUZZ_CHECK(server.client_key() == client_key);
        FUZZ_CHECK(server.channel_bound() == bool(flags & 2));
        const auto expected = scram_signature(crypto, secret.server_key, cf->bare, server_first,
                                              final_msg.substr(0, final_msg.rfind(",p=")));
        FUZZ_CHECK(s.data == build_server_final(expected));
    } else {
        // An arbitrary client-final: only a proof made with the ClientKey passes.
        if (s.kind == ScramStep::done) FUZZ_CHECK(server.client_key() == client_key);
        if (s.kind == ScramStep::invalid) FUZZ_CHECK(s.sqlstate.size() == 5 && !s.message.empty());
    }
    FUZZ_CHECK(server.response(bytes(final_msg)).kind == ScramStep::invalid);  // over
    return 0;
}
