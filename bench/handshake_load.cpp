// handshake_load: a load generator for TLS handshakes over the PostgreSQL wire protocol.
// Not a Google Benchmark: built by the block at the end of bench/CMakeLists.txt.
//
// Each connection: TCP connect, SSLRequest, read 'S', full TLS handshake through pggw's own
// sans-IO engine (tls_backends/tls.hpp, client role, BoringSSL by default; no session
// resumption, so every handshake is full), then
//   --mode handshake  close_notify, then (--close wait, the default) wait for the server to
//                     close first, so that its side of the handshake is complete and the
//                     client keeps no TIME_WAIT ports; --close rst: close with RST at once
//   --mode startup    StartupMessage, wait for ReadyForQuery, Terminate, close
//   --mode idle       StartupMessage, wait for ReadyForQuery, keep the session open;
//                     prints "READY <n>" once --count sessions are open, then holds them
//                     until stdin closes (or --hold seconds pass), then closes them all.
// Blocking sockets, one connection at a time per thread: --threads is the concurrency.
//
// Output (one line, key=value): ok, fail, seconds, rate, the generator's own CPU seconds
// (cpu_s, getrusage), and client-side latency percentiles of connect-to-handshake-done
// (p50_us p90_us p99_us p999_us max_us).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tls_backends/tls.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace tls = pggw::tls;

struct Args {
    std::string host = "127.0.0.1";
    int port = 6432;
    std::string mode = "handshake";
    int threads = 4;
    double duration = 10;
    long count = 0;   // handshake/startup: stop after this many (0 = run for --duration)
    double hold = 0;  // idle: seconds to hold (0 = until stdin closes)
    std::string user = "postgres";
    std::string database = "postgres";
    std::string library = "boringssl";
    std::string groups;  // empty: the engine's default (X25519 first)
    std::string close = "wait";
};

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: handshake_load [--host H] [--port P] [--mode handshake|startup|idle]\n"
                 "  [--threads T] [--duration S] [--count N] [--hold S] [--user U] [--db D]\n"
                 "  [--tls-library boringssl|wolfssl] [--groups X25519] [--close wait|rst]\n");
    std::exit(2);
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string k = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (k == "--host")
            a.host = val();
        else if (k == "--port")
            a.port = std::stoi(val());
        else if (k == "--mode")
            a.mode = val();
        else if (k == "--threads")
            a.threads = std::stoi(val());
        else if (k == "--duration")
            a.duration = std::stod(val());
        else if (k == "--count")
            a.count = std::stol(val());
        else if (k == "--hold")
            a.hold = std::stod(val());
        else if (k == "--user")
            a.user = val();
        else if (k == "--db")
            a.database = val();
        else if (k == "--tls-library")
            a.library = val();
        else if (k == "--groups")
            a.groups = val();
        else if (k == "--close")
            a.close = val();
        else
            usage();
    }
    if (a.mode != "handshake" && a.mode != "startup" && a.mode != "idle") usage();
    if (a.threads < 1 || (a.close != "wait" && a.close != "rst")) usage();
    return a;
}

bool send_all(int fd, const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

bool flush(int fd, tls::Engine& e) {
    for (;;) {
        auto out = e.output();
        if (out.empty()) return true;
        if (!send_all(fd, out.data(), out.size())) return false;
        e.consume_output(out.size());
    }
}

// Reads ciphertext into the engine. false on error or EOF (the engine is told about EOF).
bool fill(int fd, tls::Engine& e) {
    auto space = e.input_space();
    for (;;) {
        ssize_t n = ::recv(fd, space.data(), space.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) e.input_eof();
            return false;
        }
        e.commit_input(static_cast<std::size_t>(n));
        return true;
    }
}

int connect_to(const sockaddr_in& sa) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Close with RST: no TIME_WAIT on the client side, so a long run cannot exhaust ports.
void abort_close(int fd) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
}

std::vector<std::uint8_t> startup_message(const Args& a) {
    std::vector<std::uint8_t> m(8);
    auto put = [&](const std::string& s) {
        m.insert(m.end(), s.begin(), s.end());
        m.push_back(0);
    };
    put("user");
    put(a.user);
    put("database");
    put(a.database);
    put("application_name");
    put("handshake_load");
    m.push_back(0);
    std::uint32_t len = htonl(static_cast<std::uint32_t>(m.size()));
    std::uint32_t ver = htonl(196608);  // 3.0
    std::memcpy(m.data(), &len, 4);
    std::memcpy(m.data() + 4, &ver, 4);
    return m;
}

struct Conn {
    int fd = -1;
    std::unique_ptr<tls::Engine> engine;
};

// connect + SSLRequest + 'S' + handshake. On success conn.fd/engine are set.
bool open_tls(const sockaddr_in& sa, tls::Context& ctx, Conn& c, std::string& why) {
    c.fd = connect_to(sa);
    if (c.fd < 0) {
        why = std::string("connect: ") + std::strerror(errno);
        return false;
    }
    static const std::uint8_t ssl_request[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
    if (!send_all(c.fd, ssl_request, sizeof ssl_request)) {
        why = "send SSLRequest";
        return false;
    }
    char answer = 0;
    if (::recv(c.fd, &answer, 1, 0) != 1 || answer != 'S') {
        why = std::string("SSLRequest answered '") + answer + "'";
        return false;
    }
    c.engine = ctx.new_engine(tls::EngineOptions{});
    for (;;) {
        auto r = c.engine->handshake();
        if (!flush(c.fd, *c.engine)) {
            why = "send during handshake";
            return false;
        }
        if (r == tls::Result::ok) return true;
        if (r != tls::Result::want_input) {
            why = "handshake: " + c.engine->failure_reason();
            return false;
        }
        if (!fill(c.fd, *c.engine)) {
            why = "handshake: connection closed";
            return false;
        }
    }
}

// StartupMessage, then read messages until ReadyForQuery. Fails on ErrorResponse.
bool startup(const Args& a, Conn& c, std::string& why) {
    auto msg = startup_message(a);
    if (c.engine->write(msg) != tls::Result::ok || !flush(c.fd, *c.engine)) {
        why = "send StartupMessage";
        return false;
    }
    std::vector<std::uint8_t> in;
    std::uint8_t buf[16384];
    for (;;) {
        // Parse whole messages already buffered.
        std::size_t off = 0;
        while (in.size() - off >= 5) {
            std::uint32_t len;
            std::memcpy(&len, in.data() + off + 1, 4);
            len = ntohl(len);
            if (in.size() - off < 1 + len) break;
            char type = static_cast<char>(in[off]);
            if (type == 'E') {
                why = "ErrorResponse to StartupMessage";
                return false;
            }
            if (type == 'R') {
                std::uint32_t code;
                std::memcpy(&code, in.data() + off + 5, 4);
                if (ntohl(code) != 0) {
                    why = "server asks for a password (use trust)";
                    return false;
                }
            }
            if (type == 'Z') return true;
            off += 1 + len;
        }
        in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(off));
        std::size_t n = 0;
        auto r = c.engine->read(buf, n);
        if (r == tls::Result::ok) {
            in.insert(in.end(), buf, buf + n);
            continue;
        }
        flush(c.fd, *c.engine);
        if (r != tls::Result::want_input || !fill(c.fd, *c.engine)) {
            why = "startup: connection closed";
            return false;
        }
    }
}

// Terminate (after a startup), close_notify; then either wait (up to 5 s) for the server to
// close and close normally, or close with RST at once.
void close_conn(Conn& c, bool terminate, bool wait) {
    if (c.fd < 0) return;
    bool sent = true;
    if (c.engine) {
        if (terminate) {
            static const std::uint8_t term[5] = {'X', 0, 0, 0, 4};
            c.engine->write(term);
        }
        c.engine->shutdown();
        sent = flush(c.fd, *c.engine);
    }
    if (wait && sent) {
        std::uint8_t sink[4096];
        pollfd p{c.fd, POLLIN, 0};
        while (::poll(&p, 1, 5000) > 0 && ::recv(c.fd, sink, sizeof sink, 0) > 0) {
        }
        ::close(c.fd);
    } else {
        abort_close(c.fd);
    }
    c.fd = -1;
    c.engine.reset();
}

struct ThreadResult {
    long ok = 0;
    long fail = 0;
    std::vector<std::uint32_t> lat_us;
    std::string first_error;
};

std::uint32_t pct(const std::vector<std::uint32_t>& v, double p) {
    if (v.empty()) return 0;
    std::size_t i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
    Args a = parse(argc, argv);
    std::string error;
    tls::Backend* backend = tls::load_backend(a.library, error);
    if (!backend) {
        std::fprintf(stderr, "handshake_load: %s\n", error.c_str());
        return 1;
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(a.port));
    if (::inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr) != 1) {
        std::fprintf(stderr, "handshake_load: --host must be an IPv4 address\n");
        return 2;
    }
    tls::Options opts;
    opts.role = tls::Role::client;
    opts.verify = tls::Verify::none;  // libpq sslmode=require
    opts.min_version = tls::Version::tls1_3;
    opts.groups = a.groups;

    std::vector<std::unique_ptr<tls::Context>> contexts;
    for (int t = 0; t < a.threads; ++t) {
        auto ctx = backend->new_context(opts, error);
        if (!ctx) {
            std::fprintf(stderr, "handshake_load: client context: %s\n", error.c_str());
            return 1;
        }
        contexts.push_back(std::move(ctx));
    }

    std::vector<ThreadResult> results(static_cast<std::size_t>(a.threads));
    std::atomic<long> started{0};
    std::atomic<long> opened{0};
    std::atomic<bool> stop{false};
    const bool idle = a.mode == "idle";
    const bool do_startup = a.mode != "handshake";
    const long limit = idle ? a.count : (a.count > 0 ? a.count : -1);
    if (idle && a.count <= 0) {
        std::fprintf(stderr, "handshake_load: --mode idle needs --count N\n");
        return 2;
    }
    std::vector<std::vector<Conn>> held(static_cast<std::size_t>(a.threads));

    auto t0 = Clock::now();
    auto deadline =
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.duration));
    std::vector<std::thread> threads;
    for (int t = 0; t < a.threads; ++t) {
        threads.emplace_back([&, t] {
            auto& r = results[static_cast<std::size_t>(t)];
            auto& ctx = *contexts[static_cast<std::size_t>(t)];
            r.lat_us.reserve(1 << 16);
            for (;;) {
                if (stop.load(std::memory_order_relaxed)) break;
                if (limit >= 0) {
                    if (started.fetch_add(1) >= limit) break;
                } else if (Clock::now() >= deadline) {
                    break;
                }
                Conn c;
                std::string why;
                auto c0 = Clock::now();
                bool ok = open_tls(sa, ctx, c, why);
                auto c1 = Clock::now();
                if (ok && do_startup) ok = startup(a, c, why);
                if (!ok) {
                    if (r.first_error.empty()) r.first_error = why;
                    ++r.fail;
                    if (c.fd >= 0) abort_close(c.fd);
                    if (idle && r.fail > 10) break;
                    continue;
                }
                ++r.ok;
                r.lat_us.push_back(static_cast<std::uint32_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(c1 - c0).count()));
                if (idle) {
                    held[static_cast<std::size_t>(t)].push_back(std::move(c));
                    opened.fetch_add(1);
                } else {
                    close_conn(c, do_startup, a.close == "wait");
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();

    ThreadResult all;
    for (auto& r : results) {
        all.ok += r.ok;
        all.fail += r.fail;
        all.lat_us.insert(all.lat_us.end(), r.lat_us.begin(), r.lat_us.end());
        if (all.first_error.empty()) all.first_error = r.first_error;
    }
    std::sort(all.lat_us.begin(), all.lat_us.end());
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    std::printf(
        "mode=%s library=%s threads=%d ok=%ld fail=%ld seconds=%.3f rate=%.1f cpu_s=%.2f "
        "p50_us=%u p90_us=%u p99_us=%u p999_us=%u max_us=%u",
        a.mode.c_str(), a.library.c_str(), a.threads, all.ok, all.fail, secs,
        static_cast<double>(all.ok) / secs, cpu, pct(all.lat_us, 0.5), pct(all.lat_us, 0.9),
        pct(all.lat_us, 0.99), pct(all.lat_us, 0.999), all.lat_us.empty() ? 0 : all.lat_us.back());
    if (!all.first_error.empty()) std::printf(" first_error=\"%s\"", all.first_error.c_str());
    std::printf("\n");
    std::fflush(stdout);

    if (idle) {
        std::printf("READY %ld\n", opened.load());
        std::fflush(stdout);
        if (a.hold > 0) {
            std::this_thread::sleep_for(std::chrono::duration<double>(a.hold));
        } else {
            char b[256];
            while (::read(0, b, sizeof b) > 0) {
            }
        }
        for (auto& v : held)
            for (auto& c : v) close_conn(c, true, false);
    }
    return all.ok > 0 ? 0 : 1;
}
