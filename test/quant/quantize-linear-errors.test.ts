// Bad options and inputs of quantizeLinear and HessianAccumulator: every one gets a VlmqError
// whose message names the option or tensor (and, for bad values inside a tensor, the position),
// never a native crash. Also cancellation through AbortSignal, progress reporting, and a progress
// listener that throws (the call rejects with its error instead of losing it).
import t, { type Test } from 'tap';
import { HessianAccumulator, VlmqError, quantizeLinear, type QuantizeLinearOptions } from '../../lib/index.js';
import { mulberry32, randn } from '../reference/oracle.js';

const n = 8;
const m = 4;
const W = Float32Array.from({ length: m * n }, (_, i) => Math.sin(i + 1) * 0.1);
const weight = { dtype: 'F32' as const, shape: [m, n], data: W };
const H = new Float32Array(n * n);
for (let i = 0; i < n; i++) H[i * n + i] = 1 + i / n;
const D = new Float32Array(n * n).fill(0.01);

/**
 * The error `f` fails with, whether it throws synchronously or returns a rejected promise
 * (HessianAccumulator.add() checks its arguments synchronously, native checks reject).
 */
async function failure(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** Asserts a VlmqError with `code` whose message matches every pattern. */
async function expectError(t: Test, f: () => unknown, patterns: RegExp[], code = 'ERR_VLMQ_INVALID_ARG'): Promise<void> {
  const error = await failure(f);
  t.ok(error instanceof VlmqError, `a VlmqError (got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)})`);
  const e = error as VlmqError;
  t.equal(e?.code, code, `code ${code}`);
  for (const p of patterns) t.match(e?.message ?? '', p, `message "${e?.message}" matches ${p}`);
}

// ---------------------------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------------------------

const BAD_OPTIONS: [string, QuantizeLinearOptions | null, RegExp[]][] = [
  ['bits 5', { bits: 5 }, [/\bbits\b/, /\b5\b/]],
  ['bits 16', { bits: 16 }, [/\bbits\b/, /\b16\b/]],
  ['groupSize 0', { groupSize: 0 }, [/\bgroupSize\b/, /received 0\b/]],
  ['groupSize -2', { groupSize: -2 }, [/\bgroupSize\b/, /-2\b/]],
  ['groupSize 1.5', { groupSize: 1.5 }, [/\bgroupSize\b/, /1\.5/]],
  ['blockSize 0', { blockSize: 0 }, [/\bblockSize\b/, /received 0\b/]],
  ['percdamp -1', { percdamp: -1 }, [/\bpercdamp\b/, /-1\b/]],
  ['dampIncrement 0', { dampIncrement: 0 }, [/\bdampIncrement\b/]],
  ['maxPercdamp below percdamp', { percdamp: 0.05, maxPercdamp: 0.01 }, [/\bmaxPercdamp\b/, /\bpercdamp\b/, /0\.01/]],
  ['mseGrid 0', { mse: true, mseGrid: 0 }, [/\bmseGrid\b/]],
  ['mseMaxShrink 1.5', { mse: true, mseMaxShrink: 1.5 }, [/\bmseMaxShrink\b/, /1\.5/]],
  ['mseNorm -2', { mse: true, mseNorm: -2 }, [/\bmseNorm\b/]],
  ['alpha NaN', { method: 'gptaq', alpha: NaN }, [/\balpha\b/, /NaN/]],
  ['alpha Infinity', { method: 'gptaq', alpha: Infinity }, [/\balpha\b/, /Infinity/]],
  ['alpha 1e308 (Infinity as the float32 the native side keeps)', { method: 'gptaq', alpha: 1e308 }, [/\balpha\b/, /float32/, /received 1e\+308$/]],
  ['mseNorm 1e-50 (0 as a float32)', { mse: true, mseNorm: 1e-50 }, [/\bmseNorm\b/, /float32/, /received 1e-50$/]],
  ['mseMaxShrink 1e-50 (0 as a float32)', { mse: true, mseMaxShrink: 1e-50 }, [/\bmseMaxShrink\b/, /received 1e-50$/]],
  ['mseGrid past the int32 the native side keeps', { mse: true, mseGrid: 2 ** 31 }, [/\bmseGrid\b/, /\[1, 10000\]/, /received 2147483648$/]],
  ['a dampIncrement that never reaches maxPercdamp', { dampIncrement: 1e-320 }, [/\bdampIncrement\b/, /at most 1000 steps/, /received 1e-320$/]],
  ['groupSize 1e300 (an integer, but not a safe one)', { groupSize: 1e300 }, [/\bgroupSize\b/, /received 1e\+300$/]],
  ['blockSize 2^53 + 2', { blockSize: 2 ** 53 + 2 }, [/\bblockSize\b/]],
  ['unknown option key groupsize (a typo of groupSize)', { groupsize: 16 } as QuantizeLinearOptions, [/\bgroupsize\b/, /unknown option/]],
  ['staticGroups with groupSize -1', { staticGroups: true }, [/\bstaticGroups\b/, /groupSize/]],
  ['actOrder with method rtn', { method: 'rtn', actOrder: true }, [/\bactOrder\b/, /\brtn\b/]],
  ["method 'awq'", { method: 'awq' } as unknown as QuantizeLinearOptions, [/\bmethod\b/, /awq/]],
  ["gptaqVariant 'paper'", { gptaqVariant: 'paper' } as unknown as QuantizeLinearOptions, [/\bgptaqVariant\b/, /paper/]],
  ["sym 'yes'", { sym: 'yes' } as unknown as QuantizeLinearOptions, [/\bsym\b/, /yes/]],
  ['signal that is not an AbortSignal', { signal: {} } as unknown as QuantizeLinearOptions, [/\bsignal\b/, /AbortSignal/]],
  ['onProgress that is not a function', { onProgress: 3 } as unknown as QuantizeLinearOptions, [/\bonProgress\b/]],
  ['options null', null, [/\boptions\b/]],
];

for (const [label, options, patterns] of BAD_OPTIONS) {
  t.test(`quantizeLinear rejects ${label} with an error naming it`, async (t) => {
    const method = options?.method ?? 'gptq';
    const stats = method === 'rtn' ? null : { hessian: H, dxxt: D };
    await expectError(t, () => quantizeLinear(weight, stats, options as QuantizeLinearOptions), patterns);
  });
}

// ---------------------------------------------------------------------------------------------
// the weight
// ---------------------------------------------------------------------------------------------

t.test('quantizeLinear rejects a weight of dtype I32, naming weight.dtype', async (t) => {
  await expectError(t, () => quantizeLinear({ dtype: 'I32', shape: [m, n], data: new Int32Array(m * n) }, { hessian: H }), [/\bweight\.dtype\b/, /I32/]);
});

t.test('quantizeLinear rejects a weight that is not 2-D, naming weight.shape', async (t) => {
  await expectError(t, () => quantizeLinear({ dtype: 'F32', shape: [2, 2, n], data: new Float32Array(4 * n) }, { hessian: H }), [/\bweight\.shape\b/, /2-D/]);
  await expectError(t, () => quantizeLinear({ dtype: 'F32', shape: [m * n], data: W }, { hessian: H }), [/\bweight\.shape\b/, /2-D/]);
});

t.test('quantizeLinear rejects weight data of the wrong length, naming weight.data and the count', async (t) => {
  await expectError(t, () => quantizeLinear({ dtype: 'F32', shape: [m, n], data: new Float32Array(m * n - 1) }, { hessian: H }), [/\bweight\.data\b/, /\b32\b/, /\b31\b/]);
});

t.test('quantizeLinear rejects F16 data in a Float32Array, naming weight.data and Uint16Array', async (t) => {
  await expectError(t, () => quantizeLinear({ dtype: 'F16', shape: [m, n], data: new Float32Array(m * n) }, { hessian: H }), [/\bweight\.data\b/, /Uint16Array/]);
});

t.test('quantizeLinear rejects an empty weight', async (t) => {
  await expectError(t, () => quantizeLinear({ dtype: 'F32', shape: [0, n], data: new Float32Array(0) }, { hessian: H }), [/\bweight\b/]);
});

t.test('quantizeLinear rejects NaN in the weight, naming the tensor and the position', async (t) => {
  const data = W.slice();
  data[2 * n + 5] = NaN;
  for (const method of ['rtn', 'gptq'] as const) {
    await expectError(t, () => quantizeLinear({ ...weight, data }, method === 'rtn' ? null : { hessian: H }, { method }), [/\bweight\b/, /NaN/, /\[2, 5\]/]);
  }
});

// ---------------------------------------------------------------------------------------------
// statistics
// ---------------------------------------------------------------------------------------------

t.test('quantizeLinear rejects missing statistics for gptq, naming statistics', async (t) => {
  await expectError(t, () => quantizeLinear(weight, null, { method: 'gptq' }), [/\bstatistics\b/, /gptq/]);
});

t.test('quantizeLinear rejects a hessian of the wrong size, naming statistics.hessian', async (t) => {
  await expectError(t, () => quantizeLinear(weight, { hessian: new Float32Array(n * n - 1) }), [/\bstatistics\.hessian\b/, /\b64\b/]);
  await expectError(t, () => quantizeLinear(weight, { hessian: { dtype: 'F32', shape: [n, n + 1], data: new Float32Array(n * (n + 1)) } }), [/\bstatistics\.hessian\b/, /\[8, 8\]/]);
});

t.test('quantizeLinear rejects a Float64Array hessian, naming statistics.hessian', async (t) => {
  await expectError(t, () => quantizeLinear(weight, { hessian: new Float64Array(n * n) as unknown as Float32Array }), [/\bstatistics\.hessian\b/, /Float64Array/]);
});

t.test('quantizeLinear rejects gptaq without dxxt, naming statistics.dxxt', async (t) => {
  await expectError(t, () => quantizeLinear(weight, { hessian: H }, { method: 'gptaq' }), [/\bstatistics\.dxxt\b/, /gptaq/]);
});

t.test('quantizeLinear rejects an accumulator with the wrong n, naming statistics.n and both sizes', async (t) => {
  const acc = new HessianAccumulator(n + 1);
  await expectError(t, () => quantizeLinear(weight, acc), [/\bstatistics\.n\b/, /\b8\b/, /\b9\b/]);
  acc.dispose();
});

t.test('quantizeLinear rejects an accumulator without crossTerm for gptaq, saying crossTerm is needed', async (t) => {
  const acc = new HessianAccumulator(n);
  await acc.add(new Float32Array(4 * n).fill(1));
  await expectError(t, () => quantizeLinear(weight, acc, { method: 'gptaq' }), [/\bstatistics\b/, /crossTerm/]);
  acc.dispose();
});

t.test('quantizeLinear rejects NaN and infinities in hessian and dxxt, naming the tensor and the position', async (t) => {
  const h = H.slice();
  h[3 * n + 4] = NaN;
  h[4 * n + 3] = NaN;
  await expectError(t, () => quantizeLinear(weight, { hessian: h }), [/\bhessian\b/, /NaN/, /\[3, 4\]/]);
  const hi = H.slice();
  hi[5 * n + 5] = Infinity;
  await expectError(t, () => quantizeLinear(weight, { hessian: hi }), [/\bhessian\b/, /infinite/, /\[5, 5\]/]);
  const d = D.slice();
  d[1 * n + 6] = NaN;
  await expectError(t, () => quantizeLinear(weight, { hessian: H, dxxt: d }, { method: 'gptaq' }), [/\bdxxt\b/, /NaN/, /\[1, 6\]/]);
});

t.test('quantizeLinear rejects a non-symmetric hessian, saying it is not symmetric and where', async (t) => {
  const h = H.slice();
  h[1 * n + 2] = 0.5;
  await expectError(t, () => quantizeLinear(weight, { hessian: h }), [/\bhessian\b/, /not symmetric/, /\b1\b.*\b2\b|\b2\b.*\b1\b/]);
});

t.test('quantizeLinear rejects a negative hessian diagonal (not a Hessian), naming the position', async (t) => {
  const h = H.slice();
  h[2 * n + 2] = -1;
  await expectError(t, () => quantizeLinear(weight, { hessian: h }), [/\bhessian\b/, /\[2, 2\]/, /negative/]);
});

// ---------------------------------------------------------------------------------------------
// HessianAccumulator
// ---------------------------------------------------------------------------------------------

t.test('HessianAccumulator(0) and non-integer sizes are rejected, naming n', async (t) => {
  await expectError(t, () => new HessianAccumulator(0), [/\bn\b/, /received 0\b/]);
  await expectError(t, () => new HessianAccumulator(1.5), [/\bn\b/, /1\.5/]);
  await expectError(t, () => new HessianAccumulator(4, { crossTerm: 'yes' as unknown as boolean }), [/\bcrossTerm\b/]);
});

t.test('add() rejects negative, NaN and missing token weights, naming tokenWeights and the position', async (t) => {
  const acc = new HessianAccumulator(n);
  const x = new Float32Array(3 * n).fill(1);
  await expectError(t, () => acc.add(x, { tokenWeights: [1, -1, 1] }), [/\btokenWeights\[1\]/, /-1/]);
  await expectError(t, () => acc.add(x, { tokenWeights: Float32Array.of(1, 1, NaN) }), [/\btokenWeights\[2\]/, /NaN/]);
  await expectError(t, () => acc.add(x, { tokenWeights: [1, 1] }), [/\btokenWeights\b/, /\b3\b/]);
  await expectError(t, () => acc.add(x, { tokenWeights: [1, 1, 1, 1] }), [/\btokenWeights\b/, /\b3\b/]);
  t.equal(acc.samples, 0, 'nothing was added');
  acc.dispose();
});

t.test('add() rejects xFull on an accumulator without the cross term, naming xFull and crossTerm', async (t) => {
  const acc = new HessianAccumulator(n);
  const x = new Float32Array(3 * n).fill(1);
  await expectError(t, () => acc.add(x, { xFull: x }), [/\bxFull\b/, /crossTerm/]);
  acc.dispose();
});

t.test('add() on a cross-term accumulator requires xFull with the rows of x, naming xFull', async (t) => {
  const acc = new HessianAccumulator(n, { crossTerm: true });
  const x = new Float32Array(3 * n).fill(1);
  await expectError(t, () => acc.add(x), [/\bxFull\b/]);
  await expectError(t, () => acc.add(x, { xFull: new Float32Array(2 * n) }), [/\bxFull\b/, /rows/]);
  acc.dispose();
});

t.test('add() rejects x with the wrong column count, naming x and n', async (t) => {
  const acc = new HessianAccumulator(n);
  await expectError(t, () => acc.add({ dtype: 'F32', shape: [3, n + 1], data: new Float32Array(3 * (n + 1)) }), [/\bx\.shape\b/, /\b8\b/]);
  await expectError(t, () => acc.add(new Float32Array(3 * n + 1)), [/\bx\b/, /multiple of 8/]);
  await expectError(t, () => acc.add(new Float32Array(0)), [/\bx\b/]);
  acc.dispose();
});

t.test('add() rejects NaN in x and xFull, naming the tensor and the position', async (t) => {
  const acc = new HessianAccumulator(n, { crossTerm: true });
  const x = new Float32Array(3 * n).fill(1);
  const bad = x.slice();
  bad[n + 2] = NaN;
  await expectError(t, () => acc.add(bad, { xFull: x }), [/\bx\b/, /NaN/, /first at \[1, 2\]/]);
  await expectError(t, () => acc.add(x, { xFull: bad }), [/\bxFull\b/, /NaN/, /first at \[1, 2\]/]);
  t.equal(acc.samples, 0, 'nothing was added');
  acc.dispose();
});

t.test('add() rejects samples ≤ 0, naming samples', async (t) => {
  const acc = new HessianAccumulator(n);
  const x = new Float32Array(3 * n).fill(1);
  await expectError(t, () => acc.add(x, { samples: 0 }), [/\bsamples\b/]);
  await expectError(t, () => acc.add(x, { samples: -1 }), [/\bsamples\b/]);
  acc.dispose();
});

t.test('dxxt() on an accumulator without the cross term is rejected, naming dxxt() and crossTerm', async (t) => {
  const acc = new HessianAccumulator(n);
  await expectError(t, () => acc.dxxt(), [/\bdxxt\(\)/, /crossTerm/]);
  acc.dispose();
});

t.test('add() after dispose() is rejected, saying the accumulator was disposed', async (t) => {
  const acc = new HessianAccumulator(n);
  acc.dispose();
  await expectError(t, () => acc.add(new Float32Array(n)), [/add\(\)/, /disposed/]);
  await expectError(t, () => quantizeLinear(weight, acc), [/\bstatistics\b/, /disposed/]);
});

t.test('after every rejected call the library still quantizes normally', async (t) => {
  const res = await quantizeLinear(weight, { hessian: H }, { bits: 4 });
  t.equal(res.codes.length, m * n);
  t.equal(res.fallback, null);
});

// ---------------------------------------------------------------------------------------------
// cancellation and progress
// ---------------------------------------------------------------------------------------------

/** A layer large enough that the sweep takes a while: gptaq, n = 1024, m = 1024, blockSize 1. */
async function longProblem() {
  const N = 1024;
  const M = 1024;
  const rng = mulberry32(5);
  const x = Float32Array.from({ length: 2048 * N }, () => randn(rng));
  const acc = new HessianAccumulator(N, { crossTerm: true });
  await acc.add(x, { xFull: x.map((v) => v * 1.01) });
  const stats = { hessian: await acc.hessian(), dxxt: await acc.dxxt() };
  acc.dispose();
  const w = { dtype: 'F32' as const, shape: [M, N], data: Float32Array.from({ length: M * N }, () => randn(rng) * 0.05) };
  return { N, w, stats };
}

t.test('an AbortSignal aborted during a long quantizeLinear rejects with signal.reason', async (t) => {
  // Measured on a 2-core machine: the full run takes about 0.4 s (1024 blocks of one column,
  // each reporting progress), the abort lands after the first progress report (a few ms in) and
  // the promise rejects well before the sweep could finish.
  const { N, w, stats } = await longProblem();
  const started = performance.now();
  const full = await quantizeLinear(w, stats, { method: 'gptaq', blockSize: 1 });
  const fullMs = performance.now() - started;
  t.equal(full.cols, N);
  t.comment(`uncancelled run: ${fullMs.toFixed(0)} ms`);

  const controller = new AbortController();
  const reason = new Error('cancelled by the test');
  let abortedAt = -1;
  const t0 = performance.now();
  const error = await failure(() => quantizeLinear(w, stats, {
    method: 'gptaq',
    blockSize: 1,
    signal: controller.signal,
    onProgress: (done) => {
      if (abortedAt < 0) {
        abortedAt = done;
        controller.abort(reason);
      }
    },
  }));
  t.comment(`cancelled run: rejected after ${(performance.now() - t0).toFixed(0)} ms, aborted at column ${abortedAt}`);
  t.equal(error, reason, 'the rejection is signal.reason itself');
  t.ok(abortedAt >= 0 && abortedAt < N, 'the abort happened mid-sweep');

  const again = await quantizeLinear(w, stats, { method: 'gptq', blockSize: 128 });
  t.equal(again.cols, N, 'the next call runs normally');
});

t.test('an AbortSignal aborted before the call rejects with signal.reason (also the default AbortError)', async (t) => {
  const controller = new AbortController();
  const reason = { why: 'any value' };
  controller.abort(reason);
  t.equal(await failure(() => quantizeLinear(weight, { hessian: H }, { signal: controller.signal })), reason, 'custom reason');
  const plain = AbortSignal.abort();
  const error = await failure(() => quantizeLinear(weight, { hessian: H }, { signal: plain }));
  t.equal(error, plain.reason, 'default reason');
  t.match(error, { name: 'AbortError' });
});

t.test('onProgress is called with increasing done, total = n, ending with (n, n) before the promise resolves', async (t) => {
  const N = 256;
  const rng = mulberry32(6);
  const x = Float32Array.from({ length: 512 * N }, () => randn(rng));
  const acc = new HessianAccumulator(N);
  await acc.add(x);
  const w = { dtype: 'F32' as const, shape: [64, N], data: Float32Array.from({ length: 64 * N }, () => randn(rng)) };
  for (const blockSize of [8, 128, 1024]) {
    const calls: [number, number][] = [];
    const res = await quantizeLinear(w, acc, { blockSize, onProgress: (done, total) => calls.push([done, total]) });
    const settled = calls.length;
    t.equal(res.cols, N);
    t.ok(calls.length >= 1, `blockSize ${blockSize}: called (${calls.length} times)`);
    t.ok(calls.every(([, total]) => total === N), `blockSize ${blockSize}: total is n = ${N} in every call`);
    t.ok(calls.every(([done], i) => done >= 0 && done <= N && (i === 0 || done > calls[i - 1][0])), `blockSize ${blockSize}: done increases within [0, n]: ${calls.map(([d]) => d).join(', ')}`);
    t.same(calls[calls.length - 1], [N, N], `blockSize ${blockSize}: the last call is (n, n)`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    t.equal(calls.length, settled, `blockSize ${blockSize}: no call after the promise resolved`);
  }
  acc.dispose();
});

t.test('an onProgress that throws stops the sweep and rejects the call with its error; the listener hears nothing more', async (t) => {
  const { N, w, stats } = await longProblem();
  const started = performance.now();
  await quantizeLinear(w, stats, { method: 'gptaq', blockSize: 1 });
  const fullMs = performance.now() - started;

  const thrown = new Error('listener failed');
  const calls: number[] = [];
  const t0 = performance.now();
  const error = await failure(() => quantizeLinear(w, stats, {
    method: 'gptaq',
    blockSize: 1,
    onProgress: (done) => {
      calls.push(done);
      throw thrown;
    },
  }));
  t.comment(`uncancelled run ${fullMs.toFixed(0)} ms; the run whose listener threw rejected after ${(performance.now() - t0).toFixed(0)} ms`);
  t.equal(error, thrown, 'the rejection is the listener\'s error itself');
  t.equal(calls.length, 1, 'called once: the first throw silences it');
  t.ok(calls[0] < N, 'it threw mid-sweep');
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(calls.length, 1, 'and not called after the promise settled');

  const again = await quantizeLinear(w, stats, { method: 'gptq', blockSize: 128 });
  t.equal(again.cols, N, 'the next call runs normally');
});

t.test('an onProgress that throws only on the final (n, n) call still rejects the call with its error', async (t) => {
  const thrown = new RangeError('at the end');
  const error = await failure(() => quantizeLinear(weight, { hessian: H }, {
    onProgress: (done, total) => {
      if (done === total) throw thrown;
    },
  }));
  t.equal(error, thrown);
});

t.test('an onProgress that throws mid-sweep alongside a caller\'s AbortSignal rejects with the listener\'s error and leaves the signal alone', async (t) => {
  const { N, w, stats } = await longProblem();
  const controller = new AbortController();
  const thrown = new Error('listener failed');
  let at = -1;
  const error = await failure(() => quantizeLinear(w, stats, {
    method: 'gptaq',
    blockSize: 1,
    signal: controller.signal,
    onProgress: (done) => {
      at = done;
      throw thrown;
    },
  }));
  t.equal(error, thrown);
  t.ok(at >= 0 && at < N, 'it threw mid-sweep');
  t.equal(controller.signal.aborted, false, 'the caller\'s signal is not aborted');
});
