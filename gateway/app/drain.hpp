// The process's drain after SIGTERM/SIGINT, on the main io_context, in three steps:
//
//   delay    (--drain-delay, default 0)   /readyz answers 503 (the caller sets that before
//            start()); the listeners stay open and new sessions are served, so that a load
//            balancer can take the instance out of rotation before connections are refused
//   drain    (--drain-timeout, default 30) listeners closed; sessions end at their first idle
//            moment with FATAL 57P01; done as soon as none is left
//   forced   at the timeout, sessions still open are told FATAL 57P01 and closed; done when
//            none is left, or after `grace` at most (a client that does not read)
//
// Drain knows nothing of workers: the gateway hands it what to call.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>

#include "gateway/net/asio.hpp"

namespace pggw {

struct DrainSettings {
    std::chrono::steady_clock::duration delay{};
    std::chrono::steady_clock::duration timeout = std::chrono::seconds(30);
    // After the timeout: how long sessions have to take their 57P01 and close.
    std::chrono::steady_clock::duration grace = std::chrono::seconds(2);
    std::chrono::steady_clock::duration poll = std::chrono::milliseconds(100);

    static DrainSettings from_seconds(double delay_s, double timeout_s);
};

struct DrainHooks {
    std::function<void()> stop_accepting;  // close the listeners; sessions end when idle
    std::function<void()> force;           // end every session still open
    std::function<std::size_t()> live;     // sessions open now
    std::function<void()> done;            // the drain is over (called once)
};

class Drain {
  public:
    enum class Phase { idle, delay, draining, forced, done };

    Drain(asio::io_context& io, DrainSettings settings, DrainHooks hooks);
    Drain(const Drain&) = delete;
    Drain& operator=(const Drain&) = delete;

    // Starts the delay (or, with none, the drain proper). Once only; later calls do nothing.
    void start();
    Phase phase() const { return phase_; }
    const DrainSettings& settings() const { return settings_; }

  private:
    void begin_draining();
    void poll();
    void finish();

    DrainSettings settings_;
    DrainHooks hooks_;
    asio::steady_timer timer_;
    Phase phase_ = Phase::idle;
    std::chrono::steady_clock::time_point deadline_{};  // of the current phase
};

}  // namespace pggw
