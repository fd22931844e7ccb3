// Closed forms and invariants of quantizeLinear, checked on the native implementation alone
// (docs/algorithm.md §1.4, §1.5, §2(e), §3 and the invariants of §8). Expected values come from
// the construction of each input or from a second native run whose relation to the first is
// exact, never from the code under test computing the same thing twice in the same way.
import t, { type Test } from 'tap';
import { quantizeLinear, type LinearQuantization, type QuantizeLinearOptions } from '../../lib/index.js';
import { mulberry32 } from '../reference/oracle.js';
import { isExactF16 } from '../helpers/half.js';
import { cachedProblem, type LayerProblem } from '../helpers/problems.js';
import { hessianError } from '../helpers/reference-quant.js';

type Stats = { hessian: Float32Array; dxxt?: Float32Array } | null;

function weight(p: { m: number; n: number; W: Float32Array }) {
  return { dtype: 'F32' as const, shape: [p.m, p.n], data: p.W };
}

function run(p: LayerProblem, stats: Stats, options: QuantizeLinearOptions): Promise<LinearQuantization> {
  return quantizeLinear(weight(p), stats, options);
}

function statsFor(p: LayerProblem, method: 'rtn' | 'gptq' | 'gptaq'): Stats {
  if (method === 'rtn') return null;
  return method === 'gptq' ? { hessian: p.H } : { hessian: p.H, dxxt: p.dXXT };
}

function scaled(a: Float32Array, c: number): Float32Array {
  return a.map((x) => x * c);
}

function identityTimes(n: number, c: number): Float32Array {
  const H = new Float32Array(n * n);
  for (let i = 0; i < n; i++) H[i * n + i] = c;
  return H;
}

/** Asserts two results are bit-identical in everything the quantization produced. */
function sameQuantization(t: Test, a: LinearQuantization, b: LinearQuantization, what: string): void {
  t.same(Array.from(a.codes), Array.from(b.codes), `${what}: codes`);
  t.same(Array.from(a.scales), Array.from(b.scales), `${what}: scales`);
  t.same(Array.from(a.zeros), Array.from(b.zeros), `${what}: zeros`);
  t.same(Array.from(a.gIdx), Array.from(b.gIdx), `${what}: gIdx`);
  t.ok(a.dequantized.every((v, i) => Object.is(v, b.dequantized[i]) || v === b.dequantized[i]), `${what}: dequantized values`);
}

function countDifferent(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) d++;
  return d;
}

const problem = cachedProblem;

// ---------------------------------------------------------------------------------------------
// reductions to simpler methods
// ---------------------------------------------------------------------------------------------

t.test('H = c·I makes GPTQ and GPTAQ (with dXXT = 0) equal RTN exactly', async (t) => {
  // U is diagonal, so no column ever compensates another; group parameters then see the
  // original weights, exactly as RTN fits them.
  const p = problem(32, 96, 11);
  const configs: QuantizeLinearOptions[] = [
    { bits: 4 },
    { bits: 3, sym: true, groupSize: 16, blockSize: 32 },
    { bits: 2, groupSize: 24, blockSize: 16 },
    { bits: 8, groupSize: 32, blockSize: 7 },
    { bits: 4, groupSize: 16, mse: true },
    { bits: 3, groupSize: 16, fp32Scales: true },
  ];
  for (const c of [1, 3.7]) {
    const H = identityTimes(p.n, c);
    for (const options of configs) {
      await t.test(`H = ${c}·I, ${JSON.stringify(options)}: GPTQ, GPTQ act-order, GPTQ static groups and GPTAQ all equal RTN`, async (t) => {
        const { blockSize: _b, ...rtnOptions } = options;
        const reference = await run(p, null, { ...rtnOptions, method: 'rtn' });
        sameQuantization(t, await run(p, { hessian: H }, { ...options, method: 'gptq' }), reference, 'gptq');
        const ordered = await run(p, { hessian: H }, { ...options, method: 'gptq', actOrder: true });
        t.same(Array.from(ordered.perm ?? []), Array.from({ length: p.n }, (_, i) => i), 'equal diagonal: act-order keeps the original order (ties by lower index)');
        sameQuantization(t, ordered, reference, 'gptq act-order');
        if ((options.groupSize ?? -1) !== -1) {
          sameQuantization(t, await run(p, { hessian: H }, { ...options, method: 'gptq', staticGroups: true }), reference, 'gptq static groups');
        }
        sameQuantization(t, await run(p, { hessian: H, dxxt: new Float32Array(p.n * p.n) }, { ...options, method: 'gptaq' }), reference, 'gptaq');
      });
    }
  }
});

t.test('dXXT = 0 makes GPTAQ equal GPTQ exactly', async (t) => {
  const p = problem(32, 96, 12);
  const zero = new Float32Array(p.n * p.n);
  const configs: QuantizeLinearOptions[] = [
    { bits: 4, blockSize: 32 },
    { bits: 3, groupSize: 16, actOrder: true, blockSize: 32 },
    { bits: 2, sym: true, groupSize: 24, blockSize: 16 },
    { bits: 4, groupSize: 16, actOrder: true, staticGroups: true, blockSize: 7 },
    { bits: 8, blockSize: 128, gptaqVariant: 'derivation', alpha: 0.5 },
  ];
  for (const options of configs) {
    await t.test(`${JSON.stringify(options)}`, async (t) => {
      const gptq = await run(p, { hessian: p.H }, { ...options, method: 'gptq', gptaqVariant: undefined, alpha: undefined });
      const gptaq = await run(p, { hessian: p.H, dxxt: zero }, { ...options, method: 'gptaq' });
      sameQuantization(t, gptaq, gptq, 'gptaq with dXXT = 0 vs gptq');
      // the loss estimate is a float32 lane sum of (w − q)²/d²; the GPTAQ sweep updates w in another
      // (fused) form, so pre-quantization values may differ in the last bit while every code is equal
      t.ok(Math.abs(gptaq.loss - gptq.loss) <= 1e-6 * gptq.loss, `same loss within 1e-6 relative (${gptaq.loss} vs ${gptq.loss})`);
    });
  }
});

t.test('alpha = 0 makes GPTAQ equal GPTQ exactly', async (t) => {
  const p = problem(32, 96, 13);
  for (const gptaqVariant of ['reference', 'derivation'] as const) {
    const options: QuantizeLinearOptions = { bits: 3, groupSize: 16, actOrder: true, blockSize: 16 };
    const gptq = await run(p, { hessian: p.H }, { ...options, method: 'gptq' });
    const gptaq = await run(p, { hessian: p.H, dxxt: p.dXXT }, { ...options, method: 'gptaq', alpha: 0, gptaqVariant });
    sameQuantization(t, gptaq, gptq, `${gptaqVariant} variant, alpha 0`);
  }
});

t.test('GPTAQ depends on alpha and dXXT only through alpha·dXXT (alpha 0.5 with dXXT equals alpha 0.25 with 2·dXXT)', async (t) => {
  // Scaling by powers of two is exact in float32, so P = alpha·triu(dXXT·Uᵀ)·U is bit-identical.
  const p = problem(32, 96, 14);
  const options: QuantizeLinearOptions = { method: 'gptaq', bits: 4, groupSize: 16, actOrder: true, blockSize: 32 };
  const a = await run(p, { hessian: p.H, dxxt: p.dXXT }, { ...options, alpha: 0.5 });
  const b = await run(p, { hessian: p.H, dxxt: scaled(p.dXXT, 2) }, { ...options, alpha: 0.25 });
  sameQuantization(t, a, b, 'alpha 0.5·dXXT vs 0.25·(2·dXXT)');
  const c = await run(p, { hessian: p.H, dxxt: p.dXXT }, { ...options, alpha: 0.25 });
  t.ok(countDifferent(a.codes, c.codes) > 0, 'while alpha 0.25 with dXXT gives other codes (the term matters on this problem)');
});

// ---------------------------------------------------------------------------------------------
// GPTQ minimises the Hessian-weighted error
// ---------------------------------------------------------------------------------------------

t.test('GPTQ has a lower H-norm error tr((W − Q) H (W − Q)ᵀ) than RTN on the same per-channel grid', async (t) => {
  for (const seed of [21, 22, 23, 24, 25]) {
    for (const bits of [2, 3, 4]) {
      const p = problem(32, 96, seed, [], 0.05);
      // per channel, asymmetric, fp32 scales: both methods use the grid fitted on the original W
      const options: QuantizeLinearOptions = { bits, fp32Scales: true };
      const rtn = await run(p, null, { ...options, method: 'rtn' });
      const gptq = await run(p, { hessian: p.H }, { ...options, method: 'gptq' });
      t.same(Array.from(gptq.scales), Array.from(rtn.scales), `seed ${seed}, ${bits}-bit: the same grid (scales)`);
      t.same(Array.from(gptq.zeros), Array.from(rtn.zeros), `seed ${seed}, ${bits}-bit: the same grid (zeros)`);
      const eRtn = hessianError(p.W64, rtn.dequantized, p.H64, p.m, p.n);
      const eGptq = hessianError(p.W64, gptq.dequantized, p.H64, p.m, p.n);
      t.ok(eGptq < eRtn, `seed ${seed}, ${bits}-bit: GPTQ ${eGptq.toPrecision(5)} < RTN ${eRtn.toPrecision(5)}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// the output format
// ---------------------------------------------------------------------------------------------

const FORMAT_CONFIGS: QuantizeLinearOptions[] = [
  { method: 'rtn', bits: 4 },
  { method: 'rtn', bits: 2, sym: true, groupSize: 24 },
  { method: 'gptq', bits: 3, groupSize: 16, actOrder: true, blockSize: 32 },
  { method: 'gptq', bits: 4, groupSize: 24, actOrder: true, staticGroups: true, blockSize: 16 },
  { method: 'gptq', bits: 8, sym: true, blockSize: 7 },
  { method: 'gptq', bits: 3, groupSize: 16, mse: true },
  { method: 'gptq', bits: 4, groupSize: 16, fp32Scales: true },
  { method: 'gptaq', bits: 2, groupSize: 16, actOrder: true, blockSize: 32 },
  { method: 'gptaq', bits: 4, sym: true, groupSize: 40, gptaqVariant: 'derivation', blockSize: 16 },
];

t.test('every dequantized value equals scale[r, gIdx[j]] · (code − zero[r, gIdx[j]]) in float32, and codes lie in [0, 2^bits − 1]', async (t) => {
  const p = problem(32, 96, 31, [7]);
  for (const options of FORMAT_CONFIGS) {
    await t.test(JSON.stringify(options), async (t) => {
      const res = await run(p, statsFor(p, options.method!), options);
      const bits = options.bits!;
      const maxq = 2 ** bits - 1;
      const G = res.groups;
      const g = options.groupSize ?? -1;
      t.equal(G, g === -1 ? 1 : Math.ceil(p.n / g), 'groups: 1 per channel, else ceil(n / groupSize)');
      t.equal(res.scales.length, p.m * G, 'scales are [rows, groups]');
      t.equal(res.zeros.length, p.m * G, 'zeros are [rows, groups]');
      t.equal(res.codes.length, p.m * p.n, 'codes are [rows, cols]');
      t.ok(res.gIdx.every((k) => Number.isInteger(k) && k >= 0 && k < G), 'every gIdx names a group');
      let outside = 0;
      let wrong = 0;
      let firstWrong = '';
      for (let r = 0; r < p.m; r++) {
        for (let j = 0; j < p.n; j++) {
          const code = res.codes[r * p.n + j];
          if (code > maxq) outside++;
          const k = res.gIdx[j];
          const expected = Math.fround(res.scales[r * G + k] * (code - res.zeros[r * G + k]));
          if (res.dequantized[r * p.n + j] !== expected) {
            wrong++;
            firstWrong ||= `[${r}, ${j}]: ${res.dequantized[r * p.n + j]} vs ${expected}`;
          }
        }
      }
      t.equal(outside, 0, `codes within [0, ${maxq}]`);
      t.equal(wrong, 0, `dequantized = fround(scale · (code − zero)) everywhere ${firstWrong}`);
    });
  }
});

t.test('with fp16 scales (the default) every scale is an exact float16 value and every zero an integer in [0, maxq]', async (t) => {
  const p = problem(32, 96, 32, [3]);
  for (const options of FORMAT_CONFIGS.filter((o) => !o.fp32Scales)) {
    await t.test(JSON.stringify(options), async (t) => {
      const res = await run(p, statsFor(p, options.method!), options);
      const maxq = 2 ** options.bits! - 1;
      const notF16 = Array.from(res.scales).filter((s) => !(s > 0) || !isExactF16(s));
      t.same(notF16, [], 'scales are positive float16 values');
      const badZero = Array.from(res.zeros).filter((z) => !Number.isInteger(z) || z < 0 || z > maxq);
      t.same(badZero, [], `zeros are integers in [0, ${maxq}]`);
      if (options.sym) t.ok(res.zeros.every((z) => z === (maxq + 1) / 2), 'symmetric: every zero is (maxq + 1) / 2');
    });
  }
  t.test('fp32Scales keeps scales that are not all float16 values', async (t) => {
    const res = await run(p, { hessian: p.H }, { bits: 4, fp32Scales: true });
    t.ok(Array.from(res.scales).some((s) => !isExactF16(s)), 'some fp32 scale is off the float16 grid');
  });
});

// ---------------------------------------------------------------------------------------------
// scale invariance (§1.5)
// ---------------------------------------------------------------------------------------------

t.test('scaling H and dXXT by 4 or 1/16 leaves codes and dequantized values unchanged (no dead columns)', async (t) => {
  // Powers of two scale every float32 operation of the factorisation and sweep exactly: λ by c,
  // U by c^(−1/2), the errors e by c^(1/2), the updates e·U not at all. So the result is
  // bit-identical, and the loss Σ (w − q)² / U_qq² / 2 scales by exactly c.
  const p = problem(32, 96, 41);
  const configs: QuantizeLinearOptions[] = [
    { method: 'gptq', bits: 4, blockSize: 32 },
    { method: 'gptq', bits: 3, groupSize: 16, actOrder: true, blockSize: 16 },
    { method: 'gptq', bits: 2, groupSize: 24, actOrder: true, staticGroups: true, blockSize: 7 },
    { method: 'gptaq', bits: 4, groupSize: 16, actOrder: true, blockSize: 32 },
    { method: 'gptaq', bits: 3, blockSize: 16, gptaqVariant: 'derivation' },
  ];
  for (const options of configs) {
    const base = await run(p, statsFor(p, options.method!), options);
    for (const c of [4, 1 / 16]) {
      await t.test(`${JSON.stringify(options)}, c = ${c}`, async (t) => {
        const stats = options.method === 'gptq' ? { hessian: scaled(p.H, c) } : { hessian: scaled(p.H, c), dxxt: scaled(p.dXXT, c) };
        const res = await run(p, stats, options);
        sameQuantization(t, res, base, `H·${c}`);
        t.same(res.perm === null ? null : Array.from(res.perm), base.perm === null ? null : Array.from(base.perm), 'same act-order permutation');
        t.equal(res.damping.lambda, base.damping.lambda * c, 'λ scales by c');
        t.ok(Math.abs(res.loss - base.loss * c) <= 1e-12 * base.loss * c, `loss scales by c (${res.loss} vs ${base.loss * c})`);
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// act-order and g_idx (§2(e))
// ---------------------------------------------------------------------------------------------

/** A positive definite H whose diagonal takes only a few values (many ties), with small off-diagonals. */
function tiedHessian(n: number, seed: number): { H: Float32Array; diag: number[] } {
  const rng = mulberry32(seed);
  const diag = Array.from({ length: n }, () => [1, 2, 4, 8][Math.floor(rng() * 4)]);
  const H = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    H[i * n + i] = diag[i];
    for (let j = 0; j < i; j++) {
      const v = Math.fround((rng() - 0.5) * 0.02);
      H[i * n + j] = v;
      H[j * n + i] = v;
    }
  }
  return { H, diag };
}

t.test('act-order: perm is a permutation sorted by diag(H) descending, ties by the lower index', async (t) => {
  const p = problem(16, 64, 51);
  for (const [label, H, diag] of [
    ['realistic H', p.H, Array.from({ length: p.n }, (_, i) => p.H[i * p.n + i])],
    ['H with tied diagonal values', ...Object.values(tiedHessian(64, 52))],
  ] as [string, Float32Array, number[]][]) {
    await t.test(label, async (t) => {
      const res = await run(p, { hessian: H }, { bits: 4, actOrder: true });
      t.ok(res.perm, 'perm is returned');
      const perm = Array.from(res.perm ?? []);
      t.same([...perm].sort((a, b) => a - b), Array.from({ length: p.n }, (_, i) => i), 'a permutation of 0..n−1');
      const expected = Array.from({ length: p.n }, (_, i) => i).sort((a, b) => diag[b] - diag[a] || a - b);
      t.same(perm, expected, 'diag descending, ties keep the lower index first');
      const none = await run(p, { hessian: H }, { bits: 4 });
      t.equal(none.perm, null, 'no permutation without act-order');
    });
  }
});

t.test('act-order with dynamic groups: gIdx[j] = (position of j in perm) // g; with static groups gIdx[j] = j // g', async (t) => {
  const p = problem(16, 100, 53);
  for (const g of [16, 24, 128]) {
    const dynamic = await run(p, { hessian: p.H }, { bits: 4, groupSize: g, actOrder: true, blockSize: 32 });
    const position = new Array<number>(p.n);
    Array.from(dynamic.perm!).forEach((j, k) => (position[j] = k));
    t.same(Array.from(dynamic.gIdx), position.map((k) => Math.floor(k / g)), `g${g} dynamic: gIdx from the processing position`);
    const fixed = await run(p, { hessian: p.H }, { bits: 4, groupSize: g, actOrder: true, staticGroups: true, blockSize: 32 });
    t.same(Array.from(fixed.gIdx), Array.from({ length: p.n }, (_, j) => Math.floor(j / g)), `g${g} static: gIdx = j // g`);
    const plain = await run(p, { hessian: p.H }, { bits: 4, groupSize: g, blockSize: 32 });
    t.same(Array.from(plain.gIdx), Array.from({ length: p.n }, (_, j) => Math.floor(j / g)), `g${g} without act-order: gIdx = j // g`);
  }
});

// ---------------------------------------------------------------------------------------------
// dead columns (§1.4)
// ---------------------------------------------------------------------------------------------

t.test('a dead column (zero row and column of H) is counted and quantized as if its weights were 0', async (t) => {
  const dead = [0, 9, 40, 95];
  const p = problem(24, 96, 61, dead);
  for (const options of [
    { method: 'gptq', bits: 4 },
    { method: 'gptq', bits: 3, groupSize: 16, actOrder: true, blockSize: 32 },
    { method: 'gptq', bits: 4, groupSize: 16, actOrder: true, staticGroups: true, blockSize: 16 },
    { method: 'gptaq', bits: 3, sym: true, groupSize: 24, blockSize: 32 },
    { method: 'gptaq', bits: 2, actOrder: true, blockSize: 7 },
  ] as QuantizeLinearOptions[]) {
    await t.test(JSON.stringify(options), async (t) => {
      t.ok(dead.every((j) => p.H[j * p.n + j] === 0), 'the construction: H has zero diagonals there');
      t.ok(dead.some((j) => p.W[j] !== 0), 'and the weights there are not zero');
      const res = await run(p, statsFor(p, options.method!), options);
      t.equal(res.deadColumns, dead.length, 'deadColumns counts them');
      const G = res.groups;
      let nonzero = 0;
      let notZeroPoint = 0;
      for (let r = 0; r < p.m; r++) {
        for (const j of dead) {
          // 0 is always on the grid (the range contains 0; zero ∈ [0, maxq]), so quant(0) = 0
          if (res.dequantized[r * p.n + j] !== 0) nonzero++;
          if (res.codes[r * p.n + j] !== res.zeros[r * G + res.gIdx[j]]) notZeroPoint++;
        }
      }
      t.equal(nonzero, 0, 'dequantized 0 in every dead column');
      t.equal(notZeroPoint, 0, 'the code is the zero point');
    });
  }
  t.test('without dead columns the count is 0', async (t) => {
    const q = problem(24, 96, 62);
    t.equal((await run(q, { hessian: q.H }, {})).deadColumns, 0);
  });
});

// ---------------------------------------------------------------------------------------------
// damping and the RTN fallback (§1.4)
// ---------------------------------------------------------------------------------------------

t.test('an indefinite H falls back to RTN, tries every percdamp from 0.01 to 0.1 by 0.0025, and says so', async (t) => {
  // H = I except H[3, 4] = H[4, 3] = 2: a positive diagonal, but the 2×2 block [[1, 2], [2, 1]]
  // has the eigenvalue −1, and no damping up to 0.1·mean(diag H) = 0.1 makes it positive.
  // (A negative diagonal entry is rejected as invalid input instead: quantize-linear-errors.)
  const p = problem(16, 48, 71);
  const H = identityTimes(p.n, 1);
  H[3 * p.n + 4] = 2;
  H[4 * p.n + 3] = 2;
  const expectedTried = Array.from({ length: 37 }, (_, k) => 0.01 + 0.0025 * k);
  for (const options of [
    { method: 'gptq', bits: 4 },
    { method: 'gptq', bits: 3, groupSize: 16, blockSize: 16 },
    { method: 'gptq', bits: 3, groupSize: 16, actOrder: true },
    { method: 'gptaq', bits: 4, sym: true, groupSize: 24 },
  ] as QuantizeLinearOptions[]) {
    await t.test(JSON.stringify(options), async (t) => {
      const stats = options.method === 'gptq' ? { hessian: H } : { hessian: H, dxxt: new Float32Array(p.n * p.n) };
      const res = await run(p, stats, options);
      t.ok(res.fallback, 'fallback is reported');
      t.equal(res.fallback?.method, 'rtn', 'fallback.method is rtn');
      t.match(res.fallback?.reason ?? '', /not positive definite/, 'the reason says why');
      t.equal(res.damping.tried.length, expectedTried.length, '37 dampings tried');
      // within float32 resolution: the values may be reported as float32 or as rounded doubles
      t.ok(res.damping.tried.every((d, k) => Math.abs(d - expectedTried[k]) <= 1e-7 * expectedTried[k]),
        `tried ${res.damping.tried.map((d) => d.toPrecision(4)).join(', ')}`);
      const { blockSize: _b, actOrder: _a, ...rtnOptions } = options;
      const rtn = await run(p, null, { ...rtnOptions, method: 'rtn' });
      sameQuantization(t, res, rtn, 'fallback vs method rtn');
      t.equal(res.perm, null, 'RTN has no column order: no permutation is reported');
      t.equal(res.loss, 0, 'RTN has no loss estimate');
    });
  }
});

t.test('a rank-deficient H that fails at percdamp 0 is factored at the next damping (tried [0, 0.01]) and reports it', async (t) => {
  // H = x xᵀ with small nonzero integers: every product is exact in float32, so the Cholesky
  // elimination of the first column leaves an exactly zero Schur complement and fails at
  // percdamp 0, while H + 0.01·mean(diag H)·I is positive definite.
  const p = problem(16, 32, 72);
  const rng = mulberry32(73);
  const x = Array.from({ length: p.n }, () => (1 + Math.floor(rng() * 3)) * (rng() < 0.5 ? -1 : 1));
  const H = new Float32Array(p.n * p.n);
  for (let i = 0; i < p.n; i++) for (let j = 0; j < p.n; j++) H[i * p.n + j] = x[i] * x[j];
  const meanDiag = x.reduce((s, v) => s + v * v, 0) / p.n;
  const res = await run(p, { hessian: H }, { bits: 4, percdamp: 0, dampIncrement: 0.01, maxPercdamp: 0.01 });
  t.equal(res.fallback, null, 'no fallback');
  t.equal(res.damping.tried.length, 2, 'two dampings tried');
  t.equal(res.damping.tried[0], 0, 'first 0');
  t.ok(Math.abs(res.damping.tried[1] - 0.01) <= 1e-9, `then 0.01 (${res.damping.tried[1]})`);
  t.ok(Math.abs(res.damping.percdamp - 0.01) <= 1e-9, `percdamp reports the one that worked (${res.damping.percdamp})`);
  t.ok(Math.abs(res.damping.lambda - 0.01 * meanDiag) <= 1e-6 * 0.01 * meanDiag, `λ = 0.01 · mean(diag H) = ${0.01 * meanDiag}`);
  const direct = await run(p, { hessian: H }, { bits: 4, percdamp: 0.01 });
  t.equal(direct.damping.tried.length, 1, 'asking for 0.01 directly succeeds at once');
  sameQuantization(t, res, direct, 'retry result vs percdamp 0.01 directly');
  const fails = await run(p, { hessian: H }, { bits: 4, percdamp: 0, dampIncrement: 0.01, maxPercdamp: 0.005 });
  t.same(fails.damping.tried, [0], 'with maxPercdamp below the first increment only 0 is tried');
  t.ok(fails.fallback, '... and the layer falls back to RTN');
});

// ---------------------------------------------------------------------------------------------
// GPTAQ variants (§3(d) parity detail)
// ---------------------------------------------------------------------------------------------

t.test('gptaqVariant derivation differs from reference when n spans several blocks and equals it within one block', async (t) => {
  // The variants differ only in the lazy update between blocks (quantized vs pre-quantization
  // block values in the P-term); with a single block there is no lazy update.
  const p = problem(32, 96, 81);
  const stats = { hessian: p.H, dxxt: p.dXXT };
  for (const options of [
    { bits: 4 },
    { bits: 3, groupSize: 16, actOrder: true },
  ] as QuantizeLinearOptions[]) {
    const many = { ...options, method: 'gptaq' as const, blockSize: 16 };
    const ref = await run(p, stats, { ...many, gptaqVariant: 'reference' });
    const der = await run(p, stats, { ...many, gptaqVariant: 'derivation' });
    t.ok(countDifferent(ref.codes, der.codes) > 0, `${JSON.stringify(options)}, 6 blocks of 16: the codes differ (${countDifferent(ref.codes, der.codes)} of ${ref.codes.length})`);
    for (const blockSize of [96, 128]) {
      const one = { ...options, method: 'gptaq' as const, blockSize };
      sameQuantization(t, await run(p, stats, { ...one, gptaqVariant: 'derivation' }), await run(p, stats, { ...one, gptaqVariant: 'reference' }),
        `${JSON.stringify(options)}, one block of ${blockSize} ≥ n: derivation equals reference`);
    }
  }
});
