// The CPU backend's transformer primitives: RMSNorm, bias, RoPE, SiLU gating, and grouped-query
// attention (causal or bidirectional) with its causal backward, in f32 as Hugging Face's eager
// path computes them (softmax in f32, scale 1/sqrt(d), rotate-half RoPE). Attention runs one
// (segment, head) at a time through OpenBLAS GEMMs; the row-wise parts use the thread pool.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_backend.h"

namespace vlmq {
namespace {

Status same_shape(const MatF& a, const MatF& b, const char* what) {
  if (a.rows != b.rows || a.cols != b.cols) return InvalidArgument(std::string("cpu backend: shape mismatch in ") + what);
  return Status::Ok();
}

struct AttentionShape {
  int64_t d, group;
};

Status attention_shape(const MatF& q, const MatF& k, const MatF& v, int64_t heads, int64_t kv_heads, AttentionShape* s) {
  if (heads <= 0 || kv_heads <= 0 || heads % kv_heads != 0 || q.cols % heads != 0)
    return InvalidArgument("attention: heads must be a multiple of kv_heads and divide q's width");
  s->d = q.cols / heads;
  s->group = heads / kv_heads;
  if (k.cols != kv_heads * s->d || v.cols != k.cols || k.rows != q.rows || v.rows != q.rows)
    return InvalidArgument("attention: k and v must be [T, kv_heads · d] like q's tokens");
  return Status::Ok();
}

Status check_segments(MatI offsets, int64_t rows) {
  const int32_t* segments = offsets.data;
  const int64_t nseg = offsets.cols - 1;
  if (offsets.rows != 1 || nseg < 1 || !segments || segments[0] != 0 || segments[nseg] != rows)
    return InvalidArgument("attention: segments must be [1, nseg + 1] offsets running from 0 to the token count");
  for (int64_t s = 0; s < nseg; s++)
    if (segments[s + 1] <= segments[s]) return InvalidArgument("attention: segments must be non-empty and increasing");
  return Status::Ok();
}

// Softmax of row[0 .. n) in place; entries n .. L become 0 (n = i + 1 for causal row i, else L).
void softmax_row(float* row, int64_t n, int64_t L) {
  float max = row[0];
  for (int64_t j = 1; j < n; j++) max = std::max(max, row[j]);
  float sum = 0;
  for (int64_t j = 0; j < n; j++) {
    row[j] = std::exp(row[j] - max);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < n; j++) row[j] *= inv;
  std::fill(row + n, row + L, 0.0f);
}

// P = softmax(scale · Q Kᵀ), causal or not, for one head of one segment; P is L×L, row-major.
void attention_probabilities(const float* Q, int64_t ldq, const float* K, int64_t ldk, int64_t L, int64_t d, float scale,
                             bool causal, float* P, ThreadPool& pool) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, d, scale, Q, ldq, K, ldk, 0.0f, P, L);
  pool.parallel_for(L, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) softmax_row(P + i * L, causal ? i + 1 : L, L);
  });
}

}  // namespace

Status CpuBackend::rms_norm(MatF x, MatF weight, float eps, MatF y) {
  VLMQ_TRY(cpu_checks::on_host("rms_norm", x, weight, y));
  VLMQ_TRY(same_shape(x, y, "rms_norm"));
  VLMQ_TRY(cpu_checks::vector("rms_norm", "weight", weight, x.cols));
  const float* w = weight.data;
  pool()->parallel_for(x.rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* in = x.row(i);
      float* out = y.row(i);
      double sum = 0;
      for (int64_t j = 0; j < x.cols; j++) sum += static_cast<double>(in[j]) * in[j];
      const float r = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(x.cols)) + eps);
      for (int64_t j = 0; j < x.cols; j++) out[j] = w[j] * (in[j] * r);
    }
  });
  return Status::Ok();
}

Status CpuBackend::add_row(MatF x, MatF vector) {
  VLMQ_TRY(cpu_checks::on_host("add_row", x, vector));
  VLMQ_TRY(cpu_checks::vector("add_row", "v", vector, x.cols));
  const float* v = vector.data;
  pool()->parallel_for(x.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      float* row = x.row(i);
      for (int64_t j = 0; j < x.cols; j++) row[j] += v[j];
    }
  });
  return Status::Ok();
}

Status CpuBackend::axpby(MatF a, float alpha, MatF b, MatF y) {
  VLMQ_TRY(cpu_checks::on_host("axpby", a, b, y));
  VLMQ_TRY(same_shape(a, b, "axpby"));
  VLMQ_TRY(same_shape(a, y, "axpby"));
  pool()->parallel_for(a.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* pa = a.row(i);
      const float* pb = b.row(i);
      float* py = y.row(i);
      for (int64_t j = 0; j < a.cols; j++) py[j] = pa[j] + alpha * pb[j];
    }
  });
  return Status::Ok();
}

Status CpuBackend::rope(MatF x, int64_t d, MatF cos, MatF sin, bool inverse) {
  VLMQ_TRY(cpu_checks::on_host("rope", x, cos, sin));
  if (d <= 0 || d % 2 != 0 || x.cols % d != 0) return InvalidArgument("rope: head width must be even and divide the row");
  if (cos.rows != x.rows || cos.cols != d || sin.rows != x.rows || sin.cols != d) return InvalidArgument("rope: cos/sin must be [rows, head_dim]");
  const int64_t half = d / 2, heads = x.cols / d;
  const float sign = inverse ? -1.0f : 1.0f;
  pool()->parallel_for(x.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* c = cos.row(i);
      const float* s = sin.row(i);
      for (int64_t h = 0; h < heads; h++) {
        float* v = x.row(i) + h * d;
        for (int64_t j = 0; j < half; j++) {
          const float a = v[j], b = v[j + half];
          v[j] = a * c[j] - b * (sign * s[j]);
          v[j + half] = b * c[j + half] + a * (sign * s[j + half]);
        }
      }
    }
  });
  return Status::Ok();
}

Status CpuBackend::silu_mul(MatF gate, MatF up, MatF out) {
  VLMQ_TRY(cpu_checks::on_host("silu_mul", gate, up, out));
  VLMQ_TRY(same_shape(gate, up, "silu_mul"));
  VLMQ_TRY(same_shape(gate, out, "silu_mul"));
  pool()->parallel_for(gate.rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* g = gate.row(i);
      const float* u = up.row(i);
      float* o = out.row(i);
      for (int64_t j = 0; j < gate.cols; j++) o[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
    }
  });
  return Status::Ok();
}

Status CpuBackend::attention(MatF q, MatF k, MatF v, MatI offsets, int64_t heads, int64_t kv_heads, bool causal, MatF out) {
  VLMQ_TRY(cpu_checks::on_host("attention", q, k, v, offsets, out));
  AttentionShape shape;
  VLMQ_TRY(attention_shape(q, k, v, heads, kv_heads, &shape));
  VLMQ_TRY(same_shape(q, out, "attention"));
  VLMQ_TRY(check_segments(offsets, q.rows));
  const int32_t* segments = offsets.data;
  const int64_t nseg = offsets.cols - 1;
  const int64_t d = shape.d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  auto pool = this->pool();
  std::vector<float> P;
  for (int64_t s = 0; s < nseg; s++) {
    const int64_t t0 = segments[s], L = segments[s + 1] - t0;
    P.resize(static_cast<size_t>(L * L));
    for (int64_t h = 0; h < heads; h++) {
      const int64_t kvh = h / shape.group;
      const float* Q = q.row(t0) + h * d;
      const float* K = k.row(t0) + kvh * d;
      const float* V = v.row(t0) + kvh * d;
      attention_probabilities(Q, q.ld, K, k.ld, L, d, scale, causal, P.data(), *pool);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, d, L, 1.0f, P.data(), L, V, v.ld, 0.0f, out.row(t0) + h * d, out.ld);
    }
  }
  return Status::Ok();
}

Status CpuBackend::attention_backward(MatF q, MatF k, MatF v, MatF d_out, MatI offsets, int64_t heads, int64_t kv_heads,
                                      MatF dq, MatF dk, MatF dv) {
  VLMQ_TRY(cpu_checks::on_host("attention_backward", q, k, v, d_out, offsets, dq, dk, dv));
  AttentionShape shape;
  VLMQ_TRY(attention_shape(q, k, v, heads, kv_heads, &shape));
  VLMQ_TRY(same_shape(q, d_out, "attention_backward"));
  VLMQ_TRY(same_shape(q, dq, "attention_backward"));
  VLMQ_TRY(same_shape(k, dk, "attention_backward"));
  VLMQ_TRY(same_shape(v, dv, "attention_backward"));
  VLMQ_TRY(check_segments(offsets, q.rows));
  const int32_t* segments = offsets.data;
  const int64_t nseg = offsets.cols - 1;
  VLMQ_TRY(fill(dk, 0.0f));  // shared kv heads accumulate the gradients of their query heads
  VLMQ_TRY(fill(dv, 0.0f));
  const int64_t d = shape.d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  auto pool = this->pool();
  std::vector<float> P, dP;
  for (int64_t s = 0; s < nseg; s++) {
    const int64_t t0 = segments[s], L = segments[s + 1] - t0;
    P.resize(static_cast<size_t>(L * L));
    dP.resize(static_cast<size_t>(L * L));
    for (int64_t h = 0; h < heads; h++) {
      const int64_t kvh = h / shape.group;
      const float* Q = q.row(t0) + h * d;
      const float* K = k.row(t0) + kvh * d;
      const float* V = v.row(t0) + kvh * d;
      const float* dO = d_out.row(t0) + h * d;
      attention_probabilities(Q, q.ld, K, k.ld, L, d, scale, true, P.data(), *pool);
      // dV += Pᵀ dO;  dP = dO Vᵀ
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, d, L, 1.0f, P.data(), L, dO, d_out.ld, 1.0f, dv.row(t0) + kvh * d, dv.ld);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, d, 1.0f, dO, d_out.ld, V, v.ld, 0.0f, dP.data(), L);
      // dS = P ⊙ (dP − rowsum(dP ⊙ P)), written over dP (masked entries have P = 0)
      pool->parallel_for(L, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; i++) {
          const float* p = P.data() + i * L;
          float* g = dP.data() + i * L;
          double dot = 0;
          for (int64_t j = 0; j <= i; j++) dot += static_cast<double>(g[j]) * p[j];
          const float row = static_cast<float>(dot);
          for (int64_t j = 0; j < L; j++) g[j] = p[j] * (g[j] - row);
        }
      });
      // dQ = scale · dS K;  dK += scale · dSᵀ Q
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, d, L, scale, dP.data(), L, K, k.ld, 0.0f, dq.row(t0) + h * d, dq.ld);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, d, L, scale, dP.data(), L, Q, q.ld, 1.0f, dk.row(t0) + kvh * d, dk.ld);
    }
  }
  return Status::Ok();
}

Status CpuBackend::row_norms(MatF x, bool l2, MatF norms) {
  VLMQ_TRY(cpu_checks::on_host("row_norms", x, norms));
  VLMQ_TRY(cpu_checks::vector("row_norms", "out", norms, x.rows));
  float* out = norms.data;
  pool()->parallel_for(x.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* row = x.row(i);
      double sum = 0;
      for (int64_t j = 0; j < x.cols; j++) sum += l2 ? static_cast<double>(row[j]) * row[j] : std::fabs(static_cast<double>(row[j]));
      const double mean = sum / static_cast<double>(x.cols);
      out[i] = static_cast<float>(l2 ? std::sqrt(mean) : mean);
    }
  });
  return Status::Ok();
}

Status CpuBackend::sum_squares(MatF x, double* out) {
  VLMQ_TRY(cpu_checks::on_host("sum_squares", x));
  double total = 0;
  for (int64_t i = 0; i < x.rows; i++) {
    const float* row = x.row(i);
    for (int64_t j = 0; j < x.cols; j++) total += static_cast<double>(row[j]) * row[j];
  }
  *out = total;
  return Status::Ok();
}

}  // namespace vlmq
