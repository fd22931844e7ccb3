/**
 * Independent naive reference implementation ("oracle") of the layer quantizers
 * (RTN, GPTQ, GPTAQ), written to follow the reference Python code
 * (IST-DASLab/gptq `quant.py` / `gptq.py`, Intelligent-Computing-Lab-Yale/GPTAQ
 * `fake_quant/gptaq_utils.py`) as restated in docs/algorithm.md §1–§3, literally
 * and simply. Clarity over speed: everything is plain Float64Array loops.
 *
 * Deliberately imports NOTHING from lib/: tests use it to check the native code.
 *
 * Conventions
 * - All matrices are row-major Float64Array.
 * - W is [m, n]: m rows = output channels, n columns = input channels.
 * - H, dXXT are [n, n]; dXXT[i][j] = Σ w (x̃_i − x_i) x_j.
 * - Arithmetic is float64 throughout (the reference runs in float32, so
 *   comparisons with a float32 implementation need tolerances, and a code may
 *   differ where a value lands within float32 noise of a rounding boundary).
 * - Rounding is round-half-to-even everywhere (torch.round semantics).
 * - Act-order permutation: indices sorted by diag(H) DESCENDING, ties broken by
 *   the LOWER index first (a stable sort). torch.argsort(descending=True) is not
 *   stable, so for ties this is a choice, documented here and in actOrderPerm().
 */

// ---------------------------------------------------------------------------
// Options and results
// ---------------------------------------------------------------------------

export interface OracleQuantOptions {
  bits: number;
  sym: boolean;
  /** −1 = per channel (one scale/zero per row) */
  groupSize: number;
  actOrder: boolean;
  staticGroups: boolean;
  percdamp: number;
  blockSize: number;
  mse: boolean;
  /** MSE-grid error exponent, default 2.4 */
  norm?: number;
  /** MSE-grid resolution, default 100 */
  grid?: number;
  /** MSE-grid maximal shrink, default 0.8 */
  maxShrink?: number;
  /** round every scale to the nearest float16 value before computing the zero point */
  fp16Scales: boolean;
  /** GPTAQ asymmetric-term scale, default 0.25 */
  alpha?: number;
  /** GPTAQ lazy-update P-term operand: 'reference' (quantized block, default) or 'derivation' (pre-quantization values) */
  gptaqVariant?: 'reference' | 'derivation';
}

/** The subset of options findParams needs. OracleQuantOptions is assignable to it. */
export interface OracleFindParamsOptions {
  bits: number;
  sym: boolean;
  mse?: boolean;
  norm?: number;
  grid?: number;
  maxShrink?: number;
  fp16Scales?: boolean;
}

export interface OracleResult {
  /** dequantized weights [m, n], original column order */
  Q: Float64Array;
  /** integer codes [m, n], original column order */
  codes: Int32Array;
  /** [m, ngroups] row-major (ngroups = 1 for per-channel) */
  scales: Float64Array;
  /** [m, ngroups] row-major */
  zeros: Float64Array;
  /** group index of each ORIGINAL column [n] */
  gIdx: Int32Array;
  /** act-order permutation (perm[k] = original column processed k-th), or null */
  perm: Int32Array | null;
  /** Σ (w − q)² / d² / 2 over all processed elements (diagnostic) */
  loss: number;
  /** damping λ that was added to diag(H) */
  damp: number;
  /** number of groups (columns of scales/zeros) */
  ngroups: number;
}

export interface OracleBatch {
  /** quantized-path inputs [tokens, n] */
  x: Float64Array;
  /** full-precision-path inputs [tokens, n]; absent = same as x (no dXXT contribution) */
  xFull?: Float64Array;
  /** per-token weights (VLMQ importance factors); absent = all ones */
  weights?: Float64Array;
  /** number of "samples" this batch counts for the running average; default 1 */
  samples?: number;
}

// ---------------------------------------------------------------------------
// Seeded PRNG helpers (for tests)
// ---------------------------------------------------------------------------

// mulberry32 is vlmq's own generator (the oracle checks the algorithms, not the data's source).
export { mulberry32 } from '../../lib/random.js';

/** One standard normal sample (Box–Muller) from a uniform generator. */
export function randn(rng: () => number): number {
  let u = rng();
  while (u <= 0) u = rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Float64Array of `len` normal samples with standard deviation `std` (default 1). */
export function randnArray(rng: () => number, len: number, std = 1): Float64Array {
  const out = new Float64Array(len);
  for (let i = 0; i < len; i++) out[i] = std * randn(rng);
  return out;
}

// ---------------------------------------------------------------------------
// Scalar helpers: rounding, float16, quantizer
// ---------------------------------------------------------------------------

/** Round half to even (torch.round / rint semantics). Math.round rounds half up, which is wrong here. */
export function roundHalfEven(x: number): number {
  if (!Number.isFinite(x)) return x;
  let r = Math.round(x); // ties go toward +∞
  if (r - x === 0.5 && r % 2 !== 0) r -= 1; // a tie resolved to an odd integer: take the even neighbour below
  return r === 0 ? 0 : r; // normalise −0
}

/** 2^e for integer e, exact. */
function pow2(e: number): number {
  return Math.pow(2, e);
}

/** floor(log2(x)) for x > 0, exact. */
function floorLog2(x: number): number {
  let e = Math.floor(Math.log2(x));
  while (pow2(e) > x) e--;
  while (pow2(e + 1) <= x) e++;
  return e;
}

export const F16_MAX = 65504;
export const F16_MIN_SUBNORMAL = 2 ** -24;

/**
 * Round a positive scale to the nearest float16 value (ties to even), then clamp it
 * into [2^-24, 65504]. Rounds the float64 value directly (no float32 step).
 */
export function roundScaleToF16(x: number): number {
  if (!(x > 0)) return F16_MIN_SUBNORMAL;
  if (x >= F16_MAX) return F16_MAX;
  const e = Math.max(floorLog2(x), -14); // subnormals share the exponent of 2^-14
  const ulp = pow2(e - 10); // 10 explicit mantissa bits
  let r = roundHalfEven(x / ulp) * ulp; // exact scaling by a power of two
  if (r > F16_MAX) r = F16_MAX;
  if (r < F16_MIN_SUBNORMAL) r = F16_MIN_SUBNORMAL;
  return r;
}

/** True if x (finite) is exactly a float16 value. Independent of roundScaleToF16. */
export function isF16Value(x: number): boolean {
  if (x === 0) return true;
  const a = Math.abs(x);
  if (!(a <= F16_MAX)) return false;
  if (a < 2 ** -14) return Number.isInteger(a * 2 ** 24);
  const e = floorLog2(a);
  const k = a * pow2(10 - e);
  return Number.isInteger(k) && k >= 1024 && k < 2048;
}

export function maxqOf(bits: number): number {
  return 2 ** bits - 1;
}

/** The integer code: clamp(round(x/scale) + zero, 0, maxq). */
export function quantizeCode(x: number, scale: number, zero: number, maxq: number): number {
  const c = roundHalfEven(x / scale) + zero;
  return Math.min(Math.max(c, 0), maxq);
}

/** Fake quantization: scale * (clamp(round(x/scale) + zero, 0, maxq) − zero). */
export function quantize(x: number, scale: number, zero: number, maxq: number): number {
  return scale * (quantizeCode(x, scale, zero, maxq) - zero);
}

// ---------------------------------------------------------------------------
// find_params (IST quant.py), per row of x [rows, cols]
// ---------------------------------------------------------------------------

export function findParams(
  x: Float64Array,
  rows: number,
  cols: number,
  opts: OracleFindParamsOptions,
): { scale: Float64Array; zero: Float64Array } {
  const maxq = maxqOf(opts.bits);
  const norm = opts.norm ?? 2.4;
  const grid = opts.grid ?? 100;
  const maxShrink = opts.maxShrink ?? 0.8;
  const fp16 = opts.fp16Scales ?? false;
  const scale = new Float64Array(rows);
  const zero = new Float64Array(rows);

  // scale, then zero computed from the (possibly f16-rounded) scale
  const paramsFor = (xmin: number, xmax: number, symZero: number): [number, number] => {
    let s = (xmax - xmin) / maxq;
    if (fp16) s = roundScaleToF16(s);
    let z: number;
    if (opts.sym) z = symZero;
    else {
      z = roundHalfEven(-xmin / s);
      if (fp16) z = Math.min(Math.max(z, 0), maxq);
    }
    return [s, z];
  };

  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    // the range always contains 0
    let xmin = 0;
    let xmax = 0;
    for (let c = 0; c < cols; c++) {
      if (row[c] < xmin) xmin = row[c];
      if (row[c] > xmax) xmax = row[c];
    }
    if (opts.sym) {
      xmax = Math.max(Math.abs(xmin), xmax);
      if (xmin < 0) xmin = -xmax;
    }
    if (xmin === 0 && xmax === 0) {
      xmin = -1;
      xmax = +1;
    }
    const symZero = (maxq + 1) / 2;
    let [s, z] = paramsFor(xmin, xmax, symZero);

    if (opts.mse) {
      let best = Infinity;
      const steps = Math.trunc(maxShrink * grid);
      for (let i = 0; i < steps; i++) {
        const p = 1 - i / grid;
        const xmin1 = p * xmin;
        const xmax1 = p * xmax;
        const [s1, z1] = paramsFor(xmin1, xmax1, symZero);
        let err = 0;
        for (let c = 0; c < cols; c++) {
          err += Math.pow(Math.abs(quantize(row[c], s1, z1, maxq) - row[c]), norm);
        }
        if (err < best) {
          best = err;
          s = s1;
          z = z1;
        }
      }
    }
    scale[r] = s;
    zero[r] = z;
  }
  return { scale, zero };
}

// ---------------------------------------------------------------------------
// Small dense linear algebra (row-major Float64Array)
// ---------------------------------------------------------------------------

function sideOf(A: Float64Array): number {
  const n = Math.round(Math.sqrt(A.length));
  if (n * n !== A.length) throw new Error(`oracle: expected a square matrix, got ${A.length} elements`);
  return n;
}

/** C = A·B with A [m, k], B [k, n]. */
export function matmul(A: Float64Array, B: Float64Array, m: number, k: number, n: number): Float64Array {
  const C = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let l = 0; l < k; l++) s += A[i * k + l] * B[l * n + j];
      C[i * n + j] = s;
    }
  }
  return C;
}

/** Aᵀ for A [rows, cols] → [cols, rows]. */
export function transpose(A: Float64Array, rows: number, cols: number): Float64Array {
  const T = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) T[j * rows + i] = A[i * cols + j];
  return T;
}

/** Lower Cholesky factor L of a symmetric positive-definite A [n, n]: A = L Lᵀ. Throws if not PD. */
export function choleskyLower(A: Float64Array): Float64Array {
  const n = sideOf(A);
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let s = A[j * n + j];
    for (let k = 0; k < j; k++) s -= L[j * n + k] * L[j * n + k];
    if (!(s > 0)) throw new Error(`oracle: Cholesky failed at pivot ${j} (value ${s})`);
    const d = Math.sqrt(s);
    L[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let t = A[i * n + j];
      for (let k = 0; k < j; k++) t -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = t / d;
    }
  }
  return L;
}

/** Upper Cholesky factor U of A: A = Uᵀ U (torch.linalg.cholesky(A, upper=True)) = (lower factor)ᵀ. */
export function choleskyUpper(A: Float64Array): Float64Array {
  const n = sideOf(A);
  return transpose(choleskyLower(A), n, n);
}

/** cholesky_inverse(L) = (L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹, from a lower factor L. */
export function choleskyInverse(L: Float64Array): Float64Array {
  const n = sideOf(L);
  // Linv = L⁻¹ (lower triangular), by forward substitution column by column
  const Linv = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    for (let i = c; i < n; i++) {
      let s = i === c ? 1 : 0;
      for (let k = c; k < i; k++) s -= L[i * n + k] * Linv[k * n + c];
      Linv[i * n + c] = s / L[i * n + i];
    }
  }
  // (L Lᵀ)⁻¹ = Linvᵀ Linv
  const R = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = Math.max(i, j); k < n; k++) s += Linv[k * n + i] * Linv[k * n + j];
      R[i * n + j] = s;
    }
  }
  return R;
}

/**
 * The reference three-call chain on an already damped H:
 * L = cholesky(H); Hinv = cholesky_inverse(L); U = cholesky(Hinv, upper=True), so Hinv = Uᵀ U.
 */
export function inverseCholeskyUpper(Hdamped: Float64Array): Float64Array {
  return choleskyUpper(choleskyInverse(choleskyLower(Hdamped)));
}

/** Σ_rows d H dᵀ for D [m, n] (each row d), H [n, n]. */
export function hessianNorm(Wdiff: Float64Array, H: Float64Array, m: number, n: number): number {
  let total = 0;
  for (let r = 0; r < m; r++) {
    for (let i = 0; i < n; i++) {
      const di = Wdiff[r * n + i];
      if (di === 0) continue;
      let s = 0;
      for (let j = 0; j < n; j++) s += H[i * n + j] * Wdiff[r * n + j];
      total += di * s;
    }
  }
  return total;
}

/** GPTAQ P = alpha · triu(dXXT · Uᵀ, +1) · U (all [n, n]). */
export function gptaqP(dXXT: Float64Array, U: Float64Array, alpha: number): Float64Array {
  const n = sideOf(U);
  const A = matmul(dXXT, transpose(U, n, n), n, n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) A[i * n + j] = 0; // strictly upper part only
  const P = matmul(A, U, n, n, n);
  for (let i = 0; i < n * n; i++) P[i] *= alpha;
  return P;
}

// ---------------------------------------------------------------------------
// Statistics accumulation (running average, §1.2 / §3(c))
// ---------------------------------------------------------------------------

export function accumulate(
  batches: OracleBatch[],
  n: number,
): { H: Float64Array; dXXT: Float64Array; nsamples: number } {
  const H = new Float64Array(n * n);
  const dXXT = new Float64Array(n * n);
  let ns = 0;
  for (const b of batches) {
    const tokens = b.x.length / n;
    if (!Number.isInteger(tokens)) throw new Error('oracle.accumulate: x length is not a multiple of n');
    const t = b.samples ?? 1;
    const f = ns / (ns + t);
    for (let i = 0; i < n * n; i++) {
      H[i] *= f;
      dXXT[i] *= f;
    }
    ns += t;
    const c = 2 / ns;
    for (let k = 0; k < tokens; k++) {
      const w = b.weights ? b.weights[k] : 1;
      const x = b.x.subarray(k * n, (k + 1) * n);
      const xf = b.xFull ? b.xFull.subarray(k * n, (k + 1) * n) : x;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          H[i * n + j] += c * (w * x[i] * x[j]);
          dXXT[i * n + j] += c * (w * (xf[i] - x[i]) * x[j]);
        }
      }
    }
  }
  return { H, dXXT, nsamples: ns };
}

// ---------------------------------------------------------------------------
// Helpers shared by the quantizers
// ---------------------------------------------------------------------------

/** Columns [c0, c1) of W [m, n] as a new [m, c1 − c0] matrix. */
function columns(W: Float64Array, m: number, n: number, c0: number, c1: number): Float64Array {
  const w = c1 - c0;
  const out = new Float64Array(m * w);
  for (let r = 0; r < m; r++) for (let c = 0; c < w; c++) out[r * w + c] = W[r * n + c0 + c];
  return out;
}

/**
 * Act-order permutation: column indices sorted by diag(H) DESCENDING; ties keep the
 * LOWER index first (stable sort). Our choice: torch.argsort(descending=True) does not
 * promise any tie order.
 */
export function actOrderPerm(H: Float64Array, n: number): Int32Array {
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((a, b) => {
    const da = H[a * n + a];
    const db = H[b * n + b];
    if (da !== db) return db - da;
    return a - b;
  });
  return Int32Array.from(idx);
}

/**
 * The dead fix and damping as a test helper, on a copy of H, in ORIGINAL column order:
 * diag(H)==0 → 1, then H += λ I with λ = percdamp · mean(diag H). (Inside gptq/gptaq λ is
 * computed after the act-order permutation, as the reference does; the sum order then differs.)
 */
export function dampedHessian(H: Float64Array, n: number, percdamp: number): { Hd: Float64Array; damp: number; dead: boolean[] } {
  const Hd = Float64Array.from(H);
  const dead: boolean[] = [];
  for (let i = 0; i < n; i++) {
    dead.push(Hd[i * n + i] === 0);
    if (dead[i]) Hd[i * n + i] = 1;
  }
  let s = 0;
  for (let i = 0; i < n; i++) s += Hd[i * n + i];
  const damp = percdamp * (s / n);
  for (let i = 0; i < n; i++) Hd[i * n + i] += damp;
  return { Hd, damp, dead };
}

// ---------------------------------------------------------------------------
// RTN
// ---------------------------------------------------------------------------

export function rtn(W: Float64Array, m: number, n: number, opts: OracleQuantOptions): OracleResult {
  const maxq = maxqOf(opts.bits);
  const g = opts.groupSize;
  const ngroups = g === -1 ? 1 : Math.ceil(n / g);
  const scales = new Float64Array(m * ngroups);
  const zeros = new Float64Array(m * ngroups);
  const gIdx = new Int32Array(n);
  for (let k = 0; k < ngroups; k++) {
    const c0 = g === -1 ? 0 : k * g;
    const c1 = g === -1 ? n : Math.min(c0 + g, n);
    const p = findParams(columns(W, m, n, c0, c1), m, c1 - c0, opts);
    for (let r = 0; r < m; r++) {
      scales[r * ngroups + k] = p.scale[r];
      zeros[r * ngroups + k] = p.zero[r];
    }
    for (let j = c0; j < c1; j++) gIdx[j] = g === -1 ? 0 : k;
  }
  const Q = new Float64Array(m * n);
  const codes = new Int32Array(m * n);
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < n; j++) {
      const s = scales[r * ngroups + gIdx[j]];
      const z = zeros[r * ngroups + gIdx[j]];
      codes[r * n + j] = quantizeCode(W[r * n + j], s, z, maxq);
      Q[r * n + j] = quantize(W[r * n + j], s, z, maxq);
    }
  }
  return { Q, codes, scales, zeros, gIdx, perm: null, loss: 0, damp: 0, ngroups };
}

// ---------------------------------------------------------------------------
// GPTQ / GPTAQ fasterquant (§2(c), §3(d))
// ---------------------------------------------------------------------------

export function gptq(W: Float64Array, H: Float64Array, m: number, n: number, opts: OracleQuantOptions): OracleResult {
  return fasterquant(W, H, null, m, n, opts);
}

export function gptaq(
  W: Float64Array,
  H: Float64Array,
  dXXT: Float64Array,
  m: number,
  n: number,
  opts: OracleQuantOptions,
): OracleResult {
  return fasterquant(W, H, dXXT, m, n, opts);
}

function fasterquant(
  W0: Float64Array,
  H0: Float64Array,
  dXXT0: Float64Array | null,
  m: number,
  n: number,
  opts: OracleQuantOptions,
): OracleResult {
  if (W0.length !== m * n) throw new Error('oracle: W must be [m, n]');
  if (H0.length !== n * n) throw new Error('oracle: H must be [n, n]');
  if (dXXT0 && dXXT0.length !== n * n) throw new Error('oracle: dXXT must be [n, n]');
  const maxq = maxqOf(opts.bits);
  const g = opts.groupSize;
  const B = opts.blockSize;
  const alpha = opts.alpha ?? 0.25;
  const variant = opts.gptaqVariant ?? 'reference';
  if (g !== -1 && !(g > 0)) throw new Error('oracle: groupSize must be −1 or positive');
  if (!(B > 0)) throw new Error('oracle: blockSize must be positive');

  // work on copies; never mutate the caller's arrays
  let W = Float64Array.from(W0);
  let H = Float64Array.from(H0);
  let dXXT = dXXT0 ? Float64Array.from(dXXT0) : null;

  // current quantizer parameters (one scale/zero per row)
  let curScale: Float64Array;
  let curZero: Float64Array;

  // "if not ready: find_params(W)" — per-channel params from the ORIGINAL W (before the dead fix)
  {
    const p = findParams(W, m, n, opts);
    curScale = p.scale;
    curZero = p.zero;
  }

  // dead-column fix
  for (let i = 0; i < n; i++) {
    if (H[i * n + i] === 0) {
      H[i * n + i] = 1;
      for (let r = 0; r < m; r++) W[r * n + i] = 0;
      if (dXXT) for (let r = 0; r < n; r++) dXXT[r * n + i] = 0; // dXXT[:, dead] = 0 (columns only)
    }
  }

  // static groups: fitted on the ORIGINAL column order, after the dead fix
  const staticGroups: { scale: Float64Array; zero: Float64Array }[] = [];
  if (g !== -1 && opts.staticGroups) {
    for (let c0 = 0; c0 < n; c0 += g) {
      const c1 = Math.min(c0 + g, n);
      staticGroups.push(findParams(columns(W, m, n, c0, c1), m, c1 - c0, opts));
    }
  }

  // act order: permute W columns and H (and dXXT) rows and columns
  let perm: Int32Array | null = null;
  if (opts.actOrder) {
    perm = actOrderPerm(H, n);
    const Wp = new Float64Array(m * n);
    for (let r = 0; r < m; r++) for (let k = 0; k < n; k++) Wp[r * n + k] = W[r * n + perm[k]];
    W = Wp;
    const Hp = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) Hp[i * n + j] = H[perm[i] * n + perm[j]];
    H = Hp;
    if (dXXT) {
      const Dp = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) Dp[i * n + j] = dXXT[perm[i] * n + perm[j]];
      dXXT = Dp;
    }
  }

  // damping, computed after the dead fix (and after the permutation, as the reference does)
  let diagSum = 0;
  for (let i = 0; i < n; i++) diagSum += H[i * n + i];
  const damp = opts.percdamp * (diagSum / n);
  for (let i = 0; i < n; i++) H[i * n + i] += damp;

  const U = inverseCholeskyUpper(H);
  const P = dXXT ? gptaqP(dXXT, U, alpha) : null;

  // results in processing (permuted) order
  const Qp = new Float64Array(m * n);
  const codesP = new Int32Array(m * n);
  const groupScales: Float64Array[] = [];
  const groupZeros: Float64Array[] = [];
  let loss = 0;

  for (let i1 = 0; i1 < n; i1 += B) {
    const i2 = Math.min(i1 + B, n);
    const count = i2 - i1;
    const W1 = columns(W, m, n, i1, i2); // [m, count] working copy of the block
    const W1pre = new Float64Array(m * count); // pre-quantization value of each column ('derivation')
    const E = new Float64Array(m * count);

    for (let t = 0; t < count; t++) {
      const col = i1 + t;
      const d = U[col * n + col];

      if (g !== -1) {
        if (!opts.staticGroups) {
          if (col % g === 0) {
            // reads the OUTER W: this block's in-block updates are not in it
            const c1 = Math.min(col + g, n);
            const p = findParams(columns(W, m, n, col, c1), m, c1 - col, opts);
            curScale = p.scale;
            curZero = p.zero;
            groupScales.push(p.scale);
            groupZeros.push(p.zero);
          }
        } else {
          const idx = perm ? perm[col] : col;
          const grp = staticGroups[Math.floor(idx / g)];
          curScale = grp.scale;
          curZero = grp.zero;
        }
      }

      const w = new Float64Array(m);
      const q = new Float64Array(m);
      const e = new Float64Array(m);
      for (let r = 0; r < m; r++) {
        w[r] = W1[r * count + t];
        const code = quantizeCode(w[r], curScale[r], curZero[r], maxq);
        codesP[r * n + col] = code;
        q[r] = quantize(w[r], curScale[r], curZero[r], maxq);
        Qp[r * n + col] = q[r];
        loss += ((w[r] - q[r]) * (w[r] - q[r])) / (d * d) / 2;
        e[r] = (w[r] - q[r]) / d;
        E[r * count + t] = e[r];
        W1pre[r * count + t] = w[r];
      }

      // in-block rank-1 update of columns t.. of the block
      for (let r = 0; r < m; r++) {
        for (let c = t; c < count; c++) {
          const u = U[col * n + (i1 + c)];
          if (P) {
            W1[r * count + c] -= e[r] * u - w[r] * P[col * n + (i1 + c)];
          } else {
            W1[r * count + c] -= e[r] * u;
          }
        }
        W1[r * count + t] = q[r]; // the working column equals the quantized column (exact in exact arithmetic)
      }
    }

    // lazy update of all later columns
    if (i2 < n) {
      const Wblock = variant === 'derivation' ? W1pre : W1;
      for (let r = 0; r < m; r++) {
        for (let j = i2; j < n; j++) {
          let a = 0;
          for (let k = 0; k < count; k++) a += E[r * count + k] * U[(i1 + k) * n + j];
          if (P) {
            let b = 0;
            for (let k = 0; k < count; k++) b += Wblock[r * count + k] * P[(i1 + k) * n + j];
            W[r * n + j] -= a - b;
          } else {
            W[r * n + j] -= a;
          }
        }
      }
    }
  }

  // undo the permutation
  const Q = new Float64Array(m * n);
  const codes = new Int32Array(m * n);
  for (let r = 0; r < m; r++) {
    for (let k = 0; k < n; k++) {
      const j = perm ? perm[k] : k;
      Q[r * n + j] = Qp[r * n + k];
      codes[r * n + j] = codesP[r * n + k];
    }
  }

  // scales / zeros / gIdx
  let ngroups: number;
  let scaleList: Float64Array[];
  let zeroList: Float64Array[];
  const gIdx = new Int32Array(n);
  if (g === -1) {
    ngroups = 1;
    scaleList = [curScale];
    zeroList = [curZero];
  } else if (opts.staticGroups) {
    ngroups = staticGroups.length;
    scaleList = staticGroups.map((s) => s.scale);
    zeroList = staticGroups.map((s) => s.zero);
    for (let j = 0; j < n; j++) gIdx[j] = Math.floor(j / g);
  } else {
    ngroups = groupScales.length;
    scaleList = groupScales;
    zeroList = groupZeros;
    for (let k = 0; k < n; k++) {
      const j = perm ? perm[k] : k; // original column at position k
      gIdx[j] = Math.floor(k / g);
    }
  }
  const scales = new Float64Array(m * ngroups);
  const zeros = new Float64Array(m * ngroups);
  for (let k = 0; k < ngroups; k++) {
    for (let r = 0; r < m; r++) {
      scales[r * ngroups + k] = scaleList[k][r];
      zeros[r * ngroups + k] = zeroList[k][r];
    }
  }

  return { Q, codes, scales, zeros, gIdx, perm, loss, damp, ngroups };
}
