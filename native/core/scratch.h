// Scratch matrices of one call on a backend, freed together when the call returns.
#pragma once
#include <deque>

#include "vlmq/backend.h"

namespace vlmq {

struct Scratch {
  Backend& backend;
  std::deque<Buffer> buffers;  // a deque: earlier buffers never move when more are made
  // A fresh [rows, cols] f32 matrix; its contents are undefined.
  Status make(int64_t rows, int64_t cols, MatF* out) {
    buffers.emplace_back();
    VLMQ_TRY(alloc_matrix(backend, &buffers.back(), rows, cols, BufferUsage::kScratch));
    *out = buffers.back().matrix(rows, cols);
    return Status::Ok();
  }
  // A fresh [rows, cols] f32 matrix holding a copy of rows · cols floats of host memory.
  Status upload(const float* host, int64_t rows, int64_t cols, MatF* out) {
    VLMQ_TRY(make(rows, cols, out));
    return backend.upload(buffers.back(), 0, host, static_cast<size_t>(rows * cols));
  }
};

}  // namespace vlmq
