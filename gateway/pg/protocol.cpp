#include "gateway/pg/protocol.hpp"

namespace pggw::pg {

std::vector<std::uint8_t> error_response(std::string_view sqlstate, std::string_view message,
                                         std::string_view severity, std::string_view detail) {
    std::vector<std::uint8_t> out;
    out.reserve(18 + sqlstate.size() + message.size() + 2 * severity.size() + detail.size());
    out.push_back('E');
    append_u32(out, 0);  // patched below
    auto field = [&](char type, std::string_view value) {
        out.push_back(std::uint8_t(type));
        out.insert(out.end(), value.begin(), value.end());
        out.push_back(0);
    };
    field('S', severity);
    field('V', severity);
    field('C', sqlstate);
    field('M', message);
    if (!detail.empty()) field('D', detail);
    out.push_back(0);
    std::uint32_t len = std::uint32_t(out.size() - 1);
    out[1] = std::uint8_t(len >> 24);
    out[2] = std::uint8_t(len >> 16);
    out[3] = std::uint8_t(len >> 8);
    out[4] = std::uint8_t(len);
    return out;
}

}  // namespace pggw::pg
