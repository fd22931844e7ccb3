// Runs the float64 oracle (test/reference/oracle.ts) with the same settings as a quantizeLinear
// call, translating the public option names and defaults. The defaults are restated here on
// purpose (not read from lib/quant/options.ts): a changed default must show up as a failure.
import { gptaq, gptq, rtn, type OracleQuantOptions, type OracleResult } from '../reference/oracle.js';

export interface ParityOptions {
  method?: 'rtn' | 'gptq' | 'gptaq';
  bits?: number;
  sym?: boolean;
  groupSize?: number;
  actOrder?: boolean;
  staticGroups?: boolean;
  blockSize?: number;
  percdamp?: number;
  mse?: boolean;
  mseNorm?: number;
  mseGrid?: number;
  mseMaxShrink?: number;
  fp32Scales?: boolean;
  alpha?: number;
  gptaqVariant?: 'reference' | 'derivation';
}

/** The documented defaults of quantizeLinear (lib/quant/options.ts DEFAULT_LINEAR_OPTIONS). */
export const DOCUMENTED_DEFAULTS = {
  method: 'gptq',
  bits: 4,
  sym: false,
  groupSize: -1,
  actOrder: false,
  staticGroups: false,
  blockSize: 128,
  percdamp: 0.01,
  mse: false,
  mseNorm: 2.4,
  mseGrid: 100,
  mseMaxShrink: 0.8,
  fp32Scales: false,
  alpha: 0.25,
  gptaqVariant: 'reference',
} as const;

export function oracleOptions(o: ParityOptions): OracleQuantOptions {
  const d = { ...DOCUMENTED_DEFAULTS, ...o };
  return {
    bits: d.bits,
    sym: d.sym,
    groupSize: d.groupSize,
    actOrder: d.actOrder,
    staticGroups: d.staticGroups,
    percdamp: d.percdamp,
    blockSize: d.blockSize,
    mse: d.mse,
    norm: d.mseNorm,
    grid: d.mseGrid,
    maxShrink: d.mseMaxShrink,
    fp16Scales: !d.fp32Scales,
    alpha: d.alpha,
    gptaqVariant: d.gptaqVariant,
  };
}

/** The oracle's answer for W [m, n] (float64 values) with H and, for gptaq, dXXT. */
export function referenceQuantize(
  W: Float64Array,
  H: Float64Array | null,
  dXXT: Float64Array | null,
  m: number,
  n: number,
  o: ParityOptions,
): OracleResult {
  const method = o.method ?? DOCUMENTED_DEFAULTS.method;
  const opts = oracleOptions(o);
  if (method === 'rtn') return rtn(W, m, n, opts);
  if (!H) throw new Error('referenceQuantize: H is required for gptq/gptaq');
  if (method === 'gptq') return gptq(W, H, m, n, opts);
  if (!dXXT) throw new Error('referenceQuantize: dXXT is required for gptaq');
  return gptaq(W, H, dXXT, m, n, opts);
}

/** Σ_r (w_r − q_r) H (w_r − q_r)ᵀ in float64: the layer's output error on the calibration set. */
export function hessianError(W: ArrayLike<number>, Q: ArrayLike<number>, H: ArrayLike<number>, m: number, n: number): number {
  let total = 0;
  const d = new Float64Array(n);
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < n; j++) d[j] = W[r * n + j] - Q[r * n + j];
    for (let i = 0; i < n; i++) {
      if (d[i] === 0) continue;
      let s = 0;
      for (let j = 0; j < n; j++) s += H[i * n + j] * d[j];
      total += d[i] * s;
    }
  }
  return total;
}

/** Index of the first difference, or -1. */
export function firstMismatch(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

export function relativeDifference(a: number, b: number): number {
  if (a === b) return 0;
  return Math.abs(a - b) / Math.max(Math.abs(b), Number.MIN_VALUE);
}
