// Relay and TLS write buffers, lent per transfer from a small free list of the calling thread
// (one worker = one thread, so the list is the worker's and needs no lock). A session holds a
// buffer only while bytes move through it: an idle session holds none. The free list keeps at
// most kKeep buffers; more lent at once (many sessions with writes blocked on slow peers) come
// from and go back to the heap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace pggw {

class PooledBuffer {
  public:
    // Room for one full TLS record with its header and expansion (16 KiB + 256 + 5 and more),
    // so that one buffer carries one record of output, or 16 KiB of relayed plaintext.
    static constexpr std::size_t kSize = 17 * 1024;
    static constexpr std::size_t kKeep = 32;

    // Takes a buffer from this thread's free list (or the heap).
    PooledBuffer();
    PooledBuffer(const PooledBuffer&) = delete;
    PooledBuffer& operator=(const PooledBuffer&) = delete;
    PooledBuffer(PooledBuffer&&) noexcept = default;  // into a coroutine that finishes a write
    ~PooledBuffer() { release(); }

    std::span<std::uint8_t> span() { return {data_.get(), kSize}; }
    std::uint8_t* data() { return data_.get(); }
    // Gives the buffer back now (before a wait); the object is empty afterwards.
    void release();

    // Buffers on this thread's free list (for tests).
    static std::size_t free_count();

  private:
    std::unique_ptr<std::uint8_t[]> data_;
};

}  // namespace pggw
