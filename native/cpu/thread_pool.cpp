#include "thread_pool.h"

#include <algorithm>

namespace vlmq {

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(threads, 1); i++) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
  int64_t seen = 0;
  for (;;) {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    const auto* job = job_;
    const int64_t begin = index * chunk_, end = std::min(n_, begin + chunk_);
    lock.unlock();
    std::exception_ptr error;
    try {
      if (begin < end) (*job)(begin, end);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (error && !error_) error_ = error;
    if (--pending_ == 0) done_.notify_one();
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t min_chunk, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
  const int64_t parts = std::min<int64_t>(threads(), (n + std::max<int64_t>(min_chunk, 1) - 1) / std::max<int64_t>(min_chunk, 1));
  if (!busy.owns_lock() || parts <= 1) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    n_ = n;
    chunk_ = (n + parts - 1) / parts;
    pending_ = static_cast<int>(workers_.size());
    generation_++;
  }
  wake_.notify_all();
  std::exception_ptr error;
  try {
    fn(0, std::min(n, chunk_));
  } catch (...) {
    error = std::current_exception();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
  if (!error) error = error_;
  error_ = nullptr;
  if (error) std::rethrow_exception(error);
}

}  // namespace vlmq
