// GPTQ (Frantar et al., ICLR 2023) in the order of the reference `fasterquant`
// (IST-DASLab/gptq; algorithm.md §2(c)): blocks of B columns are quantized one column at a time
// with the error spread over the rest of the block (the sweep_block kernel), then the whole
// block's error E updates every later column at once, W[:, i2:] −= E · U[i1:i2, i2:].
#include <algorithm>
#include <vector>

#include "scratch.h"
#include "sweep.h"

namespace vlmq {

namespace {

// W[:, c0 : c0 + cols] −= E · U[i1 : i1 + count, c0 : c0 + cols]  (+ Psource · P[…] for GPTAQ)
Status lazy_update(Backend& backend, const SweepState& s, const SweepBlock& block, int64_t i1,
                   int64_t count, int64_t c0, int64_t cols) {
  if (cols <= 0) return Status::Ok();
  const MatF target = s.W.block(0, c0, s.W.rows, cols);
  VLMQ_TRY(backend.gemm(false, false, -1.0f, block.E, s.U.block(i1, c0, count, cols), 1.0f, target));
  if (!block.P.empty()) VLMQ_TRY(backend.gemm(false, false, 1.0f, block.Psource, block.P.block(i1, c0, count, cols), 1.0f, target));
  return Status::Ok();
}

}  // namespace

Status column_sweep(Backend& backend, const SweepState& s, MatF P, const LinearOptions& options,
                    const RunControl& control, double* loss) {
  const int64_t m = s.W.rows, n = s.W.cols;
  const int64_t B = std::min(options.block_size, n);
  Scratch scratch{backend, {}};
  MatF E, source;
  MatD row_loss;
  VLMQ_TRY(scratch.make(m, B, &E));
  if (!P.empty()) VLMQ_TRY(scratch.make(m, B, &source));
  VLMQ_TRY(scratch.upload(std::vector<double>(m, 0.0), &row_loss));
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
    block.Q = s.Q;
    block.codes = s.codes;
    // [m, count] views packed at the start of the [m, B] scratch (the last block is narrower).
    block.E = {E.data, m, count, count, E.device};
    block.Psource = P.empty() ? MatF{} : MatF{source.data, m, count, count, source.device};
    block.psource_prequant = options.gptaq_prequant_lazy;
    block.row_loss = row_loss;
    VLMQ_TRY(backend.sweep_block(block));

    // The lazy batch update of all later columns: the far columns first and the next block
    // last, so that the next block is still in cache when its sweep starts.
    const int64_t next = std::min(B, n - i2);
    VLMQ_TRY(lazy_update(backend, s, block, i1, count, i2 + next, n - i2 - next));
    VLMQ_TRY(lazy_update(backend, s, block, i1, count, i2, next));
    if (control.progress) control.progress(i2, n);
  }
  std::vector<double> losses;
  VLMQ_TRY(download_vector(backend, row_loss, &losses));
  double total = 0;
  for (double l : losses) total += l;
  *loss = total / 2;
  return Status::Ok();
}

Status gptq_quantize(Backend& backend, const SweepState& s, const LinearOptions& options,
                     const RunControl& control, double* loss) {
  return column_sweep(backend, s, MatF{}, options, control, loss);
}

}  // namespace vlmq
