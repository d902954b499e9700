// Builders for client startup packets, for decoder tests.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gateway/pg/protocol.hpp"

namespace pggw::test {

inline std::vector<std::uint8_t> request(std::uint32_t code, std::uint32_t len = 8) {
    std::vector<std::uint8_t> p;
    pg::append_u32(p, len);
    pg::append_u32(p, code);
    p.resize(len, 0);
    return p;
}

inline std::vector<std::uint8_t> startup(
    const std::vector<std::pair<std::string, std::string>>& params,
    std::uint32_t version = pg::kProtocol30) {
    std::vector<std::uint8_t> p(4, 0);
    pg::append_u32(p, version);
    for (const auto& [k, v] : params) {
        p.insert(p.end(), k.begin(), k.end());
        p.push_back(0);
        p.insert(p.end(), v.begin(), v.end());
        p.push_back(0);
    }
    p.push_back(0);
    std::uint32_t len = std::uint32_t(p.size());
    p[0] = std::uint8_t(len >> 24);
    p[1] = std::uint8_t(len >> 16);
    p[2] = std::uint8_t(len >> 8);
    p[3] = std::uint8_t(len);
    return p;
}

}  // namespace pggw::test
