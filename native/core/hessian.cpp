// Calibration statistics: H = (2/N) Σ_t w_t x_t x_tᵀ and the GPTAQ cross term
// dXXT = (2/N) Σ_t w_t (x̃_t − x_t) x_tᵀ, as running averages (algorithm.md §1.2, §3(c)).
// Per-token weights enter as √w on both factors, so one SYRK gives Xᵀ·diag(w)·X without ever
// forming diag(w) (algorithm.md §4.3); the cross term is one GEMM of the scaled rows.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "checks.h"
#include "scratch.h"
#include "vlmq/core.h"

namespace vlmq {
namespace {

// Rows per slab: bounds the f32 scratch copy of the tokens to about 64 MiB.
int64_t slab_rows(int64_t n) { return std::max<int64_t>(256, (int64_t{16} << 20) / std::max<int64_t>(n, 1)); }

Status check_batch(const HessianState& state, const TokenBatch& batch) {
  const int64_t n = state.n;
  if (batch.x.cols != n) return InvalidArgument("x has " + std::to_string(batch.x.cols) + " columns, expected " + std::to_string(n));
  if (batch.x.rows <= 0) return InvalidArgument("x has no rows (tokens)");
  if (!(batch.samples > 0) || !std::isfinite(batch.samples)) return InvalidArgument("samples must be a positive number");
  const bool has_full = batch.x_full.data != nullptr;
  if (state.cross_term && !has_full) return InvalidArgument("xFull is required: this accumulator keeps the GPTAQ cross term");
  if (has_full && !state.cross_term) return InvalidArgument("xFull was given but this accumulator has no cross term");
  if (has_full && (batch.x_full.rows != batch.x.rows || batch.x_full.cols != n))
    return InvalidArgument("xFull must have the shape of x");
  if (batch.weights) {
    for (int64_t t = 0; t < batch.x.rows; t++) {
      const float w = batch.weights[t];
      if (!(w >= 0.0f) || !std::isfinite(w))
        return InvalidArgument("tokenWeights[" + std::to_string(t) + "] = " + std::to_string(w) + " is not a finite number ≥ 0");
    }
  }
  return Status::Ok();
}

}  // namespace

Status hessian_init(Backend& backend, int64_t n, bool cross_term, HessianState* state) {
  if (n <= 0) return InvalidArgument("n must be positive");
  state->backend = &backend;
  state->n = n;
  state->cross_term = cross_term;
  state->samples = 0;
  VLMQ_TRY(alloc_matrix(backend, &state->H, n, n, BufferUsage::kStatistics));
  VLMQ_TRY(backend.fill(state->H.matrix(n, n), 0.0f));
  if (cross_term) {
    VLMQ_TRY(alloc_matrix(backend, &state->dXXT, n, n, BufferUsage::kStatistics));
    VLMQ_TRY(backend.fill(state->dXXT.matrix(n, n), 0.0f));
  }
  return Status::Ok();
}

Status hessian_add(HessianState& state, const TokenBatch& batch, const RunControl& control) {
  Backend& backend = *state.backend;
  const int64_t n = state.n, tokens = batch.x.rows;
  VLMQ_TRY(check_batch(state, batch));
  VLMQ_TRY(check_finite(backend, batch.x, "x"));
  if (batch.x_full.data) VLMQ_TRY(check_finite(backend, batch.x_full, "xFull"));

  Scratch scratch{backend, {}};
  MatF root_weights;  // √w on the backend, uploaded once for the whole batch
  if (batch.weights) {
    std::vector<float> roots(tokens);
    for (int64_t t = 0; t < tokens; t++) roots[t] = std::sqrt(batch.weights[t]);
    VLMQ_TRY(scratch.upload(roots, &root_weights));
  }
  const double total = state.samples + batch.samples;
  const float alpha = static_cast<float>(2.0 / total);
  float beta = static_cast<float>(state.samples / total);

  // Unweighted f32 tokens go to SYRK as they are (the operand is only read); anything else is
  // converted and scaled slab by slab.
  const bool direct = batch.x.dtype == DType::kF32 && !batch.weights;
  const int64_t slab = std::min(tokens, slab_rows(n));
  MatF xs, ds;
  if (!direct) VLMQ_TRY(scratch.make(slab, n, &xs));
  if (state.cross_term) VLMQ_TRY(scratch.make(slab, n, &ds));
  const MatF H = state.H.matrix(n, n);
  for (int64_t r0 = 0; r0 < tokens; r0 += slab) {
    if (control.cancelled()) return Cancelled();
    const int64_t rows = std::min(slab, tokens - r0);
    const MatF scale = batch.weights ? root_weights.block(0, r0, 1, rows) : MatF{};
    const MatrixView x = batch.x.row_range(r0, rows);
    MatF X = xs.block(0, 0, rows, n);
    if (direct) X = {static_cast<float*>(x.data), rows, n, x.ld, x.device};
    else VLMQ_TRY(backend.convert_rows(X, x, scale));
    VLMQ_TRY(backend.syrk_lower(alpha, X, beta, H));
    if (state.cross_term) {
      const MatF D = ds.block(0, 0, rows, n);
      VLMQ_TRY(backend.subtract_rows(D, batch.x_full.row_range(r0, rows), x, scale));
      VLMQ_TRY(backend.gemm(true, false, alpha, D, X, beta, state.dXXT.matrix(n, n)));
    }
    beta = 1.0f;  // the running-average rescale applies once per batch
  }
  state.samples = total;
  return Status::Ok();
}

Status hessian_read(HessianState& state, bool cross, float* host_out) {
  Backend& backend = *state.backend;
  const int64_t n = state.n;
  if (cross && !state.cross_term) return InvalidArgument("this accumulator keeps no cross term");
  // SYRK maintains only the lower triangle and never reads the upper one, so mirroring in
  // place is free of side effects.
  if (!cross) VLMQ_TRY(backend.mirror_lower(state.H.matrix(n, n)));
  const Buffer& source = cross ? state.dXXT : state.H;
  return backend.download(host_out, source.matrix(n, n).view());
}

}  // namespace vlmq
