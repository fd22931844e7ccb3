// Scratch matrices of one call on a backend, given back to its pool together when the call returns.
#pragma once
#include <deque>
#include <vector>

#include "vlmq/backend.h"

namespace vlmq {

struct Scratch {
  Backend& backend;
  std::deque<Buffer> buffers;  // a deque: earlier buffers never move when more are made
  // A fresh [rows, cols] matrix of T; its contents are undefined.
  template <class T = float>
  Status make(int64_t rows, int64_t cols, Mat<T>* out) {
    buffers.emplace_back();
    return alloc_mat<T>(backend, &buffers.back(), rows, cols, BufferUsage::kScratch, out);
  }
  // A fresh [rows, cols] matrix holding a copy of rows · cols elements of host memory.
  template <class T>
  Status upload(const T* host, int64_t rows, int64_t cols, Mat<T>* out) {
    VLMQ_TRY(make<T>(rows, cols, out));
    return backend.upload(out->view(), host);
  }
  // A [1, n] vector holding a copy of a host vector.
  template <class T>
  Status upload(const std::vector<T>& host, Mat<T>* out) {
    return upload(host.data(), 1, static_cast<int64_t>(host.size()), out);
  }
};

// Reads a small device result into a host vector (waits for the backend's queue).
template <class T>
Status download_vector(Backend& backend, Mat<T> v, std::vector<T>* out) {
  out->resize(static_cast<size_t>(v.rows * v.cols));
  return backend.download(out->data(), v.view());
}

}  // namespace vlmq
