// Unpacker for GPTQ checkpoint tensors (docs/formats.md §2.1–§2.5), written the way loaders read
// them: per-width shift tables applied word by word (AutoGPTQ's `wf` tensor), and for 3-bit the
// three-row shift table with explicit repair of the two values that straddle words 0/1 and 1/2.
//
// `vlmq verify` uses this to check exported checkpoints against the fake-quantized weights, so it
// is intentionally independent of lib/export/gptq-pack.ts (no shared helpers beyond lib/tensor.ts):
// a packing bug cannot be cancelled out by the same bug in the reader.

import { invalidParameterError } from '../errors.js';
import { f16ToF32 } from '../tensor.js';

export type GptqUnpackBits = 2 | 3 | 4 | 8;
export type GptqUnpackFormat = 'gptq' | 'gptq_v2';

/** The four tensors of one quantized Linear as stored in the checkpoint. */
export interface GptqTensors {
  /** I32 [cols·bits/32, rows] */
  qweight: Int32Array;
  /** I32 [groups, rows·bits/32] */
  qzeros: Int32Array;
  /** F16 bit patterns [groups, rows] */
  scales: Uint16Array;
  /** I32 [cols] */
  gIdx: Int32Array;
}

export interface GptqLayerShape {
  /** N, output features */
  rows: number;
  /** K, input features */
  cols: number;
  groups: number;
  bits: GptqUnpackBits;
}

export interface GptqUnpackedLinear {
  /** Integer codes [rows, cols], row-major, original column order. */
  codes: Uint8Array;
  /** Actual zero points [rows, groups] (v1: stored + 1, which may reach 2^bits for a wrapped word). */
  zeros: Int32Array;
  /** Scales as numbers [rows, groups]. */
  scales: Float32Array;
  /** g_idx [cols] as read. */
  gIdx: Int32Array;
  /** [rows, cols]: fround(scale[n][g_idx[k]] · (code[n][k] − zero[n][g_idx[k]])). */
  dequantize(): Float32Array;
}

// Shift tables for the widths whose values never straddle a word: value j of a word at bit j·b.
const SHIFTS: Readonly<Record<2 | 4 | 8, readonly number[]>> = {
  2: [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30],
  4: [0, 4, 8, 12, 16, 20, 24, 28],
  8: [0, 8, 16, 24],
};

// 3-bit: 32 values in 3 words. Whole values in each word and their shifts; the straddlers
// (value 10: bits 30–31 of word 0 + bit 0 of word 1; value 21: bit 31 of word 1 + bits 0–1 of
// word 2) are assembled separately.
const WORD0_SHIFTS = [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]; // values 0–9
const WORD1_SHIFTS = [1, 4, 7, 10, 13, 16, 19, 22, 25, 28]; // values 11–20
const WORD2_SHIFTS = [2, 5, 8, 11, 14, 17, 20, 23, 26, 29]; // values 22–31

/**
 * Reads `count` b-bit values (count a multiple of 32) from words `words[offset + w·stride]`,
 * storing value i into `out[outOffset + i·outStride]`.
 */
function readFields(
  words: Int32Array, offset: number, stride: number, count: number, bits: GptqUnpackBits,
  out: Uint8Array | Int32Array, outOffset: number, outStride: number,
): void {
  if (bits === 3) {
    for (let block = 0; block < count / 32; block++) {
      const w0 = words[offset + (3 * block) * stride];
      const w1 = words[offset + (3 * block + 1) * stride];
      const w2 = words[offset + (3 * block + 2) * stride];
      const base = outOffset + 32 * block * outStride;
      for (let j = 0; j < 10; j++) out[base + j * outStride] = (w0 >>> WORD0_SHIFTS[j]) & 0x7;
      out[base + 10 * outStride] = ((w0 >>> 30) & 0x3) | ((w1 << 2) & 0x4);
      for (let j = 0; j < 10; j++) out[base + (11 + j) * outStride] = (w1 >>> WORD1_SHIFTS[j]) & 0x7;
      out[base + 21 * outStride] = ((w1 >>> 31) & 0x1) | ((w2 << 1) & 0x6);
      for (let j = 0; j < 10; j++) out[base + (22 + j) * outStride] = (w2 >>> WORD2_SHIFTS[j]) & 0x7;
    }
    return;
  }
  const shifts = SHIFTS[bits];
  const perWord = shifts.length;
  const mask = (1 << bits) - 1;
  for (let w = 0; w < count / perWord; w++) {
    const word = words[offset + w * stride];
    const base = outOffset + w * perWord * outStride;
    for (let j = 0; j < perWord; j++) out[base + j * outStride] = (word >>> shifts[j]) & mask;
  }
}

function checkShape(shape: GptqLayerShape): void {
  if (shape === null || typeof shape !== 'object') throw invalidParameterError('shape', 'an object { rows, cols, groups, bits }', shape);
  const { rows, cols, groups, bits } = shape;
  if (bits !== 2 && bits !== 3 && bits !== 4 && bits !== 8) throw invalidParameterError('shape.bits', 'one of 2, 3, 4, 8', bits);
  const pack = bits === 3 ? 32 : 32 / bits; // values per whole number of words
  if (!Number.isSafeInteger(rows) || rows < 1) throw invalidParameterError('shape.rows (N)', 'a positive integer', rows);
  if (!Number.isSafeInteger(cols) || cols < 1) throw invalidParameterError('shape.cols (K)', 'a positive integer', cols);
  if (cols % pack !== 0) throw invalidParameterError('shape.cols (K)', `a multiple of ${pack} for ${bits}-bit GPTQ (K·${bits} must fill whole int32 words)`, cols);
  if (rows % pack !== 0) throw invalidParameterError('shape.rows (N)', `a multiple of ${pack} for ${bits}-bit GPTQ (N·${bits} must fill whole int32 words)`, rows);
  if (!Number.isSafeInteger(groups) || groups < 1 || groups > cols) throw invalidParameterError('shape.groups', `an integer in [1, ${cols}]`, groups);
}

function checkTensor(name: string, value: unknown, Type: Int32ArrayConstructor | Uint16ArrayConstructor, dims: [number, number] | [number]): void {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (!(value instanceof Type)) throw invalidParameterError(name, `a ${Type.name} of ${expected} elements [${dims.join(', ')}]`, value);
  if (value.length !== expected) throw invalidParameterError(name, `${expected} elements ([${dims.join(', ')}])`, value);
}

/**
 * Unpacks the GPTQ tensors of one layer into codes [N, K], actual zero points [N, G] and scales
 * [N, G]; `dequantize()` gives scale · (code − zero) per weight. Format 'gptq' (v1) adds 1 to
 * the stored zeros, 'gptq_v2' uses them as they are.
 */
export function unpackGptqLinear(t: GptqTensors, shape: GptqLayerShape, format: GptqUnpackFormat): GptqUnpackedLinear {
  if (format !== 'gptq' && format !== 'gptq_v2') throw invalidParameterError('format', '"gptq" (v1) or "gptq_v2"', format);
  checkShape(shape);
  if (t === null || typeof t !== 'object') throw invalidParameterError('tensors', 'an object { qweight, qzeros, scales, gIdx }', t);
  const { rows: N, cols: K, groups: G, bits } = shape;
  checkTensor('qweight', t.qweight, Int32Array, [(K * bits) / 32, N]);
  checkTensor('qzeros', t.qzeros, Int32Array, [G, (N * bits) / 32]);
  checkTensor('scales', t.scales, Uint16Array, [G, N]);
  checkTensor('g_idx', t.gIdx, Int32Array, [K]);

  const gIdx = Int32Array.from(t.gIdx);
  for (let k = 0; k < K; k++) {
    if (gIdx[k] < 0 || gIdx[k] >= G) throw invalidParameterError(`g_idx[${k}]`, `a group index in [0, ${G - 1}]`, gIdx[k]);
  }

  // qweight column n holds the K codes of output row n: read down dim 0 (stride N)
  const codes = new Uint8Array(N * K);
  for (let n = 0; n < N; n++) readFields(t.qweight, n, N, K, bits, codes, n * K, 1);

  // qzeros row g holds the N stored zeros of group g; transpose into [N, G]
  const zeroWords = (N * bits) / 32;
  const zeros = new Int32Array(N * G);
  for (let g = 0; g < G; g++) readFields(t.qzeros, g * zeroWords, 1, N, bits, zeros, g, G);
  if (format === 'gptq') for (let i = 0; i < zeros.length; i++) zeros[i] += 1;

  const scales = new Float32Array(N * G);
  for (let g = 0; g < G; g++) {
    for (let n = 0; n < N; n++) scales[n * G + g] = f16ToF32(t.scales[g * N + n]);
  }

  return {
    codes,
    zeros,
    scales,
    gIdx,
    dequantize(): Float32Array {
      const out = new Float32Array(N * K);
      for (let n = 0; n < N; n++) {
        for (let k = 0; k < K; k++) {
          const g = gIdx[k];
          out[n * K + k] = scales[n * G + g] * (codes[n * K + k] - zeros[n * G + g]);
        }
      }
      return out;
    },
  };
}
