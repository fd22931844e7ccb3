// The damped inverse-Cholesky factor of the sweeps (algorithm.md §1.4): U upper triangular with
// (H + λI)⁻¹ = Uᵀ·U. The reference gets it from three LAPACK calls (potrf, potri, potrf:
// 4/3·n³ flops); one factorisation and one triangular inverse give the same U for 2/3·n³:
// with J the index reversal and L′ = chol(J·H·J), U = J·L′⁻¹·J, because
// (J·L′⁻¹·J)ᵀ·(J·L′⁻¹·J) = J·L′⁻ᵀ·L′⁻¹·J = J·(J·H·J)⁻¹·J = H⁻¹, and J·lower·J is upper.
#include <cmath>
#include <string>
#include <vector>

#include "scratch.h"
#include "vlmq/core.h"

namespace vlmq {

Status inverse_cholesky_upper(Backend& backend, MatF H, const DampingPolicy& policy, MatF U,
                              DampingOutcome* outcome) {
  const int64_t n = H.rows;
  if (H.cols != n || U.rows != n || U.cols != n) return InvalidArgument("inverse_cholesky_upper: square n×n matrices expected");

  Scratch scratch{backend, {}};
  MatF diagonal;
  VLMQ_TRY(scratch.make(1, n, &diagonal));
  VLMQ_TRY(backend.get_diagonal(H, diagonal));
  std::vector<float> diag, damped(n);
  VLMQ_TRY(download_vector(backend, diagonal, &diag));
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    // Σ x xᵀ has a non-negative diagonal; a negative one is not a Hessian, and no damping helps.
    if (diag[i] < 0) return InvalidArgument("hessian[" + std::to_string(i) + ", " + std::to_string(i) + "] = " +
                                             std::to_string(diag[i]) + " is negative: a Hessian has a non-negative diagonal");
    sum += diag[i];
  }
  const double mean = sum / static_cast<double>(n);

  *outcome = DampingOutcome{};
  const int attempts = 1 + static_cast<int>(std::floor((policy.max_percdamp - policy.percdamp) / policy.increment + 1e-6));
  for (int k = 0; k < attempts; k++) {
    // Each step rounded to 1e-9 so that 0.01 + 3·0.0025 reports as 0.0175, not 0.017499999….
    const double percdamp = std::round((policy.percdamp + k * policy.increment) * 1e9) / 1e9;
    const float lambda = static_cast<float>(percdamp * mean);
    outcome->tried.push_back(percdamp);
    outcome->percdamp = percdamp;
    outcome->lambda = lambda;

    // U ← J·(H + λI)·J: the reversed matrix has the reversed diagonal.
    VLMQ_TRY(backend.reverse(U, H));
    for (int64_t i = 0; i < n; i++) damped[i] = diag[n - 1 - i] + lambda;
    VLMQ_TRY(backend.upload(diagonal.view(), damped.data()));
    VLMQ_TRY(backend.set_diagonal(U, diagonal));

    Status factored = backend.cholesky_lower(U, &outcome->failed_minor);
    if (factored.code() == Code::kNotPositiveDefinite) continue;
    VLMQ_TRY(factored);
    VLMQ_TRY(backend.invert_lower(U));
    VLMQ_TRY(backend.reverse(U, U));
    VLMQ_TRY(backend.zero_triangle(U, /*lower=*/true, /*include_diagonal=*/false));

    int64_t nonfinite = 0, first = 0;
    VLMQ_TRY(backend.count_nonfinite(U.view(), &nonfinite, &first));
    if (nonfinite == 0) {
      outcome->ok = true;
      outcome->failed_minor = 0;
      return Status::Ok();
    }
    outcome->failed_minor = first / n + 1;  // an overflow counts as a failed factorisation
  }
  return {Code::kNotPositiveDefinite, "the damped Hessian is not positive definite at any damping tried"};
}

}  // namespace vlmq
