#include "gateway/pg/client_negotiation.hpp"

#include "gateway/pg/protocol.hpp"
#include "gateway/pg/startup_decoder.hpp"

namespace pggw {

std::string_view negotiation_end_name(NegotiationEnd e) {
    switch (e) {
        case NegotiationEnd::closed_before_startup:
            return "closed before startup";
        case NegotiationEnd::incomplete_startup:
            return "incomplete startup packet";
        case NegotiationEnd::invalid_startup:
            return "invalid startup packet";
        case NegotiationEnd::direct_tls_refused:
            return "direct TLS refused";
        case NegotiationEnd::plaintext_after_ssl:
        case NegotiationEnd::plaintext_after_gssenc:
            return "unencrypted data after SSL request";
    }
    return "closed";
}

ClientNegotiation::ClientNegotiation(TlsMode mode, std::string client_host)
    : mode_(mode), client_host_(std::move(client_host)) {
    in_.reserve(512);
}

void ClientNegotiation::feed(std::span<const std::uint8_t> bytes) {
    in_.insert(in_.end(), bytes.begin(), bytes.end());
}

void ClientNegotiation::tls_established(std::string_view peer_common_name) {
    encrypted_ = true;
    peer_cn_ = peer_common_name;
}

NegotiationEnd ClientNegotiation::peer_closed() const {
    return in_.empty() && first_ ? NegotiationEnd::closed_before_startup
                                 : NegotiationEnd::incomplete_startup;
}

NegotiationAction ClientNegotiation::refuse(std::string_view sqlstate, std::string message,
                                            Refusal why) {
    NegotiationAction a;
    a.kind = NegotiationAction::refuse;
    a.sqlstate = sqlstate;
    a.message = std::move(message);
    a.refusal = why;
    return a;
}

NegotiationAction ClientNegotiation::end(NegotiationEnd why) {
    NegotiationAction a;
    a.kind = NegotiationAction::close;
    a.end = why;
    return a;
}

NegotiationAction ClientNegotiation::next() {
    if (pending_tls_) {
        pending_tls_ = false;
        NegotiationAction a;
        a.kind = NegotiationAction::start_tls;
        return a;
    }
    return decode();
}

NegotiationAction ClientNegotiation::decode() {
    const bool tls_on = mode_ != TlsMode::disable;
    DecodeResult d = decode_startup(in_, first_);
    if (d.status == DecodeResult::need_more) return {};
    if (d.status == DecodeResult::invalid) {
        NegotiationAction a = d.unsupported_protocol ? refuse(pg::sqlstate::feature_not_supported,
                                                              d.error, Refusal::protocol_violation)
                                                     : end(NegotiationEnd::invalid_startup);
        a.decoded = StartupKind::invalid;
        a.detail = std::move(d.error);
        return a;
    }
    StartupPacket& p = d.packet;
    first_ = false;
    NegotiationAction a;
    switch (p.kind) {
        case StartupKind::direct_tls:
            if (!tls_on) {
                a = end(NegotiationEnd::direct_tls_refused);
                break;
            }
            ssl_done_ = gss_done_ = true;
            packet_ = std::move(in_);  // the engine takes every byte read so far
            in_.clear();
            a.kind = NegotiationAction::start_tls;
            a.direct = true;
            a.bytes = packet_;
            break;
        case StartupKind::ssl_request:
        case StartupKind::gssenc_request: {
            const bool ssl = p.kind == StartupKind::ssl_request;
            if ((ssl ? ssl_done_ : gss_done_) || encrypted_) {
                a = refuse(pg::sqlstate::feature_not_supported,
                           "unsupported frontend protocol 1234." + std::to_string(p.code & 0xffff) +
                               ": server supports 3.0 to 3.2",
                           Refusal::protocol_violation);
                break;
            }
            // CVE-2021-23214: bytes behind the request, sent before our answer, were never
            // protected by the TLS that follows; they must not become the next packet.
            if (in_.size() > d.consumed) {
                a = end(ssl ? NegotiationEnd::plaintext_after_ssl
                            : NegotiationEnd::plaintext_after_gssenc);
                break;
            }
            in_.clear();
            (ssl ? ssl_done_ : gss_done_) = true;
            a.kind = NegotiationAction::reply;
            a.reply_byte = ssl && tls_on ? 'S' : 'N';
            pending_tls_ = a.reply_byte == 'S';
            break;
        }
        case StartupKind::cancel_request:
            // Accepted in every mode, plaintext too: most clients send cancels unencrypted
            // and the packet carries nothing but the key.
            packet_.assign(p.bytes.begin(), p.bytes.end());
            a.kind = NegotiationAction::cancel;
            a.bytes = packet_;
            break;
        case StartupKind::startup_message:
            got_startup_ = true;
            user_ = p.user;
            database_ = p.database;
            if (!encrypted_ && mode_ >= TlsMode::require) {
                a = refuse(pg::sqlstate::invalid_authorization_specification,
                           "TLS required: pggw accepts only encrypted connections from \"" +
                               client_host_ + "\" (connect with sslmode=require or stronger)",
                           Refusal::tls_required);
            } else if (mode_ == TlsMode::verify_full &&
                       (peer_cn_.empty() ||
                        peer_cn_ != std::string_view(p.user).substr(0, pg::kMaxIdentifierLength))) {
                // PostgreSQL compares the CN with the user name as it keeps it: truncated to
                // NAMEDATALEN - 1 bytes. A certificate without a CN matches nobody.
                a = refuse(pg::sqlstate::invalid_authorization_specification,
                           "certificate validation (clientcert=verify-full) failed for user \"" +
                               p.user + "\": CN mismatch",
                           Refusal::certificate_cn_mismatch);
            } else {
                packet_.assign(p.bytes.begin(), p.bytes.end());
                a.kind = NegotiationAction::startup;
                a.bytes = packet_;
            }
            break;
        case StartupKind::invalid:
            break;
    }
    a.decoded = p.kind;
    return a;
}

}  // namespace pggw
