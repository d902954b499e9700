// The --server name's addresses, per worker. getaddrinfo cannot be cancelled, and Asio runs it
// on one background thread per io_context: a session that waited on it directly could outlive
// --server-connect-timeout by the resolver's own timeouts, and one slow lookup would delay
// every session of the worker behind it. So a worker looks a name up at most once at a time,
// keeps the answer for kFresh and refreshes it in the background after that (sessions use the
// previous answer meanwhile); a session waits for DNS only when no answer is known yet, and
// that wait ends with the session's deadline. A name that fails to resolve is not looked up
// again for kRetryAfterFailure (its sessions fail at once meanwhile). Names given as literal
// addresses never reach here.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gateway/net/asio.hpp"

namespace pggw {

class ResolverCache {
  public:
    static constexpr auto kFresh = std::chrono::seconds(5);
    static constexpr auto kRetryAfterFailure = std::chrono::seconds(1);
    static constexpr std::size_t kMaxNames = 16;

    struct Answer {
        error_code error;  // the lookup's; operation_aborted: the caller's deadline came first
        std::vector<tcp::endpoint> endpoints;
    };

    // On the worker's thread only.
    awaitable<Answer> resolve(const std::string& host, std::uint16_t port);
    // Every address of the last answer refused the connection: the next session waits for a
    // fresh lookup instead of trying them again (failover DNS).
    void forget(const std::string& host, std::uint16_t port);
    // Lookups started so far (for tests and debugging).
    std::size_t lookups() const { return lookups_; }

  private:
    struct Entry {
        explicit Entry(asio::any_io_executor ex)
            : done(ex, asio::steady_timer::time_point::max()) {}
        bool has_answer = false;
        Answer answer;
        std::chrono::steady_clock::time_point at{};
        bool in_flight = false;
        asio::steady_timer done;  // never expires: cancel() wakes the waiters of a lookup
    };
    static awaitable<void> lookup(std::shared_ptr<Entry> e, std::string host, std::uint16_t port);

    std::map<std::string, std::shared_ptr<Entry>> entries_;
    std::size_t lookups_ = 0;
};

}  // namespace pggw
