#include "gateway/net/buffer_pool.hpp"

namespace pggw {

namespace {

struct FreeList {
    std::unique_ptr<std::uint8_t[]> items[PooledBuffer::kKeep];
    std::size_t count = 0;
};

// One per thread: a worker's sessions all run on its thread.
thread_local FreeList free_list;

}  // namespace

PooledBuffer::PooledBuffer() {
    if (free_list.count > 0) {
        data_ = std::move(free_list.items[--free_list.count]);
    } else {
        data_.reset(new std::uint8_t[kSize]);  // not zeroed
    }
}

void PooledBuffer::release() {
    if (!data_) return;
    if (free_list.count < kKeep) {
        free_list.items[free_list.count++] = std::move(data_);
    } else {
        data_.reset();
    }
}

std::size_t PooledBuffer::free_count() {
    return free_list.count;
}

}  // namespace pggw
