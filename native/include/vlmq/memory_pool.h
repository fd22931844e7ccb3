// The memory pool a backend allocates from: blocks that are freed are kept, by size class, and
// handed out again, so that the scratch of one call is the scratch of the next. Thread-safe.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

namespace vlmq {

class MemoryPool {
 public:
  // raw_alloc returns null when the device is out of memory; raw_free releases a block.
  using RawAlloc = std::function<void*(size_t bytes)>;
  using RawFree = std::function<void(void* data, size_t bytes)>;
  // Blocks larger than max_block_bytes, and blocks that would take the cache past
  // max_cached_bytes, go back to the device at once.
  MemoryPool(RawAlloc raw_alloc, RawFree raw_free, size_t max_cached_bytes, size_t max_block_bytes);
  ~MemoryPool();
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;

  // A block of at least `bytes`, or null. A cached block of the same size class if there is one;
  // when the device is out of memory, the cache is released and the allocation tried again.
  void* take(size_t bytes);
  // Returns a block from take(bytes) to the cache (or to the device beyond max_cached_bytes).
  void give(void* data, size_t bytes);
  // Releases every cached block.
  void trim();
  size_t cached_bytes() const;

  // The size class of a request: 64-byte steps up to 4 KiB, then eight steps per power of two,
  // so a block serves requests up to 1/8 smaller.
  static size_t size_class(size_t bytes);

 private:
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  size_t max_cached_;
  size_t max_block_;
  mutable std::mutex mutex_;
  std::map<size_t, std::vector<void*>> cache_;
  size_t cached_ = 0;
};

}  // namespace vlmq
