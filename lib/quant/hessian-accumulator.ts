// Calibration statistics of one linear layer, owned by native code:
//   H    = (2/N) Σ_t w_t · x_t x_tᵀ             (GPTQ; VLMQ's importance-weighted Hessian when w ≠ 1)
//   dXXT = (2/N) Σ_t w_t · (x̃_t − x_t) x_tᵀ     (GPTAQ's cross term, with crossTerm: true)
// as running averages over samples (docs/algorithm.md §1.2, §3(c)). Rows of x are tokens.
import { invalidParameterError } from '../errors.js';
import type { NativeHessianAccumulator, NativeMatrix, NativeTensor } from '../native/binding.js';
import { resolveDevice } from '../native/devices.js';
import { binding } from '../native/loader.js';
import { DeviceTensor } from './device-tensor.js';
import { enqueue, runNative } from '../native/jobs.js';
import { type MatrixInput, toNativeMatrix } from './matrix.js';

export interface HessianAccumulatorOptions {
  /** Also keep the GPTAQ cross term; then every add() needs xFull. Default false. */
  crossTerm?: boolean;
  /** Where the statistics live: 'auto' (default), 'cpu', 'cuda' or 'cuda:N'. */
  device?: string;
}

export interface AddBatchOptions {
  /** Full-precision-path inputs of the same tokens (GPTAQ), same shape as x. */
  xFull?: MatrixInput | DeviceTensor;
  /** Per-token weights ≥ 0 (VLMQ importance factors); all ones by default. */
  tokenWeights?: Float32Array | readonly number[];
  /** Calibration samples in this batch, the running average's count. Default 1. */
  samples?: number;
  signal?: AbortSignal;
}

export class HessianAccumulator implements Disposable {
  readonly n: number;
  readonly crossTerm: boolean;
  /** @internal the raw native object, for quantizeLinear */
  readonly native: NativeHessianAccumulator;
  #last: Promise<unknown> = Promise.resolve();

  constructor(n: number, options: HessianAccumulatorOptions = {}) {
    if (!Number.isSafeInteger(n) || n < 1 || n > 1 << 20) throw invalidParameterError('n', 'an integer in [1, 1048576]', n);
    const crossTerm = options.crossTerm ?? false;
    if (typeof crossTerm !== 'boolean') throw invalidParameterError('crossTerm', 'a boolean', crossTerm);
    this.n = n;
    this.crossTerm = crossTerm;
    this.native = new (binding().HessianAccumulator)(n, crossTerm, resolveDevice(options.device));
  }

  /** Samples accumulated so far. */
  get samples(): number {
    return this.native.samples;
  }

  get disposed(): boolean {
    return this.native.disposed;
  }

  /**
   * Adds a batch of token rows x [tokens, n] (host memory, or a DeviceTensor on this accumulator's
   * device); resolves once the statistics include it.
   */
  async add(x: MatrixInput | DeviceTensor, options: AddBatchOptions = {}): Promise<void> {
    const callSite = new Error();
    this.#checkLive('add');
    const matrix = operand(x, 'x', this.n);
    const full = options.xFull === undefined ? null : operand(options.xFull, 'xFull', this.n);
    if (this.crossTerm && !full) throw invalidParameterError('xFull', 'the full-precision inputs (this accumulator keeps the cross term)', undefined);
    if (!this.crossTerm && full) throw invalidParameterError('xFull', 'undefined (create the accumulator with crossTerm: true to use it)', options.xFull);
    if (full && full.rows !== matrix.rows) throw invalidParameterError('the rows of xFull', `${matrix.rows} (as many as x)`, full.rows);
    const weights = tokenWeights(options.tokenWeights, matrix.rows);
    const samples = options.samples ?? 1;
    if (typeof samples !== 'number' || !Number.isFinite(samples) || samples <= 0) throw invalidParameterError('samples', 'a positive number', samples);
    return this.#chain(() => runNative(callSite, options.signal, (cancel) => this.native.add(matrix, full, weights, samples, cancel)));
  }

  /** A copy of H [n, n] (symmetric). */
  async hessian(): Promise<Float32Array> {
    const callSite = new Error();
    this.#checkLive('hessian');
    return this.#chain(() => runNative(callSite, undefined, () => this.native.read(false)));
  }

  /** A copy of the cross term dXXT [n, n] (crossTerm accumulators only). */
  async dxxt(): Promise<Float32Array> {
    const callSite = new Error();
    this.#checkLive('dxxt');
    if (!this.crossTerm) throw invalidParameterError('dxxt()', 'an accumulator created with crossTerm: true', 'crossTerm: false');
    return this.#chain(() => runNative(callSite, undefined, () => this.native.read(true)));
  }

  /** Frees the statistics now (jobs already running finish first); later calls throw. */
  dispose(): void {
    this.native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** @internal Runs `job` after this accumulator's pending operations, in the global native queue. */
  chain<T>(job: () => Promise<T>): Promise<T> {
    return this.#chain(job);
  }

  #chain<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#last.then(() => enqueue(job), () => enqueue(job));
    this.#last = run.catch(() => undefined);
    return run;
  }

  #checkLive(method: string): void {
    if (this.native.disposed) throw invalidParameterError(`HessianAccumulator.${method}()`, 'a live accumulator', 'a disposed one');
  }
}

/** A host matrix (checked and converted) or a live DeviceTensor of n columns. */
function operand(x: MatrixInput | DeviceTensor, name: string, n: number): NativeMatrix | NativeTensor {
  if (!(x instanceof DeviceTensor)) return toNativeMatrix(x, name, n);
  if (x.disposed) throw invalidParameterError(name, 'a live DeviceTensor', 'a disposed one');
  if (x.cols !== n) throw invalidParameterError(`the columns of ${name}`, String(n), x.cols);
  return x.native;
}

function tokenWeights(weights: Float32Array | readonly number[] | undefined, tokens: number): Float32Array | null {
  if (weights === undefined) return null;
  if (!(weights instanceof Float32Array) && !Array.isArray(weights)) throw invalidParameterError('tokenWeights', 'a Float32Array or an array of numbers', weights);
  if (weights.length !== tokens) throw invalidParameterError('tokenWeights', `${tokens} weights (one per token)`, weights);
  const array = weights instanceof Float32Array ? weights : Float32Array.from(weights);
  for (let i = 0; i < array.length; i++) {
    if (!(array[i] >= 0) || !Number.isFinite(array[i])) throw invalidParameterError(`tokenWeights[${i}]`, 'a finite number ≥ 0', array[i]);
  }
  return array;
}
