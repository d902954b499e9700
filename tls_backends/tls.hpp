// The one TLS interface of pggw: sans-IO, in the shape of Asio's ssl::detail::engine.
//
// A Backend (BoringSSL, wolfSSL) makes Contexts from Options; a Context makes one Engine per
// connection. An Engine never touches a socket: the driver (gateway/net/stream.hpp: class
// Stream, its one perform(op) loop) writes the bytes it reads from the peer into
// input_space()/commit_input(), sends what output() holds and calls consume_output(). Every
// operation returns a small Result; after every call, whatever the result, the driver sends
// output() before waiting for input.
//
// Each backend lives in a module (libpggw_tls_<name>.so) that exports one C symbol,
// pggw_tls_backend_v1, and is loaded with RTLD_LOCAL so that the two libraries' clashing
// OpenSSL-style symbols can never interpose on each other (see loader.cpp).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pggw::tls {

enum class Role { server, client };
enum class Version { tls1_2, tls1_3 };

// What the engine checks about the peer's certificate.
//  server role: none = no client certificate asked for; chain = a client certificate chaining
//               to ca_file is required.
//  client role: none = anything goes (libpq sslmode=require); chain = verify-ca;
//               chain_and_hostname = verify-full against EngineOptions::hostname.
enum class Verify { none, chain, chain_and_hostname };

struct Options {
    Role role = Role::server;
    std::string cert_file;  // PEM: leaf first, then intermediates
    std::string key_file;   // PEM private key (ECDSA or RSA)
    std::string ca_file;    // PEM trust anchors for verifying the peer
    Verify verify = Verify::none;
    std::vector<std::string> alpn;  // server: protocols it accepts; client: protocols offered
    Version min_version = Version::tls1_2;
    Version max_version = Version::tls1_3;
    std::string ciphers;  // TLS 1.2 cipher list in the library's syntax; empty = library default
    std::string groups;   // e.g. "X25519:P-256"; empty = X25519 first, then P-256
};

struct EngineOptions {
    std::string hostname;  // client: SNI and the name verify-full checks; server: unused
    // server: a client that offers no ALPN at all is refused (direct TLS, PostgreSQL 17).
    // A client that offers ALPN without a match is always refused with no_application_protocol.
    bool require_alpn = false;
};

enum class Result {
    ok,          // the operation completed (for read: n > 0 bytes of plaintext)
    want_input,  // feed more ciphertext from the peer, then call again
    closed,      // the peer sent close_notify (read) / shutdown finished
    error,       // failure(); the engine is dead: send output() (an alert), then close
};

// Small fixed set, also used as a metrics label and a log field (failure_name()).
enum class Failure {
    none,
    unknown_ca,           // peer certificate does not chain to our CA
    bad_certificate,      // missing, malformed or rejected certificate
    certificate_expired,  // peer certificate outside its validity period
    hostname_mismatch,    // verify-full: certificate not issued for the expected name
    no_alpn,              // no common application protocol
    protocol_version,     // no common TLS version
    handshake_failure,    // no common cipher/group, or the peer's fatal alert
    not_tls,              // bytes that are not a TLS record
    eof,                  // peer closed without close_notify (truncation)
    other,
};

// The one table of Failure names, in enum order (kFailureNames[i].failure == Failure(i)): the
// metrics label values and the log field. Changing a name breaks dashboards.
struct FailureName {
    Failure failure;
    std::string_view name;
};
inline constexpr std::array<FailureName, 11> kFailureNames{{
    {Failure::none, "none"},
    {Failure::unknown_ca, "unknown_ca"},
    {Failure::bad_certificate, "bad_certificate"},
    {Failure::certificate_expired, "certificate_expired"},
    {Failure::hostname_mismatch, "hostname_mismatch"},
    {Failure::no_alpn, "no_alpn"},
    {Failure::protocol_version, "protocol_version"},
    {Failure::handshake_failure, "handshake_failure"},
    {Failure::not_tls, "not_tls"},
    {Failure::eof, "eof"},
    {Failure::other, "other"},
}};
static_assert(
    [] {
        for (std::size_t i = 0; i < kFailureNames.size(); ++i) {
            if (kFailureNames[i].failure != static_cast<Failure>(i)) return false;
        }
        return kFailureNames.back().failure == Failure::other;  // and nothing after it
    }(),
    "kFailureNames must list every Failure, in enum order");

constexpr std::string_view failure_name(Failure f) {
    auto i = static_cast<std::size_t>(f);
    return i < kFailureNames.size() ? kFailureNames[i].name : "other";
}

// SHA-256 of a certificate's DER encoding.
using CertificateHash = std::array<std::uint8_t, 32>;

struct HandshakeInfo {
    std::string version;  // "TLSv1.3", as OpenSSL and PostgreSQL's pg_stat_ssl name it
    std::string cipher;   // e.g. "TLS_AES_256_GCM_SHA384"
    std::string alpn;     // selected protocol, empty if none
    std::string sni;      // server: name the client asked for, empty if none
    bool peer_certificate = false;
    std::string peer_common_name;  // CN of the verified peer certificate
    std::string peer_subject;      // one-line subject, for logs
    // SHA-256 of the peer's leaf certificate (DER), when peer_certificate: equal hashes mean the
    // certificate that tls-server-end-point channel binding hashes is the same.
    CertificateHash peer_certificate_sha256{};
    // tls-server-end-point channel-binding data (RFC 5929 section 4.1), what SCRAM-SHA-256-PLUS
    // binds to: the hash of the server's leaf certificate (DER), with the hash function of its
    // signature algorithm, SHA-256 where that is MD5 or SHA-1. The server's certificate is ours
    // in the server role and the peer's in the client role. Empty when the signature algorithm
    // names no hash (Ed25519): PostgreSQL cannot bind such a certificate either.
    std::vector<std::uint8_t> server_end_point;
};

class Engine {
  public:
    virtual ~Engine() = default;

    // Ciphertext from the peer: write up to space.size() bytes into input_space(), then commit.
    virtual std::span<std::uint8_t> input_space() = 0;
    virtual void commit_input(std::size_t n) = 0;
    // Ciphertext for the peer.
    virtual std::span<const std::uint8_t> output() const = 0;
    virtual void consume_output(std::size_t n) = 0;
    // The transport reached EOF (the socket read returned 0; the driver calls this once).
    // Input already committed is still processed; after it, handshake()/read() answer error
    // with Failure::eof (truncation), unless close_notify came first (read answers closed).
    virtual void input_eof() = 0;
    // The driver is about to wait for the peer with nothing in flight: the engine frees the
    // ciphertext buffers that hold nothing, so an idle session keeps none. Its library's own
    // record buffers are already released when empty (BoringSSL always; wolfSSL shrinks its
    // dynamic ones after each record).
    virtual void release_buffers() = 0;

    virtual Result handshake() = 0;
    // Plaintext out. ok: n > 0 bytes were written to buf.
    virtual Result read(std::span<std::uint8_t> buf, std::size_t& n) = 0;
    // Plaintext in. ok: all of buf was taken and its records are in output().
    virtual Result write(std::span<const std::uint8_t> buf) = 0;
    // Queue close_notify. ok once it is in output().
    virtual Result shutdown() = 0;

    virtual const HandshakeInfo& info() const = 0;
    virtual Failure failure() const = 0;
    virtual const std::string& failure_reason() const = 0;  // readable, for logs

    // Convenience for tests: copies into input_space() until all of data is taken.
    void feed(std::span<const std::uint8_t> data) {
        while (!data.empty()) {
            auto space = input_space();
            std::size_t n = std::min(space.size(), data.size());
            if (n == 0) return;  // engine full: caller must run an operation first
            std::memcpy(space.data(), data.data(), n);
            commit_input(n);
            data = data.subspan(n);
        }
    }
};

struct CertificateInfo {
    std::string subject;        // e.g. "CN=localhost"
    std::int64_t not_after{0};  // Unix seconds
    CertificateHash sha256{};   // of the DER encoding
};

class Context {
  public:
    virtual ~Context() = default;
    virtual std::unique_ptr<Engine> new_engine(const EngineOptions& opts) = 0;
    // The certificates this context presents (leaf first), for expiry metrics.
    virtual const std::vector<CertificateInfo>& certificates() const = 0;
};

enum Capability : std::uint32_t {
    cap_tls1_2 = 1u << 0,
    cap_tls1_3 = 1u << 1,
    cap_alpn = 1u << 2,
    cap_client_certificates = 1u << 3,
    cap_generate_certificates = 1u << 4,  // gen-cert
    cap_cipher_list = 1u << 5,
};

// Hashes, key derivation and randomness of the loaded library, for SCRAM (gateway/auth): the
// protocol code stays free of TLS-library headers. Thread-safe; backend-lifetime.
using Sha256Digest = std::array<std::uint8_t, 32>;
class Crypto {
  public:
    virtual ~Crypto() = default;
    virtual Sha256Digest sha256(std::span<const std::uint8_t> data) const = 0;
    virtual Sha256Digest hmac_sha256(std::span<const std::uint8_t> key,
                                     std::span<const std::uint8_t> data) const = 0;
    // PBKDF2-HMAC-SHA-256 (RFC 8018) into out (SCRAM's SaltedPassword: out.size() == 32).
    // False on a library failure (iterations == 0, out of memory).
    virtual bool pbkdf2_sha256(std::span<const std::uint8_t> password,
                               std::span<const std::uint8_t> salt, std::uint32_t iterations,
                               std::span<std::uint8_t> out) const = 0;
    // From the library's CSPRNG. False when it cannot deliver.
    virtual bool random_bytes(std::span<std::uint8_t> out) const = 0;
};

struct CertificateRequest {
    std::string dir;
    std::vector<std::string> hostnames;   // DNS names or IP literals
    std::string key_type = "ecdsa-p256";  // or "rsa-2048", "ed25519"
    int days = 825;
};

class Backend {
  public:
    virtual ~Backend() = default;
    virtual std::string_view name() const = 0;  // "boringssl" / "wolfssl": the metrics label
    virtual std::string version() const = 0;    // library version string, for --version and logs
    virtual std::uint32_t capabilities() const = 0;
    // nullptr and error set when the options cannot be honoured (unreadable key, bad list...).
    virtual std::unique_ptr<Context> new_context(const Options& opts, std::string& error) = 0;
    // Snake-oil CA + server certificate (ca.crt, ca.key, server.crt, server.key; keys 0600).
    // Only where capabilities() has cap_generate_certificates.
    virtual bool generate_certificates(const CertificateRequest& req, std::string& error) = 0;
    // SCRAM's primitives from this library.
    virtual const Crypto& crypto() const = 0;
    bool has(Capability c) const { return (capabilities() & c) != 0; }
};

// Every TLS library pggw has a backend for, in preference order: --tls-library's choices
// (the first is its default) and the `library` label of the metrics.
inline constexpr std::array<std::string_view, 2> kLibraryNames{"boringssl", "wolfssl"};

// Names of the backends compiled into this build, in preference order.
std::vector<std::string> compiled_backends();
// Loads (once) and returns the backend; nullptr and error set if it cannot be loaded.
// Modules are looked for in $PGGW_TLS_MODULE_DIR, next to the executable, then in the
// install directory.
Backend* load_backend(std::string_view name, std::string& error);

}  // namespace pggw::tls

// Each module defines: extern "C" pggw::tls::Backend* pggw_tls_backend_v1();
