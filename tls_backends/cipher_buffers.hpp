// The ciphertext buffers every Engine keeps, shared by all backends (as ngtcp2's crypto
// backends share their common code): the driver writes what it read from the peer into
// input_space()/commit_input(), the library's read hook pull()s it; the library's write hook
// push()es records, the driver sends output() and calls consume_output(). No TLS library here:
// the engines keep their own return codes (EOF, want-read) around pull() and push().
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace pggw::tls {

class CipherBuffers {
  public:
    // The input buffer starts small (idle sessions are most of them, and their messages are
    // small) and grows once to room for one full TLS record (16 KiB + expansion + header) the
    // first time a socket read fills it.
    static constexpr std::size_t kInputInitial = 4 * 1024;
    static constexpr std::size_t kInputCapacity = 17 * 1024;
    // An output buffer that grew past this (a large write) is released once drained.
    static constexpr std::size_t kOutputKeepCapacity = 256 * 1024;

    std::span<std::uint8_t> input_space() {
        if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
        if (!in_ || (in_full_ && in_capacity_ < kInputCapacity)) {
            std::size_t capacity = in_ ? kInputCapacity : kInputInitial;
            std::unique_ptr<std::uint8_t[]> bigger(new std::uint8_t[capacity]);  // not zeroed
            if (in_end_ > in_begin_) {
                std::memcpy(bigger.get(), in_.get() + in_begin_, in_end_ - in_begin_);
            }
            in_end_ -= in_begin_;
            in_begin_ = 0;
            in_ = std::move(bigger);
            in_capacity_ = capacity;
        } else if (in_end_ == in_capacity_ && in_begin_ > 0) {
            std::memmove(in_.get(), in_.get() + in_begin_, in_end_ - in_begin_);
            in_end_ -= in_begin_;
            in_begin_ = 0;
        }
        return {in_.get() + in_end_, in_capacity_ - in_end_};
    }
    // Returns the bytes committed (n, capped at the space input_space() gave).
    std::span<const std::uint8_t> commit_input(std::size_t n) {
        n = std::min(n, in_capacity_ - in_end_);
        std::span<const std::uint8_t> added(in_.get() + in_end_, n);
        in_end_ += n;
        if (in_end_ == in_capacity_) in_full_ = true;  // the peer may have had more to give
        return added;
    }
    std::span<const std::uint8_t> output() const {
        return {out_.data() + out_begin_, out_.size() - out_begin_};
    }
    void consume_output(std::size_t n) {
        out_begin_ += std::min(n, out_.size() - out_begin_);
        if (out_begin_ == out_.size()) {
            out_begin_ = 0;
            if (out_.capacity() > kOutputKeepCapacity) {
                std::vector<std::uint8_t>().swap(out_);
            } else {
                out_.clear();
            }
        }
    }

    // The driver is about to wait for the peer: buffers that hold nothing are freed, so an
    // idle session keeps none (the next input_space() or push() allocates again, small first).
    // What was pulled before is gone with them: input_from() looks back no further than this.
    void release_if_empty() {
        if (in_begin_ == in_end_) {
            in_.reset();
            in_capacity_ = in_begin_ = in_end_ = 0;
            in_full_ = false;
        }
        if (out_begin_ == out_.size()) {
            std::vector<std::uint8_t>().swap(out_);
            out_begin_ = 0;
        }
    }

    // For the library's read hook: copies up to len unread bytes to dst; returns how many.
    std::size_t pull(void* dst, std::size_t len) {
        std::size_t n = std::min(in_end_ - in_begin_, len);
        if (n > 0) std::memcpy(dst, in_.get() + in_begin_, n);
        in_begin_ += n;
        return n;
    }
    // For the library's write hook: appends len bytes of records to the output.
    void push(const void* src, std::size_t len) {
        if (out_begin_ == out_.size()) {
            out_.clear();
            out_begin_ = 0;
        } else if (out_begin_ >= 16 * 1024 && out_begin_ * 2 >= out_.size()) {
            out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(out_begin_));
            out_begin_ = 0;  // the driver sent part of it: drop what is gone
        }
        auto p = static_cast<const std::uint8_t*>(src);
        out_.insert(out_.end(), p, p + len);
    }

    // The input not pulled yet.
    std::span<const std::uint8_t> unread() const { return input_from(0); }
    // The unread input preceded by the last `back` bytes pulled (to look at what the library
    // just consumed); empty if fewer than `back` bytes were pulled since the buffer was reset.
    std::span<const std::uint8_t> input_from(std::size_t back) const {
        if (in_begin_ < back) return {};
        return {in_.get() + in_begin_ - back, in_end_ - in_begin_ + back};
    }

  private:
    std::unique_ptr<std::uint8_t[]> in_;  // allocated by the first input_space()
    std::size_t in_capacity_ = 0, in_begin_ = 0, in_end_ = 0;
    bool in_full_ = false;
    std::vector<std::uint8_t> out_;
    std::size_t out_begin_ = 0;
};

}  // namespace pggw::tls
