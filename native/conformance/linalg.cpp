// Dense linear algebra against naive loops in double: gemm (all four transpositions, alpha, beta,
// an empty inner dimension, strided operands), syrk_lower (the lower triangle only), trmm, the
// Cholesky factor (and the failing minor of a matrix that is not positive definite) and the
// triangular inverse. The tolerance of an element is a multiple of the f32 unit roundoff times the
// sum of the magnitudes that went into it (scale), times √(terms) for the sums.
#include <cmath>
#include <tuple>

#include "harness.h"

namespace vlmq::conformance {
namespace {

constexpr double kUnit = 0x1.0p-24;  // f32 unit roundoff

// op(M)[i, j] of a row-major [rows, cols] matrix.
double op_at(const std::vector<float>& m, int64_t cols, bool trans, int64_t i, int64_t j) {
  return trans ? m[j * cols + i] : m[i * cols + j];
}

// The elements of the lower triangle (diagonal included), row by row.
template <class T>
std::vector<T> lower_of(const std::vector<T>& a, int64_t n) {
  std::vector<T> out;
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j <= i; j++) out.push_back(a[i * n + j]);
  return out;
}

void gemm_cases(Suite& s) {
  Backend& b = s.backend;
  struct Shape {
    int64_t m, n, k;
    float alpha, beta;
    Layout layout;
  };
  const Shape shapes[] = {{1, 1, 1, 1.0f, 0.0f, Layout::kContiguous},
                          {7, 67, 33, 0.5f, -1.0f, Layout::kOffset},
                          {130, 33, 67, -2.0f, 0.25f, Layout::kOffset},
                          {33, 7, 130, 1.0f, 1.0f, Layout::kContiguous}};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const Shape& sh : shapes) {
        const std::string name = std::string(ta ? "Aᵀ" : "A") + (tb ? "·Bᵀ " : "·B ") + shape(sh.m, sh.k) + "·" + shape(sh.k, sh.n) +
                                 ", alpha " + number(sh.alpha) + ", beta " + number(sh.beta) + (sh.layout == Layout::kOffset ? ", at offsets" : "");
        s.run("gemm", name, [&b, ta, tb, sh](Rng& rng) {
          const int64_t ar = ta ? sh.k : sh.m, ac = ta ? sh.m : sh.k, br = tb ? sh.n : sh.k, bc = tb ? sh.k : sh.n;
          const std::vector<float> A = rng.floats(ar * ac), B = rng.floats(br * bc), C = rng.floats(sh.m * sh.n);
          Operand<float> dA, dB, dC;
          CONF_SETUP(make_operand(b, "A", ar, ac, sh.layout, A, &dA));
          CONF_SETUP(make_operand(b, "B", br, bc, sh.layout, B, &dB));
          CONF_SETUP(make_operand(b, "C", sh.m, sh.n, sh.layout, C, &dC));
          CONF_CALL(b.gemm(ta, tb, sh.alpha, dA.mat(), dB.mat(), sh.beta, dC.mat()));
          std::vector<double> want(C.size()), scale(C.size());
          for (int64_t i = 0; i < sh.m; i++)
            for (int64_t j = 0; j < sh.n; j++) {
              double sum = 0, magnitude = 0;
              for (int64_t p = 0; p < sh.k; p++) {
                const double x = op_at(A, ac, ta, i, p) * op_at(B, bc, tb, p, j);
                sum += x, magnitude += std::fabs(x);
              }
              want[i * sh.n + j] = sh.alpha * sum + sh.beta * C[i * sh.n + j];
              scale[i * sh.n + j] = std::fabs(sh.alpha) * magnitude + std::fabs(sh.beta * C[i * sh.n + j]);
            }
          std::vector<float> got;
          CONF_CHECK(read(b, dC, &got));
          CONF_CHECK(unchanged(b, dA));
          CONF_CHECK(unchanged(b, dB));
          return near("C", sh.n, got, want, 4 * kUnit * std::sqrt(sh.k + 1.0), 0, scale);
        });
      }
  for (float beta : {0.5f, 0.0f})
    s.run("gemm", "an empty inner dimension: C = beta·C, beta " + number(beta), [&b, beta](Rng& rng) {
      const std::vector<float> C = rng.floats(7 * 33);
      Operand<float> dA, dB, dC;
      CONF_SETUP(make_operand(b, "A", 7, 0, Layout::kOffset, {}, &dA));
      CONF_SETUP(make_operand(b, "B", 0, 33, Layout::kOffset, {}, &dB));
      CONF_SETUP(make_operand(b, "C", 7, 33, Layout::kOffset, C, &dC));
      CONF_CALL(b.gemm(false, false, 1.0f, dA.mat(), dB.mat(), beta, dC.mat()));
      std::vector<float> got, want(C);
      for (float& x : want) x = beta == 0.0f ? 0.0f : beta * x;
      CONF_CHECK(read(b, dC, &got));
      return same("C", 33, got, want);
    });
}

void syrk_cases(Suite& s) {
  Backend& b = s.backend;
  for (auto [k, n, alpha, beta] : {std::tuple{1, 1, 1.0f, 0.0f}, {33, 7, 2.0f, 0.0f}, {67, 67, 1.0f, 1.0f}, {7, 130, 0.5f, -0.5f},
                                   {0, 33, 1.0f, 0.5f}})
    s.run("syrk_lower", "A " + shape(k, n) + " at an offset, alpha " + number(alpha) + ", beta " + number(beta) + " (the lower triangle)",
          [&b, k = k, n = n, alpha = alpha, beta = beta](Rng& rng) {
            const std::vector<float> A = rng.floats(k * n), C = rng.floats(n * n);
            Operand<float> dA, dC;
            CONF_SETUP(make_operand(b, "A", k, n, Layout::kOffset, A, &dA));
            CONF_SETUP(make_operand(b, "C", n, n, Layout::kOffset, C, &dC));
            CONF_CALL(b.syrk_lower(alpha, dA.mat(), beta, dC.mat()));
            std::vector<double> want(C.size()), scale(C.size());
            for (int64_t i = 0; i < n; i++)
              for (int64_t j = 0; j <= i; j++) {
                double sum = 0, magnitude = 0;
                for (int64_t t = 0; t < k; t++) {
                  const double x = static_cast<double>(A[t * n + i]) * A[t * n + j];
                  sum += x, magnitude += std::fabs(x);
                }
                want[i * n + j] = alpha * sum + beta * C[i * n + j];
                scale[i * n + j] = std::fabs(alpha) * magnitude + std::fabs(beta * C[i * n + j]);
              }
            std::vector<float> got;
            CONF_CHECK(read(b, dC, &got));
            CONF_CHECK(unchanged(b, dA));
            return near("lower(C)", n, lower_of(got, n), lower_of(want, n), 4 * kUnit * std::sqrt(k + 1.0), 0, lower_of(scale, n));
          });
}

// An upper triangular U with a diagonal in [0.5, 1.5] and zeros below.
std::vector<float> upper_factor(Rng& rng, int64_t n) {
  std::vector<float> U(static_cast<size_t>(n * n), 0.0f);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = i; j < n; j++) U[i * n + j] = i == j ? rng.uniform(0.5f, 1.5f) : rng.uniform(-1.0f, 1.0f);
  return U;
}

void trmm_cases(Suite& s) {
  Backend& b = s.backend;
  for (bool trans : {false, true})
    for (auto [m, n, alpha, layout] : {std::tuple{1, 1, 1.0f, Layout::kContiguous}, {7, 33, -0.5f, Layout::kOffset},
                                       {67, 130, 1.0f, Layout::kOffset}, {130, 7, 2.0f, Layout::kContiguous}})
      s.run("trmm_right_upper", std::string(trans ? "B·Uᵀ " : "B·U ") + "B " + dims_of(m, n, layout) + ", alpha " + number(alpha),
            [&b, trans, m = m, n = n, alpha = alpha, layout = layout](Rng& rng) {
              const std::vector<float> B = rng.floats(m * n), U = upper_factor(rng, n);
              Operand<float> dB, dU;
              CONF_SETUP(make_operand(b, "B", m, n, layout, B, &dB));
              CONF_SETUP(make_operand(b, "U", n, n, layout, U, &dU));
              CONF_CALL(b.trmm_right_upper(trans, alpha, dU.mat(), dB.mat()));
              std::vector<double> want(B.size()), scale(B.size());
              for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                  double sum = 0, magnitude = 0;
                  for (int64_t p = 0; p < n; p++) {
                    const double x = static_cast<double>(B[i * n + p]) * op_at(U, n, trans, p, j);
                    sum += x, magnitude += std::fabs(x);
                  }
                  want[i * n + j] = alpha * sum;
                  scale[i * n + j] = std::fabs(alpha) * magnitude;
                }
              std::vector<float> got;
              CONF_CHECK(read(b, dB, &got));
              CONF_CHECK(unchanged(b, dU));
              return near("B", n, got, want, 4 * kUnit * std::sqrt(n + 1.0), 0, scale);
            });
}

// A = M·Mᵀ / n + I in f32: symmetric, positive definite and well conditioned.
std::vector<float> positive_definite(Rng& rng, int64_t n) {
  const std::vector<float> M = rng.floats(n * n);
  std::vector<float> A(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j <= i; j++) {
      double sum = i == j ? 1.0 : 0.0;
      for (int64_t k = 0; k < n; k++) sum += static_cast<double>(M[i * n + k]) * M[j * n + k] / n;
      A[i * n + j] = A[j * n + i] = static_cast<float>(sum);
    }
  return A;
}

// The Cholesky factor in double (A = L·Lᵀ, lower), or the 1-based minor where a pivot is ≤ 0.
int64_t naive_cholesky(const std::vector<float>& A, int64_t n, std::vector<double>* L) {
  L->assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t j = 0; j < n; j++) {
    double d = A[j * n + j];
    for (int64_t k = 0; k < j; k++) d -= (*L)[j * n + k] * (*L)[j * n + k];
    if (!(d > 0)) return j + 1;
    (*L)[j * n + j] = std::sqrt(d);
    for (int64_t i = j + 1; i < n; i++) {
      double x = A[i * n + j];
      for (int64_t k = 0; k < j; k++) x -= (*L)[i * n + k] * (*L)[j * n + k];
      (*L)[i * n + j] = x / (*L)[j * n + j];
    }
  }
  return 0;
}

void cholesky_cases(Suite& s) {
  Backend& b = s.backend;
  for (auto [n, layout, with_minor] : {std::tuple{1, Layout::kContiguous, true}, {7, Layout::kOffset, true},
                                       {67, Layout::kOffset, false}, {130, Layout::kContiguous, true}})
    s.run("cholesky_lower", "positive definite " + dims_of(n, n, layout) + (with_minor ? "" : ", no failed_minor pointer"),
          [&b, n = n, layout = layout, with_minor = with_minor](Rng& rng) {
            const std::vector<float> A = positive_definite(rng, n);
            std::vector<double> L;
            if (naive_cholesky(A, n, &L) != 0) return fail("setup: the reference found the matrix not positive definite");
            Operand<float> dA;
            CONF_SETUP(make_operand(b, "A", n, n, layout, A, &dA));
            int64_t minor = -7;
            CONF_CALL(b.cholesky_lower(dA.mat(), with_minor ? &minor : nullptr));
            std::vector<float> got;
            CONF_CHECK(read(b, dA, &got));
            // |L[i, j]| ≤ √A[i, i]: the error of an entry is relative to that bound.
            std::vector<double> scale(A.size());
            for (int64_t i = 0; i < n; i++)
              for (int64_t j = 0; j < n; j++) scale[i * n + j] = std::sqrt(A[i * n + i]);
            return near("lower(L)", n, lower_of(got, n), lower_of(L, n), 8 * kUnit * std::sqrt(n + 1.0), 0, lower_of(scale, n));
          });
  // Leading minors up to k − 1 positive definite, minor k not: pivot k becomes −1.
  for (auto [n, k] : {std::pair{1, 1}, {7, 5}, {67, 40}, {130, 130}})
    s.run("cholesky_lower", "not positive definite at minor " + std::to_string(k) + " of " + shape(n, n) + " at an offset",
          [&b, n = n, k = k](Rng& rng) {
            std::vector<float> A = positive_definite(rng, n);
            std::vector<double> L;
            (void)naive_cholesky(A, n, &L);
            A[(k - 1) * n + (k - 1)] -= static_cast<float>(L[(k - 1) * n + (k - 1)] * L[(k - 1) * n + (k - 1)] + 1.0);
            if (naive_cholesky(A, n, &L) != k) return fail("setup: the reference does not fail at minor " + std::to_string(k));
            Operand<float> dA;
            CONF_SETUP(make_operand(b, "A", n, n, Layout::kOffset, A, &dA));
            int64_t minor = -7;
            CONF_CHECK(returns(b.cholesky_lower(dA.mat(), &minor), Code::kNotPositiveDefinite));
            if (minor != k) return fail("failed_minor " + std::to_string(minor) + ", expected " + std::to_string(k));
            std::vector<float> ignored;
            return read(b, dA, &ignored);  // the guards are intact
          });
}

void invert_lower_cases(Suite& s) {
  Backend& b = s.backend;
  for (auto [n, layout] : {std::pair{1, Layout::kContiguous}, {7, Layout::kOffset}, {67, Layout::kOffset}, {130, Layout::kContiguous}})
    s.run("invert_lower", dims_of(n, n, layout) + ", the upper triangle untouched", [&b, n = n, layout = layout](Rng& rng) {
      // Diagonal in [1, 2], off-diagonal entries in ±1/n: well conditioned. Above it: values the
      // primitive must leave alone.
      std::vector<float> A(static_cast<size_t>(n * n));
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
          A[i * n + j] = i == j ? rng.uniform(1.0f, 2.0f) : j < i ? rng.uniform(-1.0f, 1.0f) / static_cast<float>(n) : 99.0f + j;
      // X = L⁻¹ column by column: L·X[:, j] = e_j by forward substitution.
      std::vector<double> X(A.size(), 0.0), scale(A.size(), 0.0);
      for (int64_t j = 0; j < n; j++)
        for (int64_t i = j; i < n; i++) {
          double x = i == j ? 1.0 : 0.0, magnitude = std::fabs(x);
          for (int64_t k = j; k < i; k++) x -= A[i * n + k] * X[k * n + j], magnitude += std::fabs(A[i * n + k] * X[k * n + j]);
          X[i * n + j] = x / A[i * n + i];
          scale[i * n + j] = magnitude / A[i * n + i];
        }
      Operand<float> dA;
      CONF_SETUP(make_operand(b, "A", n, n, layout, A, &dA));
      CONF_CALL(b.invert_lower(dA.mat()));
      std::vector<float> got, upper, upper_want;
      CONF_CHECK(read(b, dA, &got));
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) upper.push_back(got[i * n + j]), upper_want.push_back(A[i * n + j]);
      CONF_CHECK(same("the upper triangle", n, upper, upper_want));
      return near("lower(L⁻¹)", n, lower_of(got, n), lower_of(X, n), 8 * kUnit * (n + 1.0), 1e-30, lower_of(scale, n));
    });
}

}  // namespace

void linalg_cases(Suite& s) {
  gemm_cases(s);
  syrk_cases(s);
  trmm_cases(s);
  cholesky_cases(s);
  invert_lower_cases(s);
}

}  // namespace vlmq::conformance
