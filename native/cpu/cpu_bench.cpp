// Baselines for the benchmark suite (benchmarks/): the plain OpenBLAS/LAPACK calls our kernels
// are measured against, plus our inverse-Cholesky chain, timed on seeded random data. Each
// result is the best of `repeats` runs, in the same process as the measurement it is compared to.
#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "vlmq/bench.h"
#include "vlmq/core.h"
#include "vlmq/devices.h"

namespace vlmq {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(rows * cols));
  for (float& x : a) x = u(rng);
  return a;
}

// A well-conditioned SPD matrix like a calibration Hessian: XᵀX/k + 0.01·I, full storage.
std::vector<float> random_spd(int64_t n) {
  const int64_t k = n + 64;
  std::vector<float> X = random_matrix(k, n, 7), H(static_cast<size_t>(n * n), 0.0f);
  cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, n, k, 1.0f / k, X.data(), n, 0.0f, H.data(), n);
  for (int64_t i = 0; i < n; i++) {
    H[i * n + i] += 0.01f;
    for (int64_t j = i + 1; j < n; j++) H[i * n + j] = H[j * n + i];
  }
  return H;
}

template <class Body>
Status best_of(int repeats, Body body, double* seconds) {
  double best = 1e300;
  for (int r = 0; r < std::max(1, repeats); r++) {
    const auto t0 = Clock::now();
    VLMQ_TRY(body());
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  *seconds = best;
  return Status::Ok();
}

Status lapack(lapack_int info, const char* what) {
  return info == 0 ? Status::Ok() : Status(Code::kBackend, std::string(what) + " failed with info " + std::to_string(info));
}

}  // namespace

Status cpu_benchmark(const BenchRequest& q, BenchResult* out) {
  const int64_t m = q.m, n = q.n, k = q.k;
  if (n <= 0 || m < 0 || k < 0 || n > 65536 || m > 65536 || k > (int64_t{1} << 22)) return InvalidArgument("benchmark: sizes out of range");
  if (q.kernel == "sgemm") {  // C[m, n] = A[m, k] · B[k, n]
    std::vector<float> A = random_matrix(m, k, 1), B = random_matrix(k, n, 2), C(static_cast<size_t>(m * n));
    out->flops = 2.0 * m * n * k;
    return best_of(q.repeats, [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A.data(), k, B.data(), n, 0.0f, C.data(), n);
      return Status::Ok();
    }, &out->seconds);
  }
  if (q.kernel == "ssyrk") {  // lower(C[n, n]) = Xᵀ·X, X [k, n]
    std::vector<float> X = random_matrix(k, n, 3), C(static_cast<size_t>(n * n));
    out->flops = static_cast<double>(k) * n * n;
    return best_of(q.repeats, [&] {
      cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, n, k, 1.0f, X.data(), n, 0.0f, C.data(), n);
      return Status::Ok();
    }, &out->seconds);
  }
  if (q.kernel == "sgemm-cross") {  // C[n, n] = Dᵀ · X, D and X [k, n]
    std::vector<float> D = random_matrix(k, n, 4), X = random_matrix(k, n, 5), C(static_cast<size_t>(n * n));
    out->flops = 2.0 * k * n * n;
    return best_of(q.repeats, [&] {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, k, 1.0f, D.data(), n, X.data(), n, 0.0f, C.data(), n);
      return Status::Ok();
    }, &out->seconds);
  }
  const std::vector<float> H = random_spd(n);
  std::vector<float> A(H.size());
  if (q.kernel == "spotrf") {
    out->flops = n / 3.0 * n * n;
    return best_of(q.repeats, [&] {
      std::copy(H.begin(), H.end(), A.begin());
      return lapack(LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', n, A.data(), n), "spotrf");
    }, &out->seconds);
  }
  if (q.kernel == "chain-reference") {  // the reference: cholesky, cholesky_inverse, cholesky (4/3·n³)
    out->flops = 4.0 / 3.0 * n * n * n;
    return best_of(q.repeats, [&] {
      std::copy(H.begin(), H.end(), A.begin());
      VLMQ_TRY(lapack(LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', n, A.data(), n), "spotrf"));
      VLMQ_TRY(lapack(LAPACKE_spotri_work(LAPACK_COL_MAJOR, 'L', n, A.data(), n), "spotri"));
      return lapack(LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', n, A.data(), n), "spotrf");
    }, &out->seconds);
  }
  if (q.kernel == "chain-vlmq") {  // ours: one factorisation and one triangular inverse (2/3·n³)
    out->flops = 2.0 / 3.0 * n * n * n;
    MatF Hm{const_cast<float*>(H.data()), n, n, n, Device(DeviceKind::kHost)};
    MatF U{A.data(), n, n, n, Device(DeviceKind::kHost)};
    DampingPolicy policy;
    policy.percdamp = 0.0f;
    DampingOutcome outcome;
    return best_of(q.repeats, [&] { return inverse_cholesky_upper(cpu_backend(), Hm, policy, U, &outcome); }, &out->seconds);
  }
  return InvalidArgument("benchmark: unknown kernel " + q.kernel);
}

}  // namespace vlmq
