// Seeded synthetic calibration data in the VLMQ setting (docs/algorithm.md §4 and "Measuring
// VLMQ's effect"): many redundant vision tokens and few informative text tokens.
//
// Each sample is   [text: ⌈textTokens/2⌉] [image: h·w tokens] [text: ⌊textTokens/2⌋]
// with positions from data/positions.ts (M-RoPE as get_rope_index computes them, or 1-D) and the
// modality mask (0 text, 1 image). Embeddings are F32:
//  - text tokens are isotropic: every coordinate N(0, scale²);
//  - one global "vision subspace" of dimension `visionSubspace` (default min(H, 4·visionRank)) is
//    drawn once per seed; each sample draws `visionRank` base vectors inside it, with the same
//    expected norm as a text token (√H·scale);
//  - the image is cut into `visionRank` spatially contiguous regions (the Voronoi cells of random
//    grid cells, like objects and background), and every token of a region is its base vector plus
//    isotropic noise N(0, (visionNoise·scale)²) — near-duplicates, as neighbouring patches of a
//    real image are after the vision tower.
// So image tokens dominate the count (a 448×448 image is 256 tokens against a few dozen of prompt)
// while a sample's image tokens span ≤ visionRank directions up to noise, and all samples' image
// tokens together span ≤ visionSubspace; text tokens span every direction.

import { MODALITY, type BundleSample } from '../data/bundle.js';
import { modalityMask, mropePositions, sequentialPositions, type PositionPart } from '../data/positions.js';
import { invalidParameterError } from '../errors.js';
import { Random } from '../random.js';

export interface SyntheticOptions {
  /** Number of samples (≥ 1). */
  samples: number;
  /** Hidden size H (≥ 1). */
  hidden: number;
  /** Text tokens per sample (≥ 0), ⌈n/2⌉ before the image and ⌊n/2⌋ after it. */
  textTokens: number;
  /** Merged grid [h, w] (after the 2×2 merge): h·w image tokens per sample. */
  imageGrid: readonly [number, number];
  /** M-RoPE [3, T] positions (Qwen2-VL / Qwen2.5-VL) when true, 1-D [T] (LLaVA-OneVision) when false. */
  mrope: boolean;
  /** Any safe integer; equal options and seed give bit-identical samples. */
  seed: number;
  /** Distinct base vectors per image (default 4; capped at h·w). */
  visionRank?: number;
  /** Noise of an image token around its base vector, relative to `scale` (default 0.05). */
  visionNoise?: number;
  /** Standard deviation of a text coordinate (default 1). */
  scale?: number;
  /** Dimension of the subspace all base vectors come from (default min(H, 4·visionRank)). */
  visionSubspace?: number;
}

/** Token counts of a set of samples, per modality. */
export interface SampleCounts {
  tokens: number;
  text: number;
  image: number;
  video: number;
}

export interface SamplesDescription extends SampleCounts {
  samples: number;
  /** image / tokens (0 for no tokens). */
  imageFraction: number;
  perSample: SampleCounts[];
}

/** Synthetic calibration samples (see the file comment for the distribution). */
export function syntheticSamples(options: SyntheticOptions): BundleSample[] {
  const o = checkOptions(options);
  const [gridH, gridW] = o.imageGrid;
  const imageTokens = gridH * gridW;
  const before = Math.ceil(o.textTokens / 2);
  const after = o.textTokens - before;
  const parts: PositionPart[] = [
    { kind: 'text', length: before },
    { kind: 'image', gridH, gridW },
    { kind: 'text', length: after },
  ];
  const tokens = o.textTokens + imageTokens;
  // Every sample has the same layout, so the positions and the mask are computed once (and copied).
  const positions = o.mrope ? mropePositions(parts).positions : sequentialPositions(tokens);
  const modality = modalityMask(parts);

  const rng = new Random(o.seed);
  const H = o.hidden;
  const subspace = orthonormalRows(rng, o.visionSubspace, H);
  const rank = Math.min(o.visionRank, imageTokens);
  const baseScale = o.scale * Math.sqrt(H / o.visionSubspace);
  const noise = o.visionNoise * o.scale;

  const samples: BundleSample[] = [];
  for (let s = 0; s < o.samples; s++) {
    // Base vectors: random combinations of the subspace's rows, E|b|² = H·scale².
    const bases: Float64Array[] = [];
    for (let k = 0; k < rank; k++) {
      const base = new Float64Array(H);
      for (let m = 0; m < o.visionSubspace; m++) {
        const z = rng.normal() * baseScale;
        const row = subspace[m];
        for (let c = 0; c < H; c++) base[c] += z * row[c];
      }
      bases.push(base);
    }
    const region = voronoiRegions(rng, gridH, gridW, rank);

    const data = new Float32Array(tokens * H);
    let image = 0;
    for (let j = 0; j < tokens; j++) {
      const row = data.subarray(j * H, (j + 1) * H);
      if (modality[j] === MODALITY.image) {
        const base = bases[region[image++]];
        for (let c = 0; c < H; c++) row[c] = base[c] + noise * rng.normal();
      } else {
        for (let c = 0; c < H; c++) row[c] = o.scale * rng.normal();
      }
    }
    samples.push({
      embeddings: { dtype: 'F32', shape: [tokens, H], data },
      positions: positions.slice(),
      modality: modality.slice(),
    });
  }
  return samples;
}

/** Token counts per modality, in total and per sample. */
export function describeSamples(samples: readonly BundleSample[]): SamplesDescription {
  if (!Array.isArray(samples)) throw invalidParameterError('samples', 'an array of samples', samples);
  const perSample = samples.map((sample, i) => {
    if (!(sample?.modality instanceof Uint8Array)) throw invalidParameterError(`modality of sample ${i}`, 'a Uint8Array', sample?.modality);
    const counts: SampleCounts = { tokens: sample.modality.length, text: 0, image: 0, video: 0 };
    for (const code of sample.modality) {
      if (code === MODALITY.text) counts.text++;
      else if (code === MODALITY.image) counts.image++;
      else if (code === MODALITY.video) counts.video++;
      else throw invalidParameterError(`modality of sample ${i}`, 'values 0 (text), 1 (image) or 2 (video)', code);
    }
    return counts;
  });
  const total = (key: keyof SampleCounts) => perSample.reduce((sum, counts) => sum + counts[key], 0);
  const tokens = total('tokens');
  const image = total('image');
  return { samples: samples.length, tokens, text: total('text'), image, video: total('video'), imageFraction: tokens === 0 ? 0 : image / tokens, perSample };
}

// --- pieces ---------------------------------------------------------------------------------

type CheckedOptions = Required<Omit<SyntheticOptions, 'imageGrid'>> & { imageGrid: [number, number] };

function checkOptions(options: SyntheticOptions): CheckedOptions {
  if (typeof options !== 'object' || options === null) throw invalidParameterError('options', 'an object', options);
  const integer = (name: keyof SyntheticOptions, value: unknown, min: number): number => {
    if (!Number.isSafeInteger(value) || (value as number) < min) throw invalidParameterError(name, `an integer ≥ ${min}`, value);
    return value as number;
  };
  const real = (name: keyof SyntheticOptions, value: unknown, positive: boolean): number => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (positive && value === 0)) {
      throw invalidParameterError(name, positive ? 'a finite number > 0' : 'a finite number ≥ 0', value);
    }
    return value;
  };
  const samples = integer('samples', options.samples, 1);
  const hidden = integer('hidden', options.hidden, 1);
  const textTokens = integer('textTokens', options.textTokens, 0);
  const grid = options.imageGrid;
  if (!Array.isArray(grid) || grid.length !== 2 || !grid.every((d) => Number.isSafeInteger(d) && d >= 1)) {
    throw invalidParameterError('imageGrid', '[h, w] of positive integers (the merged grid)', grid);
  }
  if (typeof options.mrope !== 'boolean') throw invalidParameterError('mrope', 'a boolean', options.mrope);
  if (!Number.isSafeInteger(options.seed)) throw invalidParameterError('seed', 'a safe integer', options.seed);
  const visionRank = integer('visionRank', options.visionRank ?? 4, 1);
  const visionSubspace = integer('visionSubspace', options.visionSubspace ?? Math.min(hidden, 4 * visionRank), 1);
  if (visionSubspace > hidden) throw invalidParameterError('visionSubspace', `an integer in [1, ${hidden}] (at most hidden)`, visionSubspace);
  return {
    samples, hidden, textTokens, imageGrid: [grid[0], grid[1]], mrope: options.mrope, seed: options.seed, visionRank, visionSubspace,
    visionNoise: real('visionNoise', options.visionNoise ?? 0.05, false),
    scale: real('scale', options.scale ?? 1, true),
  };
}

/** `count` orthonormal rows of length n (Gaussian rows, Gram–Schmidt applied twice). */
function orthonormalRows(rng: Random, count: number, n: number): Float64Array[] {
  const rows: Float64Array[] = [];
  while (rows.length < count) {
    const v = new Float64Array(n);
    for (let c = 0; c < n; c++) v[c] = rng.normal();
    for (let pass = 0; pass < 2; pass++) {
      for (const q of rows) {
        let dot = 0;
        for (let c = 0; c < n; c++) dot += v[c] * q[c];
        for (let c = 0; c < n; c++) v[c] -= dot * q[c];
      }
    }
    let norm = 0;
    for (let c = 0; c < n; c++) norm += v[c] * v[c];
    norm = Math.sqrt(norm);
    if (norm < 1e-6) continue; // (practically never) a draw inside the span: draw again
    for (let c = 0; c < n; c++) v[c] /= norm;
    rows.push(v);
  }
  return rows;
}

/**
 * Region (0..regions−1) of every cell of an h×w grid in raster order: the nearest of `regions`
 * distinct random cells (ties to the lower region), so every region is non-empty and contiguous.
 */
function voronoiRegions(rng: Random, h: number, w: number, regions: number): Uint16Array | Uint32Array {
  const cells = h * w;
  // Partial Fisher–Yates over the cell indices picks distinct centres.
  const order = new Uint32Array(cells);
  for (let j = 0; j < cells; j++) order[j] = j;
  for (let k = 0; k < regions; k++) {
    const pick = k + Math.floor(rng.uniform() * (cells - k));
    [order[k], order[pick]] = [order[pick], order[k]];
  }
  const centres = Array.from(order.subarray(0, regions), (cell) => [Math.floor(cell / w), cell % w] as const);
  const region = regions <= 0xffff ? new Uint16Array(cells) : new Uint32Array(cells);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      let best = 0;
      let bestDistance = Infinity;
      centres.forEach(([cr, cc], k) => {
        const distance = (r - cr) ** 2 + (c - cc) ** 2;
        if (distance < bestDistance) {
          bestDistance = distance;
          best = k;
        }
      });
      region[r * w + c] = best;
    }
  }
  return region;
}
