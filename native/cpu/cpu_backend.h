// The CPU backend: OpenBLAS + LAPACKE for dense linear algebra, a thread pool for our kernels.
// Every call runs at once on the caller's thread (and the pool's), so the queue is always empty.
#pragma once
#include <memory>
#include <string>

#include "thread_pool.h"
#include "vlmq/backend.h"
#include "vlmq/memory_pool.h"

namespace vlmq {

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  const char* name() const override { return "cpu"; }
  Device device() const override { return Device(DeviceKind::kHost); }

  Status alloc(Buffer* out, size_t bytes, BufferUsage usage) override;
  void free(void* data, size_t bytes) override;
  Status upload(MatrixView dst, const void* host) override;
  Status download(void* host, MatrixView src) override;
  Status synchronize() override { return Status::Ok(); }

  Status convert_rows(MatF dst, MatrixView src, MatF row_scale) override;
  Status subtract_rows(MatF dst, MatrixView a, MatrixView b, MatF row_scale) override;
  Status count_nonfinite(MatrixView a, int64_t* count, int64_t* first) override;
  Status reverse(MatF dst, MatF src) override;
  Status gather_columns(MatF dst, MatF src, MatI perm) override;
  Status gather_columns_u8(MatU8 dst, MatU8 src, MatI perm) override;
  Status gather_symmetric(MatF dst, MatF src, MatI perm) override;
  Status gather_rows(MatF dst, MatF src, MatI index) override;  // vision_ops.cpp
  Status zero_columns(MatF a, MatU8 mask) override;
  Status get_diagonal(MatF a, MatF out) override;
  Status set_diagonal(MatF a, MatF values) override;
  Status zero_triangle(MatF a, bool lower, bool include_diagonal) override;
  Status mirror_lower(MatF a) override;
  Status copy(MatF dst, MatF src) override;
  Status fill(MatF a, float value) override;
  Status max_asymmetry(MatF a, float floor, float* worst, int64_t* i, int64_t* j) override;

  Status gemm(bool trans_a, bool trans_b, float alpha, MatF A, MatF B, float beta, MatF C) override;
  Status syrk_lower(float alpha, MatF A, float beta, MatF C) override;
  Status trmm_right_upper(bool trans, float alpha, MatF U, MatF B) override;
  Status cholesky_lower(MatF a, int64_t* failed_minor) override;
  Status invert_lower(MatF a) override;

  Status rms_norm(MatF x, MatF w, float eps, MatF y) override;  // transformer_ops.cpp, like the rest
  Status add_row(MatF x, MatF v) override;
  Status axpby(MatF a, float alpha, MatF b, MatF y) override;
  Status rope(MatF x, int64_t head_dim, MatF cos, MatF sin, bool inverse) override;
  Status silu_mul(MatF gate, MatF up, MatF out) override;
  Status layer_norm(MatF x, MatF w, MatF b, float eps, MatF y) override;  // vision_ops.cpp
  Status activation(Activation act, MatF x, MatF y) override;            // vision_ops.cpp
  Status attention(MatF q, MatF k, MatF v, MatI segments, int64_t heads, int64_t kv_heads, bool causal, MatF out) override;
  Status attention_backward(MatF q, MatF k, MatF v, MatF d_out, MatI segments, int64_t heads, int64_t kv_heads, MatF dq,
                            MatF dk, MatF dv) override;
  Status row_norms(MatF x, bool l2, MatF out) override;
  Status sum_squares(MatF x, double* out) override;
  Status unfold_patches(MatF images, int64_t channels, int64_t size, int64_t patch, MatF out) override;  // vision_ops.cpp

  Status fit_params(MatF W, int64_t c0, int64_t cols, const Grid& grid, MatF scales, MatF zeros) override;
  Status quantize_groups(MatF W, MatI g_idx, MatF scales, MatF zeros, const Grid& grid, MatF Q, MatU8 codes) override;
  Status sweep_block(const SweepBlock& block) override;  // sweep_block.cpp

  // Not part of the contract (devices.h): the kernels' threads.
  int threads() const { return pool()->threads(); }
  void set_threads(int n);

 private:
  // Swapped atomically by set_threads; a running primitive keeps the pool it started with.
  std::shared_ptr<ThreadPool> pool() const { return std::atomic_load(&pool_); }
  std::shared_ptr<ThreadPool> pool_;
  MemoryPool memory_;
};

// Operand checks of the CPU primitives, with messages that name the primitive and the operand.
namespace cpu_checks {

inline Status fail(const char* op, const std::string& what) { return InvalidArgument(std::string("cpu backend: ") + op + ": " + what); }

// A view the CPU can address: host memory (an empty optional view counts as host memory), a row
// stride of at least its width, and memory behind any element.
template <class V>
bool addressable(const V& v) {
  return v.device.kind == DeviceKind::kHost && v.rows >= 0 && v.cols >= 0 && (v.rows * v.cols == 0 || (v.data && v.ld >= v.cols));
}

template <class... V>
Status on_host(const char* op, const V&... views) {
  if ((addressable(views) && ...)) return Status::Ok();
  return fail(op, "an operand is not host memory, or has a row stride below its width");
}

template <class T>
Status shape(const char* op, const char* name, const Mat<T>& a, int64_t rows, int64_t cols) {
  if (a.rows == rows && a.cols == cols && (a.data || rows * cols == 0)) return Status::Ok();
  return fail(op, std::string(name) + " must be [" + std::to_string(rows) + ", " + std::to_string(cols) + "], found [" +
                      std::to_string(a.rows) + ", " + std::to_string(a.cols) + "]");
}

// A [1, n] vector.
template <class T>
Status vector(const char* op, const char* name, const Mat<T>& v, int64_t n) { return shape(op, name, v, 1, n); }

}  // namespace cpu_checks

}  // namespace vlmq
