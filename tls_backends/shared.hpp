// Code every backend module shares and no TLS library is in (as ngtcp2's crypto backends share
// theirs): the wire numbers of TLS alerts, the Engine bookkeeping, failure texts, host-name
// checks and the gen-cert request checks and file writing. Compiled into each module (and into
// pggw_tls, for tests); private to tls_backends/.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tls_backends/cipher_buffers.hpp"
#include "tls_backends/tls.hpp"

namespace pggw::tls::shared {

// ---- TLS on the wire (RFC 8446 sections 5 and 6) ----
constexpr std::uint8_t kRecordAlert = 21, kRecordHandshake = 22;
constexpr std::uint8_t kAlertLevelFatal = 2;
enum Alert : int {
    kAlertHandshakeFailure = 40,
    kAlertBadCertificate = 42,
    kAlertUnsupportedCertificate = 43,
    kAlertCertificateRevoked = 44,
    kAlertCertificateExpired = 45,
    kAlertCertificateUnknown = 46,
    kAlertUnknownCa = 48,
    kAlertProtocolVersion = 70,
    kAlertInsufficientSecurity = 71,
    kAlertCertificateRequired = 116,
    kAlertNoApplicationProtocol = 120,
};

// Options::ciphers when empty: TLS 1.2 with ECDHE and an AEAD only (names both libraries know).
// The libraries' own defaults keep static RSA and CBC suites, and the Debian wolfSSL build has
// NULL and anonymous suites compiled in.
constexpr const char* kDefaultTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
// Options::groups when empty.
constexpr const char* kDefaultGroups = "X25519:P-256";

// ---- failures ----
// The Failure a fatal alert (sent or received) stands for.
Failure alert_failure(int alert);
// The transport ended (eof) or failed: Failure::eof or Failure::other, and the reason.
Failure transport_failure(bool eof, bool in_handshake, std::string& reason);
// "server certificate does not match host name \"NAME\"", after "certificate verify failed: ".
std::string hostname_mismatch_reason(const std::string& hostname);
// " (depth N, subject \"SUBJECT\")": which certificate of the chain failed verification.
std::string verify_detail(int depth, const std::string& subject);
// What a certificate is for, as verify-full sees it: "DNS:a, IP:10.0.0.1 (CN=a)", from its
// subjectAltNames (already "DNS:"/"IP:" text) and its CN; "no name" when it has neither.
std::string presented_names(const std::vector<std::string>& alt_names, const std::string& cn);
// "IP:10.0.0.1" for an iPAddress subjectAltName (4 or 16 bytes); empty for any other length.
std::string ip_alt_name(const std::uint8_t* address, int len);

// ---- host names ----
bool is_ip_literal(const std::string& host);
// What gen-cert accepts as a DNS name (letters, digits, - . * _; at most 253).
bool valid_dns_name(const std::string& name);

// ---- the Engine's bookkeeping ----
// What every backend's Engine keeps besides its library's session: the ciphertext buffers,
// the peer's EOF, what the handshake learnt and the failure. The backends add the session,
// the operations and the library's callbacks.
class EngineBase : public Engine {
  public:
    explicit EngineBase(const EngineOptions& opts)
        : hostname_(opts.hostname), require_alpn_(opts.require_alpn) {}

    std::span<std::uint8_t> input_space() override { return io_.input_space(); }
    void commit_input(std::size_t n) override { io_.commit_input(n); }
    std::span<const std::uint8_t> output() const override { return io_.output(); }
    void consume_output(std::size_t n) override { io_.consume_output(n); }
    void input_eof() override { eof_ = true; }
    void release_buffers() override { io_.release_if_empty(); }

    const HandshakeInfo& info() const override { return info_; }
    Failure failure() const override { return failure_; }
    const std::string& failure_reason() const override { return reason_; }

    const std::string& hostname() const { return hostname_; }
    bool require_alpn() const { return require_alpn_; }

  protected:
    bool failed() const { return failure_ != Failure::none; }
    void fail(Failure f, std::string reason) {
        failure_ = f;
        reason_ = std::move(reason);
    }
    // If the last `consumed` input bytes the library took begin a whole plaintext fatal alert
    // record (15 03 0x 00 02 02 description), its description; else -1. OpenSSL clients, libpq
    // among them, send their TLS 1.3 certificate verification alerts before switching to
    // handshake keys, and the library then reports a record it could not decrypt.
    int plain_alert(std::size_t consumed) const;

    CipherBuffers io_;
    HandshakeInfo info_;
    std::string hostname_;  // client: SNI and what verify-full checks
    bool require_alpn_ = false;
    bool handshake_done_ = false;
    bool eof_ = false;

  private:
    Failure failure_ = Failure::none;
    std::string reason_;
};

// ---- gen-cert ----
// The request checks every backend makes (host names, validity) and the directory, created.
bool prepare_certificate_request(const CertificateRequest& req, std::string& error);
enum class KeyType { ecdsa_p256, rsa_2048, ed25519 };
bool parse_key_type(const std::string& name, KeyType& type, std::string& error);
// Writes pem to a new file beside path (O_CREAT|O_EXCL|O_NOFOLLOW, mode set whatever the umask)
// and renames it over path; empty pem: encoding failed.
bool write_pem(const std::filesystem::path& path, mode_t mode, std::string_view pem,
               std::string& error);

}  // namespace pggw::tls::shared
