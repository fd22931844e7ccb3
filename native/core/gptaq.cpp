// GPTAQ (Li et al., ICML 2025; algorithm.md §3): GPTQ's sweep plus the asymmetric correction
// that pulls the layer output on quantized-path inputs towards the full-precision output.
// Row q of P = α · triu(dXXT · Uᵀ, +1) · U equals α · dXXT[q, q+1:] · (H_{q+1:, q+1:})⁻¹
// (Theorem 4.2), so each column's compensation also carries w · P[col, :].
#include <algorithm>
#include <chrono>

#include "sweep.h"

namespace vlmq {
namespace {

constexpr int64_t kPanel = 512;

// P = α · triu(D · Uᵀ, +1) · U in panels that skip the zero triangles: 2/3·n³ flops instead of
// the 4·n³ of two dense products (performance.md §2, item 5). M is n×n scratch; P may be D.
Status build_p(Backend& backend, MatF D, MatF U, float alpha, MatF M, MatF P) {
  const int64_t n = D.rows;
  // M[:, K] = (D · Uᵀ)[:, K] for the rows above the diagonal block's end. U[K, k0:] is the only
  // part of row block K that is not zero, so the product needs D's columns from k0 on.
  for (int64_t k0 = 0; k0 < n; k0 += kPanel) {
    const int64_t k1 = std::min(n, k0 + kPanel), w = k1 - k0;
    VLMQ_TRY(backend.gemm(false, true, 1.0f, D.block(0, k0, k1, n - k0), U.block(k0, k0, w, n - k0), 0.0f,
                          M.block(0, k0, k1, w)));
    VLMQ_TRY(backend.zero_triangle(M.block(k0, k0, w, w), /*lower=*/true, /*include_diagonal=*/true));
  }
  // P[I, :] = α · M[I, i0:] · U[i0:, i0:]: M is zero left of the diagonal block, U is triangular.
  for (int64_t i0 = 0; i0 < n; i0 += kPanel) {
    const int64_t h = std::min(n, i0 + kPanel) - i0;
    const MatF left = P.block(i0, 0, h, i0), right = P.block(i0, i0, h, n - i0);
    if (i0 > 0) VLMQ_TRY(backend.fill(left, 0.0f));
    VLMQ_TRY(backend.copy(right, M.block(i0, i0, h, n - i0)));
    VLMQ_TRY(backend.trmm_right_upper(/*trans=*/false, alpha, U.block(i0, i0, n - i0, n - i0), right));
  }
  return Status::Ok();
}

}  // namespace

Status gptaq_quantize(Backend& backend, const SweepState& s, MatF dXXT, const LinearOptions& options,
                      const RunControl& control, double* loss, double* seconds_p) {
  const int64_t n = dXXT.rows;
  Buffer M_buffer;
  VLMQ_TRY(alloc_matrix(backend, &M_buffer, n, n, BufferUsage::kScratch));
  const MatF P = dXXT;  // P overwrites the cross term, which is not needed afterwards
  const auto t0 = std::chrono::steady_clock::now();
  VLMQ_TRY(build_p(backend, dXXT, s.U, options.alpha, M_buffer.matrix(n, n), P));
  *seconds_p = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  M_buffer.reset();
  if (control.cancelled()) return Cancelled();
  return column_sweep(backend, s, P, options, control, loss);
}

}  // namespace vlmq
