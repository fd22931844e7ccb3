// RoPE position ids of a calibration sample (docs/formats.md §3.5).
//
// Qwen2-VL and Qwen2.5-VL use M-RoPE: every token has three position components (temporal,
// height, width). Text tokens carry the same ordinary 1-D position in all three; the tokens of an
// image carry (s + t, s + row, s + col) of their place on the merged grid, where s is the position
// the image starts at, and the text after the image continues at the largest position the image
// used + 1. That is `get_rope_index` of transformers for images (Δt = 1). LLaVA-OneVision uses
// plain 1-D positions 0, 1, 2, …
//
// Layout: M-RoPE positions are returned component-major, [3, T] row-major: positions[c·T + j] is
// component c (0 temporal, 1 height, 2 width) of token j — the layout of the bundle's
// `samples.{i}.positions` tensor and of the model's `position_ids[:, 0, :]`.

import { invalidParameterError } from '../errors.js';

/** A run of text tokens (chat-template text, special tokens such as `<|vision_start|>` included). */
export interface TextPart {
  kind: 'text';
  length: number;
}

/**
 * The `<|image_pad|>` tokens of one image, on the **merged** grid (after the 2×2 patch merge):
 * an image of `image_grid_thw = (t, H, W)` has gridT = t, gridH = H/2, gridW = W/2 and occupies
 * gridT·gridH·gridW tokens (docs/formats.md §3.7–§3.8).
 */
export interface ImagePart {
  kind: 'image';
  /** Temporal grid; 1 for every image (default). */
  gridT?: number;
  gridH: number;
  gridW: number;
}

export type PositionPart = TextPart | ImagePart;

export interface MropePositions {
  /** [3, T] component-major: temporal row, then height row, then width row. */
  positions: Int32Array;
  /** Where a token appended after the last part would start (max position used + 1). */
  nextPosition: number;
}

/** Tokens a part occupies. */
export function partTokens(part: PositionPart): number {
  return part.kind === 'text' ? part.length : (part.gridT ?? 1) * part.gridH * part.gridW;
}

/**
 * M-RoPE position ids of a sequence made of text runs and images, exactly as `get_rope_index`
 * computes them for images (docs/formats.md §3.5):
 *  - a text run of length n starting at s gets s, s+1, …, s+n−1 in all three components; the next
 *    part starts at s + n;
 *  - an image of merged grid (t, h, w) starting at s gets (s + ti, s + hi, s + wi) for its tokens in
 *    raster order (t outermost, then rows, then columns); the next part starts at the largest
 *    position used + 1 = s + max(t, h, w).
 * `start` is the position of the first token (0 for a whole sequence).
 */
export function mropePositions(parts: readonly PositionPart[], start = 0): MropePositions {
  if (!Array.isArray(parts)) throw invalidParameterError('parts', 'an array of { kind: "text", length } or { kind: "image", gridH, gridW }', parts);
  checkPosition('start', start);
  const checked = parts.map(checkPart);
  const total = checked.reduce((sum, part) => sum + partTokens(part), 0);
  const positions = new Int32Array(3 * total);
  const temporal = positions.subarray(0, total);
  const height = positions.subarray(total, 2 * total);
  const width = positions.subarray(2 * total, 3 * total);
  let next = start;
  let j = 0;
  for (const part of checked) {
    if (part.kind === 'text') {
      for (let k = 0; k < part.length; k++, j++) temporal[j] = height[j] = width[j] = next + k;
      next += part.length;
    } else {
      const gridT = part.gridT ?? 1;
      for (let ti = 0; ti < gridT; ti++) {
        for (let hi = 0; hi < part.gridH; hi++) {
          for (let wi = 0; wi < part.gridW; wi++, j++) {
            temporal[j] = next + ti;
            height[j] = next + hi;
            width[j] = next + wi;
          }
        }
      }
      next += Math.max(gridT, part.gridH, part.gridW);
    }
    checkPosition('the largest position', next - 1);
  }
  return { positions, nextPosition: next };
}

/** 1-D positions start, start+1, …, start+T−1 (LLaVA-OneVision; text-only sequences). */
export function sequentialPositions(T: number, start = 0): Int32Array {
  if (!Number.isSafeInteger(T) || T < 0) throw invalidParameterError('T', 'a non-negative integer', T);
  checkPosition('start', start);
  checkPosition('the largest position', start + T - 1);
  const positions = new Int32Array(T);
  for (let j = 0; j < T; j++) positions[j] = start + j;
  return positions;
}

/** Modality mask of a sequence of parts: 0 for text tokens, 1 for image tokens. */
export function modalityMask(parts: readonly PositionPart[]): Uint8Array {
  if (!Array.isArray(parts)) throw invalidParameterError('parts', 'an array of text and image parts', parts);
  const checked = parts.map(checkPart);
  const mask = new Uint8Array(checked.reduce((sum, part) => sum + partTokens(part), 0));
  let j = 0;
  for (const part of checked) {
    const n = partTokens(part);
    if (part.kind === 'image') mask.fill(1, j, j + n);
    j += n;
  }
  return mask;
}

function checkPart(part: PositionPart, index: number): PositionPart {
  const where = `parts[${index}]`;
  if (typeof part !== 'object' || part === null) throw invalidParameterError(where, 'a { kind: "text" } or { kind: "image" } part', part);
  if (part.kind === 'text') {
    if (!Number.isSafeInteger(part.length) || part.length < 0) throw invalidParameterError(`length of ${where}`, 'a non-negative integer', part.length);
  } else if (part.kind === 'image') {
    const gridT = part.gridT ?? 1;
    for (const [name, value] of [['gridT', gridT], ['gridH', part.gridH], ['gridW', part.gridW]] as const) {
      if (!Number.isSafeInteger(value) || value < 1) throw invalidParameterError(`${name} of ${where}`, 'a positive integer (the merged grid, after the 2×2 merge)', value);
    }
    if (gridT * part.gridH * part.gridW > 2 ** 31 - 1) throw invalidParameterError(`grid of ${where}`, 'fewer than 2^31 tokens', gridT * part.gridH * part.gridW);
  } else {
    throw invalidParameterError(`kind of ${where}`, '"text" or "image"', (part as { kind?: unknown }).kind);
  }
  return part;
}

/** Positions are stored as I32; `start` must be ≥ 0 (the largest position of nothing is start − 1). */
function checkPosition(name: string, value: number): void {
  const lowest = name === 'start' ? 0 : -1;
  if (!Number.isSafeInteger(value) || value < lowest || value > 2 ** 31 - 1) {
    throw invalidParameterError(name, 'a non-negative integer that fits in an int32 position id', value);
  }
}
