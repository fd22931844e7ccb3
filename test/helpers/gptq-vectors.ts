// Seeded quantized layers for the GPTQ pack/unpack tests: integer codes, zero points, g_idx and
// scales that are float16 values by construction (integer mantissa × power of two), so no part
// of the test data depends on lib/tensor.ts or on the packer under test.

import { mulberry32 } from '../reference/oracle.js';

export type Bits = 2 | 3 | 4 | 8;

export interface QuantizedLayer {
  codes: Uint8Array;
  scales: Float32Array;
  zeros: Int32Array;
  gIdx: Int32Array;
  rows: number;
  cols: number;
  groups: number;
  bits: Bits;
}

/** A seedable PRNG giving floats in [0, 1) (the oracle's mulberry32). */
export const rng = mulberry32;

export function randInt(next: () => number, lo: number, hi: number): number {
  return lo + Math.floor(next() * (hi - lo + 1));
}

/**
 * A float16 value: normal ones are m · 2^(e − 10) with an 11-bit significand m ∈ [1024, 2047]
 * and e ∈ [−14, 3]; one in eight is a subnormal m · 2^−24 with m ∈ [1, 1023].
 */
export function randomF16(next: () => number): number {
  if (next() < 0.125) return randInt(next, 1, 1023) * 2 ** -24;
  return randInt(next, 1024, 2047) * 2 ** (randInt(next, -14, 3) - 10);
}

export interface LayerOptions {
  rows: number;
  cols: number;
  groups: number;
  bits: Bits;
  seed?: number;
  /** 'random' (default), 'zero' (all codes 0) or 'max' (all codes 2^bits − 1). */
  codes?: 'random' | 'zero' | 'max';
  /** Smallest zero point drawn; v1 needs ≥ 1. Default 1. */
  minZero?: number;
  /** Scatter columns over groups through a random permutation, as act-order does. */
  actOrder?: boolean;
}

/** g_idx of a layer: k // groupSize in natural order, or the permuted-order group (act-order, §2.5). */
export function makeGIdx(cols: number, groups: number, next: (() => number) | null): Int32Array {
  const groupSize = Math.ceil(cols / groups);
  const perm = Array.from({ length: cols }, (_, i) => i);
  if (next) {
    for (let i = cols - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
  }
  const gIdx = new Int32Array(cols);
  for (let i = 0; i < cols; i++) gIdx[perm[i]] = Math.floor(i / groupSize);
  return gIdx;
}

export function randomLayer(o: LayerOptions): QuantizedLayer {
  const next = rng(o.seed ?? 1);
  const maxq = 2 ** o.bits - 1;
  const minZero = o.minZero ?? 1;
  const codes = new Uint8Array(o.rows * o.cols);
  for (let i = 0; i < codes.length; i++) {
    codes[i] = o.codes === 'zero' ? 0 : o.codes === 'max' ? maxq : randInt(next, 0, maxq);
  }
  const zeros = new Int32Array(o.rows * o.groups);
  for (let i = 0; i < zeros.length; i++) zeros[i] = randInt(next, minZero, maxq);
  const scales = new Float32Array(o.rows * o.groups);
  for (let i = 0; i < scales.length; i++) scales[i] = randomF16(next);
  const gIdx = makeGIdx(o.cols, o.groups, o.actOrder ? next : null);
  return { codes, scales, zeros, gIdx, rows: o.rows, cols: o.cols, groups: o.groups, bits: o.bits };
}

/** fround(scale · (code − zero)) per weight, [rows, cols], straight from the definition. */
export function referenceDequant(q: QuantizedLayer): Float32Array {
  const out = new Float32Array(q.rows * q.cols);
  for (let n = 0; n < q.rows; n++) {
    for (let k = 0; k < q.cols; k++) {
      const g = q.gIdx[k];
      out[n * q.cols + k] = Math.fround(q.scales[n * q.groups + g] * (q.codes[n * q.cols + k] - q.zeros[n * q.groups + g]));
    }
  }
  return out;
}

/** A layer with every code, zero and scale set to constants (for known-answer vectors). */
export function constantLayer(rows: number, cols: number, bits: Bits, zero: number): QuantizedLayer {
  return {
    codes: new Uint8Array(rows * cols),
    scales: new Float32Array(rows).fill(1),
    zeros: new Int32Array(rows).fill(zero),
    gIdx: new Int32Array(cols),
    rows,
    cols,
    groups: 1,
    bits,
  };
}
