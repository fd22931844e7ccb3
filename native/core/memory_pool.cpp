#include "vlmq/memory_pool.h"

#include <algorithm>

namespace vlmq {

MemoryPool::MemoryPool(RawAlloc raw_alloc, RawFree raw_free, size_t max_cached_bytes, size_t max_block_bytes)
    : raw_alloc_(std::move(raw_alloc)), raw_free_(std::move(raw_free)), max_cached_(max_cached_bytes), max_block_(max_block_bytes) {}

MemoryPool::~MemoryPool() { trim(); }

size_t MemoryPool::size_class(size_t bytes) {
  bytes = std::max<size_t>(bytes, 1);
  if (bytes <= 4096) return (bytes + 63) / 64 * 64;
  size_t octave = 4096;
  while (octave * 2 < bytes) octave *= 2;
  const size_t step = octave / 8;
  return (bytes + step - 1) / step * step;
}

void* MemoryPool::take(size_t bytes) {
  const size_t cls = size_class(bytes);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(cls);
    if (it != cache_.end() && !it->second.empty()) {
      void* data = it->second.back();
      it->second.pop_back();
      cached_ -= cls;
      return data;
    }
  }
  void* data = raw_alloc_(cls);
  if (!data) {
    trim();
    data = raw_alloc_(cls);
  }
  return data;
}

void MemoryPool::give(void* data, size_t bytes) {
  if (!data) return;
  const size_t cls = size_class(bytes);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cls <= max_block_ && cached_ + cls <= max_cached_) {
      cache_[cls].push_back(data);
      cached_ += cls;
      return;
    }
  }
  raw_free_(data, cls);
}

void MemoryPool::trim() {
  std::map<size_t, std::vector<void*>> blocks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    blocks.swap(cache_);
    cached_ = 0;
  }
  for (auto& [cls, list] : blocks)
    for (void* data : list) raw_free_(data, cls);
}

size_t MemoryPool::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_;
}

}  // namespace vlmq
