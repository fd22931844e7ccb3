// Packer for the GPTQ checkpoint format (docs/formats.md §2.1–§2.5): turns one quantized linear
// layer (integer codes, fp16 scales, integer zero points, g_idx) into the four tensors a GPTQ
// loader reads — qweight, qzeros, scales and g_idx.
//
// One generic bit-stream rule serves every width (§2.3): per block of 32 values, value k sits at
// bit offset k·b of a little-endian stream of b 32-bit words. For b ∈ {2, 4, 8} this is the
// familiar "32/b values per word, first value in the least significant bits"; for b = 3 it is
// AutoGPTQ's three-word layout with values 10 and 21 straddling word boundaries.
//
// This file is deliberately not shared with lib/export/gptq-unpack.ts: `vlmq verify` checks exported
// checkpoints with that independent unpacker, so a bug here cannot hide behind the same bug there.

import { invalidParameterError } from '../errors.js';
import { f16ToF32, f32ToF16 } from '../tensor.js';

/** Bit widths the GPTQ format (and its loaders) define a continuous int32 layout for. */
export const GPTQ_BITS = [2, 3, 4, 8] as const;
export type GptqBits = (typeof GPTQ_BITS)[number];

/** `checkpoint_format` values: v1 stores zero − 1, v2 stores the zero itself (§2.4). */
export const GPTQ_FORMATS = ['gptq', 'gptq_v2'] as const;
export type GptqFormat = (typeof GPTQ_FORMATS)[number];

/** One quantized linear layer W [rows = N out, cols = K in], as the quantizer produces it. */
export interface GptqLinearInput {
  /** Integer codes in [0, 2^bits − 1], [rows, cols] row-major, original column order. */
  codes: Uint8Array;
  /** [rows, groups]; every value must be exactly representable in float16. */
  scales: Float32Array;
  /** Integer zero points in [0, 2^bits − 1], [rows, groups]. */
  zeros: Int32Array | Float32Array | Uint8Array;
  /** Group of each input column, [cols], values in [0, groups). Non-monotonic with act-order. */
  gIdx: Int32Array;
  rows: number;
  cols: number;
  groups: number;
  bits: GptqBits;
}

/** The packed tensors of one layer, ready to be written as I32 / F16 safetensors tensors. */
export interface GptqPackedLinear {
  /** I32 [cols·bits/32, rows]: codes packed down K (dim 0) for each output column. */
  qweight: Int32Array;
  /** I32 [groups, rows·bits/32]: (zero − 1 in v1, zero in v2) packed across N for each group. */
  qzeros: Int32Array;
  /** F16 bit patterns [groups, rows]. */
  scales: Uint16Array;
  /** I32 [cols]: a copy of the input g_idx. */
  gIdx: Int32Array;
}

/** Shapes of the four tensors of a packed layer (safetensors `shape` fields). */
export interface GptqShapes {
  qweight: [number, number];
  qzeros: [number, number];
  scales: [number, number];
  gIdx: [number];
}

/** Smallest multiple of which K (and N) must be so that K·b fills whole 32-bit words. */
function dimensionMultiple(bits: GptqBits): number {
  // K·b ≡ 0 (mod 32) ⟺ K ≡ 0 (mod 32 / gcd(b, 32)): 16 for 2-bit, 32 for 3-bit, 8 for 4-bit, 4 for 8-bit
  return bits === 3 ? 32 : 32 / bits;
}

function checkLayout(rows: unknown, cols: unknown, groups: unknown, bits: unknown): void {
  if (typeof bits !== 'number' || !(GPTQ_BITS as readonly number[]).includes(bits)) {
    throw invalidParameterError('bits', 'one of 2, 3, 4, 8', bits);
  }
  const b = bits as GptqBits;
  const multiple = dimensionMultiple(b);
  const why = b === 3
    ? '3-bit packs 32 values into 3 int32 words'
    : `${b}-bit packs ${32 / b} values per int32 word`;
  if (typeof rows !== 'number' || !Number.isSafeInteger(rows) || rows < 1) {
    throw invalidParameterError('rows (N, output features)', 'a positive integer', rows);
  }
  if (typeof cols !== 'number' || !Number.isSafeInteger(cols) || cols < 1) {
    throw invalidParameterError('cols (K, input features)', 'a positive integer', cols);
  }
  if (cols % multiple !== 0) {
    throw invalidParameterError(
      'cols (K, input features)',
      `a multiple of ${multiple} for ${b}-bit GPTQ (qweight packs K down dim 0: K·${b} must be a multiple of 32; ${why})`,
      cols,
    );
  }
  if (rows % multiple !== 0) {
    throw invalidParameterError(
      'rows (N, output features)',
      `a multiple of ${multiple} for ${b}-bit GPTQ (qzeros packs N across dim 1: N·${b} must be a multiple of 32; ${why})`,
      rows,
    );
  }
  if (typeof groups !== 'number' || !Number.isSafeInteger(groups) || groups < 1 || groups > cols) {
    throw invalidParameterError('groups', `an integer in [1, ${cols}] (cols)`, groups);
  }
}

/**
 * Shapes of qweight, qzeros, scales and g_idx for a layer of `rows` outputs (N) and `cols`
 * inputs (K) with `groups` quantization groups. Throws when the dimensions cannot be packed.
 */
export function gptqShapes(rows: number, cols: number, groups: number, bits: GptqBits): GptqShapes {
  checkLayout(rows, cols, groups, bits);
  return {
    qweight: [(cols * bits) / 32, rows],
    qzeros: [groups, (rows * bits) / 32],
    scales: [groups, rows],
    gIdx: [cols],
  };
}

/**
 * Writes `count` values (a multiple of 32), read from `src[srcOffset + i·srcStride] + bias`, as a
 * little-endian bit stream of b-bit fields into `count·b/32` words placed at
 * `dst[dstOffset + w·dstStride]`. Value i lands at bit (i·b) mod 32 of word ⌊i·b/32⌋; a field
 * that crosses a word boundary (3-bit only) puts its low bits in the first word, its high bits
 * in the next.
 */
function packStream(
  src: ArrayLike<number>, srcOffset: number, srcStride: number, count: number, bias: number,
  bits: number, dst: Int32Array, dstOffset: number, dstStride: number,
): void {
  const words = (count * bits) / 32;
  let word = 0; // current word, as 32 bits (bitwise ops keep it an int32 bit pattern)
  let filled = 0; // bits of `word` already written
  let w = 0;
  for (let i = 0; i < count; i++) {
    const value = src[srcOffset + i * srcStride] + bias; // checked to lie in [0, 2^b − 1]
    word |= value << filled;
    filled += bits;
    if (filled >= 32) {
      dst[dstOffset + w * dstStride] = word;
      w++;
      filled -= 32;
      // the high bits of a straddling value open the next word (>>> 32 would be >>> 0: guard it)
      word = filled > 0 ? value >>> (bits - filled) : 0;
    }
  }
  if (w !== words || filled !== 0) throw new Error(`internal: packed ${w} words and ${filled} bits, expected ${words} words`);
}

function checkArray(name: string, value: unknown, types: readonly (new (n: number) => ArrayLike<number>)[], length: number, shape: string): void {
  if (!types.some((T) => value instanceof T)) {
    throw invalidParameterError(name, `a ${types.map((T) => T.name).join(' or ')}`, value);
  }
  if ((value as ArrayLike<number>).length !== length) {
    throw invalidParameterError(name, `${length} elements (${shape})`, value);
  }
}

/**
 * Packs one quantized linear layer into the GPTQ tensors (docs/formats.md §2.1–§2.5).
 *
 * `format` 'gptq' (v1) stores zero − 1 and therefore cannot hold a zero point of 0 (it throws,
 * naming the row and group, rather than change the weights); 'gptq_v2' stores the zero itself.
 * Scales must already be float16 values; codes and zeros must lie in [0, 2^bits − 1].
 */
export function packGptqLinear(q: GptqLinearInput, format: GptqFormat): GptqPackedLinear {
  if (typeof format !== 'string' || !(GPTQ_FORMATS as readonly string[]).includes(format)) {
    throw invalidParameterError('format', '"gptq" (v1) or "gptq_v2"', format);
  }
  if (q === null || typeof q !== 'object') throw invalidParameterError('quantized layer', 'an object', q);
  const { rows: N, cols: K, groups: G, bits } = q;
  checkLayout(N, K, G, bits);
  const maxq = (1 << bits) - 1;

  checkArray('codes', q.codes, [Uint8Array], N * K, `[rows ${N}, cols ${K}]`);
  checkArray('scales', q.scales, [Float32Array], N * G, `[rows ${N}, groups ${G}]`);
  checkArray('zeros', q.zeros, [Int32Array, Float32Array, Uint8Array], N * G, `[rows ${N}, groups ${G}]`);
  checkArray('gIdx', q.gIdx, [Int32Array], K, `[cols ${K}]`);

  const { codes, scales, zeros, gIdx } = q;
  for (let i = 0; i < codes.length; i++) {
    if (codes[i] > maxq) {
      throw invalidParameterError(
        `codes[${i}] (row ${Math.floor(i / K)}, column ${i % K})`, `an integer in [0, ${maxq}] for ${bits}-bit`, codes[i]);
    }
  }
  for (let k = 0; k < K; k++) {
    if (gIdx[k] < 0 || gIdx[k] >= G) throw invalidParameterError(`gIdx[${k}]`, `a group index in [0, ${G - 1}]`, gIdx[k]);
  }
  const v1 = format === 'gptq';
  for (let i = 0; i < zeros.length; i++) {
    const z = zeros[i];
    const where = `zeros[${i}] (row ${Math.floor(i / G)}, group ${i % G})`;
    if (!Number.isInteger(z) || z < 0 || z > maxq) throw invalidParameterError(where, `an integer in [0, ${maxq}] for ${bits}-bit`, z);
    if (v1 && z === 0) {
      throw invalidParameterError(
        where,
        `a zero point in [1, ${maxq}] for checkpoint format "gptq" (v1 stores zero − 1, so a zero of 0 cannot be ` +
          'stored and would silently change the dequantized weights; use format "gptq_v2", which stores the zero itself)',
        z,
      );
    }
  }

  // scales [N, G] → F16 bits [G, N]
  const scaleBits = new Uint16Array(G * N);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < G; g++) {
      const s = scales[n * G + g];
      const h = f32ToF16(s);
      if (!Number.isFinite(s) || f16ToF32(h) !== s) {
        throw invalidParameterError(
          `scales[${n * G + g}] (row ${n}, group ${g})`,
          'a finite value exactly representable in float16 (round scales to fp16 before computing the codes)', s);
      }
      scaleBits[g * N + n] = h;
    }
  }

  // qweight [K·b/32, N]: for each output column n, the K codes of row n of W packed down dim 0
  const qweight = new Int32Array(((K * bits) / 32) * N);
  for (let n = 0; n < N; n++) packStream(codes, n * K, 1, K, 0, bits, qweight, n, N);

  // qzeros [G, N·b/32]: for each group, the N zero points packed across dim 1
  const zeroWords = (N * bits) / 32;
  const qzeros = new Int32Array(G * zeroWords);
  for (let g = 0; g < G; g++) packStream(zeros, g, G, N, v1 ? -1 : 0, bits, qzeros, g * zeroWords, 1);

  return { qweight, qzeros, scales: scaleBits, gIdx: Int32Array.from(gIdx) };
}
