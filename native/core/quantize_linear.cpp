// quantize_linear: one linear layer from its weights and calibration statistics, by RTN, GPTQ or
// GPTAQ. This file holds the preamble the sweeps share, in the reference's order (algorithm.md
// §2(c)): per-channel parameters from the original W, the dead-column fix, static groups, the
// act-order permutation, the damped inverse factor (with automatic damping increase and an RTN
// fallback that is reported), and the way back to the original column order with g_idx.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <string>
#include <new>
#include <vector>

#include "checks.h"
#include "scratch.h"
#include "sweep.h"

namespace vlmq {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string shape(int64_t r, int64_t c) { return "[" + std::to_string(r) + ", " + std::to_string(c) + "]"; }

Status check_options(const LinearOptions& o) {
  const Grid& g = o.grid;
  if (g.bits != 2 && g.bits != 3 && g.bits != 4 && g.bits != 8) return InvalidArgument("bits must be 2, 3, 4 or 8");
  if (o.group_size == 0 || o.group_size < -1) return InvalidArgument("group size must be -1 or positive");
  if (o.block_size < 1) return InvalidArgument("block size must be positive");
  if (g.mse && (!(g.norm > 0) || g.grid < 1 || !(g.max_shrink > 0 && g.max_shrink <= 1)))
    return InvalidArgument("MSE grid needs norm > 0, grid ≥ 1 and maxShrink in (0, 1]");
  const DampingPolicy& d = o.damping;
  if (!(d.percdamp >= 0) || !(d.increment > 0) || !(d.max_percdamp >= d.percdamp) || !std::isfinite(d.max_percdamp))
    return InvalidArgument("damping needs percdamp ≥ 0, increment > 0 and maxPercdamp ≥ percdamp");
  if (!std::isfinite(o.alpha)) return InvalidArgument("alpha must be finite");
  return Status::Ok();
}

Status check_square(MatF a, int64_t n, const char* name) {
  if (!a.data) return InvalidArgument(std::string(name) + " is required for this method");
  if (a.rows != n || a.cols != n)
    return InvalidArgument(std::string(name) + ": expected " + shape(n, n) + ", found " + shape(a.rows, a.cols));
  return Status::Ok();
}

// diag(a) read back to the host.
Status host_diagonal(Scratch& scratch, MatF a, std::vector<float>* out) {
  MatF diagonal;
  VLMQ_TRY(scratch.make(1, a.rows, &diagonal));
  VLMQ_TRY(scratch.backend.get_diagonal(a, diagonal));
  return download_vector(scratch.backend, diagonal, out);
}

Status check_symmetric(Scratch& scratch, MatF H) {
  std::vector<float> diag;
  VLMQ_TRY(host_diagonal(scratch, H, &diag));
  float scale = 0;
  for (float d : diag) scale = std::max(scale, std::fabs(d));
  float worst = 0;
  int64_t i = 0, j = 0;
  VLMQ_TRY(scratch.backend.max_asymmetry(H, 1e-6f * scale, &worst, &i, &j));
  if (worst <= 1e-4f) return Status::Ok();
  return InvalidArgument("hessian is not symmetric: H[" + std::to_string(i) + ", " + std::to_string(j) + "] and H[" +
                         std::to_string(j) + ", " + std::to_string(i) + "] differ by a relative " + std::to_string(worst));
}

// Indices sorted by diag(H) descending; ties keep the lower index first (a stable order, where
// torch.argsort leaves ties unspecified).
std::vector<int32_t> act_order_permutation(const std::vector<float>& diag) {
  std::vector<int32_t> perm(diag.size());
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return diag[a] > diag[b]; });
  return perm;
}

struct Outputs {
  Buffer Q, codes, scales, zeros;
};

Status alloc_outputs(Backend& backend, int64_t m, int64_t n, int64_t ngroups, Outputs* out) {
  VLMQ_TRY(alloc_matrix(backend, &out->Q, m, n, BufferUsage::kResult));
  VLMQ_TRY(backend.alloc(&out->codes, static_cast<size_t>(m) * n, BufferUsage::kResult));
  VLMQ_TRY(alloc_matrix(backend, &out->scales, m, ngroups, BufferUsage::kResult));
  VLMQ_TRY(alloc_matrix(backend, &out->zeros, m, ngroups, BufferUsage::kResult));
  return Status::Ok();
}

// g_idx[j] for original column j (algorithm.md §2(e)): dynamic groups with act-order are groups
// of consecutive columns in permuted order; everything else groups original columns.
std::vector<int32_t> group_index(int64_t n, int64_t group_size, const std::vector<int32_t>& perm, bool static_groups) {
  std::vector<int32_t> g_idx(n, 0);
  if (group_size < 0) return g_idx;
  for (int64_t j = 0; j < n; j++) {
    if (!perm.empty() && !static_groups) g_idx[perm[j]] = static_cast<int32_t>(j / group_size);
    else g_idx[j] = static_cast<int32_t>(j / group_size);
  }
  return g_idx;
}

template <class T>
HostArray<T> host_copy(const std::vector<T>& v) {
  HostArray<T> out;
  out.data.reset(static_cast<T*>(std::malloc(std::max<size_t>(1, v.size()) * sizeof(T))));
  if (!out.data) throw std::bad_alloc();  // turned into kOutOfMemory at the worker boundary
  out.size = v.size();
  std::copy(v.begin(), v.end(), out.data.get());
  return out;
}

Status finish(Outputs&& o, int64_t m, int64_t n, int64_t ngroups, std::vector<int32_t> g_idx,
              std::vector<int32_t> perm, LinearResult* result) {
  result->rows = m;
  result->cols = n;
  result->ngroups = ngroups;
  VLMQ_TRY(to_host(std::move(o.Q), static_cast<size_t>(m) * n, &result->dequantized));
  VLMQ_TRY(to_host(std::move(o.codes), static_cast<size_t>(m) * n, &result->codes));
  VLMQ_TRY(to_host(std::move(o.scales), static_cast<size_t>(m) * ngroups, &result->scales));
  VLMQ_TRY(to_host(std::move(o.zeros), static_cast<size_t>(m) * ngroups, &result->zeros));
  result->g_idx = host_copy(g_idx);
  result->perm = host_copy(perm);
  return Status::Ok();
}

// (scales, zeros)[:, k] for every group k from the columns of W it covers.
Status fit_groups(Backend& backend, MatF W, const LinearOptions& o, int64_t ngroups, MatF scales, MatF zeros) {
  const int64_t g = o.group_size, n = W.cols;
  for (int64_t k = 0; k < ngroups; k++) {
    const int64_t c0 = g < 0 ? 0 : k * g, cols = g < 0 ? n : std::min(g, n - c0);
    VLMQ_TRY(backend.fit_params(W, c0, cols, o.grid, scales.block(0, k, W.rows, 1), zeros.block(0, k, W.rows, 1)));
  }
  return Status::Ok();
}

// Round to nearest with parameters fitted on the original W, per channel or per group.
Status rtn(Backend& backend, MatF W, const LinearOptions& o, LinearResult* result) {
  const int64_t m = W.rows, n = W.cols;
  const int64_t g = o.group_size, ngroups = g < 0 ? 1 : (n + g - 1) / g;
  Outputs out;
  VLMQ_TRY(alloc_outputs(backend, m, n, ngroups, &out));
  const MatF scales = out.scales.matrix(m, ngroups), zeros = out.zeros.matrix(m, ngroups);
  VLMQ_TRY(fit_groups(backend, W, o, ngroups, scales, zeros));
  std::vector<int32_t> g_idx = group_index(n, g, {}, true);
  Scratch scratch{backend, {}};
  MatI groups;
  VLMQ_TRY(scratch.upload(g_idx, &groups));
  VLMQ_TRY(backend.quantize_groups(W, groups, scales, zeros, o.grid, out.Q.matrix(m, n), out.codes.mat<uint8_t>(m, n)));
  return finish(std::move(out), m, n, ngroups, std::move(g_idx), {}, result);
}

}  // namespace

Status quantize_linear(Backend& backend, const LinearInput& input, const LinearOptions& o,
                       const RunControl& control, LinearResult* result) {
  const auto t0 = Clock::now();
  const int64_t m = input.W.rows, n = input.W.cols;
  VLMQ_TRY(check_options(o));
  if (!is_float(input.W.dtype)) return InvalidArgument("weight must be F32, F16 or BF16");
  if (m <= 0 || n <= 0) return InvalidArgument("weight must have at least one row and one column");
  VLMQ_TRY(check_finite(backend, input.W, "weight"));

  Buffer W_buffer;  // W in f32, original column order
  VLMQ_TRY(alloc_matrix(backend, &W_buffer, m, n, BufferUsage::kWeights));
  MatF W = W_buffer.matrix(m, n);
  VLMQ_TRY(backend.convert_rows(W, input.W, MatF{}));
  if (o.method == Method::kRtn) {
    VLMQ_TRY(rtn(backend, W, o, result));
    result->seconds_sweep = seconds_since(t0);
    return Status::Ok();
  }

  const bool gptaq = o.method == Method::kGptaq;
  VLMQ_TRY(check_square(input.H, n, "hessian"));
  VLMQ_TRY(check_finite(backend, input.H.view(), "hessian"));
  if (gptaq) {
    VLMQ_TRY(check_square(input.dXXT, n, "dxxt"));
    VLMQ_TRY(check_finite(backend, input.dXXT.view(), "dxxt"));
  }
  const int64_t g = o.group_size;
  const int64_t ngroups = g < 0 ? 1 : (n + g - 1) / g;
  const GroupMode mode = g < 0 ? GroupMode::kPerChannel : o.static_groups ? GroupMode::kStatic : GroupMode::kDynamic;
  Outputs out;
  VLMQ_TRY(alloc_outputs(backend, m, n, ngroups, &out));
  const MatF scales = out.scales.matrix(m, ngroups), zeros = out.zeros.matrix(m, ngroups);
  Scratch scratch{backend, {}};

  // Per-channel parameters come from the original W, before the dead-column fix (§2(c)).
  if (mode == GroupMode::kPerChannel) VLMQ_TRY(fit_groups(backend, W, o, 1, scales, zeros));

  // The statistics are checked in place (an accumulator keeps only the lower triangle of H:
  // mirroring it is harmless, SYRK never reads the upper one), then copied into work buffers
  // with the act-order permutation applied on the way.
  MatF H_in = input.H;
  if (input.H_lower_only) VLMQ_TRY(backend.mirror_lower(H_in));
  else VLMQ_TRY(check_symmetric(scratch, H_in));

  // Dead columns: inputs that were always zero. H[i, i] = 1, W[:, i] = 0, dXXT[:, i] = 0.
  std::vector<float> diag;
  VLMQ_TRY(host_diagonal(scratch, H_in, &diag));
  std::vector<uint8_t> dead(n, 0);
  for (int64_t i = 0; i < n; i++) {
    if (diag[i] < 0.0f)
      return InvalidArgument("hessian[" + std::to_string(i) + ", " + std::to_string(i) + "] = " + std::to_string(diag[i]) +
                             " is negative: a Hessian (2/N Σ x xᵀ) has a non-negative diagonal");
    if (diag[i] == 0.0f) {
      dead[i] = 1;
      diag[i] = 1.0f;
      result->dead_columns++;
    }
  }
  MatU8 dead_mask;
  if (result->dead_columns > 0) {
    VLMQ_TRY(scratch.upload(dead, &dead_mask));
    VLMQ_TRY(backend.zero_columns(W, dead_mask));
  }

  // On the original column order, after the dead fix (§2(e)).
  if (mode == GroupMode::kStatic) VLMQ_TRY(fit_groups(backend, W, o, ngroups, scales, zeros));

  std::vector<int32_t> perm;
  MatI order;
  if (o.act_order) {
    perm = act_order_permutation(diag);
    VLMQ_TRY(scratch.upload(perm, &order));
  }
  auto processing_order = [&](MatF dst, MatF src) {
    return perm.empty() ? backend.copy(dst, src) : backend.gather_symmetric(dst, src, order);
  };
  if (!perm.empty()) {
    VLMQ_TRY(backend.gather_columns(W, W, order));
    std::vector<float> d(n);
    std::vector<uint8_t> k(n);
    for (int64_t j = 0; j < n; j++) d[j] = diag[perm[j]], k[j] = dead[perm[j]];
    diag.swap(d);
    dead.swap(k);
    if (result->dead_columns > 0) VLMQ_TRY(scratch.upload(dead, &dead_mask));
  }
  Buffer H_buffer, D_buffer;
  VLMQ_TRY(alloc_matrix(backend, &H_buffer, n, n, BufferUsage::kStatistics));
  const MatF H = H_buffer.matrix(n, n);
  VLMQ_TRY(processing_order(H, H_in));
  MatF diagonal;
  VLMQ_TRY(scratch.upload(diag, &diagonal));
  VLMQ_TRY(backend.set_diagonal(H, diagonal));
  MatF D;
  if (gptaq) {
    VLMQ_TRY(alloc_matrix(backend, &D_buffer, n, n, BufferUsage::kStatistics));
    D = D_buffer.matrix(n, n);
    VLMQ_TRY(processing_order(D, input.dXXT));
    if (result->dead_columns > 0) VLMQ_TRY(backend.zero_columns(D, dead_mask));
  }
  result->seconds_prepare = seconds_since(t0);

  const auto t1 = Clock::now();
  Buffer U_buffer;
  VLMQ_TRY(alloc_matrix(backend, &U_buffer, n, n, BufferUsage::kStatistics));
  const MatF U = U_buffer.matrix(n, n);
  Status factored = inverse_cholesky_upper(backend, H, o.damping, U, &result->damping);
  result->seconds_factor = seconds_since(t1);
  H_buffer.reset();
  if (factored.code() == Code::kNotPositiveDefinite) {
    // Every damping failed: quantize this module by RTN and say so (never silently).
    result->fallback_rtn = true;
    VLMQ_TRY(backend.convert_rows(W_buffer.matrix(m, n), input.W, MatF{}));
    const auto t2 = Clock::now();
    VLMQ_TRY(rtn(backend, W_buffer.matrix(m, n), o, result));
    result->seconds_sweep = seconds_since(t2);
    return Status::Ok();
  }
  VLMQ_TRY(factored);

  const auto t2 = Clock::now();
  SweepState s;
  s.W = W;
  s.U = U;
  s.mode = mode;
  s.group_size = g;
  s.perm = order;
  s.scales = scales;
  s.zeros = zeros;
  s.Q = out.Q.matrix(m, n);
  s.codes = out.codes.mat<uint8_t>(m, n);
  VLMQ_TRY(gptaq ? gptaq_quantize(backend, s, D, o, control, &result->loss, &result->seconds_correction)
                 : gptq_quantize(backend, s, o, control, &result->loss));
  if (!perm.empty()) {  // the sweep wrote in processing order: put the columns back in place
    std::vector<int32_t> inverse(n);
    for (int64_t j = 0; j < n; j++) inverse[perm[j]] = static_cast<int32_t>(j);
    MatI back;
    VLMQ_TRY(scratch.upload(inverse, &back));
    VLMQ_TRY(backend.gather_columns(s.Q, s.Q, back));
    VLMQ_TRY(backend.gather_columns_u8(s.codes, s.codes, back));
  }
  result->seconds_sweep = seconds_since(t2);
  std::vector<int32_t> g_idx = group_index(n, g, perm, o.static_groups);
  return finish(std::move(out), m, n, ngroups, std::move(g_idx), std::move(perm), result);
}

}  // namespace vlmq
