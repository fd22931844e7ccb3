// Memory and the queue: alloc (alignment, separation, reuse), upload and download of every dtype
// into and out of sub-ranges (offset views, row ranges, single columns), synchronize; and the
// MemoryPool every backend allocates from (memory_pool.h), on a fake device that counts.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>

#include "harness.h"
#include "vlmq/memory_pool.h"

namespace vlmq::conformance {
namespace {

// Arbitrary bit patterns (NaNs included): transfers copy bytes and must keep every one.
template <class T>
std::vector<T> random_bits(Rng& rng, int64_t n) {
  std::vector<T> out(static_cast<size_t>(n));
  for (T& x : out) {
    const uint64_t bits = rng.next();
    std::memcpy(&x, &bits, sizeof(T));
  }
  return out;
}

template <class T>
void transfer_cases(Suite& s, DType dtype) {
  Backend& b = s.backend;
  const std::string tag = dtype_name(dtype);
  s.run("upload", tag + ": a contiguous [7, 33] matrix round-trips", [&b, dtype](Rng& rng) {
    Operand<T> a;
    const std::vector<T> values = random_bits<T>(rng, 7 * 33);
    CONF_SETUP(make_operand(b, "a", 7, 33, Layout::kContiguous, values, &a, dtype));
    std::vector<T> got;
    CONF_CHECK(read(b, a, &got));
    return same("a", 33, got, values);
  });
  // Uploads into a view of an allocation whose other cells hold guards: only the view changes.
  auto upload_into = [&](const std::string& name, int64_t rows, int64_t cols) {
    s.run("upload", tag + ": into " + name, [&b, dtype, rows, cols](Rng& rng) {
      Operand<T> a;
      CONF_SETUP(make_operand(b, "a", rows, cols, Layout::kOffset, random_bits<T>(rng, rows * cols), &a, dtype));
      const std::vector<T> values = random_bits<T>(rng, rows * cols);
      CONF_CALL(b.upload(a.view(), values.data()));
      std::vector<T> got;
      CONF_CHECK(read(b, a, &got));
      return same("a", cols, got, values);
    });
  };
  upload_into("a [5, 7] view at an offset (ld 12)", 5, 7);
  upload_into("a 1×1 view at an offset", 1, 1);
  upload_into("a single column at an offset", 9, 1);
  // Downloads exactly the view's elements, row after row, and nothing past them.
  auto download_of = [&](const std::string& name, int64_t rows, int64_t cols, int64_t r0, int64_t count) {
    s.run("download", tag + ": " + name, [&b, dtype, rows, cols, r0, count](Rng& rng) {
      Operand<T> a;
      const std::vector<T> values = random_bits<T>(rng, rows * cols);
      CONF_SETUP(make_operand(b, "a", rows, cols, Layout::kOffset, values, &a, dtype));
      const int64_t n = count * cols;
      std::vector<T> host(static_cast<size_t>(n + 8), guard_value<T>());
      CONF_CALL(b.download(host.data(), a.view().row_range(r0, count)));
      const T sentinel = guard_value<T>();
      for (int64_t k = n; k < n + 8; k++)
        if (std::memcmp(&host[k], &sentinel, sizeof(T)) != 0)
          return fail("wrote host memory past the " + std::to_string(n) + " elements of the view");
      host.resize(static_cast<size_t>(n));
      return same("download", cols, host, std::vector<T>(values.begin() + r0 * cols, values.begin() + (r0 + count) * cols));
    });
  };
  download_of("a [5, 7] view at an offset (ld 12)", 5, 7, 0, 5);
  download_of("rows [2, 5) of a [6, 9] view at an offset (row_range)", 6, 9, 2, 3);
  download_of("a 1×1 view at an offset", 1, 1, 0, 1);
}

void alloc_cases(Suite& s) {
  Backend& b = s.backend;
  s.run("alloc", "64-byte aligned, at least the size asked, for sizes from 1 byte to 1 MiB", [&b](Rng&) {
    for (size_t bytes : {size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{1000}, size_t{4097}, size_t{65539}, size_t{1} << 20}) {
      Buffer buffer;
      CONF_CALL(b.alloc(&buffer, bytes, BufferUsage::kStatistics));
      if (!buffer.as<void>()) return fail(std::to_string(bytes) + " bytes: no memory and no error");
      if (reinterpret_cast<uintptr_t>(buffer.as<void>()) % 64 != 0) return fail(std::to_string(bytes) + " bytes: not 64-byte aligned");
      if (buffer.bytes() < bytes) return fail(std::to_string(bytes) + " bytes: a buffer of " + std::to_string(buffer.bytes()));
      if (buffer.usage() != BufferUsage::kStatistics) return fail("the buffer lost its usage");
    }
    return pass();
  });
  s.run("alloc", "buffers alive at the same time do not overlap", [&b](Rng& rng) {
    std::vector<Operand<float>> ops(6);
    std::vector<std::vector<float>> values;
    for (size_t k = 0; k < ops.size(); k++) {
      values.push_back(rng.floats(16 * (k + 1)));
      CONF_SETUP(make_operand(b, "buffer " + std::to_string(k), 1, 16 * static_cast<int64_t>(k + 1), Layout::kContiguous, values[k], &ops[k]));
    }
    for (size_t k = 0; k < ops.size(); k++) {
      std::vector<float> got;
      CONF_CHECK(read(b, ops[k], &got));
      CONF_CHECK(same(ops[k].name, got.size(), got, values[k]));
    }
    return pass();
  });
  s.run("alloc", "a freed buffer is reused by the next allocation of its size (the pool)", [&b](Rng&) {
    const size_t bytes = 777777;  // a size nothing else in the process asks for
    Buffer first;
    CONF_CALL(b.alloc(&first, bytes, BufferUsage::kScratch));
    const void* data = first.as<void>();
    first.reset();
    Buffer second;
    CONF_CALL(b.alloc(&second, bytes, BufferUsage::kScratch));
    if (second.as<void>() != data) return fail("the freed block was not handed out again");
    return pass();
  });
}

void queue_cases(Suite& s) {
  Backend& b = s.backend;
  s.run("synchronize", "with nothing queued", [&b](Rng&) { return succeeded(b.synchronize()); });
  s.run("synchronize", "after uploads, which are then all visible", [&b](Rng& rng) {
    std::vector<Operand<float>> ops(4);
    std::vector<std::vector<float>> values;
    for (size_t k = 0; k < ops.size(); k++) {
      values.push_back(rng.floats(33 * 7));
      CONF_SETUP(make_operand(b, "a" + std::to_string(k), 33, 7, Layout::kOffset, values[k], &ops[k]));
    }
    CONF_CALL(b.synchronize());
    for (size_t k = 0; k < ops.size(); k++) {
      std::vector<float> got;
      CONF_CHECK(read(b, ops[k], &got));
      CONF_CHECK(same(ops[k].name, 7, got, values[k]));
    }
    return pass();
  });
}

// --- MemoryPool -----------------------------------------------------------------------------------------------

// A device of `capacity` bytes that counts what the pool asks of it and checks that every block is
// released once, with the size it was allocated with.
struct FakeDevice {
  size_t capacity = SIZE_MAX, in_use = 0;
  int allocations = 0, releases = 0;
  std::string misuse;
  std::map<void*, size_t> live;

  void* alloc(size_t bytes) {
    if (in_use + bytes > capacity) return nullptr;
    void* data = std::malloc(bytes);
    live[data] = bytes;
    in_use += bytes;
    allocations++;
    return data;
  }
  void release(void* data, size_t bytes) {
    auto it = live.find(data);
    if (it == live.end()) misuse = "a block released twice or never allocated";
    else if (it->second != bytes) misuse = "a block of " + std::to_string(it->second) + " bytes released as " + std::to_string(bytes);
    if (it != live.end()) live.erase(it), in_use -= bytes;
    std::free(data);
    releases++;
  }
  std::unique_ptr<MemoryPool> pool(size_t max_cached, size_t max_block = SIZE_MAX) {
    return std::make_unique<MemoryPool>([this](size_t n) { return alloc(n); }, [this](void* d, size_t n) { release(d, n); }, max_cached,
                                        max_block);
  }
  ~FakeDevice() {
    for (auto& [data, bytes] : live) std::free(data);
  }
};

// The size class from memory_pool.h's words: 64-byte steps up to 4 KiB; above, a request in
// (2^k, 2^(k+1)] rounds up to a multiple of 2^k / 8.
size_t expected_class(size_t bytes) {
  bytes = std::max<size_t>(bytes, 1);
  if (bytes <= 4096) return (bytes + 63) / 64 * 64;
  int k = 12;
  while ((size_t{2} << k) < bytes) k++;
  const size_t step = (size_t{1} << k) / 8;
  return (bytes + step - 1) / step * step;
}

Outcome expect(bool ok, const std::string& what) { return ok ? pass() : fail(what); }

void pool_cases(Suite& s) {
  s.run("memory_pool", "size_class: 64-byte steps up to 4 KiB, then eight steps per power of two", [](Rng&) {
    std::vector<size_t> sizes;
    for (size_t n = 0; n <= 20000; n++) sizes.push_back(n);
    for (int k = 12; k < 40; k++)
      for (size_t d : {size_t{0}, size_t{1}}) sizes.push_back((size_t{1} << k) + d), sizes.push_back((size_t{1} << k) - d);
    for (size_t n : sizes) {
      const size_t cls = MemoryPool::size_class(n);
      if (cls != expected_class(n))
        return fail("size_class(" + std::to_string(n) + ") = " + std::to_string(cls) + ", expected " + std::to_string(expected_class(n)));
    }
    return pass(std::to_string(sizes.size()) + " sizes");
  });
  s.run("memory_pool", "a freed block serves the next request of its size class without the device", [](Rng&) {
    FakeDevice device;
    auto pool = device.pool(1 << 20);
    void* a = pool->take(1000);
    pool->give(a, 1000);
    CONF_CHECK(expect(pool->cached_bytes() == 1024, "cached_bytes " + std::to_string(pool->cached_bytes()) + " after freeing 1000 bytes, expected 1024"));
    void* b = pool->take(1010);  // the same class
    CONF_CHECK(expect(b == a, "the cached block was not reused"));
    CONF_CHECK(expect(device.allocations == 1, std::to_string(device.allocations) + " device allocations, expected 1"));
    CONF_CHECK(expect(pool->cached_bytes() == 0, "the reused block is still counted as cached"));
    void* c = pool->take(2000);  // another class: a new block
    CONF_CHECK(expect(c != a && device.allocations == 2, "a request of another size class did not get a new block"));
    pool->give(b, 1010);
    pool->give(c, 2000);
    pool.reset();
    return expect(device.in_use == 0 && device.misuse.empty(), "the destructor left blocks on the device " + device.misuse);
  });
  s.run("memory_pool", "trim releases every cached block, once, with its size", [](Rng&) {
    FakeDevice device;
    auto pool = device.pool(1 << 20);
    std::vector<std::pair<void*, size_t>> blocks;
    for (size_t n : {size_t{64}, size_t{100}, size_t{5000}, size_t{5000}, size_t{70000}}) blocks.push_back({pool->take(n), n});
    for (auto [data, n] : blocks) pool->give(data, n);
    pool->trim();
    CONF_CHECK(expect(pool->cached_bytes() == 0, "cached_bytes is not 0 after trim"));
    CONF_CHECK(expect(device.releases == 5 && device.in_use == 0, std::to_string(device.releases) + " blocks released, expected 5"));
    return expect(device.misuse.empty(), device.misuse);
  });
  s.run("memory_pool", "the cache never holds more than max_cached_bytes", [](Rng&) {
    FakeDevice device;
    auto pool = device.pool(4096);
    void* blocks[3] = {pool->take(2048), pool->take(2048), pool->take(2048)};
    for (void* data : blocks) pool->give(data, 2048);
    CONF_CHECK(expect(pool->cached_bytes() == 4096, "cached_bytes " + std::to_string(pool->cached_bytes()) + ", expected 4096"));
    CONF_CHECK(expect(device.releases == 1, "the block beyond max_cached_bytes was not released"));
    pool.reset();
    return expect(device.in_use == 0 && device.misuse.empty(), "blocks left on the device " + device.misuse);
  });
  s.run("memory_pool", "a block larger than max_block_bytes goes back to the device at once", [](Rng&) {
    FakeDevice device;
    auto pool = device.pool(1 << 20, 8192);
    void* small = pool->take(8192);
    void* large = pool->take(9000);
    pool->give(small, 8192);
    pool->give(large, 9000);
    CONF_CHECK(expect(pool->cached_bytes() == 8192, "cached_bytes " + std::to_string(pool->cached_bytes()) + ", expected 8192 (the small block only)"));
    CONF_CHECK(expect(device.releases == 1, "the large block was not released"));
    pool.reset();
    return expect(device.in_use == 0 && device.misuse.empty(), "blocks left on the device " + device.misuse);
  });
  s.run("memory_pool", "out of device memory: the cache is released and the allocation tried again", [](Rng&) {
    FakeDevice device;
    device.capacity = 8192;
    auto pool = device.pool(1 << 20);
    void* a = pool->take(4096);
    void* b = pool->take(4096);
    pool->give(a, 4096);
    pool->give(b, 4096);
    void* c = pool->take(8192);  // another class, and the device is full of cached blocks
    CONF_CHECK(expect(c != nullptr, "no block although the cache could be released"));
    CONF_CHECK(expect(pool->cached_bytes() == 0 && device.releases == 2, "the cache was not released"));
    CONF_CHECK(expect(pool->take(4096) == nullptr, "a block beyond the device's capacity"));
    pool->give(c, 8192);
    return expect(device.misuse.empty(), device.misuse);
  });
}

}  // namespace

void memory_cases(Suite& s) {
  alloc_cases(s);
  transfer_cases<float>(s, DType::kF32);
  transfer_cases<uint16_t>(s, DType::kF16);
  transfer_cases<uint16_t>(s, DType::kBF16);
  transfer_cases<int32_t>(s, DType::kI32);
  transfer_cases<uint8_t>(s, DType::kU8);
  transfer_cases<double>(s, DType::kF64);
  queue_cases(s);
  pool_cases(s);
}

}  // namespace vlmq::conformance
