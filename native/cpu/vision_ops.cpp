// The CPU backend's primitives for the vision towers: LayerNorm with bias, the activations of
// the towers and projectors (exact and tanh GELU, quick GELU, SiLU), row gathers for
// Qwen2.5-VL's window order, and the unfolding of images into convolution patches. Plain loops,
// parallel over rows, in f32 as transformers computes them.
#include <cmath>
#include <cstring>
#include <string>

#include "cpu_backend.h"

namespace vlmq {
namespace {

Status same_shape(const MatF& a, const MatF& b, const char* what) {
  if (a.rows != b.rows || a.cols != b.cols) return InvalidArgument(std::string("cpu backend: shape mismatch in ") + what);
  return Status::Ok();
}

float gelu(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }

float gelu_tanh(float x) {
  const float k = 0.79788456080286536f;  // √(2/π)
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

float quick_gelu(float x) { return x / (1.0f + std::exp(-1.702f * x)); }

float silu(float x) { return x / (1.0f + std::exp(-x)); }

template <float (*F)(float)>
void apply(const MatF& x, const MatF& y, ThreadPool& pool) {
  pool.parallel_for(x.rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* in = x.row(i);
      float* out = y.row(i);
      for (int64_t j = 0; j < x.cols; j++) out[j] = F(in[j]);
    }
  });
}

}  // namespace

Status CpuBackend::layer_norm(MatF x, MatF weight, MatF bias, float eps, MatF y) {
  VLMQ_TRY(cpu_checks::on_host("layer_norm", x, weight, bias, y));
  VLMQ_TRY(same_shape(x, y, "layer_norm"));
  VLMQ_TRY(cpu_checks::vector("layer_norm", "weight", weight, x.cols));
  VLMQ_TRY(cpu_checks::vector("layer_norm", "bias", bias, x.cols));
  const float* w = weight.data;
  const float* b = bias.data;
  if (x.cols == 0) return Status::Ok();
  pool()->parallel_for(x.rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* in = x.row(i);
      float* out = y.row(i);
      double sum = 0;
      for (int64_t j = 0; j < x.cols; j++) sum += in[j];
      const double mean = sum / static_cast<double>(x.cols);
      double var = 0;
      for (int64_t j = 0; j < x.cols; j++) var += (in[j] - mean) * (in[j] - mean);
      const float m = static_cast<float>(mean);
      const float r = 1.0f / std::sqrt(static_cast<float>(var / static_cast<double>(x.cols)) + eps);
      for (int64_t j = 0; j < x.cols; j++) out[j] = (in[j] - m) * r * w[j] + b[j];
    }
  });
  return Status::Ok();
}

Status CpuBackend::activation(Activation act, MatF x, MatF y) {
  VLMQ_TRY(cpu_checks::on_host("activation", x, y));
  VLMQ_TRY(same_shape(x, y, "activation"));
  auto pool = this->pool();
  switch (act) {
    case Activation::kGelu: apply<gelu>(x, y, *pool); return Status::Ok();
    case Activation::kGeluTanh: apply<gelu_tanh>(x, y, *pool); return Status::Ok();
    case Activation::kQuickGelu: apply<quick_gelu>(x, y, *pool); return Status::Ok();
    case Activation::kSilu: apply<silu>(x, y, *pool); return Status::Ok();
  }
  return InvalidArgument("activation: unknown activation");
}

Status CpuBackend::gather_rows(MatF dst, MatF src, MatI index) {
  VLMQ_TRY(cpu_checks::on_host("gather_rows", dst, src, index));
  if (dst.cols != src.cols) return InvalidArgument("gather_rows: dst and src must have the same columns");
  if (dst.rows > 0 && dst.data == src.data) return InvalidArgument("gather_rows: dst must not alias src");
  VLMQ_TRY(cpu_checks::vector("gather_rows", "index", index, dst.rows));
  const int32_t* rows = index.data;
  for (int64_t i = 0; i < dst.rows; i++)
    if (rows[i] < 0 || rows[i] >= src.rows) return InvalidArgument("gather_rows: index " + std::to_string(rows[i]) + " out of range");
  pool()->parallel_for(dst.rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) std::memcpy(dst.row(i), src.row(rows[i]), static_cast<size_t>(src.cols) * sizeof(float));
  });
  return Status::Ok();
}

Status CpuBackend::unfold_patches(MatF images, int64_t channels, int64_t size, int64_t patch, MatF out) {
  VLMQ_TRY(cpu_checks::on_host("unfold_patches", images, out));
  const int64_t n = images.rows;
  if (channels <= 0 || patch <= 0 || size < patch) return InvalidArgument("unfold_patches: bad image or patch size");
  if (images.cols != channels * size * size) return InvalidArgument("unfold_patches: images must be [n, channels · size²]");
  const int64_t p = size / patch, per = p * p;
  if (out.rows != n * per || out.cols != channels * patch * patch)
    return InvalidArgument("unfold_patches: out must be [n · (size / patch)², channels · patch²]");
  pool()->parallel_for(out.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t v = r / per, py = (r % per) / p, px = r % p;
      float* row = out.row(r);
      for (int64_t c = 0; c < channels; c++) {
        const float* plane = images.row(v) + c * size * size;
        for (int64_t ky = 0; ky < patch; ky++) {
          const float* line = plane + (py * patch + ky) * size + px * patch;
          std::memcpy(row + (c * patch + ky) * patch, line, static_cast<size_t>(patch) * sizeof(float));
        }
      }
    }
  });
  return Status::Ok();
}

}  // namespace vlmq
