// The suite's own test: a decorator of the CPU backend that forwards every call but breaks two
// primitives in ways a careless backend might (an element of gemm's C off by 1e-3, gather_rows
// copying rows in order whatever its index says). run_conformance_self_test runs the suite on it;
// the suite is sharp enough when it fails exactly those primitives (kSelfTestBroken) and no other.
#include <vector>

#include "vlmq/conformance.h"
#include "vlmq/devices.h"

namespace vlmq {
namespace {

class BrokenBackend final : public Backend {
 public:
  explicit BrokenBackend(Backend& inner) : in_(inner) {}
  const char* name() const override { return "cpu (broken for the self-test)"; }
  Device device() const override { return in_.device(); }

  Status alloc(Buffer* out, size_t bytes, BufferUsage usage) override { return in_.alloc(out, bytes, usage); }
  void free(void* data, size_t bytes) override { in_.free(data, bytes); }
  Status upload(MatrixView dst, const void* host) override { return in_.upload(dst, host); }
  Status download(void* host, MatrixView src) override { return in_.download(host, src); }
  Status synchronize() override { return in_.synchronize(); }

  Status convert_rows(MatF dst, MatrixView src, MatF row_scale) override { return in_.convert_rows(dst, src, row_scale); }
  Status subtract_rows(MatF dst, MatrixView a, MatrixView b, MatF row_scale) override { return in_.subtract_rows(dst, a, b, row_scale); }
  Status count_nonfinite(MatrixView a, int64_t* count, int64_t* first) override { return in_.count_nonfinite(a, count, first); }
  Status reverse(MatF dst, MatF src) override { return in_.reverse(dst, src); }
  Status gather_columns(MatF dst, MatF src, MatI perm) override { return in_.gather_columns(dst, src, perm); }
  Status gather_columns_u8(MatU8 dst, MatU8 src, MatI perm) override { return in_.gather_columns_u8(dst, src, perm); }
  Status gather_symmetric(MatF dst, MatF src, MatI perm) override { return in_.gather_symmetric(dst, src, perm); }
  Status zero_columns(MatF a, MatU8 mask) override { return in_.zero_columns(a, mask); }
  Status get_diagonal(MatF a, MatF out) override { return in_.get_diagonal(a, out); }
  Status set_diagonal(MatF a, MatF values) override { return in_.set_diagonal(a, values); }
  Status zero_triangle(MatF a, bool lower, bool include_diagonal) override { return in_.zero_triangle(a, lower, include_diagonal); }
  Status mirror_lower(MatF a) override { return in_.mirror_lower(a); }
  Status copy(MatF dst, MatF src) override { return in_.copy(dst, src); }
  Status fill(MatF a, float value) override { return in_.fill(a, value); }
  Status max_asymmetry(MatF a, float floor, float* worst, int64_t* i, int64_t* j) override { return in_.max_asymmetry(a, floor, worst, i, j); }

  Status syrk_lower(float alpha, MatF A, float beta, MatF C) override { return in_.syrk_lower(alpha, A, beta, C); }
  Status trmm_right_upper(bool trans, float alpha, MatF U, MatF B) override { return in_.trmm_right_upper(trans, alpha, U, B); }
  Status cholesky_lower(MatF a, int64_t* failed_minor) override { return in_.cholesky_lower(a, failed_minor); }
  Status invert_lower(MatF a) override { return in_.invert_lower(a); }

  Status rms_norm(MatF x, MatF w, float eps, MatF y) override { return in_.rms_norm(x, w, eps, y); }
  Status add_row(MatF x, MatF v) override { return in_.add_row(x, v); }
  Status axpby(MatF a, float alpha, MatF b, MatF y) override { return in_.axpby(a, alpha, b, y); }
  Status rope(MatF x, int64_t head_dim, MatF cos, MatF sin, bool inverse) override { return in_.rope(x, head_dim, cos, sin, inverse); }
  Status silu_mul(MatF gate, MatF up, MatF out) override { return in_.silu_mul(gate, up, out); }
  Status layer_norm(MatF x, MatF w, MatF b, float eps, MatF y) override { return in_.layer_norm(x, w, b, eps, y); }
  Status activation(Activation act, MatF x, MatF y) override { return in_.activation(act, x, y); }
  Status attention(MatF q, MatF k, MatF v, MatI segments, int64_t heads, int64_t kv_heads, bool causal, MatF out) override {
    return in_.attention(q, k, v, segments, heads, kv_heads, causal, out);
  }
  Status attention_backward(MatF q, MatF k, MatF v, MatF d_out, MatI segments, int64_t heads, int64_t kv_heads, MatF dq, MatF dk,
                            MatF dv) override {
    return in_.attention_backward(q, k, v, d_out, segments, heads, kv_heads, dq, dk, dv);
  }
  Status row_norms(MatF x, bool l2, MatF out) override { return in_.row_norms(x, l2, out); }
  Status sum_squares(MatF x, double* out) override { return in_.sum_squares(x, out); }
  Status unfold_patches(MatF images, int64_t channels, int64_t size, int64_t patch, MatF out) override {
    return in_.unfold_patches(images, channels, size, patch, out);
  }

  Status fit_params(MatF W, int64_t c0, int64_t cols, const Grid& grid, MatF scales, MatF zeros) override {
    return in_.fit_params(W, c0, cols, grid, scales, zeros);
  }
  Status quantize_groups(MatF W, MatI g_idx, MatF scales, MatF zeros, const Grid& grid, MatF Q, MatU8 codes) override {
    return in_.quantize_groups(W, g_idx, scales, zeros, grid, Q, codes);
  }
  Status sweep_block(const SweepBlock& block) override { return in_.sweep_block(block); }

  // Broken: C[0, 0] comes out 1e-3 too large (all checks still made by the real gemm).
  Status gemm(bool trans_a, bool trans_b, float alpha, MatF A, MatF B, float beta, MatF C) override {
    VLMQ_TRY(in_.gemm(trans_a, trans_b, alpha, A, B, beta, C));
    if (C.rows == 0 || C.cols == 0) return Status::Ok();
    const MatrixView corner = C.block(0, 0, 1, 1).view();
    float x = 0;
    VLMQ_TRY(in_.download(&x, corner));
    x += 1e-3f;
    return in_.upload(corner, &x);
  }

  // Broken: row i of dst is row i (mod src.rows) of src, whatever index says (after the real
  // gather_rows has checked the operands).
  Status gather_rows(MatF dst, MatF src, MatI index) override {
    VLMQ_TRY(in_.gather_rows(dst, src, index));
    if (dst.rows == 0) return Status::Ok();
    std::vector<int32_t> rows(static_cast<size_t>(dst.rows));
    for (int64_t i = 0; i < dst.rows; i++) rows[i] = static_cast<int32_t>(i % src.rows);
    Buffer buffer;
    MatI in_order;
    VLMQ_TRY(alloc_mat<int32_t>(in_, &buffer, 1, dst.rows, BufferUsage::kScratch, &in_order));
    VLMQ_TRY(in_.upload(in_order.view(), rows.data()));
    return in_.gather_rows(dst, src, in_order);
  }

 private:
  Backend& in_;
};

}  // namespace

std::vector<ConformanceResult> run_conformance_self_test() {
  BrokenBackend broken(cpu_backend());
  return run_conformance(broken);
}

}  // namespace vlmq
