// The CPU backend: OpenBLAS + LAPACKE for dense linear algebra, a thread pool for our kernels.
#pragma once
#include <memory>

#include "thread_pool.h"
#include "vlmq/backend.h"

namespace vlmq {

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  const char* name() const override { return "cpu"; }
  DeviceKind device() const override { return DeviceKind::kHost; }

  Status alloc(Buffer* out, size_t bytes, BufferUsage usage) override;
  void free(void* data, size_t bytes) override;
  Status download(void* host, const Buffer& src, size_t bytes) override;

  Status convert_rows(MatF dst, MatrixView src, const float* row_scale) override;
  Status subtract_rows(MatF dst, MatrixView a, MatrixView b, const float* row_scale) override;
  Status count_nonfinite(MatrixView a, int64_t* count, int64_t* first) override;
  Status reverse(MatF dst, MatF src) override;
  Status gather_columns(MatF dst, MatF src, const int32_t* perm) override;
  Status gather_columns_u8(uint8_t* dst, const uint8_t* src, int64_t rows, int64_t cols, const int32_t* perm) override;
  Status gather_symmetric(MatF dst, MatF src, const int32_t* perm) override;
  Status gather_rows(MatF dst, MatF src, const int32_t* index) override;  // vision_ops.cpp
  Status zero_columns(MatF a, const uint8_t* mask) override;
  Status get_diagonal(MatF a, float* out) override;
  Status set_diagonal(MatF a, const float* values) override;
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

  Status rms_norm(MatF x, const float* w, float eps, MatF y) override;  // transformer_ops.cpp, like the rest
  Status add_row(MatF x, const float* v) override;
  Status axpby(MatF a, float alpha, MatF b, MatF y) override;
  Status rope(MatF x, int64_t head_dim, MatF cos, MatF sin, bool inverse) override;
  Status silu_mul(MatF gate, MatF up, MatF out) override;
  Status layer_norm(MatF x, const float* w, const float* b, float eps, MatF y) override;  // vision_ops.cpp
  Status activation(Activation act, MatF x, MatF y) override;                            // vision_ops.cpp
  Status attention(MatF q, MatF k, MatF v, const int32_t* segments, int64_t nseg, int64_t heads, int64_t kv_heads,
                   bool causal, MatF out) override;
  Status attention_backward(MatF q, MatF k, MatF v, MatF d_out, const int32_t* segments, int64_t nseg, int64_t heads,
                            int64_t kv_heads, MatF dq, MatF dk, MatF dv) override;
  Status row_norms(MatF x, bool l2, float* out) override;
  Status sum_squares(MatF x, double* out) override;
  Status upload(Buffer& dst, size_t offset, const float* host, size_t count) override;
  Status unfold_patches(const float* images, int64_t n, int64_t channels, int64_t size, int64_t patch,
                        MatF out) override;  // vision_ops.cpp

  Status fit_params(MatF W, int64_t c0, int64_t cols, const Grid& grid, float* scales, float* zeros,
                    int64_t ld_params) override;
  Status quantize_groups(MatF W, const int32_t* g_idx, const float* scales, const float* zeros, int64_t ngroups,
                         const Grid& grid, MatF Q, uint8_t* codes) override;
  Status sweep_block(const SweepBlock& block) override;  // sweep_block.cpp

  int threads() const override { return pool()->threads(); }
  void set_threads(int n) override;

 private:
  // Swapped atomically by set_threads; a running primitive keeps the pool it started with.
  std::shared_ptr<ThreadPool> pool() const { return std::atomic_load(&pool_); }
  std::shared_ptr<ThreadPool> pool_;
};

}  // namespace vlmq
