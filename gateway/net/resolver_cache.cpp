#include "gateway/net/resolver_cache.hpp"

namespace pggw {

namespace {
std::string key_of(const std::string& host, std::uint16_t port) {
    return host + '\n' + std::to_string(port);
}
}  // namespace

awaitable<void> ResolverCache::lookup(std::shared_ptr<Entry> e, std::string host,
                                      std::uint16_t port) {
    tcp::resolver resolver(co_await asio::this_coro::executor);
    auto [ec, results] = co_await resolver.async_resolve(host, std::to_string(port), use_nothrow);
    Answer a;
    a.error = ec;
    if (!ec) {
        for (const auto& r : results) a.endpoints.push_back(r.endpoint());
        if (a.endpoints.empty()) a.error = asio::error::host_not_found;
    }
    e->answer = std::move(a);
    e->has_answer = true;
    e->at = std::chrono::steady_clock::now();
    e->in_flight = false;
    e->done.cancel();  // wakes every session waiting for this answer
}

awaitable<ResolverCache::Answer> ResolverCache::resolve(const std::string& host,
                                                        std::uint16_t port) {
    const std::string key = key_of(host, port);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        if (entries_.size() >= kMaxNames) entries_.clear();  // one --server name in practice
        auto ex = co_await asio::this_coro::executor;
        it = entries_.emplace(key, std::make_shared<Entry>(ex)).first;
    }
    std::shared_ptr<Entry> e = it->second;
    const auto now = std::chrono::steady_clock::now();
    const bool failed = e->has_answer && e->answer.error;
    const auto age = now - e->at;
    const bool fresh =
        e->has_answer && age < (failed ? std::chrono::steady_clock::duration(kRetryAfterFailure)
                                       : std::chrono::steady_clock::duration(kFresh));
    if (fresh) co_return e->answer;
    if (!e->in_flight) {
        e->in_flight = true;
        ++lookups_;
        asio::co_spawn(co_await asio::this_coro::executor, lookup(e, host, port), asio::detached);
    }
    // A stale answer serves while the refresh runs; only a name never resolved (or whose last
    // lookup failed) makes the session wait.
    if (e->has_answer && !failed) co_return e->answer;
    co_await e->done.async_wait(use_nothrow);
    if (e->in_flight || !e->has_answer) co_return Answer{asio::error::operation_aborted, {}};
    co_return e->answer;
}

void ResolverCache::forget(const std::string& host, std::uint16_t port) {
    auto it = entries_.find(key_of(host, port));
    if (it != entries_.end() && !it->second->in_flight) it->second->has_answer = false;
}

}  // namespace pggw
