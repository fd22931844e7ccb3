// A small persistent thread pool for the CPU backend's own kernels (OpenBLAS runs its own
// threads for BLAS/LAPACK calls; the two never run at the same time within one call).
#pragma once
#include <condition_variable>
#include <exception>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace vlmq {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs fn(begin, end) on contiguous chunks covering [0, n), each at least min_chunk long, on
  // up to threads() threads (the caller's included), and returns when all chunks are done.
  // A call made while another one runs (from a second libuv thread) runs serially inline.
  // An exception thrown by fn on any thread is rethrown here once every chunk has finished.
  void parallel_for(int64_t n, int64_t min_chunk, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex busy_;  // held by the caller of parallel_for for its whole duration
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0, chunk_ = 0;
  int64_t generation_ = 0;
  int pending_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace vlmq
