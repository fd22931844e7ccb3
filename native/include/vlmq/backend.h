// The Backend contract: everything an algorithm in native/core may ask of a device. Algorithms
// are written once against this interface; the CPU backend implements every primitive plainly
// and is the oracle the CUDA backend is tested against. Matrices are row-major views (tensor.h)
// that must live on the backend's device; passing memory of another device is an
// InvalidArgument, never a crash. Unless a comment says otherwise, outputs must not alias inputs.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "vlmq/quant_math.h"
#include "vlmq/status.h"
#include "vlmq/tensor.h"

namespace vlmq {

class Backend;

// What a buffer holds; backends may place or account for them differently.
enum class BufferUsage : uint8_t { kWeights, kStatistics, kScratch, kResult };

// Owning handle to backend memory (64-byte aligned on the host). Movable, not copyable.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* owner, void* data, size_t bytes, BufferUsage usage)
      : owner_(owner), data_(data), bytes_(bytes), usage_(usage) {}
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { reset(); }

  void reset();
  // Gives up ownership; the caller frees the memory with Backend::free_host (host buffers only).
  void* release() {
    void* d = data_;
    data_ = nullptr;
    bytes_ = 0;
    return d;
  }
  template <class T> T* as() const { return static_cast<T*>(data_); }
  size_t bytes() const { return bytes_; }
  BufferUsage usage() const { return usage_; }
  Backend* owner() const { return owner_; }
  // A view of this buffer as a [rows, cols] f32 matrix (ld = cols).
  MatF matrix(int64_t rows, int64_t cols) const;

 private:
  Backend* owner_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
  BufferUsage usage_ = BufferUsage::kScratch;
};

// How the sweep chooses the quantization parameters of a column.
enum class GroupMode : uint8_t {
  kPerChannel,  // one (scale, zero) per row, fitted before the sweep
  kDynamic,     // fitted when a group starts, on the outer (compensated) W   [algorithm.md §2(c)]
  kStatic,      // fitted up front on the original column order            [algorithm.md §2(e)]
};

// One block [i1, i2) of the GPTQ/GPTAQ column sweep for every row (algorithm.md §2(c), §3(d)).
// For each row r and column col = i1 + t, in order: quantize w = W1[r, t] with the row's
// parameters, write Q/codes, e = (w − q) / U[col, col], then update the rest of the block,
//   W1[r, t+1:] += −e · U[col, col+1:i2]  (+ w · P[col, col+1:i2] when P is given).
// W1 starts as a copy of W[r, i1:i2]; W itself is only read (dynamic group parameters are
// fitted on W, which has all earlier blocks' updates but not this block's, as in the reference).
struct SweepBlock {
  MatF W;                 // [m, n] working weights, read-only here
  MatF U;                 // [n, n] upper Cholesky factor of the damped inverse Hessian
  const MatF* P = nullptr;  // [n, n] GPTAQ correction matrix, or null for GPTQ
  int64_t i1 = 0, i2 = 0;
  Grid grid;
  GroupMode mode = GroupMode::kPerChannel;
  int64_t group_size = -1;
  const int32_t* perm = nullptr;  // act-order permutation (host), used by static groups
  float* scales = nullptr;        // [m, ngroups] in/out (written for dynamic groups)
  float* zeros = nullptr;         // [m, ngroups]
  int64_t ngroups = 1;
  MatF Q;                  // [m, n] out: dequantized values, processing column order
  uint8_t* codes = nullptr;  // [m, n] out, row stride n, processing column order
  MatF E;                  // [m, i2 − i1] out: scaled errors e for the lazy update
  MatF Psource;            // [m, i2 − i1] out when P is given: the values multiplied by P later
  bool psource_prequant = false;  // false: quantized q (reference); true: pre-quantization w
  double* row_loss = nullptr;  // [m] in/out: Σ (w − q)² / d², accumulated
};

// Elementwise activations of the vision towers and projectors (transformers' ACT2FN names).
enum class Activation : uint8_t {
  kGelu,       // "gelu": 0.5·x·(1 + erf(x/√2)) (exact, nn.GELU())
  kGeluTanh,   // "gelu_pytorch_tanh": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
  kQuickGelu,  // "quick_gelu": x·sigmoid(1.702·x)
  kSilu,       // "silu": x·sigmoid(x)
};

// Primitives. Every method returns a Status; none throws across this boundary.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual DeviceKind device() const = 0;

  // --- memory -------------------------------------------------------------------------------
  // Allocate `bytes` of device memory, 64-byte aligned; contents undefined.
  virtual Status alloc(Buffer* out, size_t bytes, BufferUsage usage) = 0;
  // Release memory returned by alloc (called by Buffer).
  virtual void free(void* data, size_t bytes) = 0;
  // Copy device memory into a host buffer of the same size.
  virtual Status download(void* host, const Buffer& src, size_t bytes) = 0;

  // --- elementwise and data movement (f32 matrices unless noted) ----------------------------
  // dst = convert(src) · row_scale[r] (row_scale: host, optional). src may be F32, F16 or BF16.
  virtual Status convert_rows(MatF dst, MatrixView src, const float* row_scale) = 0;
  // dst = (convert(a) − convert(b)) · row_scale[r]; a, b of the same shape, any float dtype.
  virtual Status subtract_rows(MatF dst, MatrixView a, MatrixView b, const float* row_scale) = 0;
  // Number of NaN or infinite elements of a float matrix of any dtype, and the first one's index.
  virtual Status count_nonfinite(MatrixView a, int64_t* count, int64_t* first) = 0;
  // dst[i, j] = src[rows − 1 − i, cols − 1 − j] (turns H into J·H·J for square matrices).
  // dst may be src (an in-place reversal).
  virtual Status reverse(MatF dst, MatF src) = 0;
  // dst[:, j] = src[:, perm[j]] (perm: host); dst may be src (permutes in place).
  virtual Status gather_columns(MatF dst, MatF src, const int32_t* perm) = 0;
  // The same gather for u8 matrices (codes), also in place.
  virtual Status gather_columns_u8(uint8_t* dst, const uint8_t* src, int64_t rows, int64_t cols,
                                   const int32_t* perm) = 0;
  // dst[i, j] = src[perm[i], perm[j]] (perm: host).
  virtual Status gather_symmetric(MatF dst, MatF src, const int32_t* perm) = 0;
  // dst[i, :] = src[index[i], :] for i < dst.rows (index: host, each in [0, src.rows)); same
  // column count. dst must not alias src. Permutes token rows (Qwen2.5-VL's windows and back).
  virtual Status gather_rows(MatF dst, MatF src, const int32_t* index) = 0;
  // Set columns j with mask[j] != 0 to zero (mask: host).
  virtual Status zero_columns(MatF a, const uint8_t* mask) = 0;
  // out[i] = a[i, i] (out: host).
  virtual Status get_diagonal(MatF a, float* out) = 0;
  // a[i, i] = values[i] (values: host).
  virtual Status set_diagonal(MatF a, const float* values) = 0;
  // Zero the strictly lower (lower = true) or upper triangle; include_diagonal zeroes it too.
  virtual Status zero_triangle(MatF a, bool lower, bool include_diagonal) = 0;
  // Copy the lower triangle onto the upper one: a[i, j] = a[j, i] for j > i.
  virtual Status mirror_lower(MatF a) = 0;
  virtual Status copy(MatF dst, MatF src) = 0;
  virtual Status fill(MatF a, float value) = 0;
  // The largest |a[i, j] − a[j, i]| relative to |a[i, j]| + |a[j, i]| + floor, and where it is.
  virtual Status max_asymmetry(MatF a, float floor, float* worst, int64_t* i, int64_t* j) = 0;

  // --- dense linear algebra ------------------------------------------------------------------
  // C = alpha · op(A) · op(B) + beta · C.
  virtual Status gemm(bool trans_a, bool trans_b, float alpha, MatF A, MatF B, float beta, MatF C) = 0;
  // Lower triangle of C = alpha · Aᵀ·A + beta · C, with A [k, n] (tokens as rows) and C [n, n].
  virtual Status syrk_lower(float alpha, MatF A, float beta, MatF C) = 0;
  // B = alpha · B · op(U), U upper triangular (trans: op(U) = Uᵀ).
  virtual Status trmm_right_upper(bool trans, float alpha, MatF U, MatF B) = 0;
  // In place: the lower triangle of symmetric A becomes L with A = L·Lᵀ. On failure returns
  // kNotPositiveDefinite; *failed_minor (if given) is the 1-based order of the failing minor.
  virtual Status cholesky_lower(MatF a, int64_t* failed_minor) = 0;
  // In place: lower-triangular L becomes L⁻¹ (the upper triangle is not touched).
  virtual Status invert_lower(MatF a) = 0;

  // --- transformer blocks (the decoder layer's forward and the attention block's backward) -----
  // y[i, :] = x[i, :] · w / sqrt(mean(x[i, :]²) + eps), the mean in f32 (Qwen2 RMSNorm). y may be x.
  virtual Status rms_norm(MatF x, const float* w, float eps, MatF y) = 0;
  // x[i, :] += v for every row (a bias). v: backend memory, x.cols floats.
  virtual Status add_row(MatF x, const float* v) = 0;
  // y = a + alpha · b elementwise; y may alias a or b.
  virtual Status axpby(MatF a, float alpha, MatF b, MatF y) = 0;
  // Rotary embedding in place, rotate-half form, on each of the x.cols / d heads of width d:
  // x[:, i] ← x[:, i]·cos[:, i] − x[:, i + d/2]·sin[:, i], x[:, i + d/2] ← x[:, i + d/2]·cos + x[:, i]·sin
  // (i < d/2, cos/sin [rows, d] with equal halves). inverse rotates by the opposite angle (the transpose).
  virtual Status rope(MatF x, int64_t head_dim, MatF cos, MatF sin, bool inverse) = 0;
  // out = silu(gate) ⊙ up.
  virtual Status silu_mul(MatF gate, MatF up, MatF out) = 0;
  // y[i, :] = (x[i, :] − mean) / sqrt(var + eps) · w + b, mean and (biased) variance of the row
  // accumulated in double, the rest in f32 (torch.nn.LayerNorm). w, b: backend memory, x.cols
  // floats. y may be x.
  virtual Status layer_norm(MatF x, const float* w, const float* b, float eps, MatF y) = 0;
  // y = act(x) elementwise (Activation above, in f32). y may be x.
  virtual Status activation(Activation act, MatF x, MatF y) = 0;
  // Softmax attention within each segment [segments[s], segments[s+1]) (host offsets, nseg + 1
  // of them), scale 1/sqrt(d): causal (token i sees j ≤ i of its segment, the decoder) or
  // bidirectional (every token of its segment, the vision towers). q/out [T, heads·d], k/v
  // [T, kv_heads·d], any row strides (q, k, v may be column blocks of one fused matrix); query
  // head h reads kv head h / (heads / kv_heads) (grouped-query attention).
  virtual Status attention(MatF q, MatF k, MatF v, const int32_t* segments, int64_t nseg, int64_t heads, int64_t kv_heads,
                           bool causal, MatF out) = 0;
  // The backward of causal attention: given d_out, writes dq, dk, dv (overwritten, GQA heads accumulated).
  virtual Status attention_backward(MatF q, MatF k, MatF v, MatF d_out, const int32_t* segments, int64_t nseg,
                                    int64_t heads, int64_t kv_heads, MatF dq, MatF dk, MatF dv) = 0;
  // out[i] = mean_j |x[i, j]| (l2 = false) or sqrt(mean_j x[i, j]²) (host out, x.rows floats).
  virtual Status row_norms(MatF x, bool l2, float* out) = 0;
  // Σ x[i, j]² in double (host out).
  virtual Status sum_squares(MatF x, double* out) = 0;
  // Copy `count` floats from host memory into a backend buffer at float offset `offset`.
  virtual Status upload(Buffer& dst, size_t offset, const float* host, size_t count) = 0;
  // The patches of a stride = kernel convolution (im2col without overlap or padding): images
  // [n, channels, size, size] (backend memory, contiguous) → out [n · p², channels · patch²] with
  // p = size / patch (floor; the last size − p·patch rows and columns are not covered, as with
  // Conv2d without padding). Row v·p² + py·p + px is patch (py, px) of image v in raster order;
  // column (c·patch + ky)·patch + kx, the order of a Conv2d weight [out, channels, patch, patch].
  virtual Status unfold_patches(const float* images, int64_t n, int64_t channels, int64_t size, int64_t patch, MatF out) = 0;

  // --- quantization kernels -----------------------------------------------------------------
  // For each row r: (scales, zeros)[r · ld_params] = find_params(W[r, c0 : c0 + cols]).
  virtual Status fit_params(MatF W, int64_t c0, int64_t cols, const Grid& grid, float* scales,
                            float* zeros, int64_t ld_params) = 0;
  // Q[r, j] and codes[r, j] from the parameters of group g_idx[j] (round to nearest).
  virtual Status quantize_groups(MatF W, const int32_t* g_idx, const float* scales, const float* zeros,
                                 int64_t ngroups, const Grid& grid, MatF Q, uint8_t* codes) = 0;
  virtual Status sweep_block(const SweepBlock& block) = 0;

  // --- threads ------------------------------------------------------------------------------
  virtual int threads() const = 0;
  virtual void set_threads(int n) = 0;
};

// Allocate a [rows, cols] f32 matrix on `backend`.
Status alloc_matrix(Backend& backend, Buffer* out, int64_t rows, int64_t cols, BufferUsage usage);

// The process-wide CPU backend (always available).
Backend& cpu_backend();

// Facts about the CPU backend's BLAS for `vlmq doctor`.
struct BlasInfo {
  std::string name;     // e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ... Cooperlake"
  std::string core;     // the kernel family OpenBLAS picked for this CPU
  int threads = 1;
};
BlasInfo cpu_blas_info();

// What the CUDA side of the binary can do on this machine, for `vlmq doctor` and device
// selection. `compiled` is false in builds without nvcc (binding.gyp, or no toolkit).
struct CudaInfo {
  bool compiled = false;
  bool usable = false;          // a device is present and the backend can run on it
  std::string reason;           // why not usable (always set when usable is false)
  int runtime_version = 0;      // e.g. 13000
  int driver_version = 0;
  int device_count = 0;
  std::string device_name;      // device 0
  std::string libraries;        // what the dynamic loader found (cuBLAS, cuSOLVER)
};
CudaInfo cuda_info();

}  // namespace vlmq
