// HessianAccumulator against the float64 oracle's accumulate() (docs/algorithm.md §1.2, §3(c),
// §4.3): H = (2/N) Σ_t w_t x_t x_tᵀ and dXXT = (2/N) Σ_t w_t (x̃_t − x_t) x_tᵀ as running
// averages over samples. Native sums run in float32, so values are compared within 1e-5 of
// max |H|; identities that hold exactly in float32 (powers of two, integer data) are checked
// exactly.
import t from 'tap';
import { HessianAccumulator, quantizeLinear } from '../../lib/index.js';
import { accumulate, mulberry32, randn, type OracleBatch } from '../reference/oracle.js';
import { toHalf } from '../helpers/half.js';
import { layerProblem } from '../helpers/problems.js';

function randomTokens(rng: () => number, tokens: number, n: number, scale = 1): Float32Array {
  const x = new Float32Array(tokens * n);
  for (let i = 0; i < x.length; i++) x[i] = randn(rng) * scale * (1 + (i % n) / n);
  return x;
}

function tensor(x: Float32Array | Uint16Array, n: number, dtype: 'F32' | 'F16' | 'BF16' = 'F32') {
  return { dtype, shape: [x.length / n, n], data: x };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** max |a − b| / max |b|: the error relative to the matrix's scale. */
function relativeToMax(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst / (maxAbs(b) || 1);
}

function exactlyEqual(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function oracleBatch(x: Float32Array, options: { xFull?: Float32Array; weights?: Float32Array; samples?: number } = {}): OracleBatch {
  return {
    x: Float64Array.from(x),
    xFull: options.xFull ? Float64Array.from(options.xFull) : undefined,
    weights: options.weights ? Float64Array.from(options.weights) : undefined,
    samples: options.samples,
  };
}

const TOLERANCE = 1e-5;

t.test('one batch: H equals (2/1)·Σ x xᵀ of the reference within 1e-5 of max |H|', async (t) => {
  const n = 24;
  const x = randomTokens(mulberry32(1), 100, n);
  const acc = new HessianAccumulator(n);
  await acc.add(tensor(x, n));
  const H = await acc.hessian();
  const ref = accumulate([oracleBatch(x)], n);
  t.equal(H.length, n * n, 'H is [n, n]');
  t.ok(relativeToMax(H, ref.H) <= TOLERANCE, `max error ${relativeToMax(H, ref.H).toExponential(2)} of max |H|`);
  t.equal(acc.samples, 1, 'one sample counted');
  acc.dispose();
});

t.test('a bare Float32Array of rows is accepted like an F32 tensor', async (t) => {
  const n = 16;
  const x = randomTokens(mulberry32(2), 40, n);
  const a = new HessianAccumulator(n);
  const b = new HessianAccumulator(n);
  await a.add(x);
  await b.add(tensor(x, n));
  t.ok(exactlyEqual(await a.hessian(), await b.hessian()), 'identical H');
  a.dispose();
  b.dispose();
});

t.test('several batches with different samples counts form the reference running average', async (t) => {
  const n = 20;
  const rng = mulberry32(3);
  const plan = [
    { tokens: 30, samples: 1 },
    { tokens: 50, samples: 3 },
    { tokens: 7, samples: 0.5 },
    { tokens: 64, samples: 2 },
  ];
  const acc = new HessianAccumulator(n);
  const batches: OracleBatch[] = [];
  for (const { tokens, samples } of plan) {
    const x = randomTokens(rng, tokens, n);
    await acc.add(tensor(x, n), { samples });
    batches.push(oracleBatch(x, { samples }));
  }
  const ref = accumulate(batches, n);
  const H = await acc.hessian();
  t.ok(relativeToMax(H, ref.H) <= TOLERANCE, `max error ${relativeToMax(H, ref.H).toExponential(2)} of max |H|`);
  t.equal(acc.samples, 6.5, 'samples add up');
  t.equal(ref.nsamples, 6.5);
  acc.dispose();
});

t.test('per-token weights give (2/N) Σ w_t x_t x_tᵀ like the reference', async (t) => {
  const n = 20;
  const rng = mulberry32(4);
  const acc = new HessianAccumulator(n);
  const batches: OracleBatch[] = [];
  for (const [tokens, samples] of [[40, 1], [25, 2]]) {
    const x = randomTokens(rng, tokens, n);
    const w = Float32Array.from({ length: tokens }, (_, i) => (i % 7 === 0 ? 0 : 3 * rng()));
    await acc.add(tensor(x, n), { tokenWeights: w, samples });
    batches.push(oracleBatch(x, { weights: w, samples }));
  }
  const ref = accumulate(batches, n);
  const H = await acc.hessian();
  t.ok(relativeToMax(H, ref.H) <= TOLERANCE, `max error ${relativeToMax(H, ref.H).toExponential(2)} of max |H|`);
  const unweighted = accumulate(batches.map((b) => ({ ...b, weights: undefined })), n);
  t.ok(relativeToMax(unweighted.H, ref.H) > 100 * TOLERANCE, 'the weights matter on this data (far from the unweighted H)');
  acc.dispose();
});

t.test('all-ones token weights give exactly the unweighted H (an array of numbers is accepted too)', async (t) => {
  const n = 32;
  const x = randomTokens(mulberry32(5), 80, n);
  const plain = new HessianAccumulator(n);
  const ones = new HessianAccumulator(n);
  const onesArray = new HessianAccumulator(n);
  await plain.add(tensor(x, n));
  await ones.add(tensor(x, n), { tokenWeights: new Float32Array(80).fill(1) });
  await onesArray.add(tensor(x, n), { tokenWeights: new Array<number>(80).fill(1) });
  const H = await plain.hessian();
  t.ok(exactlyEqual(await ones.hessian(), H), 'Float32Array of ones: bit-identical');
  t.ok(exactlyEqual(await onesArray.hessian(), H), 'array of ones: bit-identical');
  for (const a of [plain, ones, onesArray]) a.dispose();
});

t.test('scaling every token weight by 4 scales H and dXXT by exactly 4', async (t) => {
  // √(4w) = 2√w exactly, so every scaled row is exactly twice the unscaled one and every
  // product of two rows exactly four times: the float32 sums scale exactly.
  const n = 24;
  const rng = mulberry32(6);
  const x = randomTokens(rng, 60, n);
  const xFull = x.map((v) => Math.fround(v * (1 + 0.1 * randn(rng))));
  const w = Float32Array.from({ length: 60 }, () => 0.25 + 2 * rng());
  const a = new HessianAccumulator(n, { crossTerm: true });
  const b = new HessianAccumulator(n, { crossTerm: true });
  await a.add(tensor(x, n), { xFull: tensor(xFull, n), tokenWeights: w });
  await b.add(tensor(x, n), { xFull: tensor(xFull, n), tokenWeights: w.map((v) => v * 4) });
  const [Ha, Hb, Da, Db] = [await a.hessian(), await b.hessian(), await a.dxxt(), await b.dxxt()];
  t.ok(exactlyEqual(Hb, Ha.map((v) => v * 4)), 'H scales by exactly 4');
  t.ok(exactlyEqual(Db, Da.map((v) => v * 4)), 'dXXT scales by exactly 4');
  a.dispose();
  b.dispose();
});

t.test('per-sample reweighting changes H, as the reference does (not a global rescale)', async (t) => {
  const n = 16;
  const rng = mulberry32(7);
  // two samples from different distributions, so their relative weight matters
  const x1 = randomTokens(rng, 40, n, 1);
  const x2 = randomTokens(rng, 40, n, 3);
  const uniform = new HessianAccumulator(n);
  const reweighted = new HessianAccumulator(n);
  await uniform.add(tensor(x1, n));
  await uniform.add(tensor(x2, n));
  const w1 = new Float32Array(40).fill(2);
  const w2 = new Float32Array(40).fill(1);
  await reweighted.add(tensor(x1, n), { tokenWeights: w1 });
  await reweighted.add(tensor(x2, n), { tokenWeights: w2 });
  const Hu = await uniform.hessian();
  const Hr = await reweighted.hessian();
  const ref = accumulate([oracleBatch(x1, { weights: w1 }), oracleBatch(x2, { weights: w2 })], n);
  t.ok(relativeToMax(Hr, ref.H) <= TOLERANCE, 'the reweighted H matches the reference');
  // no constant c makes c·Hu equal Hr: compare the shapes after normalising by the trace
  const trace = (H: Float32Array) => Array.from({ length: n }, (_, i) => H[i * n + i]).reduce((s, v) => s + v, 0);
  const cu = trace(Hu);
  const cr = trace(Hr);
  t.ok(relativeToMax(Hu.map((v) => v / cu), Hr.map((v) => v / cr)) > 0.01, 'and differs from the uniform H beyond a global scale');
  uniform.dispose();
  reweighted.dispose();
});

t.test('the cross term with xFull matches the reference dXXT (and H is unchanged by it)', async (t) => {
  const n = 24;
  const p = layerProblem({ m: 4, n, tokens: 150, seed: 8, fullNoise: 0.2 });
  const rng = mulberry32(9);
  const w = Float32Array.from({ length: 50 }, () => 2 * rng());
  const acc = new HessianAccumulator(n, { crossTerm: true });
  const plain = new HessianAccumulator(n);
  // three batches: 100 unweighted tokens (2 samples), then 50 weighted tokens (1 sample)
  await acc.add(tensor(p.X.subarray(0, 100 * n), n), { xFull: tensor(p.Xfull.subarray(0, 100 * n), n), samples: 2 });
  await acc.add(tensor(p.X.subarray(100 * n), n), { xFull: tensor(p.Xfull.subarray(100 * n), n), tokenWeights: w });
  await plain.add(tensor(p.X.subarray(0, 100 * n), n), { samples: 2 });
  await plain.add(tensor(p.X.subarray(100 * n), n), { tokenWeights: w });
  const ref = accumulate([
    oracleBatch(p.X.subarray(0, 100 * n), { xFull: p.Xfull.subarray(0, 100 * n), samples: 2 }),
    oracleBatch(p.X.subarray(100 * n), { xFull: p.Xfull.subarray(100 * n), weights: w }),
  ], n);
  const D = await acc.dxxt();
  t.ok(relativeToMax(D, ref.dXXT) <= TOLERANCE, `dXXT max error ${relativeToMax(D, ref.dXXT).toExponential(2)} of max |dXXT|`);
  t.ok(relativeToMax(await acc.hessian(), ref.H) <= TOLERANCE, 'H matches the reference');
  t.ok(exactlyEqual(await acc.hessian(), await plain.hessian()), 'H is bit-identical to an accumulator without the cross term');
  t.ok(maxAbs(D) > 0, 'the cross term is not trivially zero');
  acc.dispose();
  plain.dispose();
});

t.test('BF16 and F16 input rows give exactly the H and dXXT of F32 rows holding the same values', async (t) => {
  const n = 32;
  const rng = mulberry32(10);
  const x = randomTokens(rng, 70, n);
  const xFull = x.map((v) => Math.fround(v * (1 + 0.1 * randn(rng))));
  const w = Float32Array.from({ length: 70 }, () => 2 * rng());
  for (const dtype of ['BF16', 'F16'] as const) {
    for (const weighted of [false, true]) {
      const h = toHalf(x, dtype);
      const hf = toHalf(xFull, dtype);
      const f32 = new HessianAccumulator(n, { crossTerm: true });
      const half = new HessianAccumulator(n, { crossTerm: true });
      const tokenWeights = weighted ? w : undefined;
      await f32.add(tensor(Float32Array.from(h.values), n), { xFull: tensor(Float32Array.from(hf.values), n), tokenWeights });
      await half.add(tensor(h.bits, n, dtype), { xFull: tensor(hf.bits, n, dtype), tokenWeights });
      t.ok(exactlyEqual(await half.hessian(), await f32.hessian()), `${dtype}${weighted ? ', weighted' : ''}: H bit-identical`);
      t.ok(exactlyEqual(await half.dxxt(), await f32.dxxt()), `${dtype}${weighted ? ', weighted' : ''}: dXXT bit-identical`);
      f32.dispose();
      half.dispose();
    }
  }
});

t.test('hessian() is exactly symmetric', async (t) => {
  const n = 37;
  const rng = mulberry32(11);
  const acc = new HessianAccumulator(n);
  await acc.add(tensor(randomTokens(rng, 90, n), n));
  await acc.add(tensor(randomTokens(rng, 33, n), n), { tokenWeights: Float32Array.from({ length: 33 }, () => rng()), samples: 3 });
  const H = await acc.hessian();
  let asymmetric = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) if (H[i * n + j] !== H[j * n + i]) asymmetric++;
  t.equal(asymmetric, 0, 'H[i, j] === H[j, i] for every pair');
  t.ok(Array.from({ length: n }, (_, i) => H[i * n + i]).every((d) => d > 0), 'positive diagonal');
  acc.dispose();
});

t.test('a batch larger than one slab (n = 2048: 8192 rows) equals its parts added as separate batches with the same total samples', async (t) => {
  // Native code processes a batch in slabs of max(256, 2^24 / n) rows: 8192 rows for n = 2048, so
  // 9000 tokens take two slabs, and the running-average rescale must apply once per batch, not
  // once per slab. Both accumulators first get x0 (100 tokens, samples 1): H = 2·Σ0.
  //   whole: all 9000 tokens as one batch of samples 3 (total 4):
  //          H = 2·Σ0 · 1/4 + (2/4)·Σall = ½·(Σ0 + Σall)
  //   parts: rows [0, 8192) with samples 1 (total 2), then rows [8192, 9000) with samples 2 (total 4):
  //          H = 2·Σ0 · 1/2 + (2/2)·Σa = Σ0 + Σa;  H = (Σ0 + Σa) · 2/4 + (2/4)·Σb = ½·(Σ0 + Σa + Σb)
  // The same matrix, since the factor 2/(total samples) is the same. Every rescale is a power of
  // two, and the tokens are small integers in [−3, 3], so every partial sum (at most 9·9100) is an
  // exact float32 integer and both sides are exact whatever the summation order: compared
  // bit for bit, and against float64 sums of the diagonal and 256 sampled entries.
  const n = 2048;
  const tokens = 9000;
  const split = 8192;
  const rng = mulberry32(12);
  const integers = (count: number) => Float32Array.from({ length: count }, () => Math.floor(rng() * 7) - 3);
  const x0 = integers(100 * n);
  const x = integers(tokens * n);
  const whole = new HessianAccumulator(n);
  const parts = new HessianAccumulator(n);
  await whole.add(tensor(x0, n));
  await whole.add(tensor(x, n), { samples: 3 });
  await parts.add(tensor(x0, n));
  await parts.add(tensor(x.subarray(0, split * n), n), { samples: 1 });
  await parts.add(tensor(x.subarray(split * n), n), { samples: 2 });
  const Hw = await whole.hessian();
  const Hp = await parts.hessian();
  t.equal(whole.samples, 4);
  t.equal(parts.samples, 4);
  t.ok(exactlyEqual(Hw, Hp), 'one batch of 9000 tokens = batches of 8192 and 808 tokens, bit for bit');
  const entry = (i: number, j: number) => {
    let s = 0;
    for (let r = 0; r < 100; r++) s += x0[r * n + i] * x0[r * n + j];
    for (let r = 0; r < tokens; r++) s += x[r * n + i] * x[r * n + j];
    return s / 2;
  };
  let wrong = 0;
  let first = '';
  const check = (i: number, j: number) => {
    const expected = entry(i, j);
    if (Hw[i * n + j] !== expected) {
      wrong++;
      first ||= `H[${i}, ${j}] = ${Hw[i * n + j]}, expected ${expected}`;
    }
  };
  for (let i = 0; i < n; i++) check(i, i);
  for (let k = 0; k < 256; k++) check(Math.floor(rng() * n), Math.floor(rng() * n));
  t.equal(wrong, 0, `the diagonal and 256 sampled entries equal ½·Σ over all 9100 tokens, summed in float64 ${first}`);
  whole.dispose();
  parts.dispose();
});

t.test('quantizeLinear accepts an accumulator directly, with the result of passing its hessian() and dxxt()', async (t) => {
  const p = layerProblem({ m: 16, n: 48, tokens: 200, seed: 13, fullNoise: 0.3 });
  const acc = new HessianAccumulator(p.n, { crossTerm: true });
  await acc.add(tensor(p.X, p.n), { xFull: tensor(p.Xfull, p.n), samples: 4 });
  const weight = { dtype: 'F32' as const, shape: [p.m, p.n], data: p.W };
  const statistics = { hessian: await acc.hessian(), dxxt: await acc.dxxt() };
  for (const options of [
    { method: 'gptq' as const, bits: 4 },
    { method: 'gptq' as const, bits: 3, groupSize: 16, actOrder: true, blockSize: 16 },
    { method: 'gptaq' as const, bits: 4, groupSize: 16, blockSize: 16 },
  ]) {
    const direct = await quantizeLinear(weight, acc, options);
    const copied = await quantizeLinear(weight, options.method === 'gptq' ? { hessian: statistics.hessian } : statistics, options);
    const label = JSON.stringify(options);
    t.ok(exactlyEqual(direct.codes, copied.codes), `${label}: codes`);
    t.ok(exactlyEqual(direct.dequantized, copied.dequantized), `${label}: dequantized`);
    t.ok(exactlyEqual(direct.scales, copied.scales), `${label}: scales`);
    t.ok(exactlyEqual(direct.zeros, copied.zeros), `${label}: zeros`);
    t.equal(direct.damping.lambda, copied.damping.lambda, `${label}: damping`);
  }
  t.ok(exactlyEqual(await acc.hessian(), statistics.hessian), 'quantizing does not change the accumulator');
  acc.dispose();
});

t.test('dispose() makes later calls throw an error that says the accumulator was disposed', async (t) => {
  const n = 8;
  const acc = new HessianAccumulator(n, { crossTerm: true });
  const x = randomTokens(mulberry32(14), 10, n);
  await acc.add(tensor(x, n), { xFull: tensor(x, n) });
  acc.dispose();
  t.equal(acc.disposed, true, 'disposed is true');
  const disposedError = { code: 'ERR_VLMQ_INVALID_ARG', message: /disposed/ };
  // add / hessian / dxxt check synchronously; accept a rejection as well
  const settle = async (f: () => Promise<unknown>) => {
    try {
      await f();
    } catch (e) {
      return e;
    }
    return undefined;
  };
  t.match(await settle(() => acc.add(tensor(x, n), { xFull: tensor(x, n) })), { ...disposedError, message: /add\(\).*disposed/ }, 'add() names itself');
  t.match(await settle(() => acc.hessian()), { ...disposedError, message: /hessian\(\).*disposed/ }, 'hessian() names itself');
  t.match(await settle(() => acc.dxxt()), disposedError, 'dxxt()');
  const weight = { dtype: 'F32' as const, shape: [2, n], data: new Float32Array(2 * n) };
  await t.rejects(quantizeLinear(weight, acc, {}), { code: 'ERR_VLMQ_INVALID_ARG', message: /statistics.*disposed/ }, 'quantizeLinear names the statistics');
  t.doesNotThrow(() => acc.dispose(), 'a second dispose() is harmless');
  const scoped = new HessianAccumulator(n);
  scoped[Symbol.dispose]();
  t.equal(scoped.disposed, true, 'Symbol.dispose disposes too');
});

t.test('an AbortSignal that is already aborted rejects add() with signal.reason and adds nothing', async (t) => {
  const n = 8;
  const acc = new HessianAccumulator(n);
  const controller = new AbortController();
  const reason = new Error('stop here');
  controller.abort(reason);
  const x = randomTokens(mulberry32(15), 10, n);
  let caught: unknown;
  try {
    await acc.add(tensor(x, n), { signal: controller.signal });
  } catch (e) {
    caught = e;
  }
  t.equal(caught, reason, 'the rejection is signal.reason itself');
  t.equal(acc.samples, 0, 'no samples were added');
  t.ok((await acc.hessian()).every((v) => v === 0), 'H is still zero');
  await acc.add(tensor(x, n));
  t.equal(acc.samples, 1, 'the accumulator still works afterwards');
  acc.dispose();
});
