// GCC 12 reports a false -Wmaybe-uninitialized inside std::regex's std::function at -O2 with
// sanitizers (GCC bug 105562); this file uses std::regex to check the exposition format.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/write.hpp>

#include "metrics/admin_server.hpp"
#include "metrics/health.hpp"
#include "metrics/metrics.hpp"

namespace {

using namespace pggw::metrics;
using namespace std::chrono_literals;

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// The value of the sample whose name-and-labels part is exactly `series`.
std::optional<double> value_of(const std::string& expo, const std::string& series) {
    for (const auto& line : lines_of(expo)) {
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
            line[series.size()] == ' ') {
            return std::stod(line.substr(series.size() + 1));
        }
    }
    return std::nullopt;
}

double must(const std::string& expo, const std::string& series) {
    auto v = value_of(expo, series);
    EXPECT_TRUE(v.has_value()) << "missing series " << series;
    return v.value_or(NAN);
}

// All samples of one metric name: labels part (with braces, or "") -> value.
std::map<std::string, double> samples(const std::string& expo, const std::string& name) {
    std::map<std::string, double> out;
    const std::regex re("^" + name + R"((\{.*\})? (\S+)$)");
    for (const auto& line : lines_of(expo)) {
        std::smatch m;
        if (std::regex_match(line, m, re)) out[m[1].str()] = std::stod(m[2].str());
    }
    return out;
}

void one_session(WorkerMetrics& w) {
    w.connection_accepted();
    w.startup_request(StartupKind::ssl_request);
    w.negotiation_reply('S');
    w.tls_handshake(Leg::client, "boringssl", HandshakeResult::ok, 0.0004);
    w.tls_session(Leg::client, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
    w.startup_request(StartupKind::startup_message);
    w.session_started();
    w.server_connect(0.0002);
    w.bytes(Direction::client_to_server, 100);
    w.bytes(Direction::server_to_client, 1000);
    w.session_ended(0.5);
}

TEST(MetricsShards, SumsFourWorkersWrittenFromFourThreads) {
    Registry reg(4, {"1.2.3", "boringssl,wolfssl"});
    constexpr int kSessions = 20000;
    std::atomic<bool> done{false};
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < 4; ++t) {
        threads.emplace_back([&reg, t] {
            auto& w = reg.worker(t);
            for (int i = 0; i < kSessions; ++i) one_session(w);
            w.session_started();  // one session per worker still open
            w.client_refused("tls_required");
            w.cancel_request("forwarded");
        });
    }
    // Scrape concurrently with the writers: values only grow, never tear.
    double last = 0;
    std::thread scraper([&] {
        while (!done.load()) {
            const auto e = reg.scrape();
            const double v = value_of(e, "pggw_connections_accepted_total").value_or(-1);
            EXPECT_GE(v, last);
            last = v;
        }
    });
    for (auto& t : threads) t.join();
    done = true;
    scraper.join();

    const auto e = reg.scrape();
    EXPECT_EQ(must(e, "pggw_connections_accepted_total"), 4.0 * kSessions);
    EXPECT_EQ(must(e, "pggw_sessions_active"), 4.0);
    EXPECT_EQ(must(e, "pggw_session_duration_seconds_count"), 4.0 * kSessions);
    EXPECT_DOUBLE_EQ(must(e, "pggw_session_duration_seconds_sum"), 0.5 * 4 * kSessions);
    EXPECT_EQ(must(e, R"(pggw_startup_requests_total{kind="ssl"})"), 4.0 * kSessions);
    EXPECT_EQ(must(e, R"(pggw_startup_requests_total{kind="startup"})"), 4.0 * kSessions);
    EXPECT_EQ(must(e, R"(pggw_startup_requests_total{kind="gssenc"})"), 0.0);
    EXPECT_EQ(must(e, R"(pggw_negotiation_replies_total{reply="S"})"), 4.0 * kSessions);
    EXPECT_EQ(must(e, R"(pggw_negotiation_replies_total{reply="N"})"), 0.0);
    EXPECT_EQ(must(e, R"(pggw_tls_handshakes_total{leg="client",library="boringssl",result="ok"})"),
              4.0 * kSessions);
    EXPECT_EQ(must(e, R"(pggw_tls_sessions_total{leg="client",version="TLSv1.3",)"
                      R"(cipher="TLS_AES_128_GCM_SHA256"})"),
              4.0 * kSessions);
    EXPECT_EQ(must(e, "pggw_server_connect_duration_seconds_count"), 4.0 * kSessions);
    EXPECT_EQ(must(e, R"(pggw_bytes_total{direction="client_to_server"})"), 400.0 * kSessions);
    EXPECT_EQ(must(e, R"(pggw_bytes_total{direction="server_to_client"})"), 4000.0 * kSessions);
    EXPECT_EQ(must(e, R"(pggw_client_refusals_total{reason="tls_required"})"), 4.0);
    EXPECT_EQ(must(e, R"(pggw_client_refusals_total{reason="too_many_connections"})"), 0.0);
    EXPECT_EQ(must(e, R"(pggw_cancel_requests_total{result="forwarded"})"), 4.0);
    EXPECT_EQ(must(e, R"(pggw_cancel_requests_total{result="error"})"), 0.0);
}

TEST(MetricsHistogram, HundredMicrosOneMilliTenMilliLandInDifferentBuckets) {
    Registry reg(1, {"v", "boringssl"});
    auto& w = reg.worker(0);
    for (double s : {100e-6, 1e-3, 10e-3})
        w.tls_handshake(Leg::client, "boringssl", HandshakeResult::ok, s);
    const auto e = reg.scrape();
    // le -> cumulative count for this label set.
    std::map<double, double> buckets;
    const std::regex re(
        R"re(^pggw_tls_handshake_duration_seconds_bucket\{leg="client",library="boringssl",result="ok",le="([^"]+)"\} (\S+)$)re");
    for (const auto& line : lines_of(e)) {
        std::smatch m;
        if (std::regex_match(line, m, re)) {
            const double le = m[1] == "+Inf" ? INFINITY : std::stod(m[1].str());
            buckets[le] = std::stod(m[2].str());
        }
    }
    ASSERT_GE(buckets.size(), 15u);
    EXPECT_NEAR(buckets.begin()->first, 50e-6, 1e-12);
    EXPECT_GE(std::prev(buckets.end(), 2)->first, 10.0);  // last finite bound ~13 s
    // The bucket where each observation lands: the first whose cumulative count reaches i.
    std::vector<double> landed;
    double prev = 0;
    for (auto [le, c] : buckets) {
        for (; prev < c; ++prev) landed.push_back(le);
    }
    ASSERT_EQ(landed.size(), 3u);
    EXPECT_NE(landed[0], landed[1]);
    EXPECT_NE(landed[1], landed[2]);
    EXPECT_NEAR(landed[0], 100e-6, 1e-12);  // le is inclusive: 100us sits on a boundary
    EXPECT_GE(landed[1], 1e-3);
    EXPECT_LT(landed[1], 2e-3);
    EXPECT_GE(landed[2], 10e-3);
    EXPECT_LT(landed[2], 20e-3);
    EXPECT_EQ(buckets[INFINITY], 3);
    EXPECT_NEAR(
        must(
            e,
            R"(pggw_tls_handshake_duration_seconds_sum{leg="client",library="boringssl",result="ok"})"),
        0.0111, 1e-12);
}

TEST(MetricsHistogram, BranchlessBucketSearchMatchesLowerBound) {
    using pggw::metrics::detail::Histogram;
    using pggw::metrics::detail::LatencyBuckets;
    using pggw::metrics::detail::SessionBuckets;
    auto check = [](auto buckets_tag) {
        using B = decltype(buckets_tag);
        std::vector<double> probes{0, 1e-9, 1e-4, 1e-3, 1e-2, 1e9, INFINITY};
        for (double b : B::bounds) {
            probes.insert(probes.end(), {b, std::nextafter(b, 0.0), std::nextafter(b, 1e99)});
        }
        for (double v : probes) {
            const auto want = static_cast<std::size_t>(
                std::lower_bound(B::bounds.begin(), B::bounds.end(), v) - B::bounds.begin());
            EXPECT_EQ(Histogram<B>::bucket_of(v), want) << v;
        }
    };
    check(LatencyBuckets{});
    check(SessionBuckets{});
}

TEST(MetricsLabels, InlineStringEqualityAgreesWithStdString) {
    for (std::size_t n = 0; n < 40; ++n) {
        std::string a(n, 'x');
        for (std::size_t i = 0; i < n; ++i) a[i] = static_cast<char>('a' + i % 26);
        EXPECT_TRUE(pggw::metrics::detail::same(a, std::string(a)));
        EXPECT_FALSE(pggw::metrics::detail::same(a, a + "y"));
        for (std::size_t i = 0; i < n; ++i) {
            std::string b = a;
            b[i] ^= 1;
            EXPECT_FALSE(pggw::metrics::detail::same(a, b)) << n << " " << i;
        }
    }
}

TEST(MetricsHistogram, CountEqualsCounterForEveryLabelSet) {
    Registry reg(2, {"v", "boringssl,wolfssl"});
    const HandshakeResult results[] = {HandshakeResult::ok, HandshakeResult::error,
                                       HandshakeResult::timeout};
    for (int i = 0; i < 300; ++i) {
        auto& w = reg.worker(i % 2);
        w.tls_handshake(i % 3 ? Leg::client : Leg::server, i % 5 ? "boringssl" : "wolfssl",
                        results[i % 3], 1e-4 * i);
    }
    reg.worker(0).tls_handshake(Leg::client, "openssl?", HandshakeResult::ok, 1);
    const auto e = reg.scrape();
    const auto counters = samples(e, "pggw_tls_handshakes_total");
    const auto counts = samples(e, "pggw_tls_handshake_duration_seconds_count");
    EXPECT_EQ(counters, counts);
    // Pre-created: every result for both legs and both compiled libraries, even at zero.
    EXPECT_EQ(counters.size(), 2u * 2u * 3u + 1u);
    EXPECT_EQ(counters.at(R"({leg="client",library="other",result="ok"})"), 1);
    double total = 0;
    for (auto& [k, v] : counters) total += v;
    EXPECT_EQ(total, 301);
}

TEST(MetricsLabels, FreeFormLabelSetsAreCappedPerShard) {
    Registry reg(1, {"v", "boringssl"});
    auto& w = reg.worker(0);
    for (int i = 0; i < 40; ++i) {
        w.tls_session(Leg::client, "TLSv1.3", "CIPHER_" + std::to_string(i));
        w.tls_session(Leg::client, "TLSv1.3", "CIPHER_" + std::to_string(i));
    }
    w.tls_session(Leg::server, std::string(1000, 'x'), "huge");  // too long: "other"
    w.tls_session(Leg::server, "bad\n\"value", "");              // sanitized at scrape
    const auto e = reg.scrape();
    const auto s = samples(e, "pggw_tls_sessions_total");
    EXPECT_EQ(s.size(), 32u + 1u);
    EXPECT_EQ(s.at(R"({leg="client",version="TLSv1.3",cipher="CIPHER_0"})"), 2);
    EXPECT_EQ(s.count(R"({leg="client",version="TLSv1.3",cipher="CIPHER_32"})"), 0u);
    // 8 capped ciphers x2 + the oversized value; the sanitized one took the 32nd slot.
    EXPECT_EQ(s.at(R"({leg="other",version="other",cipher="other"})"), 8 * 2 + 1 + 1);

    Registry reg2(1, {"v", "boringssl"});
    auto& w2 = reg2.worker(0);
    w2.tls_session(Leg::server, "bad\n\"value", "");
    w2.tls_handshake_error(Leg::client, "boringssl", "unknown_ca");
    w2.tls_handshake_error(Leg::client, "boringssl", "something new");
    w2.tls_handshake_error(Leg::server, "wolfssl", "eof");
    w2.negotiation_reply('E');
    const auto e2 = reg2.scrape();
    EXPECT_EQ(
        must(e2, R"(pggw_tls_sessions_total{leg="server",version="bad_\"value",cipher="unknown"})"),
        1);
    const auto errors = samples(e2, "pggw_tls_handshake_errors_total");
    EXPECT_EQ(errors.size(), 3u);  // error series are exported once non-zero
    EXPECT_EQ(errors.at(R"({leg="client",library="boringssl",reason="unknown_ca"})"), 1);
    EXPECT_EQ(errors.at(R"({leg="client",library="boringssl",reason="other"})"), 1);
    EXPECT_EQ(errors.at(R"({leg="server",library="wolfssl",reason="eof"})"), 1);
    EXPECT_EQ(must(e2, R"(pggw_negotiation_replies_total{reply="other"})"), 1);
    // Only the compiled library is pre-created.
    EXPECT_EQ(samples(e2, "pggw_tls_handshakes_total").size(), 2u * 3u);
}

TEST(MetricsCertificates, SetCertificatesReplacesTheLegsSeries) {
    Registry reg(1, {"v", "boringssl"});
    const std::string name = "pggw_tls_certificate_expiry_timestamp_seconds";
    reg.set_certificates(Leg::client, {{"CN=old", 1700000000}, {"CN=rsa", 1800000000}});
    reg.set_certificates(Leg::server, {{"CN=server-ca", 1900000000}});
    auto s = samples(reg.scrape(), name);
    EXPECT_EQ(s.size(), 3u);
    EXPECT_EQ(s.at(R"({leg="client",subject="CN=old"})"), 1700000000);

    reg.set_certificates(Leg::client, {{"CN=new", 1750000000}, {"CN=new", 1740000000}});
    s = samples(reg.scrape(), name);
    EXPECT_EQ(s.size(), 2u);
    EXPECT_EQ(s.count(R"({leg="client",subject="CN=old"})"), 0u);
    EXPECT_EQ(s.at(R"({leg="client",subject="CN=new"})"), 1740000000);  // earliest wins
    EXPECT_EQ(s.at(R"({leg="server",subject="CN=server-ca"})"), 1900000000);

    reg.set_certificates(Leg::server, {});
    EXPECT_EQ(samples(reg.scrape(), name).size(), 1u);
}

TEST(MetricsCertificates, TlsReloadsCountedByResultFromZero) {
    Registry reg(2, {"v", "boringssl"});
    const std::string name = "pggw_tls_reloads_total";
    auto s = samples(reg.scrape(), name);
    EXPECT_EQ(s.size(), 2u);  // both series exist before the first reload
    EXPECT_EQ(s.at(R"({result="ok"})"), 0);
    EXPECT_EQ(s.at(R"({result="error"})"), 0);
    reg.tls_reloaded(true);
    reg.tls_reloaded(false);
    std::thread t([&] { reg.tls_reloaded(true); });  // process-wide: any thread
    t.join();
    s = samples(reg.scrape(), name);
    EXPECT_EQ(s.at(R"({result="ok"})"), 2);
    EXPECT_EQ(s.at(R"({result="error"})"), 1);
}

TEST(MetricsExposition, EveryLineParsesAndEveryTableRowIsExported) {
    Registry reg(2, {"0.1.0", "boringssl,wolfssl"});
    one_session(reg.worker(0));
    reg.worker(1).server_connect_error("connection_refused");
    reg.worker(1).tls_handshake_error(Leg::server, "wolfssl", "hostname_mismatch");
    reg.set_certificates(Leg::client, {{"CN=db.example.com,O=\"Quoted\\Org\"", 1800000000}});
    reg.readiness().ready = true;
    const auto e = reg.scrape();

    const std::regex help(R"(^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
    const std::regex type(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$)");
    const std::regex sample(
        R"re(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")re"
        R"re((,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*\})? (-?[0-9.]+(e[-+]?[0-9]+)?|[+-]Inf|NaN)$)re");
    std::map<std::string, std::string> types;
    for (const auto& line : lines_of(e)) {
        std::smatch m;
        if (std::regex_match(line, m, type)) {
            EXPECT_EQ(types.count(m[1].str()), 0u) << "TYPE twice: " << line;
            types[m[1].str()] = m[2].str();
            continue;
        }
        EXPECT_TRUE(std::regex_match(line, help) || std::regex_match(line, sample))
            << "unparsable line: " << line;
    }
    const char* kinds[] = {"counter", "gauge", "histogram"};
    for (const auto& row : metric_table()) {
        ASSERT_EQ(types.count(std::string(row.name)), 1u) << "not exported: " << row.name;
        EXPECT_EQ(types[std::string(row.name)], kinds[static_cast<int>(row.kind)]) << row.name;
    }
    EXPECT_EQ(types.size(), metric_table().size());

    EXPECT_EQ(must(e, R"(pggw_build_info{version="0.1.0",libraries="boringssl,wolfssl"})"), 1);
    EXPECT_EQ(must(e, "pggw_ready"), 1);
    EXPECT_EQ(must(e, "pggw_draining"), 0);
    EXPECT_EQ(must(e, R"(pggw_server_connect_errors_total{reason="connection_refused"})"), 1);
    EXPECT_GT(must(e, "process_resident_memory_bytes"), 1e5);
    EXPECT_GE(must(e, "process_virtual_memory_bytes"), must(e, "process_resident_memory_bytes"));
    EXPECT_GE(must(e, "process_open_fds"), 3);
    EXPECT_GE(must(e, "process_max_fds"), must(e, "process_open_fds"));
    EXPECT_GE(must(e, "process_cpu_seconds_total"), 0);
    const double start = must(e, "process_start_time_seconds");
    const double now = static_cast<double>(std::time(nullptr));
    EXPECT_LE(start, now + 2);
    EXPECT_GT(start, now - 24 * 3600);  // this test process started recently
}

// promtool (Debian package prometheus) lints the exposition the way Prometheus parses it.
TEST(MetricsExposition, PromtoolCheckMetricsAcceptsTheScrape) {
    // scripts/install-deps.sh installs it: its absence is a broken setup, not a reason to skip.
    ASSERT_EQ(std::system("command -v promtool >/dev/null 2>&1"), 0)
        << "promtool not found (Debian package prometheus)";
    Registry reg(2, {"0.1.0", "boringssl,wolfssl"});
    one_session(reg.worker(0));
    reg.worker(1).tls_handshake_error(Leg::client, "wolfssl", "eof");
    reg.worker(1).server_connect_error("connection_refused");
    reg.set_certificates(Leg::client, {{"CN=db", 1800000000}});
    const std::string path =
        ::testing::TempDir() + "pggw_metrics_" + std::to_string(::getpid()) + ".txt";
    {
        std::ofstream out(path);
        out << reg.scrape();
    }
    const int rc = std::system(("promtool check metrics < " + path).c_str());
    std::remove(path.c_str());
    EXPECT_EQ(rc, 0);
}

// ---- admin endpoint ----

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct HttpClient {
    HttpClient() : socket(ioc) {}
    explicit HttpClient(tcp::endpoint ep) : socket(ioc) { socket.connect(ep); }
    http::response<http::string_body> get(const std::string& target, bool keep_alive = true) {
        http::request<http::empty_body> req{http::verb::get, target, 11};
        req.set(http::field::host, "localhost");
        req.keep_alive(keep_alive);
        http::write(socket, req);
        http::response<http::string_body> res;
        http::read(socket, buffer, res);
        return res;
    }
    asio::io_context ioc;
    tcp::socket socket;
    boost::beast::flat_buffer buffer;
};

// An admin server on an ephemeral port and one worker event loop, each on its own thread.
struct AdminFixture : ::testing::Test {
    void SetUp() override {
        health.add_worker(worker_ioc.get_executor());
        server.emplace(admin_ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), reg,
                       health, options());
        server->start();
        admin_thread = std::thread([this] { admin_ioc.run(); });
        worker_thread = std::thread([this] { worker_ioc.run(); });
    }
    void TearDown() override {
        server->stop();
        admin_work.reset();
        worker_work.reset();
        admin_ioc.stop();
        admin_thread.join();
        worker_ioc.stop();
        worker_thread.join();
    }
    virtual pggw::metrics::AdminOptions options() { return {}; }
    tcp::endpoint endpoint() const { return server->local_endpoint(); }

    Registry reg{1, {"0.1.0", "boringssl"}};
    Health health;
    asio::io_context admin_ioc;
    asio::io_context worker_ioc;
    asio::executor_work_guard<asio::io_context::executor_type> admin_work{admin_ioc.get_executor()};
    asio::executor_work_guard<asio::io_context::executor_type> worker_work{
        worker_ioc.get_executor()};
    std::optional<AdminServer> server;
    std::thread admin_thread;
    std::thread worker_thread;
};

TEST_F(AdminFixture, ServesMetricsHealthzReadyzOnOneKeepAliveConnection) {
    ASSERT_NE(endpoint().port(), 0);
    reg.worker(0).connection_accepted();
    HttpClient c(endpoint());
    auto m = c.get("/metrics");
    EXPECT_EQ(m.result(), http::status::ok);
    EXPECT_EQ(m[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(must(m.body(), "pggw_connections_accepted_total"), 1);
    EXPECT_TRUE(m.keep_alive());

    EXPECT_EQ(c.get("/healthz").result(), http::status::ok);
    EXPECT_EQ(c.get("/readyz").result(), http::status::service_unavailable);
    reg.readiness().ready = true;
    EXPECT_EQ(c.get("/readyz").result(), http::status::ok);
    EXPECT_EQ(c.get("/nope").result(), http::status::not_found);
    EXPECT_EQ(c.get("/metrics?x=1").result(), http::status::ok);
}

TEST_F(AdminFixture, ReadyzFlipsWhileDrainingAndHealthzStaysOk) {
    reg.readiness().ready = true;
    HttpClient c(endpoint());
    EXPECT_EQ(c.get("/readyz").result(), http::status::ok);
    reg.readiness().draining = true;
    auto r = c.get("/readyz");
    EXPECT_EQ(r.result(), http::status::service_unavailable);
    EXPECT_EQ(r.body(), "draining\n");
    EXPECT_EQ(c.get("/healthz").result(), http::status::ok);
    EXPECT_EQ(must(c.get("/metrics").body(), "pggw_draining"), 1);
}

TEST_F(AdminFixture, HealthzIs503WhileAWorkerLoopIsBlocked) {
    HttpClient c(endpoint());
    EXPECT_EQ(c.get("/healthz").result(), http::status::ok);
    std::atomic<bool> blocked{false};
    std::atomic<bool> released{false};
    asio::post(worker_ioc, [&] {
        blocked = true;
        std::this_thread::sleep_for(1500ms);
        released = true;
    });
    while (!blocked) std::this_thread::sleep_for(1ms);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.get("/healthz");
    const auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(r.result(), http::status::service_unavailable);
    EXPECT_FALSE(released.load());  // answered within the 1 s probe timeout, not after
    EXPECT_GE(waited, 900ms);
    while (!released) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(c.get("/healthz").result(), http::status::ok);
}

TEST_F(AdminFixture, HealthzIs503WhenAWorkerLoopHasStopped) {
    worker_ioc.stop();
    worker_thread.join();
    worker_thread = std::thread([] {});
    HttpClient c(endpoint());
    EXPECT_EQ(c.get("/healthz").result(), http::status::service_unavailable);
}

TEST_F(AdminFixture, RejectsOtherMethodsAndOversizedRequests) {
    HttpClient c(endpoint());
    http::request<http::string_body> post{http::verb::post, "/metrics", 11};
    post.body() = "x";
    post.prepare_payload();
    http::write(c.socket, post);
    http::response<http::string_body> res;
    http::read(c.socket, c.buffer, res);
    EXPECT_EQ(res.result(), http::status::method_not_allowed);

    HttpClient big(endpoint());
    http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
    req.set("X-Padding", std::string(20000, 'a'));
    http::write(big.socket, req);
    http::response<http::string_body> res2;
    boost::beast::error_code ec;
    http::read(big.socket, big.buffer, res2, ec);
    if (!ec) {
        EXPECT_EQ(res2.result(), http::status::payload_too_large);
    }
    // Either way the connection is closed.
    http::read(big.socket, big.buffer, res2, ec);
    EXPECT_TRUE(ec);
}

struct AdminIdleFixture : AdminFixture {
    pggw::metrics::AdminOptions options() override {
        pggw::metrics::AdminOptions o;
        o.request_timeout = 200ms;
        return o;
    }
};

// Reads until the server closes; true when it did within `within`.
bool closed_within(tcp::socket& s, std::chrono::milliseconds within) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    timeval tv{0, 50'000};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    while (std::chrono::steady_clock::now() < deadline) {
        ssize_t n = ::recv(s.native_handle(), buf, sizeof buf, 0);
        if (n == 0) return true;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
    }
    return false;
}

TEST_F(AdminIdleFixture, ClosesAConnectionWhoseHeadersDribble) {
    HttpClient c(endpoint());
    const auto t0 = std::chrono::steady_clock::now();
    boost::asio::write(c.socket, asio::buffer(std::string("GET /healthz HTTP/1.1\r\n")));
    bool closed = false;
    for (int i = 0; i < 20 && !closed; ++i) {  // a header line every 50 ms: never complete
        boost::system::error_code ec;
        boost::asio::write(c.socket, asio::buffer(std::string("X-Slow: 1\r\n")), ec);
        closed = ec || closed_within(c.socket, 50ms);
    }
    const auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_TRUE(closed);
    EXPECT_GE(waited, 150ms);
    EXPECT_LT(waited, 900ms);
}

struct AdminCapFixture : AdminFixture {
    pggw::metrics::AdminOptions options() override {
        pggw::metrics::AdminOptions o;
        o.max_connections = 6;
        o.max_connections_per_source = 3;
        return o;
    }
    // A connection from a given loopback address (all of 127/8 is local on Linux).
    std::unique_ptr<HttpClient> from(const char* source) {
        auto c = std::make_unique<HttpClient>();
        c->socket.open(tcp::v4());
        c->socket.bind(tcp::endpoint(asio::ip::make_address(source), 0));
        c->socket.connect(endpoint());
        return c;
    }
};

TEST_F(AdminCapFixture, OneSourceCannotTakeEverySlot) {
    std::vector<std::unique_ptr<HttpClient>> crowd;
    for (int i = 0; i < 3; ++i) crowd.push_back(from("127.0.0.1"));
    for (auto& c : crowd) EXPECT_EQ(c->get("/healthz").result(), http::status::ok);
    // A fourth from the same source is closed at once, before any request.
    auto extra = from("127.0.0.1");
    EXPECT_TRUE(closed_within(extra->socket, 1000ms));
    // Another source still gets in while the crowd holds its connections open.
    auto probe = from("127.0.0.2");
    EXPECT_EQ(probe->get("/healthz").result(), http::status::ok);
    auto probe2 = from("127.0.0.2");
    auto probe3 = from("127.0.0.3");
    EXPECT_EQ(probe2->get("/readyz").result(), http::status::service_unavailable);
    EXPECT_EQ(probe3->get("/healthz").result(), http::status::ok);
    // Six open in all: a seventh is closed, whoever it comes from.
    auto seventh = from("127.0.0.4");
    EXPECT_TRUE(closed_within(seventh->socket, 1000ms));
    // A slot given back is free again (for that source too).
    crowd.pop_back();
    std::this_thread::sleep_for(100ms);
    bool served = false;
    for (int i = 0; i < 20 && !served; ++i) {  // the server sees the close soon after
        auto again = from("127.0.0.1");
        boost::system::error_code ec;
        http::request<http::empty_body> req{http::verb::get, "/healthz", 11};
        http::write(again->socket, req, ec);
        http::response<http::string_body> res;
        if (!ec) http::read(again->socket, again->buffer, res, ec);
        served = !ec && res.result() == http::status::ok;
        if (!served) std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(served);
}

TEST_F(AdminIdleFixture, ClosesIdleConnections) {
    HttpClient c(endpoint());
    EXPECT_EQ(c.get("/healthz").result(), http::status::ok);
    std::this_thread::sleep_for(500ms);
    char byte;
    boost::system::error_code ec;
    c.socket.read_some(asio::buffer(&byte, 1), ec);
    EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
}

TEST(AdminBind, FailsClearlyWhenTheAddressIsTaken) {
    asio::io_context ioc;
    Registry reg(1, {"v", "boringssl"});
    Health health;
    AdminServer a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), reg, health);
    a.start();
    AdminServer b(ioc, a.local_endpoint(), reg, health);
    EXPECT_THROW(b.start(), std::system_error);
}

}  // namespace
