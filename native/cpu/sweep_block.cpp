// The in-block column sweep of GPTQ/GPTAQ for a range of rows (backend.h, SweepBlock).
// Rows are independent, so each thread walks its rows one at a time through all columns of the
// block: the row's slice of the block (at most B floats) stays in L1 and the block of U in L2,
// and every update is a unit-stride axpy the compiler vectorises.
#include <algorithm>
#include <vector>

#include "cpu_backend.h"

namespace vlmq {

void sweep_block_rows(const SweepBlock& b, int64_t r0, int64_t r1) {
  const int64_t n = b.W.cols, count = b.i2 - b.i1;
  const float maxq = b.grid.maxq();
  const bool dynamic = b.mode == GroupMode::kDynamic, fixed = b.mode == GroupMode::kPerChannel;
  std::vector<float> w1(count);

  for (int64_t r = r0; r < r1; r++) {
    const float* w_outer = b.W.row(r);
    std::copy(w_outer + b.i1, w_outer + b.i2, w1.begin());
    float* q_row = b.Q.row(r);
    uint8_t* code_row = b.codes + r * n;
    float* e_row = b.E.row(r);
    float* source_row = b.P ? b.Psource.row(r) : nullptr;
    float* row_scales = b.scales + r * b.ngroups;
    float* row_zeros = b.zeros + r * b.ngroups;
    QParams params{row_scales[0], row_zeros[0]};
    double loss = 0;

    for (int64_t t = 0; t < count; t++) {
      const int64_t col = b.i1 + t;
      if (dynamic && col % b.group_size == 0) {
        // Fitted on the outer W: all earlier blocks' updates, none of this block's (§2(f) 3).
        const int64_t group = col / b.group_size;
        params = find_params(w_outer + col, std::min(b.group_size, n - col), b.grid);
        row_scales[group] = params.scale;
        row_zeros[group] = params.zero;
      } else if (!dynamic && !fixed) {
        const int64_t original = b.perm ? b.perm[col] : col;
        const int64_t group = original / b.group_size;
        params = {row_scales[group], row_zeros[group]};
      }
      const float w = w1[t];
      const float code = quant_code(w, params, maxq);
      const float q = dequant(code, params);
      q_row[col] = q;
      code_row[col] = static_cast<uint8_t>(code);

      const float* u = b.U.row(col) + col;  // u[k] = U[col, col + k]
      const float d = u[0];
      const float e = (w - q) / d;
      loss += static_cast<double>((w - q) * (w - q) / (d * d));
      e_row[t] = e;
      float* rest = w1.data() + t;  // rest[k] = W1[r, t + k]
      const int64_t len = count - t;
      if (b.P) {
        const float* p = b.P->row(col) + col;
        for (int64_t k = 1; k < len; k++) rest[k] += -e * u[k] + w * p[k];
        source_row[t] = b.psource_prequant ? w : q;
      } else {
        for (int64_t k = 1; k < len; k++) rest[k] -= e * u[k];
      }
    }
    b.row_loss[r] += loss;
  }
}

}  // namespace vlmq
