#include "gateway/net/proxy_protocol.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

namespace pggw::proxy_protocol {

namespace {

constexpr std::array<std::uint8_t, 12> kV2Signature{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view kV1Prefix = "PROXY ";

Result invalid(Error e, std::string detail) {
    Result r;
    r.status = Result::invalid;
    r.error = e;
    r.detail = std::move(detail);
    return r;
}

// Whether input (possibly short) could still be the start of `prefix`.
bool could_start(std::span<const std::uint8_t> in, std::span<const std::uint8_t> prefix) {
    std::size_t n = std::min(in.size(), prefix.size());
    return std::equal(in.begin(), in.begin() + std::ptrdiff_t(n), prefix.begin());
}

std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

bool parse_port(std::string_view s, std::uint16_t& out) {
    // 0..65535, decimal, no sign, no leading zeros (the spec's form).
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || v > 65535) return false;
    out = std::uint16_t(v);
    return true;
}

Result decode_v1(std::span<const std::uint8_t> in) {
    const std::size_t limit = std::min(in.size(), kMaxV1Length);
    const auto* begin = reinterpret_cast<const char*>(in.data());
    const char* cr = static_cast<const char*>(std::memchr(begin, '\r', limit));
    if (!cr) {
        if (in.size() >= kMaxV1Length) return invalid(Error::oversized, "v1 header over 107 bytes");
        return {};
    }
    const std::size_t line_len = std::size_t(cr - begin);
    if (line_len + 2 > kMaxV1Length) return invalid(Error::oversized, "v1 header over 107 bytes");
    if (line_len + 1 >= in.size()) return {};  // the '\n' has not come yet
    if (cr[1] != '\n') return invalid(Error::malformed, "v1 header: CR not followed by LF");
    std::string_view line(begin, line_len);
    // Fields separated by single spaces: PROXY PROTO SRC DST SPORT DPORT.
    std::array<std::string_view, 6> f;
    std::size_t n = 0, pos = 0;
    while (n < f.size()) {
        std::size_t sp = line.find(' ', pos);
        f[n++] = line.substr(pos, sp == std::string_view::npos ? sp : sp - pos);
        if (sp == std::string_view::npos) break;
        pos = sp + 1;
        if (n == f.size()) return invalid(Error::malformed, "v1 header: too many fields");
    }
    Result r;
    r.status = Result::complete;
    r.consumed = line_len + 2;
    r.version = 1;
    if (n >= 2 && f[1] == "UNKNOWN") return r;  // the rest of the line is to be ignored
    if (n != 6 || (f[1] != "TCP4" && f[1] != "TCP6"))
        return invalid(Error::malformed, "v1 header: expected TCP4, TCP6 or UNKNOWN");
    boost::system::error_code ec;
    auto src = boost::asio::ip::make_address(std::string(f[2]), ec);
    if (ec) return invalid(Error::malformed, "v1 header: bad source address");
    auto dst = boost::asio::ip::make_address(std::string(f[3]), ec);
    if (ec) return invalid(Error::malformed, "v1 header: bad destination address");
    const bool v4 = f[1] == "TCP4";
    if (src.is_v4() != v4 || dst.is_v4() != v4)
        return invalid(Error::malformed,
                       "v1 header: address family does not match " + std::string(f[1]));
    std::uint16_t dport = 0;
    if (!parse_port(f[4], r.source_port) || !parse_port(f[5], dport))
        return invalid(Error::malformed, "v1 header: bad port");
    r.has_address = true;
    r.source = src;
    return r;
}

Result decode_v2(std::span<const std::uint8_t> in) {
    if (in.size() < 16) return {};
    const std::uint8_t ver_cmd = in[12], fam = in[13];
    const std::size_t len = (std::size_t(in[14]) << 8) | in[15];
    if ((ver_cmd >> 4) != 2) return invalid(Error::malformed, "v2 header: version is not 2");
    const unsigned cmd = ver_cmd & 0x0F;
    if (cmd > 1) return invalid(Error::malformed, "v2 header: unknown command");
    if (16 + len > kMaxV2Length)
        return invalid(Error::oversized, "v2 header of " + std::to_string(16 + len) + " bytes");
    if (in.size() < 16 + len) return {};
    Result r;
    r.status = Result::complete;
    r.consumed = 16 + len;
    r.version = 2;
    if (cmd == 0) return r;  // LOCAL: the balancer's own connection
    const auto body = in.subspan(16, len);
    switch (fam) {
        case 0x11: {  // TCP over IPv4: src addr, dst addr, src port, dst port
            if (len < 12) return invalid(Error::malformed, "v2 header: short IPv4 addresses");
            boost::asio::ip::address_v4::bytes_type a;
            std::copy_n(body.begin(), 4, a.begin());
            r.source = boost::asio::ip::address_v4(a);
            r.source_port = std::uint16_t((body[8] << 8) | body[9]);
            r.has_address = true;
            return r;
        }
        case 0x21: {  // TCP over IPv6
            if (len < 36) return invalid(Error::malformed, "v2 header: short IPv6 addresses");
            boost::asio::ip::address_v6::bytes_type a;
            std::copy_n(body.begin(), 16, a.begin());
            r.source = boost::asio::ip::address_v6(a);
            r.source_port = std::uint16_t((body[32] << 8) | body[33]);
            r.has_address = true;
            return r;
        }
        default:
            // UNSPEC, UDP, unix sockets: nothing pggw can use; the real peer stands.
            return r;
    }
}

}  // namespace

std::string_view mode_name(Mode m) {
    switch (m) {
        case Mode::off:
            return "off";
        case Mode::v1:
            return "v1";
        case Mode::v2:
            return "v2";
        case Mode::any:
            return "auto";
    }
    return "off";
}

bool parse_mode(std::string_view s, Mode& out) {
    for (Mode m : {Mode::off, Mode::v1, Mode::v2, Mode::any}) {
        if (s == mode_name(m)) {
            out = m;
            return true;
        }
    }
    return false;
}

std::string_view error_name(Error e) {
    switch (e) {
        case Error::none:
            return "none";
        case Error::missing:
            return "missing";
        case Error::malformed:
            return "malformed";
        case Error::oversized:
            return "oversized";
    }
    return "other";
}

Result decode(std::span<const std::uint8_t> in, Mode mode) {
    if (in.empty()) return {};
    const bool v1_ok = mode == Mode::v1 || mode == Mode::any;
    const bool v2_ok = mode == Mode::v2 || mode == Mode::any;
    const bool maybe_v1 = v1_ok && could_start(in, bytes_of(kV1Prefix));
    const bool maybe_v2 = v2_ok && could_start(in, kV2Signature);
    if (!maybe_v1 && !maybe_v2) return invalid(Error::missing, "no PROXY protocol header");
    if (maybe_v1 && in.size() >= kV1Prefix.size()) return decode_v1(in);
    if (maybe_v2 && in.size() >= kV2Signature.size()) return decode_v2(in);
    return {};
}

}  // namespace pggw::proxy_protocol
