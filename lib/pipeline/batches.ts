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
 * Runs of consecutive samples [start, end) with at most `maxTokens` tokens in all (a longer sample
 * is a run of its own): the batches' samples, known before any sample is read.
 */
export function batchRanges(tokens: readonly number[], maxTokens: number): [number, number][] {
  const ranges: [number, number][] = [];
  for (let start = 0; start < tokens.length;) {
    let end = start + 1, total = tokens[start];
    while (end < tokens.length && total + tokens[end] <= maxTokens) total += tokens[end++];
    ranges.push([start, end]);
    start = end;
  }
  return ranges;
}

/**
 * Batches of consecutive samples with at most `maxTokens` tokens (batchRanges).
 * positions[i] holds sample i's ids: [T_i] or [3, T_i] component-major.
 */
export function packBatches(positions: readonly Int32Array[], tokens: readonly number[], positionRows: 1 | 3, maxTokens: number): Batch[] {
  let first = 0;
  return batchRanges(tokens, maxTokens).map(([start, end]) => {
    const samples = Array.from({ length: end - start }, (_, k) => start + k);
    const offsets: number[] = [];
    let total = 0;
    for (const s of samples) {
      offsets.push(total);
      total += tokens[s];
    }
    const batch = {
      samples,
      offsets,
      firstToken: first,
      tokens: total,
      segments: Int32Array.from([...offsets, total]),
      positions: concatPositions(samples.map((s) => positions[s]), samples.map((s) => tokens[s]), positionRows),
    };
    first += total;
    return batch;
  });
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

/** The rows of a batch's samples, one after the other (the first array itself when alone). */
export function concatRows(rows: readonly Float32Array[]): Float32Array {
  if (rows.length === 1) return rows[0];
  const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let offset = 0;
  for (const r of rows) {
    out.set(r, offset);
    offset += r.length;
  }
  return out;
}
