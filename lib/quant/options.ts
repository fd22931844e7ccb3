// Layer-quantizer options: every default lives here, in one object, and every option is checked
// here with a message that names it. The result is the complete native options object.
import { invalidParameterError } from '../errors.js';
import type { NativeLinearOptions } from '../native/binding.js';
import type { Device } from '../native/devices.js';

export type QuantMethod = 'rtn' | 'gptq' | 'gptaq';
export const QUANT_METHODS: readonly QuantMethod[] = ['rtn', 'gptq', 'gptaq'];
export const SUPPORTED_BITS = [2, 3, 4, 8] as const;

export interface QuantizeLinearOptions {
  /** rtn: round to nearest; gptq: Hessian-compensated sweep; gptaq: gptq plus the asymmetric term. Default gptq. */
  method?: QuantMethod;
  /** 2, 3, 4 or 8. Default 4. */
  bits?: number;
  /** Columns sharing one (scale, zero); -1 = one per output channel. Default -1. */
  groupSize?: number;
  /** Zero point fixed at mid-range (GPTQ "sym"). Default false (asymmetric). */
  sym?: boolean;
  /** Quantize columns in order of decreasing Hessian diagonal ("desc_act"). Default false. */
  actOrder?: boolean;
  /** Fit group parameters up front on the original column order. Default false. */
  staticGroups?: boolean;
  /** Columns per lazy-update block. Default 128. */
  blockSize?: number;
  /** Damping λ = percdamp · mean(diag H). Default 0.01. */
  percdamp?: number;
  /** On Cholesky failure percdamp grows by this step ... Default 0.0025. */
  dampIncrement?: number;
  /** ... up to this value, after which the layer falls back to RTN (reported). Default 0.1. */
  maxPercdamp?: number;
  /** Search a clipped range minimising Σ|q − w|^mseNorm per row. Default false. */
  mse?: boolean;
  mseNorm?: number;
  mseGrid?: number;
  mseMaxShrink?: number;
  /** Keep FP32 scales (reproduces the reference tools) instead of the fp16 grid a checkpoint stores. Default false. */
  fp32Scales?: boolean;
  /** GPTAQ: scale of the asymmetric correction. Default 0.25. */
  alpha?: number;
  /** GPTAQ lazy P-term: 'reference' uses the quantized block (as the GPTAQ code), 'derivation' the pre-quantization values (Eq. 15). */
  gptaqVariant?: 'reference' | 'derivation';
  signal?: AbortSignal;
  /** Called with (columns done, columns total) between blocks, increasing, ending with (total, total) before the promise resolves. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Where the work runs: 'auto' (default: CUDA when usable, else the CPU), 'cpu', 'cuda' or
   * 'cuda:N'. With a HessianAccumulator, the accumulator's device (another one is an error).
   */
  device?: Device;
}

export const DEFAULT_LINEAR_OPTIONS: Readonly<NativeLinearOptions> = Object.freeze({
  method: 'gptq',
  bits: 4,
  sym: false,
  groupSize: -1,
  actOrder: false,
  staticGroups: false,
  blockSize: 128,
  percdamp: 0.01,
  dampIncrement: 0.0025,
  maxPercdamp: 0.1,
  mse: false,
  mseNorm: 2.4,
  mseGrid: 100,
  mseMaxShrink: 0.8,
  fp32Scales: false,
  alpha: 0.25,
  gptaqVariant: 'reference',
});

const CONTROL_KEYS = ['signal', 'onProgress', 'device'] as const;

function integer(value: unknown, name: string, accept: (n: number) => boolean, expected: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || !accept(value)) throw invalidParameterError(name, expected, value);
  return value;
}

function number(value: unknown, name: string, accept: (n: number) => boolean, expected: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !accept(value)) throw invalidParameterError(name, expected, value);
  return value;
}

/**
 * An option the native side keeps as a float32 (alpha, mseNorm, mseMaxShrink): checked as the
 * float32 it becomes, so 1e308 (→ Infinity) or 1e-50 (→ 0) fails here, naming the option.
 */
function float32(value: unknown, name: string, accept: (n: number) => boolean, expected: string): number {
  number(value, name, accept, expected);
  const single = Math.fround(value as number);
  if (!Number.isFinite(single) || !accept(single)) {
    throw invalidParameterError(name, `${expected} as a float32 (|x| ≤ 3.4e38, and not so small that it rounds to 0)`, value);
  }
  return value as number;
}

/** Candidates the MSE range search may try; more cannot change the result measurably, and the native count is a 32-bit int. */
export const MAX_MSE_GRID = 10_000;
/** Damping values a layer may try before falling back to RTN: (maxPercdamp − percdamp) / dampIncrement + 1. */
export const MAX_DAMPING_STEPS = 1_000;

function boolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidParameterError(name, 'a boolean', value);
  return value;
}

/** Defaults filled in and every option checked; unknown keys are errors (they are usually typos). */
export function resolveLinearOptions(options: QuantizeLinearOptions = {}): NativeLinearOptions {
  if (options === null || typeof options !== 'object') throw invalidParameterError('options', 'an object', options);
  for (const key of Object.keys(options)) {
    if (!(key in DEFAULT_LINEAR_OPTIONS) && !(CONTROL_KEYS as readonly string[]).includes(key)) {
      throw invalidParameterError('options', `only known options (${[...Object.keys(DEFAULT_LINEAR_OPTIONS), ...CONTROL_KEYS].join(', ')})`, `unknown option "${key}"`);
    }
  }
  const o = { ...DEFAULT_LINEAR_OPTIONS, ...stripUndefined(options) } as NativeLinearOptions & QuantizeLinearOptions;
  if (!QUANT_METHODS.includes(o.method)) throw invalidParameterError('method', `one of ${QUANT_METHODS.join(', ')}`, o.method);
  integer(o.bits, 'bits', (b) => (SUPPORTED_BITS as readonly number[]).includes(b), 'one of 2, 3, 4, 8');
  integer(o.groupSize, 'groupSize', (g) => g === -1 || g >= 1, '-1 (per channel) or a positive integer');
  integer(o.blockSize, 'blockSize', (b) => b >= 1, 'a positive integer');
  number(o.percdamp, 'percdamp', (p) => p >= 0, 'a number ≥ 0');
  number(o.dampIncrement, 'dampIncrement', (p) => p > 0, 'a number > 0');
  number(o.maxPercdamp, 'maxPercdamp', (p) => p >= o.percdamp, `a number ≥ percdamp (${o.percdamp})`);
  const steps = (o.maxPercdamp - o.percdamp) / o.dampIncrement;
  if (!(steps < MAX_DAMPING_STEPS)) {
    throw invalidParameterError('dampIncrement', `a step that reaches maxPercdamp (${o.maxPercdamp}) from percdamp (${o.percdamp}) in at most ${MAX_DAMPING_STEPS} steps`, o.dampIncrement);
  }
  float32(o.mseNorm, 'mseNorm', (p) => p > 0, 'a number > 0');
  integer(o.mseGrid, 'mseGrid', (g) => g >= 1 && g <= MAX_MSE_GRID, `an integer in [1, ${MAX_MSE_GRID}]`);
  float32(o.mseMaxShrink, 'mseMaxShrink', (s) => s > 0 && s <= 1, 'a number in (0, 1]');
  float32(o.alpha, 'alpha', () => true, 'a finite number');
  for (const key of ['sym', 'actOrder', 'staticGroups', 'mse', 'fp32Scales'] as const) boolean(o[key], key);
  if (o.gptaqVariant !== 'reference' && o.gptaqVariant !== 'derivation') {
    throw invalidParameterError('gptaqVariant', "'reference' or 'derivation'", o.gptaqVariant);
  }
  if (o.staticGroups && o.groupSize === -1) throw invalidParameterError('staticGroups', 'false when groupSize is -1 (static groups need groups)', true);
  if (o.actOrder && o.method === 'rtn') throw invalidParameterError('actOrder', 'false with method rtn (RTN has no column order)', true);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw invalidParameterError('signal', 'an AbortSignal', o.signal);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw invalidParameterError('onProgress', 'a function', o.onProgress);
  const resolved = {} as Record<string, unknown>;
  for (const key of Object.keys(DEFAULT_LINEAR_OPTIONS)) resolved[key] = (o as unknown as Record<string, unknown>)[key];
  return resolved as unknown as NativeLinearOptions;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
