// The in-block column sweep of GPTQ/GPTAQ (backend.h, SweepBlock) on the CPU.
// Rows are independent, so rows go in tiles of kTile: the tile's slice of the block is held
// transposed (column k of the block is kTile contiguous floats), and each step of the sweep
// broadcasts one U[col, k] and updates all kTile rows with one vector FMA. The U (and P) block is
// packed contiguously once per block, shared by all threads.
#include <algorithm>
#include <vector>

#include "cpu_backend.h"

// One build serves every x86-64 CPU: GCC compiles the hot loop for AVX-512, AVX2 and the
// baseline and picks the best at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// Lanes values never cross a function boundary (helpers are forced inline), so the warning that
// their ABI differs between the clones does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#define VLMQ_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VLMQ_MULTIVERSION
#endif

namespace vlmq {
namespace {

// A tile of rows is one vector of kTile floats (GCC/Clang vector extension): one zmm register
// with AVX-512, two ymm with AVX2, four xmm otherwise. Writing the update as vector arithmetic
// keeps the compiler from vectorising the wrong loop.
constexpr int kTile = 16;
typedef float Lanes __attribute__((vector_size(kTile * sizeof(float)), aligned(kTile * sizeof(float))));

// Helpers are forced inline so that each target clone compiles them for its own ISA.
#define VLMQ_INLINE inline __attribute__((always_inline))

VLMQ_INLINE Lanes splat(float x) { return Lanes{} + x; }

// The tile's block, one vector per column. new[] honours the 64-byte alignment of Lanes, which
// std::vector<Lanes> would not (template arguments drop a typedef's attributes).
struct TileBuffer {
  Lanes* data;
  explicit TileBuffer(int64_t columns) : data(new Lanes[columns]) {}
  ~TileBuffer() { delete[] data; }
  TileBuffer(const TileBuffer&) = delete;
  TileBuffer& operator=(const TileBuffer&) = delete;
};

struct Packed {
  const float* U;  // [count, count]: U[i1 + t, i1 + k] at t * count + k
  const float* P;  // same for P, or null
};

// Quantize one column of the tile: codes, grid values, and errors e = (w − q) / d.
VLMQ_INLINE void quantize_lanes(Lanes w, Lanes scale, Lanes zero, float maxq, float d, Lanes* code, Lanes* q, Lanes* e) {
  Lanes c = w / scale;
  for (int i = 0; i < kTile; i++) c[i] = round_half_even(c[i]);
  c += zero;
  c = c < 0.0f ? splat(0.0f) : c;
  c = c > maxq ? splat(maxq) : c;
  *code = c;
  *q = scale * (c - zero);
  *e = (w - *q) / d;
}

VLMQ_MULTIVERSION
void sweep_tile(const SweepBlock& b, const Packed& packed, int64_t r0, int rows, Lanes* w1) {
  const int64_t n = b.W.cols, count = b.i2 - b.i1;
  const float maxq = b.grid.maxq();
  const bool dynamic = b.mode == GroupMode::kDynamic, fixed = b.mode == GroupMode::kPerChannel;
  Lanes scale = splat(1.0f), zero = splat(0.0f), loss = splat(0.0f);  // padding rows: a harmless grid

  // w1[k][i] = W[r0 + i, i1 + k]
  for (int64_t k = 0; k < count; k++) w1[k] = splat(0.0f);
  for (int i = 0; i < rows; i++) {
    const float* src = b.W.row(r0 + i) + b.i1;
    for (int64_t k = 0; k < count; k++) w1[k][i] = src[k];
    // A block that starts inside a dynamic group continues with the parameters fitted at the
    // group's start in an earlier block (the reference's quantizer keeps them across blocks).
    const int64_t group = fixed ? 0 : dynamic ? b.i1 / b.group_size : -1;
    if (group >= 0) scale[i] = b.scales.row(r0 + i)[group], zero[i] = b.zeros.row(r0 + i)[group];
  }

  for (int64_t t = 0; t < count; t++) {
    const int64_t col = b.i1 + t;
    if (dynamic && col % b.group_size == 0) {
      // Fitted on the outer W: all earlier blocks' updates, none of this block's (§2(f) 3).
      const int64_t group = col / b.group_size, len = std::min(b.group_size, n - col);
      for (int i = 0; i < rows; i++) {
        const QParams p = find_params(b.W.row(r0 + i) + col, len, b.grid);
        scale[i] = b.scales.row(r0 + i)[group] = p.scale;
        zero[i] = b.zeros.row(r0 + i)[group] = p.zero;
      }
    } else if (!dynamic && !fixed) {
      const int64_t group = (b.perm.empty() ? col : b.perm.data[col]) / b.group_size;
      for (int i = 0; i < rows; i++) scale[i] = b.scales.row(r0 + i)[group], zero[i] = b.zeros.row(r0 + i)[group];
    }

    const float* u = packed.U + t * count;  // u[k] = U[col, i1 + k]
    const Lanes w = w1[t];
    Lanes code, q, e;
    quantize_lanes(w, scale, zero, maxq, u[t], &code, &q, &e);
    loss += e * e;  // (w − q)² / d²

    // Spread the error over the rest of the block: one broadcast U[col, k] per column k.
    if (packed.P) {
      const float* p = packed.P + t * count;
      for (int64_t k = t + 1; k < count; k++) w1[k] += w * p[k] - e * u[k];
    } else {
      for (int64_t k = t + 1; k < count; k++) w1[k] -= e * u[k];
    }

    const Lanes source = b.psource_prequant ? w : q;
    for (int i = 0; i < rows; i++) {
      const int64_t r = r0 + i;
      b.Q.row(r)[col] = q[i];
      b.codes.row(r)[col] = static_cast<uint8_t>(code[i]);
      b.E.row(r)[t] = e[i];
      if (packed.P) b.Psource.row(r)[t] = source[i];
    }
  }
  for (int i = 0; i < rows; i++) b.row_loss.data[r0 + i] += loss[i];
}

void pack_block(const MatF& M, int64_t i1, int64_t count, std::vector<float>* out) {
  out->assign(static_cast<size_t>(count * count), 0.0f);
  for (int64_t t = 0; t < count; t++) {
    const float* src = M.row(i1 + t) + i1;
    std::copy(src + t, src + count, out->data() + t * count + t);  // the upper triangle is all that is read
  }
}

// The operands of a block, checked against the sweep's shapes (backend.h, SweepBlock).
Status check_block(const SweepBlock& b) {
  const char* op = "sweep_block";
  using cpu_checks::shape;
  VLMQ_TRY(cpu_checks::on_host(op, b.W, b.U, b.P, b.perm, b.scales, b.zeros, b.Q, b.codes, b.E, b.Psource, b.row_loss));
  const int64_t m = b.W.rows, n = b.W.cols, count = b.i2 - b.i1;
  if (b.i1 < 0 || b.i2 > n || b.i1 >= b.i2) return InvalidArgument("sweep_block: bad column range");
  if (b.mode != GroupMode::kPerChannel && b.group_size < 1) return InvalidArgument("sweep_block: groups need a positive group size");
  const int64_t ngroups = b.mode == GroupMode::kPerChannel ? 1 : (n + b.group_size - 1) / b.group_size;
  VLMQ_TRY(shape(op, "U", b.U, n, n));
  if (!b.P.empty()) VLMQ_TRY(shape(op, "P", b.P, n, n));
  if (!b.perm.empty()) VLMQ_TRY(cpu_checks::vector(op, "perm", b.perm, n));
  if (b.mode == GroupMode::kStatic && !b.perm.empty())
    for (int64_t j = 0; j < n; j++)
      if (b.perm.data[j] < 0 || b.perm.data[j] >= n) return InvalidArgument("sweep_block: perm holds an index outside [0, n)");
  VLMQ_TRY(shape(op, "scales", b.scales, m, ngroups));
  VLMQ_TRY(shape(op, "zeros", b.zeros, m, ngroups));
  VLMQ_TRY(shape(op, "Q", b.Q, m, n));
  VLMQ_TRY(shape(op, "codes", b.codes, m, n));
  VLMQ_TRY(shape(op, "E", b.E, m, count));
  if (!b.P.empty()) VLMQ_TRY(shape(op, "Psource", b.Psource, m, count));
  return cpu_checks::vector(op, "row_loss", b.row_loss, m);
}

}  // namespace

Status CpuBackend::sweep_block(const SweepBlock& b) {
  VLMQ_TRY(check_block(b));
  const int64_t count = b.i2 - b.i1;
  std::vector<float> U, P;
  pack_block(b.U, b.i1, count, &U);
  if (!b.P.empty()) pack_block(b.P, b.i1, count, &P);
  const Packed packed{U.data(), b.P.empty() ? nullptr : P.data()};
  const int64_t tiles = (b.W.rows + kTile - 1) / kTile;
  auto body = [&](int64_t t0, int64_t t1) {
    TileBuffer w1(count);
    for (int64_t tile = t0; tile < t1; tile++) {
      const int64_t r0 = tile * kTile;
      sweep_tile(b, packed, r0, static_cast<int>(std::min<int64_t>(kTile, b.W.rows - r0)), w1.data);
    }
  };
  pool()->parallel_for(tiles, 1, body);
  return Status::Ok();
}

}  // namespace vlmq
