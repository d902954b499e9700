#include "gateway/app/drain.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace pggw {

namespace {

std::chrono::steady_clock::duration from_seconds(double s) {
    if (!(s > 0)) return {};
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(s));
}

}  // namespace

DrainSettings DrainSettings::from_seconds(double delay_s, double timeout_s) {
    DrainSettings s;
    s.delay = pggw::from_seconds(delay_s);
    s.timeout = pggw::from_seconds(timeout_s);
    return s;
}

Drain::Drain(asio::io_context& io, DrainSettings settings, DrainHooks hooks)
    : settings_(settings), hooks_(std::move(hooks)), timer_(io) {}

void Drain::start() {
    if (phase_ != Phase::idle) return;
    if (settings_.delay <= std::chrono::steady_clock::duration::zero()) {
        begin_draining();
        return;
    }
    phase_ = Phase::delay;
    timer_.expires_after(settings_.delay);
    timer_.async_wait([this](error_code ec) {
        if (!ec) begin_draining();
    });
}

void Drain::begin_draining() {
    phase_ = Phase::draining;
    hooks_.stop_accepting();
    deadline_ = std::chrono::steady_clock::now() + settings_.timeout;
    poll();
}

// Every `poll`: done when no session is left; at the deadline, the next phase.
void Drain::poll() {
    const std::size_t live = hooks_.live();
    if (live == 0) {
        finish();
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline_) {
        if (phase_ == Phase::draining) {
            spdlog::warn(
                "drain timeout: ending {} remaining sessions (FATAL 57P01 \"terminating "
                "connection due to administrator command\")",
                live);
            phase_ = Phase::forced;
            hooks_.force();
            deadline_ = std::chrono::steady_clock::now() + settings_.grace;
        } else {
            spdlog::warn(
                "drain: {} sessions did not close within {} ms of the timeout; stopping", live,
                std::chrono::duration_cast<std::chrono::milliseconds>(settings_.grace).count());
            finish();
            return;
        }
    }
    timer_.expires_at(std::min(now + settings_.poll, deadline_));
    timer_.async_wait([this](error_code ec) {
        if (!ec) poll();
    });
}

void Drain::finish() {
    if (phase_ == Phase::done) return;
    phase_ = Phase::done;
    hooks_.done();
}

}  // namespace pggw
