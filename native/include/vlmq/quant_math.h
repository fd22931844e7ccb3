// The scalar arithmetic of the uniform quantizer (docs/algorithm.md §1.3), shared by every
// backend's kernels so that all of them land on the same grid bit for bit. Header-only and free
// of library calls, so a CUDA kernel can include it as well (VLMQ_HD marks host+device).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define VLMQ_HD __host__ __device__
#else
#define VLMQ_HD
#endif

namespace vlmq {

// Quantization grid settings of one layer; every field is filled in by the caller.
struct Grid {
  int bits = 4;             // 2, 3, 4 or 8
  bool sym = false;         // zero point fixed at mid-range (IST convention, GPTQ-format "sym")
  bool mse = false;         // shrink the range to minimise Σ|q − x|^norm (IST grid search)
  float norm = 2.4f;
  int grid = 100;
  float max_shrink = 0.8f;
  bool fp16_scales = true;  // put scales on the fp16 values a GPTQ checkpoint stores
  VLMQ_HD float maxq() const { return static_cast<float>((1 << bits) - 1); }
};

struct QParams {
  float scale;
  float zero;  // an integer in [0, maxq]
};

VLMQ_HD inline uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
#endif
}

VLMQ_HD inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  memcpy(&x, &u, 4);
  return x;
#endif
}

// Round half to even, like torch.round; rintf obeys the default rounding mode (nearest-even),
// unlike roundf, which rounds halves away from zero.
VLMQ_HD inline float round_half_even(float x) { return rintf(x); }

// clamp written with comparisons so that it compiles to vector min/max (inputs are finite).
VLMQ_HD inline float clamp(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

// The float16 value nearest to x (ties to even), returned as a float. Scales are positive and
// finite here, and they are kept inside the finite, non-zero f16 range [2^-24, 65504] so that
// the stored grid stays usable (a zero scale would divide by zero).
VLMQ_HD inline float round_scale_to_f16(float x) {
  const float kMin = 5.9604644775390625e-08f;  // 2^-24, the smallest f16 subnormal
  const float kMax = 65504.0f;
  if (!(x > kMin)) return kMin;
  if (x >= kMax) return kMax;
  uint32_t u = float_bits(x);
  int exponent = static_cast<int>((u >> 23) & 0xff) - 127;
  // f16 keeps 10 mantissa bits for normals (exponent ≥ −14); subnormals have a fixed 2^-24 step.
  int drop = exponent >= -14 ? 13 : 13 + (-14 - exponent);
  uint32_t half = 1u << (drop - 1);
  uint32_t rest = u & ((1u << drop) - 1);
  uint32_t kept = u >> drop;
  if (rest > half || (rest == half && (kept & 1u))) kept += 1;
  return bits_float(kept << drop);
}

VLMQ_HD inline QParams make_params(float xmin, float xmax, const Grid& g) {
  const float maxq = g.maxq();
  float scale = (xmax - xmin) / maxq;
  if (g.fp16_scales) scale = round_scale_to_f16(scale);
  float zero = g.sym ? (maxq + 1.0f) / 2.0f : round_half_even(-xmin / scale);
  zero = clamp(zero, 0.0f, maxq);
  return {scale, zero};
}

// q = clamp(round(x / s) + z, 0, maxq) — the integer code of x.
VLMQ_HD inline float quant_code(float x, QParams p, float maxq) {
  return clamp(round_half_even(x / p.scale) + p.zero, 0.0f, maxq);
}

// scale · (code − zero): the value on the grid that x maps to.
VLMQ_HD inline float dequant(float code, QParams p) { return p.scale * (code - p.zero); }

VLMQ_HD inline float quantize_value(float x, QParams p, float maxq) { return dequant(quant_code(x, p, maxq), p); }

// find_params for one row x[0, n) (IST quant.py): the range always includes 0; symmetric grids
// mirror it; an all-zero row gets (−1, +1); the optional MSE search shrinks the range.
VLMQ_HD inline QParams find_params(const float* x, int64_t n, const Grid& g) {
  float xmin = 0.0f, xmax = 0.0f;  // comparisons, not fminf/fmaxf: they vectorise (x is finite)
  for (int64_t i = 0; i < n; i++) {
    xmin = x[i] < xmin ? x[i] : xmin;
    xmax = x[i] > xmax ? x[i] : xmax;
  }
  if (g.sym) {
    xmax = -xmin > xmax ? -xmin : xmax;
    if (xmin < 0.0f) xmin = -xmax;
  }
  if (xmin == 0.0f && xmax == 0.0f) {
    xmin = -1.0f;
    xmax = 1.0f;
  }
  QParams best = make_params(xmin, xmax, g);
  if (!g.mse) return best;

  const float maxq = g.maxq();
  float best_err = bits_float(0x7f800000u);  // +inf
  const int steps = static_cast<int>(g.max_shrink * static_cast<float>(g.grid));
  for (int i = 0; i < steps; i++) {
    const float p = static_cast<float>(1.0 - static_cast<double>(i) / g.grid);
    const QParams cand = make_params(p * xmin, p * xmax, g);  // sym keeps the mid-range zero
    float err = 0.0f;
    for (int64_t k = 0; k < n; k++) err += powf(fabsf(quantize_value(x[k], cand, maxq) - x[k]), g.norm);
    if (err < best_err) {
      best_err = err;
      best = cand;
    }
  }
  return best;
}

}  // namespace vlmq
