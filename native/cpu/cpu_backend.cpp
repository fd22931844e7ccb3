// CPU backend: plain loops (parallel over rows) for data movement, OpenBLAS for BLAS-3, and
// LAPACKE in column-major mode for the factorisations. A row-major lower triangle is a
// column-major upper one, so the row-major "lower" primitives call LAPACK with uplo = 'U' and
// no transposed copies are ever made.
#include "cpu_backend.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <mutex>
#include <thread>

#include "half.h"

namespace vlmq {
namespace {

constexpr int64_t kTile = 64;

Status on_host(const MatF& a, const char* what) {
  if (a.device != DeviceKind::kHost) return InvalidArgument(std::string("cpu backend: ") + what + " is not host memory");
  return Status::Ok();
}

Status on_host(const MatrixView& a, const char* what) {
  if (a.device != DeviceKind::kHost) return InvalidArgument(std::string("cpu backend: ") + what + " is not host memory");
  return Status::Ok();
}

Status same_shape(const MatF& a, int64_t rows, int64_t cols, const char* what) {
  if (a.rows != rows || a.cols != cols) return InvalidArgument(std::string("cpu backend: shape mismatch in ") + what);
  return Status::Ok();
}

// Read row r of a float matrix of any dtype into f32.
void load_row(const MatrixView& v, int64_t r, float* out) {
  const int64_t n = v.cols;
  switch (v.dtype) {
    case DType::kF32: {
      const float* src = static_cast<const float*>(v.data) + r * v.ld;
      std::memcpy(out, src, n * sizeof(float));
      break;
    }
    case DType::kBF16: {
      const uint16_t* src = static_cast<const uint16_t*>(v.data) + r * v.ld;
      for (int64_t j = 0; j < n; j++) out[j] = bf16_to_f32(src[j]);
      break;
    }
    case DType::kF16: {
      const uint16_t* src = static_cast<const uint16_t*>(v.data) + r * v.ld;
      for (int64_t j = 0; j < n; j++) out[j] = f16_to_f32(src[j]);
      break;
    }
    default:
      break;
  }
}

bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace

CpuBackend::CpuBackend() : pool_(std::make_shared<ThreadPool>(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())))) {}

void CpuBackend::set_threads(int n) {
  n = std::max(1, n);
  std::atomic_store(&pool_, std::make_shared<ThreadPool>(n));
  openblas_set_num_threads(n);  // callers run this between jobs (lib/native/info.ts queues it)
}

// --- memory -------------------------------------------------------------------------------------

Status CpuBackend::alloc(Buffer* out, size_t bytes, BufferUsage usage) {
  const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* data = std::aligned_alloc(64, rounded);
  if (!data) return {Code::kOutOfMemory, "out of host memory: could not allocate " + std::to_string(bytes) + " bytes"};
  *out = Buffer(this, data, bytes, usage);
  return Status::Ok();
}

void CpuBackend::free(void* data, size_t) { std::free(data); }

Status CpuBackend::download(void* host, const Buffer& src, size_t bytes) {
  if (bytes > src.bytes()) return InvalidArgument("download larger than the buffer");
  std::memcpy(host, src.as<void>(), bytes);
  return Status::Ok();
}

// --- elementwise and data movement --------------------------------------------------------------

Status CpuBackend::convert_rows(MatF dst, MatrixView src, const float* row_scale) {
  VLMQ_TRY(on_host(dst, "dst"));
  VLMQ_TRY(on_host(src, "src"));
  VLMQ_TRY(same_shape(dst, src.rows, src.cols, "convert_rows"));
  if (!is_float(src.dtype)) return InvalidArgument("convert_rows: src must be F32, F16 or BF16");
  pool()->parallel_for(src.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      float* out = dst.row(r);
      load_row(src, r, out);
      if (row_scale) {
        const float s = row_scale[r];
        for (int64_t j = 0; j < src.cols; j++) out[j] *= s;
      }
    }
  });
  return Status::Ok();
}

Status CpuBackend::subtract_rows(MatF dst, MatrixView a, MatrixView b, const float* row_scale) {
  VLMQ_TRY(on_host(dst, "dst"));
  VLMQ_TRY(on_host(a, "a"));
  VLMQ_TRY(on_host(b, "b"));
  VLMQ_TRY(same_shape(dst, a.rows, a.cols, "subtract_rows"));
  VLMQ_TRY(same_shape(dst, b.rows, b.cols, "subtract_rows"));
  if (!is_float(a.dtype) || !is_float(b.dtype)) return InvalidArgument("subtract_rows: F32, F16 or BF16 expected");
  pool()->parallel_for(a.rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<float> tmp(a.cols);
    for (int64_t r = r0; r < r1; r++) {
      float* out = dst.row(r);
      load_row(a, r, out);
      load_row(b, r, tmp.data());
      const float s = row_scale ? row_scale[r] : 1.0f;
      for (int64_t j = 0; j < a.cols; j++) out[j] = (out[j] - tmp[j]) * s;
    }
  });
  return Status::Ok();
}

namespace {
// Non-finite elements of one row: an all-ones exponent field (inf or NaN), tested on the bits so
// the counting loop vectorises. *first gets the row-major index of the first one, if any.
template <class Bits>
int64_t count_all_ones(const Bits* p, int64_t cols, Bits mask, int64_t base, int64_t* first) {
  int64_t count = 0;
  for (int64_t j = 0; j < cols; j++) count += (p[j] & mask) == mask;
  if (count && first)
    for (int64_t j = 0; j < cols; j++)
      if ((p[j] & mask) == mask) {
        *first = base + j;
        break;
      }
  return count;
}

int64_t row_nonfinite(const MatrixView& a, int64_t r, int64_t* first) {
  if (a.dtype == DType::kF32)
    return count_all_ones(static_cast<const uint32_t*>(a.data) + r * a.ld, a.cols, uint32_t{0x7f800000u}, r * a.cols, first);
  const uint16_t mask = a.dtype == DType::kF16 ? 0x7c00 : 0x7f80;
  return count_all_ones(static_cast<const uint16_t*>(a.data) + r * a.ld, a.cols, mask, r * a.cols, first);
}
}  // namespace

Status CpuBackend::count_nonfinite(MatrixView a, int64_t* count, int64_t* first) {
  VLMQ_TRY(on_host(a, "a"));
  if (!is_float(a.dtype)) return InvalidArgument("count_nonfinite: float matrix expected");
  std::mutex mutex;
  int64_t total = 0, first_index = -1;
  pool()->parallel_for(a.rows, 64, [&](int64_t r0, int64_t r1) {
    int64_t chunk = 0, chunk_first = -1;
    for (int64_t r = r0; r < r1; r++) {
      int64_t f = -1;
      const int64_t c = row_nonfinite(a, r, chunk_first < 0 ? &f : nullptr);
      if (c && chunk_first < 0) chunk_first = f;
      chunk += c;
    }
    std::lock_guard<std::mutex> lock(mutex);
    total += chunk;
    if (chunk_first >= 0 && (first_index < 0 || chunk_first < first_index)) first_index = chunk_first;
  });
  *count = total;
  *first = first_index;
  return Status::Ok();
}

Status CpuBackend::reverse(MatF dst, MatF src) {
  VLMQ_TRY(same_shape(dst, src.rows, src.cols, "reverse"));
  const int64_t R = src.rows, C = src.cols;
  if (dst.data == src.data) {
    if (dst.ld != dst.cols) return InvalidArgument("reverse: in place needs a contiguous matrix");
    std::reverse(dst.data, dst.data + R * C);
    return Status::Ok();
  }
  pool()->parallel_for(R, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* in = src.row(R - 1 - i);
      float* out = dst.row(i);
      for (int64_t j = 0; j < C; j++) out[j] = in[C - 1 - j];
    }
  });
  return Status::Ok();
}

Status CpuBackend::gather_columns(MatF dst, MatF src, const int32_t* perm) {
  VLMQ_TRY(same_shape(dst, src.rows, src.cols, "gather_columns"));
  const bool in_place = dst.data == src.data;
  pool()->parallel_for(src.rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(in_place ? src.cols : 0);
    for (int64_t i = r0; i < r1; i++) {
      const float* in = src.row(i);
      if (in_place) in = static_cast<const float*>(std::memcpy(row.data(), in, src.cols * sizeof(float)));
      float* out = dst.row(i);
      for (int64_t j = 0; j < src.cols; j++) out[j] = in[perm[j]];
    }
  });
  return Status::Ok();
}

Status CpuBackend::gather_columns_u8(uint8_t* dst, const uint8_t* src, int64_t rows, int64_t cols, const int32_t* perm) {
  const bool in_place = dst == src;
  pool()->parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<uint8_t> row(in_place ? cols : 0);
    for (int64_t i = r0; i < r1; i++) {
      const uint8_t* in = src + i * cols;
      if (in_place) in = static_cast<const uint8_t*>(std::memcpy(row.data(), in, cols));
      for (int64_t j = 0; j < cols; j++) dst[i * cols + j] = in[perm[j]];
    }
  });
  return Status::Ok();
}

Status CpuBackend::gather_symmetric(MatF dst, MatF src, const int32_t* perm) {
  VLMQ_TRY(same_shape(dst, src.rows, src.cols, "gather_symmetric"));
  pool()->parallel_for(src.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* in = src.row(perm[i]);
      float* out = dst.row(i);
      for (int64_t j = 0; j < src.cols; j++) out[j] = in[perm[j]];
    }
  });
  return Status::Ok();
}

Status CpuBackend::zero_columns(MatF a, const uint8_t* mask) {
  for (int64_t i = 0; i < a.rows; i++) {
    float* row = a.row(i);
    for (int64_t j = 0; j < a.cols; j++)
      if (mask[j]) row[j] = 0.0f;
  }
  return Status::Ok();
}

Status CpuBackend::get_diagonal(MatF a, float* out) {
  for (int64_t i = 0; i < std::min(a.rows, a.cols); i++) out[i] = a.row(i)[i];
  return Status::Ok();
}

Status CpuBackend::set_diagonal(MatF a, const float* values) {
  for (int64_t i = 0; i < std::min(a.rows, a.cols); i++) a.row(i)[i] = values[i];
  return Status::Ok();
}

Status CpuBackend::zero_triangle(MatF a, bool lower, bool include_diagonal) {
  pool()->parallel_for(a.rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      float* row = a.row(i);
      const int64_t edge = std::min(i + (include_diagonal ? 1 : 0), a.cols);
      if (lower) std::fill(row, row + edge, 0.0f);
      else std::fill(row + std::min(i + (include_diagonal ? 0 : 1), a.cols), row + a.cols, 0.0f);
    }
  });
  return Status::Ok();
}

Status CpuBackend::mirror_lower(MatF a) {
  // Tiled transpose of the lower triangle onto the upper one, so both sides stay in cache.
  const int64_t n = a.rows;
  pool()->parallel_for((n + kTile - 1) / kTile, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; bi++) {
      for (int64_t bj = bi; bj * kTile < n; bj++) {
        for (int64_t i = bi * kTile; i < std::min(n, (bi + 1) * kTile); i++)
          for (int64_t j = std::max(i + 1, bj * kTile); j < std::min(n, (bj + 1) * kTile); j++)
            a.row(i)[j] = a.row(j)[i];
      }
    }
  });
  return Status::Ok();
}

Status CpuBackend::copy(MatF dst, MatF src) {
  VLMQ_TRY(same_shape(dst, src.rows, src.cols, "copy"));
  pool()->parallel_for(src.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) std::memcpy(dst.row(i), src.row(i), src.cols * sizeof(float));
  });
  return Status::Ok();
}

Status CpuBackend::fill(MatF a, float value) {
  pool()->parallel_for(a.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) std::fill(a.row(i), a.row(i) + a.cols, value);
  });
  return Status::Ok();
}

Status CpuBackend::max_asymmetry(MatF a, float floor, float* worst, int64_t* wi, int64_t* wj) {
  // Tiles of the lower triangle against their mirror tiles, both in cache; rows of tiles in parallel.
  const int64_t n = a.rows, tiles = (n + kTile - 1) / kTile;
  std::mutex mutex;
  float best = 0;
  int64_t bi = 0, bj = 0;
  pool()->parallel_for(tiles, 1, [&](int64_t t0, int64_t t1) {
    float chunk_best = 0;
    int64_t ci = 0, cj = 0;
    for (int64_t ti = t0 * kTile; ti < std::min(n, t1 * kTile); ti += kTile)
      for (int64_t tj = 0; tj <= ti; tj += kTile)
        for (int64_t i = ti; i < std::min(n, ti + kTile); i++)
          for (int64_t j = tj; j < std::min(i, tj + kTile); j++) {
            const float x = a.row(i)[j], y = a.row(j)[i];
            const float rel = std::fabs(x - y) / (std::fabs(x) + std::fabs(y) + floor + 1e-30f);
            if (rel > chunk_best) chunk_best = rel, ci = i, cj = j;
          }
    std::lock_guard<std::mutex> lock(mutex);
    if (chunk_best > best) best = chunk_best, bi = ci, bj = cj;
  });
  *worst = best;
  *wi = bi;
  *wj = bj;
  return Status::Ok();
}

// --- dense linear algebra -------------------------------------------------------------------------

Status CpuBackend::gemm(bool trans_a, bool trans_b, float alpha, MatF A, MatF B, float beta, MatF C) {
  const int64_t M = C.rows, N = C.cols;
  const int64_t K = trans_a ? A.rows : A.cols;
  if ((trans_a ? A.cols : A.rows) != M || (trans_b ? B.cols : B.rows) != K || (trans_b ? B.rows : B.cols) != N)
    return InvalidArgument("gemm: inner dimensions do not match");
  if (M == 0 || N == 0) return Status::Ok();
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
              A.data, A.ld, B.data, B.ld, beta, C.data, C.ld);
  return Status::Ok();
}

Status CpuBackend::syrk_lower(float alpha, MatF A, float beta, MatF C) {
  VLMQ_TRY(same_shape(C, A.cols, A.cols, "syrk_lower"));
  cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, C.rows, A.rows, alpha, A.data, A.ld, beta, C.data, C.ld);
  return Status::Ok();
}

Status CpuBackend::trmm_right_upper(bool trans, float alpha, MatF U, MatF B) {
  if (U.rows != U.cols || U.rows != B.cols) return InvalidArgument("trmm: U must be square with B's column count");
  cblas_strmm(CblasRowMajor, CblasRight, CblasUpper, trans ? CblasTrans : CblasNoTrans, CblasNonUnit, B.rows, B.cols,
              alpha, U.data, U.ld, B.data, B.ld);
  return Status::Ok();
}

Status CpuBackend::cholesky_lower(MatF a, int64_t* failed_minor) {
  if (a.rows != a.cols) return InvalidArgument("cholesky: square matrix expected");
  const lapack_int info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'U', a.rows, a.data, a.ld);
  if (info > 0) {
    if (failed_minor) *failed_minor = info;
    return {Code::kNotPositiveDefinite, "leading minor " + std::to_string(info) + " is not positive definite"};
  }
  if (info < 0) return {Code::kBackend, "LAPACK spotrf rejected argument " + std::to_string(-info)};
  return Status::Ok();
}

Status CpuBackend::invert_lower(MatF a) {
  const lapack_int info = LAPACKE_strtri_work(LAPACK_COL_MAJOR, 'U', 'N', a.rows, a.data, a.ld);
  if (info > 0) return {Code::kNotPositiveDefinite, "triangular factor is singular at " + std::to_string(info)};
  if (info < 0) return {Code::kBackend, "LAPACK strtri rejected argument " + std::to_string(-info)};
  return Status::Ok();
}

// --- quantization kernels -------------------------------------------------------------------------

Status CpuBackend::fit_params(MatF W, int64_t c0, int64_t cols, const Grid& grid, float* scales, float* zeros,
                              int64_t ld_params) {
  if (c0 < 0 || cols <= 0 || c0 + cols > W.cols) return InvalidArgument("fit_params: column range out of bounds");
  pool()->parallel_for(W.rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const QParams p = find_params(W.row(r) + c0, cols, grid);
      scales[r * ld_params] = p.scale;
      zeros[r * ld_params] = p.zero;
    }
  });
  return Status::Ok();
}

Status CpuBackend::quantize_groups(MatF W, const int32_t* g_idx, const float* scales, const float* zeros,
                                   int64_t ngroups, const Grid& grid, MatF Q, uint8_t* codes) {
  const float maxq = grid.maxq();
  pool()->parallel_for(W.rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* w = W.row(r);
      float* q = Q.row(r);
      for (int64_t j = 0; j < W.cols; j++) {
        const QParams p{scales[r * ngroups + g_idx[j]], zeros[r * ngroups + g_idx[j]]};
        const float code = quant_code(w[j], p, maxq);
        codes[r * W.cols + j] = static_cast<uint8_t>(code);
        q[j] = dequant(code, p);
      }
    }
  });
  return Status::Ok();
}

// --- process-wide instance and facts ----------------------------------------------------------------

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

BlasInfo cpu_blas_info() {
  BlasInfo info;
  info.name = openblas_get_config();
  info.core = openblas_get_corename();
  info.threads = openblas_get_num_threads();
  return info;
}

}  // namespace vlmq
