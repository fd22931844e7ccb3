// Packing calibration samples into batches: consecutive samples whose tokens add up to at most
// a budget, concatenated row-wise with their boundaries (each sample attends only to itself).
import type { PackedTokens } from './decoder-layer.js';

export interface Batch extends PackedTokens {
  /** Samples in the batch, in order. */
  samples: number[];
  /** Token offset of each sample within the batch (segments without the last entry). */
  offsets: number[];
  /** Offset of the batch's first token among all tokens of the calibration set. */
  firstToken: number;
}

/**
 * Batches of consecutive samples with at most `maxTokens` tokens (a longer sample is a batch of
 * its own). positions[i] holds sample i's ids: [T_i] or [3, T_i] component-major.
 */
export function packBatches(positions: readonly Int32Array[], tokens: readonly number[], positionRows: 1 | 3, maxTokens: number): Batch[] {
  const batches: Batch[] = [];
  let start = 0, first = 0;
  while (start < tokens.length) {
    let end = start + 1, total = tokens[start];
    while (end < tokens.length && total + tokens[end] <= maxTokens) total += tokens[end++];
    const samples = Array.from({ length: end - start }, (_, k) => start + k);
    const offsets: number[] = [];
    let o = 0;
    for (const s of samples) {
      offsets.push(o);
      o += tokens[s];
    }
    batches.push({
      samples,
      offsets,
      firstToken: first,
      tokens: total,
      segments: Int32Array.from([...offsets, total]),
      positions: concatPositions(samples.map((s) => positions[s]), samples.map((s) => tokens[s]), positionRows),
    });
    first += total;
    start = end;
  }
  return batches;
}

/** [rows, T] component-major arrays of several samples → one [rows, ΣT] array. */
function concatPositions(parts: Int32Array[], lengths: number[], rows: 1 | 3): Int32Array {
  const total = lengths.reduce((a, b) => a + b, 0);
  const out = new Int32Array(rows * total);
  for (let r = 0; r < rows; r++) {
    let o = 0;
    for (const [k, part] of parts.entries()) {
      out.set(part.subarray(r * lengths[k], (r + 1) * lengths[k]), r * total + o);
      o += lengths[k];
    }
  }
  return out;
}

/** The rows of one batch gathered from per-sample arrays. */
export function gather(batch: Batch, rows: Float32Array[], width: number): Float32Array {
  if (rows.length === 1) return rows[0];
  const out = new Float32Array(batch.tokens * width);
  for (const [k, r] of rows.entries()) out.set(r, batch.offsets[k] * width);
  return out;
}

/** A batch's rows split back into its samples (views, no copies). */
export function scatter(batch: Batch, data: Float32Array, width: number): Float32Array[] {
  return batch.samples.map((_, k) => {
    const end = k + 1 < batch.offsets.length ? batch.offsets[k + 1] : batch.tokens;
    return data.subarray(batch.offsets[k] * width, end * width);
  });
}
