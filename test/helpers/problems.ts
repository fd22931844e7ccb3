// Seeded synthetic layer problems for tests: a weight W [m, n] and calibration tokens X [T, n]
// with correlated channels (as real activations have), plus their statistics computed by the
// independent oracle in float64 and rounded once to float32 for the native code.
import { accumulate, mulberry32, randn } from '../reference/oracle.js';

export interface LayerProblem {
  m: number;
  n: number;
  tokens: number;
  W64: Float64Array;
  W: Float32Array;
  X64: Float64Array;
  X: Float32Array;
  /** Full-precision-path tokens: X plus a small perturbation (the GPTAQ setting). */
  Xfull64: Float64Array;
  Xfull: Float32Array;
  H64: Float64Array;
  H: Float32Array;
  dXXT64: Float64Array;
  dXXT: Float32Array;
}

export interface ProblemOptions {
  m: number;
  n: number;
  tokens?: number;
  seed?: number;
  /** Columns whose inputs are always zero (dead columns). */
  deadColumns?: number[];
  /** Relative size of the full-precision perturbation. Default 0.05. */
  fullNoise?: number;
}

export function layerProblem(options: ProblemOptions): LayerProblem {
  const { m, n } = options;
  const tokens = options.tokens ?? 4 * n;
  const rng = mulberry32(options.seed ?? 1);
  // Tokens = Z · A with a random mixing A (n×n) and per-channel scales spanning two decades,
  // so H has a realistic spread of diagonal values and correlations.
  const mix = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) mix[i] = randn(rng) / Math.sqrt(n);
  for (let i = 0; i < n; i++) mix[i * n + i] += 1;
  const scale = Float64Array.from({ length: n }, (_, j) => 10 ** (-1 + (2 * j) / Math.max(n - 1, 1)));
  const X64 = new Float64Array(tokens * n);
  const z = new Float64Array(n);
  for (let t = 0; t < tokens; t++) {
    for (let k = 0; k < n; k++) z[k] = randn(rng);
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += z[k] * mix[k * n + j];
      X64[t * n + j] = Math.fround(s * scale[j]);
    }
  }
  for (const j of options.deadColumns ?? []) for (let t = 0; t < tokens; t++) X64[t * n + j] = 0;
  const noise = options.fullNoise ?? 0.05;
  const Xfull64 = X64.map((x) => Math.fround(x * (1 + noise * randn(rng))));
  const W64 = new Float64Array(m * n);
  for (let i = 0; i < m * n; i++) W64[i] = Math.fround(randn(rng) * 0.05);
  const { H, dXXT } = accumulate([{ x: X64, xFull: Xfull64 }], n);
  return {
    m, n, tokens,
    W64, W: Float32Array.from(W64),
    X64, X: Float32Array.from(X64),
    Xfull64, Xfull: Float32Array.from(Xfull64),
    H64: Float64Array.from(Float32Array.from(H)), H: Float32Array.from(H),
    dXXT64: Float64Array.from(Float32Array.from(dXXT)), dXXT: Float32Array.from(dXXT),
  };
}

const cache = new Map<string, LayerProblem>();

/**
 * layerProblem, memoised: many test configurations share a seed. fullNoise defaults to 0.5 here,
 * which makes the GPTAQ cross term large enough that alpha and the variant change several percent
 * of the codes (with 0.05 some configurations barely move).
 */
export function cachedProblem(m: number, n: number, seed: number, deadColumns: number[] = [], fullNoise = 0.5): LayerProblem {
  const key = `${m}x${n}/${seed}/${deadColumns.join(',')}/${fullNoise}`;
  let p = cache.get(key);
  if (!p) cache.set(key, (p = layerProblem({ m, n, seed, deadColumns, fullNoise })));
  return p;
}

/** Fraction of positions where two code arrays differ. */
export function mismatchFraction(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) diff++;
  return diff / a.length;
}

/** Largest |a − b| relative to max |b|. */
export function maxRelativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return worst / (scale || 1);
}
