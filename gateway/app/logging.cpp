#include "gateway/app/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <ctime>

namespace pggw {

namespace {

// The keys pggw's messages carry (key=value, values bare or "quoted": log_value.hpp). Only
// these become JSON fields, so that prose in a message never turns into a key.
constexpr std::array<std::string_view, 18> kFields{
    "peer",     "via",       "user",   "database", "worker",   "duration",
    "bytes_in", "bytes_out", "tls",    "reason",   "sqlstate", "server",
    "sni",      "version",   "cipher", "result",   "alpn",     "client_cn"};

void append_json_string(spdlog::memory_buf_t& out, std::string_view s) {
    out.push_back('"');
    for (unsigned char c : s) {
        switch (c) {
            case '"':
                out.append(std::string_view("\\\""));
                break;
            case '\\':
                out.append(std::string_view("\\\\"));
                break;
            case '\n':
                out.append(std::string_view("\\n"));
                break;
            case '\r':
                out.append(std::string_view("\\r"));
                break;
            case '\t':
                out.append(std::string_view("\\t"));
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    static constexpr char hex[] = "0123456789abcdef";
                    out.append(std::string_view("\\u00"));
                    out.push_back(hex[c >> 4]);
                    out.push_back(hex[c & 15]);
                } else {
                    out.push_back(char(c));  // UTF-8 passes; invalid bytes were escaped upstream
                }
        }
    }
    out.push_back('"');
}

// A logfmt value at s[i] (bare up to a space, or "quoted" with escapes); i moves past it.
std::string read_value(std::string_view s, std::size_t& i) {
    std::string v;
    if (i < s.size() && s[i] == '"') {
        for (++i; i < s.size() && s[i] != '"'; ++i) {
            if (s[i] == '\\' && i + 1 < s.size()) {
                char e = s[++i];
                if (e == 'n')
                    v += '\n';
                else if (e == 'r')
                    v += '\r';
                else if (e == 't')
                    v += '\t';
                else if (e == 'x' && i + 2 < s.size()) {
                    v += char(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
                    i += 2;
                } else
                    v += e;
            } else {
                v += s[i];
            }
        }
        if (i < s.size()) ++i;  // the closing quote
        return v;
    }
    while (i < s.size() && s[i] != ' ') v += s[i++];
    // "sqlstate=28000: message", "server 10.0.0.1:5432;": punctuation ends the value.
    while (!v.empty() && (v.back() == ':' || v.back() == ';' || v.back() == ',')) v.pop_back();
    return v;
}

class JsonFormatter : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        using namespace std::chrono;
        const auto t = msg.time;
        const std::time_t secs = system_clock::to_time_t(t);
        const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count() % 1000;
        std::tm tm{};
        gmtime_r(&secs, &tm);
        char ts[80];
        std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms));
        const std::string_view text(msg.payload.data(), msg.payload.size());
        dest.append(std::string_view("{\"time\":\""));
        dest.append(std::string_view(ts));
        dest.append(std::string_view("\",\"level\":"));
        const auto level = spdlog::level::to_string_view(msg.level);
        append_json_string(dest, std::string_view(level.data(), level.size()));
        dest.append(std::string_view(",\"pid\":"));
        dest.append(std::to_string(pid_));
        dest.append(std::string_view(",\"msg\":"));
        append_json_string(dest, text);
        // key=value fields, first occurrence of each known key.
        std::array<bool, kFields.size()> seen{};
        for (std::size_t i = 0; i < text.size(); ++i) {
            if (i > 0 && text[i - 1] != ' ') continue;
            auto eq = text.find('=', i);
            if (eq == std::string_view::npos) break;
            const auto key = text.substr(i, eq - i);
            for (std::size_t k = 0; k < kFields.size(); ++k) {
                if (seen[k] || key != kFields[k]) continue;
                seen[k] = true;
                std::size_t j = eq + 1;
                const std::string v = read_value(text, j);
                dest.push_back(',');
                append_json_string(dest, key);
                dest.push_back(':');
                append_json_string(dest, v);
                i = j;
                break;
            }
        }
        dest.append(std::string_view("}\n"));
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JsonFormatter>();
    }

  private:
    int pid_ = int(::getpid());
};

}  // namespace

bool parse_log_format(std::string_view s, LogFormat& out) {
    if (s == "text")
        out = LogFormat::text;
    else if (s == "json")
        out = LogFormat::json;
    else
        return false;
    return true;
}

std::unique_ptr<spdlog::formatter> make_json_formatter() {
    return std::make_unique<JsonFormatter>();
}

void setup_logging(LogFormat format) {
    auto logger = spdlog::get("pggw");
    if (!logger) {
        // Colours only reach a terminal; JSON sets its own formatter (no colour range).
        logger = spdlog::stderr_color_mt("pggw");
        spdlog::set_default_logger(logger);
    }
    if (format == LogFormat::json) {
        logger->set_formatter(make_json_formatter());
    } else {
        logger->set_pattern("%Y-%m-%d %H:%M:%S.%e UTC [%P] %^%l%$: %v",
                            spdlog::pattern_time_type::utc);
    }
}

}  // namespace pggw
