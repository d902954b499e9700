#include "tls_backends/shared.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <system_error>

namespace pggw::tls::shared {

// ---- failures ----

Failure alert_failure(int alert) {
    switch (alert) {
        case kAlertUnknownCa:
            return Failure::unknown_ca;
        case kAlertCertificateExpired:
            return Failure::certificate_expired;
        case kAlertBadCertificate:
        case kAlertUnsupportedCertificate:
        case kAlertCertificateRevoked:
        case kAlertCertificateUnknown:
        case kAlertCertificateRequired:
            return Failure::bad_certificate;
        case kAlertNoApplicationProtocol:
            return Failure::no_alpn;
        case kAlertProtocolVersion:
            return Failure::protocol_version;
        case kAlertHandshakeFailure:
        case kAlertInsufficientSecurity:
            return Failure::handshake_failure;
        default:
            return Failure::other;
    }
}

Failure transport_failure(bool eof, bool in_handshake, std::string& reason) {
    if (!eof) {
        reason = "transport error";
        return Failure::other;
    }
    reason = in_handshake ? "peer closed the connection during the TLS handshake"
                          : "peer closed the connection without close_notify (truncated)";
    return Failure::eof;
}

std::string hostname_mismatch_reason(const std::string& hostname) {
    return "server certificate does not match host name \"" + hostname + "\"";
}

std::string verify_detail(int depth, const std::string& subject) {
    return " (depth " + std::to_string(depth) + ", subject \"" + subject + "\")";
}

std::string presented_names(const std::vector<std::string>& alt_names, const std::string& cn) {
    std::string out;
    for (const std::string& name : alt_names) {
        if (name.empty()) continue;
        out += (out.empty() ? "" : ", ") + name;
    }
    if (!cn.empty()) out += (out.empty() ? "CN=" : " (CN=") + cn + (out.empty() ? "" : ")");
    return out.empty() ? "no name" : out;
}

std::string ip_alt_name(const std::uint8_t* address, int len) {
    char text[INET6_ADDRSTRLEN] = {};
    if ((len == 4 || len == 16) &&
        inet_ntop(len == 4 ? AF_INET : AF_INET6, address, text, sizeof text)) {
        return std::string("IP:") + text;
    }
    return {};
}

// ---- host names ----

bool is_ip_literal(const std::string& host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool valid_dns_name(const std::string& name) {
    return !name.empty() && name.size() <= 253 &&
           std::all_of(name.begin(), name.end(), [](unsigned char c) {
               return std::isalnum(c) || c == '-' || c == '.' || c == '*' || c == '_';
           });
}

// ---- the Engine's bookkeeping ----

int EngineBase::plain_alert(std::size_t consumed) const {
    std::span<const std::uint8_t> rec = io_.input_from(consumed);
    if (rec.size() < 7) return -1;
    bool alert = rec[0] == kRecordAlert && rec[1] == 3 && rec[3] == 0 && rec[4] == 2;
    return alert && rec[5] == kAlertLevelFatal ? rec[6] : -1;
}

// ---- gen-cert ----

bool prepare_certificate_request(const CertificateRequest& req, std::string& error) {
    if (req.hostnames.empty()) {
        error = "no host names for the server certificate";
        return false;
    }
    if (req.days <= 0) {
        error = "validity must be at least one day";
        return false;
    }
    for (const std::string& h : req.hostnames) {
        if (!is_ip_literal(h) && !valid_dns_name(h)) {
            error = "invalid host name \"" + h + "\"";
            return false;
        }
    }
    std::error_code ec;
    std::filesystem::create_directories(req.dir, ec);
    if (ec) {
        error = "cannot create " + req.dir + ": " + ec.message();
        return false;
    }
    return true;
}

bool parse_key_type(const std::string& name, KeyType& type, std::string& error) {
    if (name == "ecdsa-p256") {
        type = KeyType::ecdsa_p256;
    } else if (name == "rsa-2048") {
        type = KeyType::rsa_2048;
    } else if (name == "ed25519") {
        type = KeyType::ed25519;
    } else {
        error = "unknown key type \"" + name + "\" (ecdsa-p256, rsa-2048 or ed25519)";
        return false;
    }
    return true;
}

bool write_pem(const std::filesystem::path& path, mode_t mode, std::string_view pem,
               std::string& error) {
    if (pem.empty()) {
        error = "cannot encode " + path.string();
        return false;
    }
    // A new file under a name no one can have prepared (O_EXCL; O_NOFOLLOW: not through a
    // symlink), written whole, then renamed over path: a reader sees the old file or the new
    // one, and a symlink planted at path is replaced, never followed.
    std::random_device rd;
    std::filesystem::path tmp;
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 16; ++attempt) {
        char suffix[24];
        std::snprintf(suffix, sizeof suffix, ".%08x%08x.tmp", rd(), rd());
        tmp = path;
        tmp += suffix;
        fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        error = "cannot create " + path.string() + ": " + std::strerror(errno);
        return false;
    }
    bool ok = ::fchmod(fd, mode) == 0;  // the umask may have narrowed it; never widened
    const char* data = pem.data();
    std::size_t len = pem.size();
    while (ok && len > 0) {
        ssize_t n = ::write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) {
            data += n;
            len -= static_cast<std::size_t>(n);
        }
    }
    if (ok) ok = ::fsync(fd) == 0;
    if (::close(fd) != 0) ok = false;
    if (ok) ok = ::rename(tmp.c_str(), path.c_str()) == 0;
    if (!ok) {
        error = "cannot write " + path.string() + ": " + std::strerror(errno);
        ::unlink(tmp.c_str());
    }
    return ok;
}

}  // namespace pggw::tls::shared
