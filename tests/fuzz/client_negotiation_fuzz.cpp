// ClientNegotiation driven as the session drives it: random bytes in random splits, each
// action followed (a reply written, a handshake that succeeds with a random client
// certificate CN or fails, EOF when the input runs out).
//
// Input: [mode % 6] [CN length % 80] [CN] [the client's bytes].
// Checks the policy, not only the absence of crashes: 'S' only with TLS on and at most once,
// start_tls right after it, no StartupMessage in plaintext when TLS is required, verify-full
// only with the CN equal to the user name as PostgreSQL truncates it, and the bytes of a
// cancel or startup action are that packet.
#include <string>

#include "fuzz_check.hpp"
#include "gateway/pg/client_negotiation.hpp"
#include "gateway/pg/protocol.hpp"
#include "gateway/pg/startup_decoder.hpp"

using namespace pggw;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const auto mode = TlsMode(data[0] % 6);
    const std::size_t cn_len = std::min<std::size_t>(data[1] % 80, size - 2);
    const std::string cn(reinterpret_cast<const char*>(data + 2), cn_len);
    const std::span<const std::uint8_t> stream(data + 2 + cn_len, size - 2 - cn_len);
    fuzz::Splits splits(stream, data[0]);

    ClientNegotiation n(mode, "192.0.2.1");
    std::size_t at = 0;
    bool tls = false, decoded_any = false, expect_start_tls = false;
    int s_replies = 0, n_replies = 0;
    for (int steps = 0;; ++steps) {
        FUZZ_CHECK(steps < 100000);
        NegotiationAction a = n.next();
        FUZZ_CHECK(!expect_start_tls || a.kind == NegotiationAction::start_tls);
        expect_start_tls = false;
        switch (a.kind) {
            case NegotiationAction::read: {
                FUZZ_CHECK(!a.decoded);
                if (at == stream.size()) {
                    const NegotiationEnd e = n.peer_closed();
                    FUZZ_CHECK(e == NegotiationEnd::closed_before_startup ||
                               e == NegotiationEnd::incomplete_startup);
                    if (e == NegotiationEnd::closed_before_startup) FUZZ_CHECK(!decoded_any);
                    return 0;
                }
                const std::size_t len = std::min(splits.next(300), stream.size() - at);
                n.feed(stream.subspan(at, len));
                at += len;
                continue;
            }
            case NegotiationAction::reply:
                FUZZ_CHECK(a.decoded == StartupKind::ssl_request ||
                           a.decoded == StartupKind::gssenc_request);
                decoded_any = true;
                FUZZ_CHECK(!tls);  // after TLS, a second request is refused, not answered
                if (a.reply_byte == 'S') {
                    FUZZ_CHECK(mode != TlsMode::disable && a.decoded == StartupKind::ssl_request);
                    FUZZ_CHECK(++s_replies == 1);
                    expect_start_tls = true;
                } else {
                    FUZZ_CHECK(a.reply_byte == 'N');
                    FUZZ_CHECK(++n_replies <= 2);
                }
                continue;
            case NegotiationAction::start_tls:
                FUZZ_CHECK(mode != TlsMode::disable && !tls);
                if (a.direct) {
                    FUZZ_CHECK(!decoded_any && a.decoded == StartupKind::direct_tls);
                    FUZZ_CHECK(!a.bytes.empty() && a.bytes[0] == pg::kTlsHandshakeRecord);
                }
                decoded_any = true;
                if (splits.next(5) == 1) return 0;  // the handshake failed: the session ends
                n.tls_established(cn);
                FUZZ_CHECK(n.encrypted());
                tls = true;
                continue;
            case NegotiationAction::refuse:
                FUZZ_CHECK(a.sqlstate.size() == 5 && !a.message.empty());
                if (a.refusal == Refusal::tls_required)
                    FUZZ_CHECK(!tls && mode >= TlsMode::require && n.got_startup());
                if (a.refusal == Refusal::certificate_cn_mismatch)
                    FUZZ_CHECK(mode == TlsMode::verify_full && n.got_startup());
                return 0;
            case NegotiationAction::close:
                if (a.end == NegotiationEnd::direct_tls_refused)
                    FUZZ_CHECK(mode == TlsMode::disable && !decoded_any);
                if (a.end == NegotiationEnd::invalid_startup) FUZZ_CHECK(!a.detail.empty());
                return 0;
            case NegotiationAction::cancel: {
                FUZZ_CHECK(a.decoded == StartupKind::cancel_request);
                const DecodeResult d = decode_startup(a.bytes, false);
                FUZZ_CHECK(d.status == DecodeResult::complete && d.consumed == a.bytes.size() &&
                           d.packet.kind == StartupKind::cancel_request);
                return 0;
            }
            case NegotiationAction::startup: {
                FUZZ_CHECK(a.decoded == StartupKind::startup_message && n.got_startup());
                const DecodeResult d = decode_startup(a.bytes, false);
                FUZZ_CHECK(d.status == DecodeResult::complete && d.consumed == a.bytes.size() &&
                           d.packet.kind == StartupKind::startup_message);
                FUZZ_CHECK(d.packet.user == n.user() && d.packet.database == n.database());
                if (mode >= TlsMode::require) FUZZ_CHECK(tls);
                if (mode == TlsMode::verify_full)
                    FUZZ_CHECK(!cn.empty() && cn == n.user().substr(0, pg::kMaxIdentifierLength));
                return 0;
            }
        }
    }
}
