// The raw addon re-checks what it is given: garbage that bypasses the TypeScript layer must come
// back as a TypeError naming the argument, never as a crash (a crash would fail this whole file).
import t from 'tap';
import { binding } from '../../lib/native/loader.js';

const raw = binding();
const matrix = { data: new Float32Array(8), dtype: 'F32', rows: 2, cols: 4 };
const options = {
  method: 'gptq', bits: 4, sym: false, groupSize: -1, actOrder: false, staticGroups: false, blockSize: 128,
  percdamp: 0.01, dampIncrement: 0.0025, maxPercdamp: 0.1, mse: false, mseNorm: 2.4, mseGrid: 100,
  mseMaxShrink: 0.8, fp32Scales: false, alpha: 0.25, gptaqVariant: 'reference',
};
const hessian = Float32Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0));
const call = (...args: any[]) => (raw.quantizeLinear as (...a: unknown[]) => Promise<unknown>)(...args);

t.test('quantizeLinear rejects malformed matrices, statistics and options with a TypeError', async (t) => {
  const cases: [unknown[], RegExp][] = [
    [[undefined, null, options, null, null], /object for weight/],
    [[{ ...matrix, data: [1, 2] }, null, options, null, null], /TypedArray for weight\.data/],
    [[{ ...matrix, dtype: 'I32' }, null, options, null, null], /F32, F16 or BF16 for weight\.dtype/],
    [[{ ...matrix, data: new Uint16Array(8) }, null, options, null, null], /needs a Float32Array/],
    [[{ ...matrix, rows: 3 }, null, options, null, null], /do not make a \[3, 4\] matrix/],
    [[{ ...matrix, rows: -2, cols: -4 }, null, options, null, null], /do not make/],
    [[{ ...matrix, rows: 1.5 }, null, options, null, null], /integer for weight\.rows/],
    [[matrix, { hessian: new Float64Array(16) }, options, null, null], /Float32Array for statistics\.hessian/],
    [[matrix, { hessian: new Float32Array(15) }, options, null, null], /16 elements in statistics\.hessian/],
    [[matrix, { accumulator: {} }, options, null, null], /HessianAccumulator for statistics\.accumulator/],
    [[matrix, { hessian }, { ...options, bits: 'four' }, null, null], /number for options\.bits/],
    [[matrix, { hessian }, { ...options, method: 'awq' }, null, null], /rtn, gptq or gptaq for options\.method/],
    [[matrix, { hessian }, { ...options, gptaqVariant: undefined }, null, null], /string for options\.gptaqVariant/],
    [[matrix, { hessian }, options, {}, null], /CancelToken or null for cancel/],
    [[matrix, { hessian }, options, new raw.HessianAccumulator(4, false), null], /CancelToken or null for cancel/],
    [[matrix, null, options, null, null], /statistics are required for gptq/],
    [[matrix, { hessian }, { ...options, method: 'gptaq' }, null, null], /gptaq needs the cross term/],
  ];
  for (const [args, message] of cases) t.throws(() => call(...args), { name: 'TypeError', message }, String(message));
});

t.test('options that pass the type check but not the range check reject the Promise', async (t) => {
  for (const bad of [{ bits: 5 }, { groupSize: 0 }, { blockSize: 0 }, { percdamp: -1 }, { dampIncrement: 0 }]) {
    await t.rejects(call(matrix, { hessian }, { ...options, ...bad }, null, null), { code: 'ERR_VLMQ_INVALID_ARG' }, JSON.stringify(bad));
  }
});

t.test('HessianAccumulator rejects a bad construction and bad batches with a TypeError', async (t) => {
  t.throws(() => new raw.HessianAccumulator(0, false), { message: /integer in \[1, 1048576\] for n/ });
  t.throws(() => new (raw.HessianAccumulator as unknown as new (...a: unknown[]) => unknown)('4', false), { name: 'TypeError' });
  const acc = new raw.HessianAccumulator(4, false);
  t.throws(() => acc.add({ ...matrix, data: new Float32Array(7) } as never, null, null, 1, null), /do not make a \[2, 4\] matrix/);
  t.throws(() => acc.add(matrix as never, null, new Float32Array(3), 1, null), /2 elements in tokenWeights/);
  t.throws(() => acc.add(matrix as never, null, null, '1' as unknown as number, null), /number for samples/);
  t.throws(() => acc.add(matrix as never, null, null, 1, acc as never), /CancelToken or null for cancel/);
  await t.rejects(acc.add({ ...matrix, cols: 2, data: new Float32Array(4) } as never, null, null, 1, null), /x has 2 columns, expected 4/);
  acc.dispose();
  t.throws(() => acc.add(matrix as never, null, null, 1, null), /disposed/);
  t.throws(() => acc.read(false), /disposed/);
  acc.dispose();  // twice is harmless
});

t.test('an accumulator disposed while its add() runs finishes the job safely', async (t) => {
  const n = 512;
  const acc = new raw.HessianAccumulator(n, true);
  const x = { data: new Float32Array(4096 * n).fill(0.5), dtype: 'F32' as const, rows: 4096, cols: n };
  const pending = acc.add(x, x, null, 1, null);
  acc.dispose();
  await t.resolves(pending, 'the job keeps the statistics alive until it ends');
  t.equal(acc.disposed, true);
});
