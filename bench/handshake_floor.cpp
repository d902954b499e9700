// handshake_floor: the CPU of one server-side TLS 1.3 handshake with no sockets, the first
// part of the handshake floor in bench/handshake_floor.sh (the second is a plaintext
// connection through pggw). A server engine and a client engine of the same library are
// pumped against each other in memory, as the TLS conformance tests do (tests/tls/pump.hpp);
// only the server's calls are timed (the thread's CPU clock): engine creation, handshake()
// and destruction, as pggw pays them per connection. Full handshakes (no resumption), the
// server context as pggw makes it (ALPN "postgresql", TLS 1.2-1.3, default groups).
//
// usage: handshake_floor --cert F --key F [--library boringssl] [--count 2000] [--batches 5]
// Output (one line, key=value): server_us (median over batches of the mean per handshake),
// client_us, batches, count.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/tls/pump.hpp"
#include "tls_backends/tls.hpp"

namespace {

namespace tls = pggw::tls;

double thread_cpu_us() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) * 1e6 + double(ts.tv_nsec) / 1e3;
}

// Runs f, adding its thread CPU time to acc.
template <class F>
auto timed(double& acc, F&& f) {
    const double t0 = thread_cpu_us();
    auto r = f();
    acc += thread_cpu_us() - t0;
    return r;
}

int fail(const std::string& what) {
    std::fprintf(stderr, "handshake_floor: %s\n", what.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::string library = "boringssl", cert, key;
    long count = 2000, batches = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        if (k == "--library")
            library = v;
        else if (k == "--cert")
            cert = v;
        else if (k == "--key")
            key = v;
        else if (k == "--count")
            count = std::atol(v.c_str());
        else if (k == "--batches")
            batches = std::atol(v.c_str());
        else
            return fail("unknown option " + k);
    }
    if (cert.empty() || key.empty() || count < 1 || batches < 1)
        return fail("usage: --cert F --key F [--library L] [--count N] [--batches B]");
    std::string error;
    tls::Backend* backend = tls::load_backend(library, error);
    if (!backend) return fail(error);
    tls::Options so;
    so.role = tls::Role::server;
    so.cert_file = cert;
    so.key_file = key;
    so.alpn = {"postgresql"};
    auto server_ctx = backend->new_context(so, error);
    if (!server_ctx) return fail("server context: " + error);
    tls::Options co;
    co.role = tls::Role::client;
    co.verify = tls::Verify::none;
    co.min_version = tls::Version::tls1_3;
    auto client_ctx = backend->new_context(co, error);
    if (!client_ctx) return fail("client context: " + error);

    std::vector<double> server_us, client_us;
    for (long b = 0; b < batches; ++b) {
        double s = 0, c = 0;
        for (long i = 0; i < count; ++i) {
            auto server = timed(s, [&] { return server_ctx->new_engine({}); });
            auto client = timed(c, [&] { return client_ctx->new_engine({}); });
            tls::Result sr = tls::Result::want_input, cr = tls::Result::want_input;
            for (int step = 0;
                 step < 64 && (sr == tls::Result::want_input || cr == tls::Result::want_input);
                 ++step) {
                if (cr == tls::Result::want_input)
                    cr = timed(c, [&] { return client->handshake(); });
                if (sr == tls::Result::want_input)
                    sr = timed(s, [&] { return server->handshake(); });
                pggw::tls::test::transfer(*client, *server);
                pggw::tls::test::transfer(*server, *client);
            }
            if (sr != tls::Result::ok || cr != tls::Result::ok) return fail("handshake failed");
            timed(s, [&] {
                server.reset();
                return 0;
            });
            client.reset();
        }
        server_us.push_back(s / double(count));
        client_us.push_back(c / double(count));
    }
    auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    std::printf("server_us=%.1f client_us=%.1f batches=%ld count=%ld library=%s\n",
                median(server_us), median(client_us), batches, count, library.c_str());
    return 0;
}
