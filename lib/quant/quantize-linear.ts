// quantizeLinear: one linear layer W [out, in] quantized by RTN, GPTQ or GPTAQ from its
// calibration statistics. The heavy work runs natively off the JavaScript thread.
import { invalidParameterError } from '../errors.js';
import type { NativeLinearResult, NativeStatistics } from '../native/binding.js';
import { resolveDevice } from '../native/devices.js';
import { binding } from '../native/loader.js';
import type { Tensor } from '../tensor.js';
import { HessianAccumulator } from './hessian-accumulator.js';
import { enqueue, runNative } from '../native/jobs.js';
import { toNativeMatrix, toSquareFloats } from './matrix.js';
import { type QuantMethod, type QuantizeLinearOptions, resolveLinearOptions } from './options.js';

/** Statistics as arrays: H [in, in] and, for GPTAQ, the cross term dXXT [in, in] (F32). */
export interface LinearStatistics {
  hessian: Float32Array | Tensor;
  dxxt?: Float32Array | Tensor;
}

export interface LinearQuantization {
  method: QuantMethod;
  bits: number;
  groupSize: number;
  rows: number;
  cols: number;
  /** (scale, zero) pairs per row: 1 per channel, else ceil(cols / groupSize). */
  groups: number;
  /** scale[g] · (code − zero[g]) for each weight, original column order, [rows, cols]. */
  dequantized: Float32Array;
  /** Integer codes in [0, 2^bits − 1], [rows, cols], original column order. */
  codes: Uint8Array;
  /** [rows, groups]; on the fp16 grid unless fp32Scales. */
  scales: Float32Array;
  /** [rows, groups], integers in [0, 2^bits − 1]. */
  zeros: Int32Array;
  /** Group of each input column, [cols] (act-order with dynamic groups scatters them). */
  gIdx: Int32Array;
  /** The act-order permutation (processing order → original column), or null. */
  perm: Int32Array | null;
  /** The reference's loss estimate Σ (w − q)² / d² / 2 (0 for RTN). */
  loss: number;
  damping: { percdamp: number; lambda: number; tried: number[] };
  /** Set when the damped Hessian could not be factored at any damping and RTN was used instead. */
  fallback: { method: 'rtn'; reason: string } | null;
  /** Input columns whose Hessian diagonal was 0 (never active in calibration). */
  deadColumns: number;
  /** Wall time of each phase; correction (GPTAQ's P) is part of sweep. */
  seconds: { prepare: number; factor: number; sweep: number; correction: number };
}

export async function quantizeLinear(
  weight: Tensor,
  statistics: HessianAccumulator | LinearStatistics | null,
  options: QuantizeLinearOptions = {},
): Promise<LinearQuantization> {
  const callSite = new Error();
  const resolved = resolveLinearOptions(options);
  const matrix = toNativeMatrix(weight, 'weight');
  if ((weight as Tensor).shape.length !== 2) throw invalidParameterError('weight.shape', 'a 2-D shape [out, in]', (weight as Tensor).shape);
  const n = matrix.cols;
  const stats = nativeStatistics(statistics, n, resolved.method);
  // A listener that throws stops the native work through the cancel flag, and the call rejects
  // with the listener's error (an exception inside a native progress call would be lost).
  const failed = new AbortController();
  const progress = orderedProgress(options.onProgress, (error) => failed.abort(error));
  const signal = options.onProgress ? anySignal(options.signal, failed.signal) : options.signal;
  // An accumulator's statistics decide the device; an explicit other one is refused natively.
  const device = statistics instanceof HessianAccumulator && options.device === undefined ? undefined : resolveDevice(options.device);
  const job = () => runNative(callSite, signal, (cancel) =>
    binding().quantizeLinear(matrix, stats, resolved, cancel, progress.report, device));
  const raw = statistics instanceof HessianAccumulator ? await statistics.chain(job) : await enqueue(job);
  progress.finish(n);
  return publicResult(raw, resolved.method, resolved.bits, resolved.groupSize);
}

/**
 * Native progress reports arrive asynchronously and may be dropped; this keeps the listener's
 * view simple: increasing `done`, nothing after the promise settles, and always a final
 * (total, total) just before it resolves. The first error the listener throws goes to
 * `onError`, silences it, and is thrown again by finish() should the work end anyway.
 */
function orderedProgress(listener: ((done: number, total: number) => void) | undefined, onError: (error: unknown) => void) {
  let last = -1;
  let finished = false;
  let failure: { error: unknown } | null = null;
  const report = listener
    ? (done: number, total: number) => {
      if (finished || failure || done <= last) return;
      last = done;
      try {
        listener(done, total);
      } catch (error) {
        failure = { error };
        onError(error);
      }
    }
    : null;
  return {
    report,
    finish(total: number) {
      if (report && last < total) report(total, total);
      finished = true;
      if (failure) throw failure.error;
    },
  };
}

function anySignal(a: AbortSignal | undefined, b: AbortSignal): AbortSignal {
  return a ? AbortSignal.any([a, b]) : b;
}

function nativeStatistics(statistics: unknown, n: number, method: QuantMethod): NativeStatistics {
  if (statistics === null || statistics === undefined) {
    if (method !== 'rtn') throw invalidParameterError('statistics', `a HessianAccumulator or { hessian } (method ${method} needs them)`, statistics);
    return null;
  }
  if (statistics instanceof HessianAccumulator) {
    if (statistics.disposed) throw invalidParameterError('statistics', 'a live HessianAccumulator', 'a disposed one');
    if (statistics.n !== n) throw invalidParameterError('statistics.n', `${n} (the weight's input columns)`, statistics.n);
    if (method === 'gptaq' && !statistics.crossTerm) throw invalidParameterError('statistics', 'an accumulator with crossTerm: true (gptaq needs the cross term)', 'crossTerm: false');
    return { accumulator: statistics.native };
  }
  if (typeof statistics !== 'object') throw invalidParameterError('statistics', 'a HessianAccumulator or { hessian, dxxt? }', statistics);
  const { hessian, dxxt } = statistics as LinearStatistics;
  if (method === 'gptaq' && dxxt === undefined) throw invalidParameterError('statistics.dxxt', 'the cross term (gptaq needs it)', undefined);
  return {
    hessian: toSquareFloats(hessian, 'statistics.hessian', n),
    dxxt: dxxt === undefined ? null : toSquareFloats(dxxt, 'statistics.dxxt', n),
  };
}

function publicResult(r: NativeLinearResult, method: QuantMethod, bits: number, groupSize: number): LinearQuantization {
  return {
    method,
    bits,
    groupSize,
    rows: r.rows,
    cols: r.cols,
    groups: r.groups,
    dequantized: r.dequantized,
    codes: r.codes,
    scales: r.scales,
    zeros: Int32Array.from(r.zeros),
    gIdx: r.gIdx,
    perm: r.perm,
    loss: r.loss,
    damping: { percdamp: r.damping.percdamp, lambda: r.damping.lambda, tried: r.damping.tried },
    fallback: r.fallback
      ? { method: 'rtn', reason: `the damped Hessian is not positive definite at percdamp ${r.damping.tried.join(', ')} (failing minor ${r.damping.failedMinor})` }
      : null,
    deadColumns: r.deadColumns,
    seconds: r.seconds,
  };
}
