// GPTQ (Frantar et al., ICLR 2023) in the order of the reference `fasterquant`
// (IST-DASLab/gptq; algorithm.md §2(c)): blocks of B columns are quantized one column at a time
// with the error spread over the rest of the block (the sweep_block kernel), then the whole
// block's error E updates every later column at once, W[:, i2:] −= E · U[i1:i2, i2:].
#include <algorithm>
#include <vector>

#include "sweep.h"

namespace vlmq {

namespace {

// W[:, c0 : c0 + cols] −= E · U[i1 : i1 + count, c0 : c0 + cols]  (+ Psource · P[…] for GPTAQ)
Status lazy_update(Backend& backend, const SweepState& s, const MatF* P, const SweepBlock& block, int64_t i1,
                   int64_t count, int64_t c0, int64_t cols) {
  if (cols <= 0) return Status::Ok();
  const MatF target = s.W.block(0, c0, s.W.rows, cols);
  VLMQ_TRY(backend.gemm(false, false, -1.0f, block.E, s.U.block(i1, c0, count, cols), 1.0f, target));
  if (P) VLMQ_TRY(backend.gemm(false, false, 1.0f, block.Psource, P->block(i1, c0, count, cols), 1.0f, target));
  return Status::Ok();
}

}  // namespace

Status column_sweep(Backend& backend, const SweepState& s, const MatF* P, const LinearOptions& options,
                    const RunControl& control, double* loss) {
  const int64_t m = s.W.rows, n = s.W.cols;
  const int64_t B = std::min(options.block_size, n);
  Buffer E_buffer, source_buffer;
  VLMQ_TRY(alloc_matrix(backend, &E_buffer, m, B, BufferUsage::kScratch));
  if (P) VLMQ_TRY(alloc_matrix(backend, &source_buffer, m, B, BufferUsage::kScratch));
  std::vector<double> row_loss(m, 0.0);
  if (control.progress) control.progress(0, n);

  for (int64_t i1 = 0; i1 < n; i1 += B) {
    if (control.cancelled()) return Cancelled();
    const int64_t i2 = std::min(i1 + B, n), count = i2 - i1;
    SweepBlock block;
    block.W = s.W;
    block.U = s.U;
    block.P = P;
    block.i1 = i1;
    block.i2 = i2;
    block.grid = options.grid;
    block.mode = s.mode;
    block.group_size = s.group_size;
    block.perm = s.perm;
    block.scales = s.scales;
    block.zeros = s.zeros;
    block.ngroups = s.ngroups;
    block.Q = s.Q;
    block.codes = s.codes;
    block.E = E_buffer.matrix(m, count);
    block.Psource = P ? source_buffer.matrix(m, count) : MatF{};
    block.psource_prequant = options.gptaq_prequant_lazy;
    block.row_loss = row_loss.data();
    VLMQ_TRY(backend.sweep_block(block));

    // The lazy batch update of all later columns: the far columns first and the next block
    // last, so that the next block is still in cache when its sweep starts.
    const int64_t next = std::min(B, n - i2);
    VLMQ_TRY(lazy_update(backend, s, P, block, i1, count, i2 + next, n - i2 - next));
    VLMQ_TRY(lazy_update(backend, s, P, block, i1, count, i2, next));
    if (control.progress) control.progress(i2, n);
  }
  double total = 0;
  for (double l : row_loss) total += l;
  *loss = total / 2;
  return Status::Ok();
}

Status gptq_quantize(Backend& backend, const SweepState& s, const LinearOptions& options,
                     const RunControl& control, double* loss) {
  return column_sweep(backend, s, nullptr, options, control, loss);
}

}  // namespace vlmq
