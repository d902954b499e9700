// An address range in CIDR notation ("10.0.0.0/8", "2001:db8::/32", or one address), for
// --proxy-trusted.
#pragma once

#include <string>
#include <string_view>

#include <boost/asio/ip/address.hpp>

namespace pggw {

struct Cidr {
    boost::asio::ip::address network;
    unsigned prefix = 0;

    // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches the IPv4 range.
    bool contains(const boost::asio::ip::address& a) const;
    std::string str() const;
};

// false and error set when s is not ADDRESS[/PREFIX] (host bits must be zero).
bool parse_cidr(std::string_view s, Cidr& out, std::string& error);

}  // namespace pggw
