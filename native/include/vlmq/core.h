// The algorithms of vlmq, written once against the Backend interface (backend.h):
// Hessian statistics, the damped inverse-Cholesky factor, and the layer quantizers
// RTN, GPTQ and GPTAQ. Nothing here knows Node-API or CUDA.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vlmq/backend.h"

namespace vlmq {

// Owning host array (malloc-family memory), handed to napi/ without a copy.
template <class T>
struct HostArray {
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T[], Free> data;
  size_t size = 0;
};

// Move a host buffer's memory into a HostArray (no copy), or download a device buffer.
template <class T>
Status to_host(Buffer&& buffer, size_t count, HostArray<T>* out);

// Contiguous host memory as an operand of `backend`: the memory itself when the backend runs on
// the host (no copy), else a copy uploaded into `staging`. A view already on the backend is
// returned as it is.
Status to_backend(Backend& backend, MatrixView host, Buffer* staging, MatrixView* out);
template <class T>
Status to_backend(Backend& backend, Mat<T> host, Buffer* staging, Mat<T>* out) {
  MatrixView view;
  VLMQ_TRY(to_backend(backend, host.view(), staging, &view));
  *out = {static_cast<T*>(view.data), view.rows, view.cols, view.ld, view.device};
  return Status::Ok();
}

// Cancellation and progress of a long-running call; both optional.
struct RunControl {
  const std::atomic<bool>* cancel = nullptr;
  std::function<void(int64_t done, int64_t total)> progress;
  bool cancelled() const { return cancel && cancel->load(std::memory_order_relaxed); }
};

// --- statistics: H = (2/N) Σ w·x xᵀ and dXXT = (2/N) Σ w·(x̃ − x) xᵀ --------------------------
// The running average of the reference GPTQ (algorithm.md §1.2, §3(c)): each batch first scales
// the sums by N/(N + t), then adds its tokens with weight 2/(N + t), where t counts samples.
struct HessianState {
  Backend* backend = nullptr;
  int64_t n = 0;
  bool cross_term = false;
  double samples = 0;
  Buffer H;     // [n, n]; only the lower triangle is maintained
  Buffer dXXT;  // [n, n] when cross_term
};

struct TokenBatch {
  MatrixView x;                    // [tokens, n] quantized-path inputs, F32/F16/BF16, on the backend
  MatrixView x_full;               // [tokens, n] full-precision inputs (data null: none), on the backend
  const float* weights = nullptr;  // [tokens] per-token weights ≥ 0 (host), or null for 1
  double samples = 1;              // how many calibration samples this batch holds
};

Status hessian_init(Backend& backend, int64_t n, bool cross_term, HessianState* state);
Status hessian_add(HessianState& state, const TokenBatch& batch, const RunControl& control);
// Copies H (made symmetric) or dXXT into host memory of n·n floats.
Status hessian_read(HessianState& state, bool cross, float* host_out);

// --- the damped inverse-Cholesky factor (algorithm.md §1.4) ------------------------------------
struct DampingPolicy {
  double percdamp = 0.01;      // λ = percdamp · mean(diag H)
  double increment = 0.0025;   // on failure, percdamp += increment ...
  double max_percdamp = 0.1;   // ... while it stays ≤ this; then the caller falls back to RTN
};

struct DampingOutcome {
  bool ok = false;
  double percdamp = 0;           // the one that worked (or the last one tried)
  double lambda = 0;             // the λ added to the diagonal (as a float)
  std::vector<double> tried;     // every percdamp tried, in order
  int64_t failed_minor = 0;      // of the last failure
};

// U (upper) with (H + λI)⁻¹ = Uᵀ·U, from one factorisation: U = J·L′⁻¹·J with L′ = chol(J·H·J)
// (performance.md §2, "one factorisation instead of three"). H is read, not changed; U is
// overwritten. Raises λ per `policy` until the factorisation succeeds with a finite result.
Status inverse_cholesky_upper(Backend& backend, MatF H, const DampingPolicy& policy, MatF U,
                              DampingOutcome* outcome);

// --- linear-layer quantization -----------------------------------------------------------------
enum class Method : uint8_t { kRtn, kGptq, kGptaq };

struct LinearOptions {
  Method method = Method::kGptq;
  Grid grid;
  int64_t group_size = -1;       // −1: one (scale, zero) per output channel
  bool act_order = false;
  bool static_groups = false;
  int64_t block_size = 128;
  DampingPolicy damping;
  float alpha = 0.25f;             // GPTAQ: scale of the asymmetric correction P
  bool gptaq_prequant_lazy = false;  // GPTAQ: derivation-consistent lazy term (algorithm.md §3(d))
};

struct LinearInput {
  MatrixView W;                 // [m, n] F32/F16/BF16, on the backend
  MatF H;                       // [n, n] (not needed for RTN)
  bool H_lower_only = false;    // only the lower triangle is valid (an accumulator's H)
  MatF dXXT;                    // [n, n] for GPTAQ
};

struct LinearResult {
  int64_t rows = 0, cols = 0, ngroups = 1;
  HostArray<float> dequantized;  // [m, n], original column order
  HostArray<uint8_t> codes;      // [m, n], original column order
  HostArray<float> scales;       // [m, ngroups]
  HostArray<float> zeros;        // [m, ngroups], integers stored as float
  HostArray<int32_t> g_idx;      // [n]
  HostArray<int32_t> perm;       // [n] with act-order, else empty
  double loss = 0;               // Σ (w − q)² / d² / 2, the reference's estimate
  DampingOutcome damping;
  bool fallback_rtn = false;     // the factorisation failed at every damping: RTN was used
  int64_t dead_columns = 0;
  double seconds_prepare = 0, seconds_factor = 0, seconds_sweep = 0;
  double seconds_correction = 0;  // GPTAQ: building P (part of seconds_sweep)
};

Status quantize_linear(Backend& backend, const LinearInput& input, const LinearOptions& options,
                       const RunControl& control, LinearResult* result);

}  // namespace vlmq
