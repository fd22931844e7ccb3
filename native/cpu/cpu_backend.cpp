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
#include "vlmq/devices.h"

namespace vlmq {
namespace {

constexpr int64_t kTile = 64;

using cpu_checks::on_host;
using cpu_checks::fail;
using cpu_checks::vector;

Status same_shape(const MatF& a, int64_t rows, int64_t cols, const char* what) {
  if (a.rows != rows || a.cols != cols) return InvalidArgument(std::string("cpu backend: shape mismatch in ") + what);
  return Status::Ok();
}

// C ← beta · C (what a product with an empty inner dimension leaves).
Status scale_rows(MatF C, float beta) {
  for (int64_t i = 0; i < C.rows; i++)
    for (int64_t j = 0; j < C.cols; j++) C.row(i)[j] = beta == 0.0f ? 0.0f : beta * C.row(i)[j];
  return Status::Ok();
}

// Bytes of a view's rows (elements × dtype size): what upload and download copy per row.
size_t row_bytes(const MatrixView& v) { return static_cast<size_t>(v.cols) * dtype_size(v.dtype); }

// An optional per-row scale: empty, or [1, rows].
Status check_row_scale(const char* op, MatF row_scale, int64_t rows) {
  return row_scale.empty() ? Status::Ok() : vector(op, "row_scale", row_scale, rows);
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

// Host blocks kept for reuse: the many small and medium scratch buffers of every call. Larger
// blocks (a batch's MLP activations, n × n statistics) go back to the system at once, as malloc
// would return them, so that what is cached never raises a run's peak memory.
constexpr size_t kMaxCachedBytes = size_t{256} << 20;
constexpr size_t kMaxCachedBlock = size_t{32} << 20;

}  // namespace

CpuBackend::CpuBackend()
    : pool_(std::make_shared<ThreadPool>(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())))),
      memory_([](size_t bytes) { return std::aligned_alloc(64, bytes); }, [](void* data, size_t) { std::free(data); },
              kMaxCachedBytes, kMaxCachedBlock) {}

void CpuBackend::set_threads(int n) {
  n = std::max(1, n);
  std::atomic_store(&pool_, std::make_shared<ThreadPool>(n));
  openblas_set_num_threads(n);  // callers run this between jobs (lib/native/info.ts queues it)
}

// --- memory -------------------------------------------------------------------------------------

Status CpuBackend::alloc(Buffer* out, size_t bytes, BufferUsage usage) {
  void* data = memory_.take(bytes);  // size classes are multiples of 64 bytes, as aligned_alloc needs
  if (!data) return {Code::kOutOfMemory, "out of host memory: could not allocate " + std::to_string(bytes) + " bytes"};
  *out = Buffer(this, data, bytes, usage);
  return Status::Ok();
}

void CpuBackend::free(void* data, size_t bytes) { memory_.give(data, bytes); }

Status CpuBackend::upload(MatrixView dst, const void* host) {
  VLMQ_TRY(on_host("upload", dst));
  if (!host && dst.elements() > 0) return fail("upload", "no host memory");
  const size_t bytes = row_bytes(dst);
  for (int64_t r = 0; r < dst.rows; r++)
    std::memcpy(static_cast<char*>(dst.row_range(r, 1).data), static_cast<const char*>(host) + r * bytes, bytes);
  return Status::Ok();
}

Status CpuBackend::download(void* host, MatrixView src) {
  VLMQ_TRY(on_host("download", src));
  if (!host && src.elements() > 0) return fail("download", "no host memory");
  const size_t bytes = row_bytes(src);
  for (int64_t r = 0; r < src.rows; r++) std::memcpy(static_cast<char*>(host) + r * bytes, src.row_range(r, 1).data, bytes);
  return Status::Ok();
}

// --- elementwise and data movement --------------------------------------------------------------

Status CpuBackend::convert_rows(MatF dst, MatrixView src, MatF row_scale) {
  VLMQ_TRY(on_host("convert_rows", dst, src, row_scale));
  VLMQ_TRY(same_shape(dst, src.rows, src.cols, "convert_rows"));
  VLMQ_TRY(check_row_scale("convert_rows", row_scale, src.rows));
  if (!is_float(src.dtype)) return InvalidArgument("convert_rows: src must be F32, F16 or BF16");
  pool()->parallel_for(src.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      float* out = dst.row(r);
      load_row(src, r, out);
      if (!row_scale.empty()) {
        const float s = row_scale.data[r];
        for (int64_t j = 0; j < src.cols; j++) out[j] *= s;
      }
    }
  });
  return Status::Ok();
}

Status CpuBackend::subtract_rows(MatF dst, MatrixView a, MatrixView b, MatF row_scale) {
  VLMQ_TRY(on_host("subtract_rows", dst, a, b, row_scale));
  VLMQ_TRY(same_shape(dst, a.rows, a.cols, "subtract_rows"));
  VLMQ_TRY(same_shape(dst, b.rows, b.cols, "subtract_rows"));
  VLMQ_TRY(check_row_scale("subtract_rows", row_scale, a.rows));
  if (!is_float(a.dtype) || !is_float(b.dtype)) return InvalidArgument("subtract_rows: F32, F16 or BF16 expected");
  pool()->parallel_for(a.rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<float> tmp(a.cols);
    for (int64_t r = r0; r < r1; r++) {
      float* out = dst.row(r);
      load_row(a, r, out);
      load_row(b, r, tmp.data());
      const float s = row_scale.empty() ? 1.0f : row_scale.data[r];
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
  VLMQ_TRY(on_host("count_nonfinite", a));
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
  VLMQ_TRY(on_host("reverse", dst, src));
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

namespace {
// Every index of v is in [0, bound).
Status indices_within(const char* op, const char* name, MatI v, int64_t bound) {
  for (int64_t j = 0; j < v.cols; j++)
    if (v.data[j] < 0 || v.data[j] >= bound)
      return fail(op, std::string(name) + "[" + std::to_string(j) + "] = " + std::to_string(v.data[j]) + " is outside [0, " +
                          std::to_string(bound) + ")");
  return Status::Ok();
}

template <class T>
Status gather_columns_of(ThreadPool& pool, Mat<T> dst, Mat<T> src, MatI perm) {
  VLMQ_TRY(on_host("gather_columns", dst, src, perm));
  VLMQ_TRY(cpu_checks::shape("gather_columns", "dst", dst, src.rows, src.cols));
  VLMQ_TRY(vector("gather_columns", "perm", perm, src.cols));
  VLMQ_TRY(indices_within("gather_columns", "perm", perm, src.cols));
  const bool in_place = dst.data == src.data;
  pool.parallel_for(src.rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<T> row(in_place ? src.cols : 0);
    for (int64_t i = r0; i < r1; i++) {
      const T* in = src.row(i);
      if (in_place) in = static_cast<const T*>(std::memcpy(row.data(), in, src.cols * sizeof(T)));
      T* out = dst.row(i);
      for (int64_t j = 0; j < src.cols; j++) out[j] = in[perm.data[j]];
    }
  });
  return Status::Ok();
}
}  // namespace

Status CpuBackend::gather_columns(MatF dst, MatF src, MatI perm) { return gather_columns_of(*pool(), dst, src, perm); }

Status CpuBackend::gather_columns_u8(MatU8 dst, MatU8 src, MatI perm) { return gather_columns_of(*pool(), dst, src, perm); }

Status CpuBackend::gather_symmetric(MatF dst, MatF src, MatI perm) {
  VLMQ_TRY(on_host("gather_symmetric", dst, src, perm));
  VLMQ_TRY(same_shape(dst, src.rows, src.cols, "gather_symmetric"));
  if (src.rows != src.cols) return fail("gather_symmetric", "src must be square");
  VLMQ_TRY(vector("gather_symmetric", "perm", perm, src.cols));
  VLMQ_TRY(indices_within("gather_symmetric", "perm", perm, src.cols));
  if (dst.data == src.data) return fail("gather_symmetric", "dst must not alias src");
  pool()->parallel_for(src.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* in = src.row(perm.data[i]);
      float* out = dst.row(i);
      for (int64_t j = 0; j < src.cols; j++) out[j] = in[perm.data[j]];
    }
  });
  return Status::Ok();
}

Status CpuBackend::zero_columns(MatF a, MatU8 mask) {
  VLMQ_TRY(on_host("zero_columns", a, mask));
  VLMQ_TRY(vector("zero_columns", "mask", mask, a.cols));
  for (int64_t i = 0; i < a.rows; i++) {
    float* row = a.row(i);
    for (int64_t j = 0; j < a.cols; j++)
      if (mask.data[j]) row[j] = 0.0f;
  }
  return Status::Ok();
}

Status CpuBackend::get_diagonal(MatF a, MatF out) {
  VLMQ_TRY(on_host("get_diagonal", a, out));
  VLMQ_TRY(vector("get_diagonal", "out", out, std::min(a.rows, a.cols)));
  for (int64_t i = 0; i < out.cols; i++) out.data[i] = a.row(i)[i];
  return Status::Ok();
}

Status CpuBackend::set_diagonal(MatF a, MatF values) {
  VLMQ_TRY(on_host("set_diagonal", a, values));
  VLMQ_TRY(vector("set_diagonal", "values", values, std::min(a.rows, a.cols)));
  for (int64_t i = 0; i < values.cols; i++) a.row(i)[i] = values.data[i];
  return Status::Ok();
}

Status CpuBackend::zero_triangle(MatF a, bool lower, bool include_diagonal) {
  VLMQ_TRY(on_host("zero_triangle", a));
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
  VLMQ_TRY(on_host("mirror_lower", a));
  if (a.rows != a.cols) return fail("mirror_lower", "a square matrix expected");
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
  VLMQ_TRY(on_host("copy", dst, src));
  VLMQ_TRY(same_shape(dst, src.rows, src.cols, "copy"));
  pool()->parallel_for(src.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) std::memcpy(dst.row(i), src.row(i), src.cols * sizeof(float));
  });
  return Status::Ok();
}

Status CpuBackend::fill(MatF a, float value) {
  VLMQ_TRY(on_host("fill", a));
  pool()->parallel_for(a.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) std::fill(a.row(i), a.row(i) + a.cols, value);
  });
  return Status::Ok();
}

Status CpuBackend::max_asymmetry(MatF a, float floor, float* worst, int64_t* wi, int64_t* wj) {
  VLMQ_TRY(on_host("max_asymmetry", a));
  if (a.rows != a.cols) return fail("max_asymmetry", "a square matrix expected");
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
  VLMQ_TRY(on_host("gemm", A, B, C));
  const int64_t M = C.rows, N = C.cols;
  const int64_t K = trans_a ? A.rows : A.cols;
  if ((trans_a ? A.cols : A.rows) != M || (trans_b ? B.cols : B.rows) != K || (trans_b ? B.rows : B.cols) != N)
    return InvalidArgument("gemm: inner dimensions do not match");
  if (M == 0 || N == 0) return Status::Ok();
  if (K == 0) return scale_rows(C, beta);  // an empty product: BLAS would reject the zero leading dimensions
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
              A.data, A.ld, B.data, B.ld, beta, C.data, C.ld);
  return Status::Ok();
}

Status CpuBackend::syrk_lower(float alpha, MatF A, float beta, MatF C) {
  VLMQ_TRY(on_host("syrk_lower", A, C));
  VLMQ_TRY(same_shape(C, A.cols, A.cols, "syrk_lower"));
  if (C.rows == 0) return Status::Ok();
  if (A.rows == 0) return scale_rows(C, beta);
  cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, C.rows, A.rows, alpha, A.data, A.ld, beta, C.data, C.ld);
  return Status::Ok();
}

Status CpuBackend::trmm_right_upper(bool trans, float alpha, MatF U, MatF B) {
  VLMQ_TRY(on_host("trmm_right_upper", U, B));
  if (U.rows != U.cols || U.rows != B.cols) return InvalidArgument("trmm: U must be square with B's column count");
  if (B.rows == 0 || B.cols == 0) return Status::Ok();
  cblas_strmm(CblasRowMajor, CblasRight, CblasUpper, trans ? CblasTrans : CblasNoTrans, CblasNonUnit, B.rows, B.cols,
              alpha, U.data, U.ld, B.data, B.ld);
  return Status::Ok();
}

Status CpuBackend::cholesky_lower(MatF a, int64_t* failed_minor) {
  VLMQ_TRY(on_host("cholesky_lower", a));
  if (a.rows != a.cols) return InvalidArgument("cholesky: square matrix expected");
  if (a.rows == 0) return Status::Ok();
  const lapack_int info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'U', a.rows, a.data, a.ld);
  if (info > 0) {
    if (failed_minor) *failed_minor = info;
    return {Code::kNotPositiveDefinite, "leading minor " + std::to_string(info) + " is not positive definite"};
  }
  if (info < 0) return {Code::kBackend, "LAPACK spotrf rejected argument " + std::to_string(-info)};
  return Status::Ok();
}

Status CpuBackend::invert_lower(MatF a) {
  VLMQ_TRY(on_host("invert_lower", a));
  if (a.rows != a.cols) return fail("invert_lower", "a square matrix expected");
  if (a.rows == 0) return Status::Ok();
  const lapack_int info = LAPACKE_strtri_work(LAPACK_COL_MAJOR, 'U', 'N', a.rows, a.data, a.ld);
  if (info > 0) return {Code::kNotPositiveDefinite, "triangular factor is singular at " + std::to_string(info)};
  if (info < 0) return {Code::kBackend, "LAPACK strtri rejected argument " + std::to_string(-info)};
  return Status::Ok();
}

// --- quantization kernels -------------------------------------------------------------------------

Status CpuBackend::fit_params(MatF W, int64_t c0, int64_t cols, const Grid& grid, MatF scales, MatF zeros) {
  VLMQ_TRY(on_host("fit_params", W, scales, zeros));
  if (c0 < 0 || cols <= 0 || c0 + cols > W.cols) return InvalidArgument("fit_params: column range out of bounds");
  VLMQ_TRY(cpu_checks::shape("fit_params", "scales", scales, W.rows, 1));
  VLMQ_TRY(cpu_checks::shape("fit_params", "zeros", zeros, W.rows, 1));
  pool()->parallel_for(W.rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const QParams p = find_params(W.row(r) + c0, cols, grid);
      scales.row(r)[0] = p.scale;
      zeros.row(r)[0] = p.zero;
    }
  });
  return Status::Ok();
}

Status CpuBackend::quantize_groups(MatF W, MatI g_idx, MatF scales, MatF zeros, const Grid& grid, MatF Q, MatU8 codes) {
  VLMQ_TRY(on_host("quantize_groups", W, g_idx, scales, zeros, Q, codes));
  VLMQ_TRY(vector("quantize_groups", "g_idx", g_idx, W.cols));
  VLMQ_TRY(cpu_checks::shape("quantize_groups", "zeros", zeros, W.rows, scales.cols));
  VLMQ_TRY(cpu_checks::shape("quantize_groups", "scales", scales, W.rows, scales.cols));
  VLMQ_TRY(indices_within("quantize_groups", "g_idx", g_idx, scales.cols));
  VLMQ_TRY(same_shape(Q, W.rows, W.cols, "quantize_groups"));
  VLMQ_TRY(cpu_checks::shape("quantize_groups", "codes", codes, W.rows, W.cols));
  const float maxq = grid.maxq();
  pool()->parallel_for(W.rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* w = W.row(r);
      float* q = Q.row(r);
      for (int64_t j = 0; j < W.cols; j++) {
        const int32_t g = g_idx.data[j];
        const QParams p{scales.row(r)[g], zeros.row(r)[g]};
        const float code = quant_code(w[j], p, maxq);
        codes.row(r)[j] = static_cast<uint8_t>(code);
        q[j] = dequant(code, p);
      }
    }
  });
  return Status::Ok();
}

// --- beside the contract: the process-wide instance, threads and BLAS facts --------------------------

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

int cpu_threads() { return static_cast<CpuBackend&>(cpu_backend()).threads(); }

void set_cpu_threads(int n) { static_cast<CpuBackend&>(cpu_backend()).set_threads(n); }

BlasInfo cpu_blas_info() {
  BlasInfo info;
  info.name = openblas_get_config();
  info.core = openblas_get_corename();
  info.threads = openblas_get_num_threads();
  return info;
}

}  // namespace vlmq
