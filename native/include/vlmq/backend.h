// The Backend contract: everything an algorithm in native/core may ask of a device. Algorithms
// are written once against this interface; the CPU backend implements every primitive plainly
// and is the oracle the CUDA backend is tested against.
//
// - Operands. Every operand a primitive touches is a view (tensor.h) of this backend's memory:
//   matrices, index arrays (I32), masks and codes (U8), per-row parameters and vectors (one-row
//   views). A view of another device, or of the wrong dtype or shape, is an InvalidArgument, never
//   a crash; so is an index out of range. An absent optional operand is an empty view (MatF{}).
//   Unless a comment says otherwise, outputs must not alias inputs; a backend need not detect
//   it, except where a comment says the alias is an InvalidArgument.
// - Conformance. native/conformance (vlmq/conformance.h) checks these statements on any backend
//   against naive references of its own; every backend must pass it.
// - Ordering. A backend is one device and one in-order queue: every primitive enqueues its work
//   and returns; each sees the effects of the ones before it. Only results the host reads wait for
//   the queue: download, count_nonfinite, max_asymmetry, sum_squares and cholesky_lower's failed
//   minor. synchronize() waits for everything. The CPU backend runs each call at once.
// - Memory. alloc hands out memory from the backend's own pool: freed buffers are kept and reused
//   by later calls, so nothing reaches the system allocator on the hot path.
// - Not here: thread counts, BLAS facts, device probes and the choice of a backend (devices.h).
#pragma once
#include <cstddef>
#include <cstdint>

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
  // Gives up ownership of host memory, which the caller frees with std::free.
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
  // This buffer as a contiguous [rows, cols] matrix of T.
  template <class T> Mat<T> mat(int64_t rows, int64_t cols) const;
  MatF matrix(int64_t rows, int64_t cols) const { return mat<float>(rows, cols); }
  // This buffer as a vector of n elements of T (a [1, n] matrix).
  template <class T> Mat<T> vec(int64_t n) const { return mat<T>(1, n); }

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
// fitted on W, which has all earlier blocks' updates but not this block's, as in the reference;
// a block that starts inside a dynamic group goes on with that group's scales and zeros as given).
// Q and codes change in columns [i1, i2) only, scales and zeros only in the groups fitted here.
struct SweepBlock {
  MatF W;        // [m, n] working weights, read-only here
  MatF U;        // [n, n] upper Cholesky factor of the damped inverse Hessian
  MatF P;        // [n, n] GPTAQ correction matrix, or empty for GPTQ
  int64_t i1 = 0, i2 = 0;
  Grid grid;
  GroupMode mode = GroupMode::kPerChannel;
  int64_t group_size = -1;
  MatI perm;     // [1, n] act-order permutation (empty: none); only static groups read its indices
  MatF scales;   // [m, ngroups] in/out (written for dynamic groups)
  MatF zeros;    // [m, ngroups]
  MatF Q;        // [m, n] out: dequantized values, processing column order
  MatU8 codes;   // [m, n] out, processing column order
  MatF E;        // [m, i2 − i1] out: scaled errors e for the lazy update
  MatF Psource;  // [m, i2 − i1] out when P is given: the values multiplied by P later
  bool psource_prequant = false;  // false: quantized q (reference); true: pre-quantization w
  MatD row_loss;  // [1, m] in/out: Σ (w − q)² / d², accumulated
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
  // "cpu", "cuda:0", ...: the registry's name of this backend (devices.h).
  virtual const char* name() const = 0;
  virtual Device device() const = 0;

  // --- memory and the queue ------------------------------------------------------------------
  // `bytes` of this backend's memory, 64-byte aligned, from its pool; contents undefined.
  virtual Status alloc(Buffer* out, size_t bytes, BufferUsage usage) = 0;
  // Give memory returned by alloc back to the pool (called by Buffer).
  virtual void free(void* data, size_t bytes) = 0;
  // dst ← dst.rows × dst.cols elements of dst.dtype from contiguous host memory.
  virtual Status upload(MatrixView dst, const void* host) = 0;
  // Contiguous host memory ← the elements of src (waits for the queue).
  virtual Status download(void* host, MatrixView src) = 0;
  // Waits until every primitive enqueued so far has finished.
  virtual Status synchronize() = 0;

  // --- elementwise and data movement (f32 matrices unless noted) ----------------------------
  // dst = convert(src) · row_scale[r] (row_scale: [1, rows], or empty). src: F32, F16 or BF16.
  virtual Status convert_rows(MatF dst, MatrixView src, MatF row_scale) = 0;
  // dst = (convert(a) − convert(b)) · row_scale[r]; a, b of the same shape, each F32, F16 or BF16.
  virtual Status subtract_rows(MatF dst, MatrixView a, MatrixView b, MatF row_scale) = 0;
  // Number of NaN or infinite elements of an F32, F16 or BF16 matrix, and the first one's
  // row-major index (−1 if none). Waits for the queue.
  virtual Status count_nonfinite(MatrixView a, int64_t* count, int64_t* first) = 0;
  // dst[i, j] = src[rows − 1 − i, cols − 1 − j] (turns H into J·H·J for square matrices).
  // dst may be src (an in-place reversal) when it is contiguous; a strided one is InvalidArgument.
  virtual Status reverse(MatF dst, MatF src) = 0;
  // dst[:, j] = src[:, perm[j]] (perm: [1, cols]); dst may be src (permutes in place).
  virtual Status gather_columns(MatF dst, MatF src, MatI perm) = 0;
  // The same gather for u8 matrices (codes), also in place.
  virtual Status gather_columns_u8(MatU8 dst, MatU8 src, MatI perm) = 0;
  // dst[i, j] = src[perm[i], perm[j]] (perm: [1, n]). dst being src is InvalidArgument.
  virtual Status gather_symmetric(MatF dst, MatF src, MatI perm) = 0;
  // dst[i, :] = src[index[i], :] for i < dst.rows (index: [1, dst.rows], each in [0, src.rows));
  // same column count; dst being src is InvalidArgument. Permutes token rows (Qwen2.5-VL's windows
  // and back).
  virtual Status gather_rows(MatF dst, MatF src, MatI index) = 0;
  // Set columns j with mask[j] != 0 to zero (mask: [1, cols]).
  virtual Status zero_columns(MatF a, MatU8 mask) = 0;
  // out[i] = a[i, i] (out: [1, min(rows, cols)]).
  virtual Status get_diagonal(MatF a, MatF out) = 0;
  // a[i, i] = values[i] (values: [1, min(rows, cols)]).
  virtual Status set_diagonal(MatF a, MatF values) = 0;
  // Zero the strictly lower (lower = true) or upper triangle; include_diagonal zeroes it too.
  virtual Status zero_triangle(MatF a, bool lower, bool include_diagonal) = 0;
  // Copy the lower triangle onto the upper one: a[i, j] = a[j, i] for j > i.
  virtual Status mirror_lower(MatF a) = 0;
  virtual Status copy(MatF dst, MatF src) = 0;
  virtual Status fill(MatF a, float value) = 0;
  // The largest |a[i, j] − a[j, i]| relative to |a[i, j]| + |a[j, i]| + floor, and where it is
  // (i > j; 0, 0, 0 for a symmetric matrix). Waits for the queue.
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
  // Waits for the queue (the outcome is a host result).
  virtual Status cholesky_lower(MatF a, int64_t* failed_minor) = 0;
  // In place: lower-triangular L becomes L⁻¹ (the upper triangle is not touched).
  virtual Status invert_lower(MatF a) = 0;

  // --- transformer blocks (the decoder layer's forward and the attention block's backward) -----
  // y[i, :] = x[i, :] · w / sqrt(mean(x[i, :]²) + eps), the mean in f32 (Qwen2 RMSNorm); w:
  // [1, x.cols]. y may be x.
  virtual Status rms_norm(MatF x, MatF w, float eps, MatF y) = 0;
  // x[i, :] += v for every row (a bias; v: [1, x.cols]).
  virtual Status add_row(MatF x, MatF v) = 0;
  // y = a + alpha · b elementwise; y may alias a or b.
  virtual Status axpby(MatF a, float alpha, MatF b, MatF y) = 0;
  // Rotary embedding in place, rotate-half form, on each of the x.cols / d heads of width d (even):
  // x[:, i] ← x[:, i]·cos[:, i] − x[:, i + d/2]·sin[:, i], x[:, i + d/2] ← x[:, i + d/2]·cos + x[:, i]·sin
  // (i < d/2, cos/sin [rows, d] with equal halves). inverse rotates by the opposite angle (the transpose).
  virtual Status rope(MatF x, int64_t head_dim, MatF cos, MatF sin, bool inverse) = 0;
  // out = silu(gate) ⊙ up.
  virtual Status silu_mul(MatF gate, MatF up, MatF out) = 0;
  // y[i, :] = (x[i, :] − mean) / sqrt(var + eps) · w + b, mean and (biased) variance of the row
  // accumulated in double, the rest in f32 (torch.nn.LayerNorm); w, b: [1, x.cols]. y may be x.
  virtual Status layer_norm(MatF x, MatF w, MatF b, float eps, MatF y) = 0;
  // y = act(x) elementwise (Activation above, in f32). y may be x.
  virtual Status activation(Activation act, MatF x, MatF y) = 0;
  // Softmax attention within each segment [segments[s], segments[s+1]) (segments: [1, nseg + 1]
  // offsets from 0 to T, strictly increasing), scale 1/sqrt(d): causal (token i sees j ≤ i of its segment,
  // the decoder) or bidirectional (every token of its segment, the vision towers). q/out
  // [T, heads·d], k/v [T, kv_heads·d], any row strides (q, k, v may be column blocks of one fused
  // matrix); query head h reads kv head h / (heads / kv_heads) (grouped-query attention).
  virtual Status attention(MatF q, MatF k, MatF v, MatI segments, int64_t heads, int64_t kv_heads, bool causal, MatF out) = 0;
  // The backward of causal attention: given d_out, writes dq, dk, dv (overwritten, GQA heads accumulated).
  virtual Status attention_backward(MatF q, MatF k, MatF v, MatF d_out, MatI segments, int64_t heads, int64_t kv_heads,
                                    MatF dq, MatF dk, MatF dv) = 0;
  // out[i] = mean_j |x[i, j]| (l2 = false) or sqrt(mean_j x[i, j]²) (out: [1, x.rows]).
  virtual Status row_norms(MatF x, bool l2, MatF out) = 0;
  // Σ x[i, j]² in double. Waits for the queue.
  virtual Status sum_squares(MatF x, double* out) = 0;
  // The patches of a stride = kernel convolution (im2col without overlap or padding): images
  // [n, channels · size · size] (each row one image, channel-major) → out [n · p², channels ·
  // patch²] with p = size / patch ≥ 1 (floor; the last size − p·patch rows and columns are not
  // covered, as with Conv2d without padding). Row v·p² + py·p + px is patch (py, px) of image v
  // in raster order; column (c·patch + ky)·patch + kx, the order of a Conv2d weight [out,
  // channels, patch, patch].
  virtual Status unfold_patches(MatF images, int64_t channels, int64_t size, int64_t patch, MatF out) = 0;

  // --- quantization kernels -----------------------------------------------------------------
  // For each row r: (scales[r, 0], zeros[r, 0]) = find_params(W[r, c0 : c0 + cols]) with cols ≥ 1;
  // scales and zeros are [W.rows, 1] views (a column of the [m, ngroups] parameter matrices).
  virtual Status fit_params(MatF W, int64_t c0, int64_t cols, const Grid& grid, MatF scales, MatF zeros) = 0;
  // Q[r, j] and codes[r, j] from the parameters of group g_idx[j] (round to nearest); g_idx:
  // [1, W.cols] in [0, ngroups); scales, zeros: [W.rows, ngroups].
  virtual Status quantize_groups(MatF W, MatI g_idx, MatF scales, MatF zeros, const Grid& grid, MatF Q, MatU8 codes) = 0;
  virtual Status sweep_block(const SweepBlock& block) = 0;
};

// A fresh contiguous [rows, cols] matrix of T on `backend`.
template <class T>
Status alloc_mat(Backend& backend, Buffer* out, int64_t rows, int64_t cols, BufferUsage usage, Mat<T>* view = nullptr);
Status alloc_matrix(Backend& backend, Buffer* out, int64_t rows, int64_t cols, BufferUsage usage);

template <class T>
Mat<T> Buffer::mat(int64_t rows, int64_t cols) const {
  return {static_cast<T*>(data_), rows, cols, cols, owner_ ? owner_->device() : Device()};
}

}  // namespace vlmq
