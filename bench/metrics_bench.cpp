// Cost of the metrics updates one TLS session makes on the hot path (per-worker shard,
// single-writer relaxed atomics), and of a scrape.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

#include "metrics/metrics.hpp"

namespace {

using namespace pggw::metrics;

void one_handshake(WorkerMetrics& w, double t) {
    w.connection_accepted();
    w.startup_request(StartupKind::ssl_request);
    w.negotiation_reply('S');
    w.tls_handshake(Leg::client, "boringssl", HandshakeResult::ok, t);
    w.tls_session(Leg::client, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
    w.startup_request(StartupKind::startup_message);
    w.session_started();
    w.server_connect(t * 0.5);
    w.bytes(Direction::client_to_server, 120);
    w.bytes(Direction::server_to_client, 4096);
    w.session_ended(t * 100);
}

// One handshake's worth of updates: 11 calls.
void BM_HandshakeUpdates(benchmark::State& state) {
    Registry reg(1, {"bench", "boringssl,wolfssl"});
    auto& w = reg.worker(0);
    // A realistic shard: a few TLS (version, cipher) label sets already present.
    w.tls_session(Leg::server, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
    w.tls_session(Leg::client, "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256");
    double t = 0.0003;
    for (auto _ : state) {
        one_handshake(w, t);
        t = t < 1 ? t * 1.07 : 0.0003;  // walk the histogram buckets
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
}
// On a shared machine the minimum over repetitions is the figure least disturbed by neighbours.
double min_of(const std::vector<double>& v) {
    return *std::min_element(v.begin(), v.end());
}
BENCHMARK(BM_HandshakeUpdates)->ComputeStatistics("min", min_of);

// The same with 2 workers updating their own shards concurrently (no shared cache lines).
void BM_HandshakeUpdatesThreaded(benchmark::State& state) {
    static Registry reg(2, {"bench", "boringssl,wolfssl"});
    auto& w = reg.worker(static_cast<std::size_t>(state.thread_index()));
    double t = 0.0003;
    for (auto _ : state) {
        one_handshake(w, t);
        t = t < 1 ? t * 1.07 : 0.0003;
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HandshakeUpdatesThreaded)->Threads(2)->UseRealTime()->ComputeStatistics("min", min_of);

// A full /metrics body, 8 workers.
void BM_Scrape(benchmark::State& state) {
    Registry reg(8, {"bench", "boringssl,wolfssl"});
    for (std::size_t i = 0; i < 8; ++i) one_handshake(reg.worker(i), 0.001);
    std::size_t bytes = 0;
    for (auto _ : state) {
        auto s = reg.scrape();
        bytes = s.size();
        benchmark::DoNotOptimize(s);
    }
    state.counters["body_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Scrape)->Unit(benchmark::kMicrosecond);

}  // namespace
