// GPTAQ (Li et al., ICML 2025; algorithm.md §3): GPTQ's sweep plus the asymmetric correction
// that pulls the layer output on quantized-path inputs towards the full-precision output.
// Row q of P = α · triu(dXXT · Uᵀ, +1) · U equals α · dXXT[q, q+1:] · (H_{q+1:, q+1:})⁻¹
// (Theorem 4.2), so each column's compensation also carries w · P[col, :].
#include "sweep.h"

namespace vlmq {

Status gptaq_quantize(Backend& backend, const SweepState& s, MatF dXXT, const LinearOptions& options,
                      const RunControl& control, double* loss) {
  // P is built in place of dXXT with two triangular multiplies (half the flops of two GEMMs).
  const MatF P = dXXT;
  VLMQ_TRY(backend.trmm_right_upper(/*trans=*/true, 1.0f, s.U, P));            // dXXT · Uᵀ
  VLMQ_TRY(backend.zero_triangle(P, /*lower=*/true, /*include_diagonal=*/true));  // triu(·, +1)
  VLMQ_TRY(backend.trmm_right_upper(/*trans=*/false, options.alpha, s.U, P));   // α · (·) · U
  return column_sweep(backend, s, &P, options, control, loss);
}

}  // namespace vlmq
