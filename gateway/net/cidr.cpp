#include "gateway/net/cidr.hpp"

#include <charconv>

namespace pggw {

namespace {

// The first `prefix` bits of two byte arrays of the same length are equal.
template <class Bytes>
bool same_prefix(const Bytes& a, const Bytes& b, unsigned prefix) {
    for (std::size_t i = 0; i < a.size() && prefix > 0; ++i, prefix = prefix > 8 ? prefix - 8 : 0) {
        unsigned bits = prefix >= 8 ? 8 : prefix;
        auto mask = std::uint8_t(0xFF00u >> bits);
        if ((a[i] & mask) != (b[i] & mask)) return false;
    }
    return true;
}

}  // namespace

bool Cidr::contains(const boost::asio::ip::address& in) const {
    namespace ip = boost::asio::ip;
    ip::address a = in;
    if (a.is_v6() && a.to_v6().is_v4_mapped()) a = ip::make_address_v4(ip::v4_mapped, a.to_v6());
    if (a.is_v4() != network.is_v4()) return false;
    if (a.is_v4()) return same_prefix(a.to_v4().to_bytes(), network.to_v4().to_bytes(), prefix);
    return same_prefix(a.to_v6().to_bytes(), network.to_v6().to_bytes(), prefix);
}

std::string Cidr::str() const {
    return network.to_string() + "/" + std::to_string(prefix);
}

bool parse_cidr(std::string_view s, Cidr& out, std::string& error) {
    auto slash = s.find('/');
    boost::system::error_code ec;
    auto addr = boost::asio::ip::make_address(std::string(s.substr(0, slash)), ec);
    if (ec) {
        error = "expected ADDRESS[/PREFIX], got \"" + std::string(s) + "\"";
        return false;
    }
    const unsigned max = addr.is_v4() ? 32 : 128;
    unsigned prefix = max;
    if (slash != std::string_view::npos) {
        auto p = s.substr(slash + 1);
        auto [end, perr] = std::from_chars(p.data(), p.data() + p.size(), prefix);
        if (p.empty() || perr != std::errc{} || end != p.data() + p.size() || prefix > max) {
            error = "bad prefix length in \"" + std::string(s) + "\"";
            return false;
        }
    }
    Cidr c{addr, prefix};
    // Host bits set ("10.0.0.1/8") is almost always a typo for a narrower range: refuse it.
    Cidr exact{addr, max};
    Cidr zeroed = c;
    if (addr.is_v4()) {
        auto b = addr.to_v4().to_bytes();
        for (unsigned i = prefix; i < 32; ++i) b[i / 8] &= std::uint8_t(~(0x80u >> (i % 8)));
        zeroed.network = boost::asio::ip::address_v4(b);
    } else {
        auto b = addr.to_v6().to_bytes();
        for (unsigned i = prefix; i < 128; ++i) b[i / 8] &= std::uint8_t(~(0x80u >> (i % 8)));
        zeroed.network = boost::asio::ip::address_v6(b);
    }
    if (!exact.contains(zeroed.network)) {
        error = "\"" + std::string(s) + "\" has host bits set (did you mean " + zeroed.str() + "?)";
        return false;
    }
    out = c;
    return true;
}

}  // namespace pggw
