// Checks the naive reference quantizers (test/reference/oracle.ts) against closed forms
// and structural invariants (docs/algorithm.md §1–§3, §8). Nothing here touches lib/.
import t from 'tap';
import {
  accumulate,
  actOrderPerm,
  dampedHessian,
  findParams,
  gptaq,
  gptaqP,
  gptq,
  hessianNorm,
  inverseCholeskyUpper,
  isF16Value,
  matmul,
  maxqOf,
  mulberry32,
  quantize,
  quantizeCode,
  randn,
  randnArray,
  roundHalfEven,
  roundScaleToF16,
  rtn,
  transpose,
  type OracleQuantOptions,
  type OracleResult,
} from './oracle.js';

// ---------------------------------------------------------------------------
// independent helpers (Gauss–Jordan with partial pivoting; no Cholesky anywhere)
// ---------------------------------------------------------------------------

/** Solve A X = B for X, A [n, n], B [n, k]. */
function gaussSolve(A: Float64Array, B: Float64Array, n: number, k: number): Float64Array {
  const a = Float64Array.from(A);
  const b = Float64Array.from(B);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * n + c]) > Math.abs(a[p * n + c])) p = r;
    if (p !== c) {
      for (let j = 0; j < n; j++) [a[c * n + j], a[p * n + j]] = [a[p * n + j], a[c * n + j]];
      for (let j = 0; j < k; j++) [b[c * k + j], b[p * k + j]] = [b[p * k + j], b[c * k + j]];
    }
    const piv = a[c * n + c];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r * n + c] / piv;
      if (f === 0) continue;
      for (let j = c; j < n; j++) a[r * n + j] -= f * a[c * n + j];
      for (let j = 0; j < k; j++) b[r * k + j] -= f * b[c * k + j];
    }
  }
  for (let r = 0; r < n; r++) for (let j = 0; j < k; j++) b[r * k + j] /= a[r * n + r];
  return b;
}

function identity(n: number, c = 1): Float64Array {
  const I = new Float64Array(n * n);
  for (let i = 0; i < n; i++) I[i * n + i] = c;
  return I;
}

/** H = XᵀX for X [tokens, n], tokens mixed through a random matrix so the columns correlate. */
function randomHessian(rng: () => number, n: number, tokens: number): { X: Float64Array; H: Float64Array } {
  const Z = randnArray(rng, tokens * n);
  const A = randnArray(rng, n * n, 1 / Math.sqrt(n));
  for (let i = 0; i < n; i++) A[i * n + i] += 1;
  const X = matmul(Z, A, tokens, n, n);
  return { X, H: matmul(transpose(X, tokens, n), X, n, tokens, n) };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function maxAbs(a: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]));
  return d;
}

/** exact element-wise equality (=== so +0 and −0 compare equal) */
function sameExact(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameResult(t: { ok(cond: unknown, msg: string): unknown }, a: OracleResult, b: OracleResult, what: string): void {
  t.ok(sameExact(a.codes, b.codes), `${what}: codes identical`);
  t.ok(sameExact(a.Q, b.Q), `${what}: Q identical`);
  t.ok(sameExact(a.scales, b.scales), `${what}: scales identical`);
  t.ok(sameExact(a.zeros, b.zeros), `${what}: zeros identical`);
  t.ok(sameExact(a.gIdx, b.gIdx), `${what}: gIdx identical`);
}

const base: OracleQuantOptions = {
  bits: 4,
  sym: false,
  groupSize: -1,
  actOrder: false,
  staticGroups: false,
  percdamp: 0.01,
  blockSize: 128,
  mse: false,
  fp16Scales: false,
};

// ---------------------------------------------------------------------------
// (0) PRNG
// ---------------------------------------------------------------------------

t.test('mulberry32 is deterministic and uniform-ish; randn has about unit variance', async (t) => {
  const a = mulberry32(42);
  const b = mulberry32(42);
  for (let i = 0; i < 100; i++) t.equal(a(), b());
  const r = mulberry32(7);
  let s = 0;
  let s2 = 0;
  const N = 20000;
  for (let i = 0; i < N; i++) {
    const z = randn(r);
    s += z;
    s2 += z * z;
  }
  t.ok(Math.abs(s / N) < 0.05, 'mean ≈ 0');
  t.ok(Math.abs(s2 / N - 1) < 0.05, 'variance ≈ 1');
});

// ---------------------------------------------------------------------------
// (1) damped inverse Cholesky factor
// ---------------------------------------------------------------------------

t.test('(1) UᵀU equals the inverse of the damped H (Gauss–Jordan solve), U upper with positive diagonal', async (t) => {
  for (const [seed, n] of [
    [1, 8],
    [2, 24],
    [3, 40],
  ]) {
    const rng = mulberry32(seed);
    const { H } = randomHessian(rng, n, 3 * n);
    const { Hd, damp } = dampedHessian(H, n, 0.01);
    let mean = 0;
    for (let i = 0; i < n; i++) mean += H[i * n + i] / n;
    t.ok(Math.abs(damp - 0.01 * mean) <= 1e-12 * mean, 'λ = percdamp · mean(diag H)');
    const U = inverseCholeskyUpper(Hd);
    for (let i = 0; i < n; i++) {
      t.ok(U[i * n + i] > 0, 'positive diagonal');
      for (let j = 0; j < i; j++) if (U[i * n + j] !== 0) t.fail(`U[${i}][${j}] below the diagonal is not 0`);
    }
    const UtU = matmul(transpose(U, n, n), U, n, n, n);
    const Hinv = gaussSolve(Hd, identity(n), n, n);
    const rel = maxAbsDiff(UtU, Hinv) / maxAbs(Hinv);
    t.ok(rel < 1e-9, `n=${n}: max |UᵀU − Hd⁻¹| / max|Hd⁻¹| = ${rel.toExponential(2)}`);
  }
});

// ---------------------------------------------------------------------------
// (2) P structure (§8.2)
// ---------------------------------------------------------------------------

t.test('(2) P[q, ≤q] = 0 and P[q, q+1:] = α·dXXT[q, q+1:]·inv(Hd[q+1:, q+1:]) (n = 24, dense solve)', async (t) => {
  const n = 24;
  const tokens = 72;
  const alpha = 0.25;
  const rng = mulberry32(11);
  const { X, H } = randomHessian(rng, n, tokens);
  const Xf = Float64Array.from(X, (v) => v + 0.1 * randn(rng));
  const { H: Ha, dXXT } = accumulate([{ x: X, xFull: Xf }], n);
  // accumulate gives 2·XᵀX for one batch of 1 sample
  t.ok(maxAbsDiff(Ha, H.map((v) => 2 * v)) < 1e-9 * maxAbs(H), 'accumulate(one batch) = 2 XᵀX');
  const { Hd } = dampedHessian(Ha, n, 0.01);
  const U = inverseCholeskyUpper(Hd);
  const P = gptaqP(dXXT, U, alpha);
  let worst = 0;
  let scaleP = 0;
  for (let q = 0; q < n; q++) {
    for (let j = 0; j <= q; j++) if (P[q * n + j] !== 0) t.fail(`P[${q}][${j}] = ${P[q * n + j]} is not 0`);
    const f = n - q - 1;
    if (f === 0) continue;
    const HF = new Float64Array(f * f);
    for (let i = 0; i < f; i++) for (let j = 0; j < f; j++) HF[i * f + j] = Hd[(q + 1 + i) * n + (q + 1 + j)];
    const rhs = new Float64Array(f);
    for (let j = 0; j < f; j++) rhs[j] = dXXT[q * n + (q + 1 + j)];
    // row vector · inv(HF) = (inv(HF) · column)ᵀ because HF is symmetric
    const expected = gaussSolve(HF, rhs, f, 1);
    for (let j = 0; j < f; j++) {
      worst = Math.max(worst, Math.abs(P[q * n + q + 1 + j] - alpha * expected[j]));
      scaleP = Math.max(scaleP, Math.abs(alpha * expected[j]));
    }
  }
  t.ok(scaleP > 0, 'P is not trivially zero');
  t.ok(worst / scaleP < 1e-9, `relative max deviation ${(worst / scaleP).toExponential(2)}`);
});

// ---------------------------------------------------------------------------
// (3) H = c·I ⇒ GPTQ = RTN
// ---------------------------------------------------------------------------

t.test('(3) H = c·I: U is diagonal, so no error propagates and GPTQ equals RTN exactly', async (t) => {
  const m = 8;
  const n = 32;
  const rng = mulberry32(3);
  const W = randnArray(rng, m * n);
  const H = identity(n, 3.7);
  for (const cfg of [
    { groupSize: -1 },
    { groupSize: 8 },
    { groupSize: 8, staticGroups: true },
    { groupSize: 8, actOrder: true }, // all diagonal entries tie: the stable perm is the identity
    { groupSize: -1, sym: true, bits: 3 },
  ]) {
    const opts = { ...base, blockSize: 16, ...cfg };
    const g = gptq(W, H, m, n, opts);
    const r = rtn(W, m, n, opts);
    const what = JSON.stringify(cfg);
    t.ok(sameExact(g.codes, r.codes), `${what}: codes identical`);
    t.ok(sameExact(g.Q, r.Q), `${what}: Q identical`);
    t.ok(sameExact(g.scales, r.scales), `${what}: scales identical`);
    t.ok(sameExact(g.zeros, r.zeros), `${what}: zeros identical`);
    t.ok(sameExact(g.gIdx, r.gIdx), `${what}: gIdx identical`);
    t.ok(Math.abs(g.damp - 0.01 * 3.7) < 1e-15, `${what}: λ = percdamp·c (up to the rounding of the mean)`);
  }
});

// ---------------------------------------------------------------------------
// (4) dXXT = 0 ⇒ GPTAQ = GPTQ
// ---------------------------------------------------------------------------

t.test('(4) dXXT = 0 (X̃ = X) makes P = 0 and GPTAQ identical to GPTQ', async (t) => {
  const m = 12;
  const n = 40;
  const rng = mulberry32(4);
  const { X, H: H0 } = randomHessian(rng, n, 2 * n);
  void X;
  const H = Float64Array.from(H0);
  // one dead column
  for (let j = 0; j < n; j++) {
    H[5 * n + j] = 0;
    H[j * n + 5] = 0;
  }
  const W = randnArray(rng, m * n);
  const zero = new Float64Array(n * n);
  for (const cfg of [
    { groupSize: -1 },
    { groupSize: 8, actOrder: true },
    { groupSize: 16, staticGroups: true, actOrder: true, blockSize: 8 },
    { groupSize: 8, mse: true, sym: true, bits: 3, blockSize: 16 },
    { groupSize: -1, gptaqVariant: 'derivation' as const, blockSize: 16 },
  ]) {
    const opts = { ...base, ...cfg };
    sameResult(t, gptaq(W, H, zero, m, n, opts), gptq(W, H, m, n, opts), JSON.stringify(cfg));
  }
});

// ---------------------------------------------------------------------------
// (5) accumulation
// ---------------------------------------------------------------------------

t.test('(5) accumulation: unit weights = unweighted; weights·c scale H and dXXT by c; running average closed form', async (t) => {
  const n = 6;
  const rng = mulberry32(5);
  const batches = [10, 7, 13].map((tok) => ({
    x: randnArray(rng, tok * n),
    xFull: randnArray(rng, tok * n),
    samples: 1 + Math.floor(rng() * 3),
  }));
  const plain = accumulate(batches, n);
  const ones = accumulate(
    batches.map((b) => ({ ...b, weights: new Float64Array(b.x.length / n).fill(1) })),
    n,
  );
  t.ok(sameExact(plain.H, ones.H), 'H identical with all-ones weights');
  t.ok(sameExact(plain.dXXT, ones.dXXT), 'dXXT identical with all-ones weights');
  t.equal(plain.nsamples, batches.reduce((s, b) => s + b.samples, 0));

  const w = batches.map((b) => Float64Array.from({ length: b.x.length / n }, () => 0.2 + rng()));
  const weighted = accumulate(batches.map((b, i) => ({ ...b, weights: w[i] })), n);
  for (const c of [4, 3]) {
    const scaled = accumulate(batches.map((b, i) => ({ ...b, weights: w[i].map((v) => c * v) })), n);
    const dH = maxAbsDiff(scaled.H, weighted.H.map((v) => c * v)) / maxAbs(scaled.H);
    const dD = maxAbsDiff(scaled.dXXT, weighted.dXXT.map((v) => c * v)) / maxAbs(scaled.dXXT);
    if (c === 4) {
      t.equal(dH, 0, 'c = 4 (power of two): H scales exactly');
      t.equal(dD, 0, 'c = 4 (power of two): dXXT scales exactly');
    } else {
      t.ok(dH < 1e-14 && dD < 1e-14, `c = ${c}: H, dXXT scale by c (rel ${dH.toExponential(1)}, ${dD.toExponential(1)})`);
    }
  }

  // closed form: H = (2/N) Σ w x xᵀ, dXXT = (2/N) Σ w (x̃ − x) xᵀ, N = Σ samples
  const N = weighted.nsamples;
  const Hc = new Float64Array(n * n);
  const Dc = new Float64Array(n * n);
  batches.forEach((b, bi) => {
    const tok = b.x.length / n;
    for (let k = 0; k < tok; k++) {
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          Hc[i * n + j] += (2 / N) * w[bi][k] * b.x[k * n + i] * b.x[k * n + j];
          Dc[i * n + j] += (2 / N) * w[bi][k] * (b.xFull[k * n + i] - b.x[k * n + i]) * b.x[k * n + j];
        }
      }
    }
  });
  t.ok(maxAbsDiff(weighted.H, Hc) < 1e-12 * maxAbs(Hc), 'H = (2/N) Σ w x xᵀ');
  t.ok(maxAbsDiff(weighted.dXXT, Dc) < 1e-12 * maxAbs(Dc), 'dXXT = (2/N) Σ w (x̃ − x) xᵀ (FP minus quantized, times quantized)');
  // symmetric H, and no dXXT without xFull
  const noFull = accumulate(batches.map((b) => ({ x: b.x })), n);
  t.ok(noFull.dXXT.every((v) => v === 0), 'dXXT = 0 without xFull');
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (noFull.H[i * n + j] !== noFull.H[j * n + i]) t.fail('H not symmetric');
});

// ---------------------------------------------------------------------------
// (6) act order
// ---------------------------------------------------------------------------

t.test('(6a) act-order equals a manual permutation round trip (per-channel params only see row min/max; dynamic groups are consecutive in processing order; λ is summed in the same permuted order)', async (t) => {
  const m = 10;
  const n = 36;
  const rng = mulberry32(6);
  const { H } = randomHessian(rng, n, 3 * n);
  const W = randnArray(rng, m * n);
  const dXXT = randnArray(rng, n * n, 0.05 * maxAbs(H));
  const perm = actOrderPerm(H, n);
  for (let k = 1; k < n; k++) t.ok(H[perm[k - 1] * n + perm[k - 1]] >= H[perm[k] * n + perm[k]], 'diag(H) descending along perm');
  const Wp = new Float64Array(m * n);
  for (let r = 0; r < m; r++) for (let k = 0; k < n; k++) Wp[r * n + k] = W[r * n + perm[k]];
  const Hp = new Float64Array(n * n);
  const Dp = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      Hp[i * n + j] = H[perm[i] * n + perm[j]];
      Dp[i * n + j] = dXXT[perm[i] * n + perm[j]];
    }
  }
  for (const cfg of [{ groupSize: -1 }, { groupSize: 8, blockSize: 16 }, { groupSize: 12, blockSize: 8, mse: true }]) {
    const what = JSON.stringify(cfg);
    for (const algo of ['gptq', 'gptaq'] as const) {
      const on = algo === 'gptq'
        ? gptq(W, H, m, n, { ...base, ...cfg, actOrder: true })
        : gptaq(W, H, dXXT, m, n, { ...base, ...cfg, actOrder: true });
      const manual = algo === 'gptq'
        ? gptq(Wp, Hp, m, n, { ...base, ...cfg, actOrder: false })
        : gptaq(Wp, Hp, Dp, m, n, { ...base, ...cfg, actOrder: false });
      t.ok(on.perm && sameExact(on.perm, perm), `${algo} ${what}: perm reported`);
      let ok = true;
      for (let r = 0; r < m; r++) {
        for (let k = 0; k < n; k++) {
          if (on.codes[r * n + perm[k]] !== manual.codes[r * n + k]) ok = false;
          if (on.Q[r * n + perm[k]] !== manual.Q[r * n + k]) ok = false;
        }
      }
      t.ok(ok, `${algo} ${what}: Q[:, perm] and codes[:, perm] equal the manual run`);
      t.ok(sameExact(on.scales, manual.scales) && sameExact(on.zeros, manual.zeros), `${algo} ${what}: scales/zeros identical`);
      t.equal(on.damp, manual.damp, `${algo} ${what}: same λ`);
      t.equal(on.loss, manual.loss, `${algo} ${what}: same loss`);
      if (cfg.groupSize > 0) {
        let gok = true;
        for (let k = 0; k < n; k++) if (on.gIdx[perm[k]] !== Math.floor(k / cfg.groupSize)) gok = false;
        t.ok(gok, `${algo} ${what}: gIdx[j] = position of j in perm // g`);
        // dequantize from codes through gIdx reproduces Q
        let dq = true;
        for (let r = 0; r < m; r++) {
          for (let j = 0; j < n; j++) {
            const gi = on.gIdx[j];
            const v = on.scales[r * on.ngroups + gi] * (on.codes[r * n + j] - on.zeros[r * on.ngroups + gi]);
            if (v !== on.Q[r * n + j]) dq = false;
          }
        }
        t.ok(dq, `${algo} ${what}: scale[g_idx]·(code − zero[g_idx]) reproduces Q`);
      }
    }
  }
});

t.test('(6b) diagonal H with distinct entries, per-channel: U is diagonal so columns are independent and act-order on/off agree exactly', async (t) => {
  const m = 8;
  const n = 20;
  const rng = mulberry32(66);
  const W = randnArray(rng, m * n);
  const H = new Float64Array(n * n);
  for (let i = 0; i < n; i++) H[i * n + i] = 1 + ((i * 7) % n) + 0.5 * rng();
  const on = gptq(W, H, m, n, { ...base, blockSize: 8, actOrder: true });
  const off = gptq(W, H, m, n, { ...base, blockSize: 8, actOrder: false });
  t.ok(sameExact(on.codes, off.codes), 'codes identical');
  t.ok(sameExact(on.Q, off.Q), 'Q identical');
  t.ok(on.perm !== null && !sameExact(on.perm, Int32Array.from({ length: n }, (_, i) => i)), 'the permutation is not the identity');
});

t.test('(6c) act-order ties are broken by the lower index first; static groups + act-order keep gIdx = j // g', async (t) => {
  const n = 6;
  const H = new Float64Array(n * n);
  [2, 5, 2, 5, 1, 5].forEach((v, i) => (H[i * n + i] = v));
  t.same(Array.from(actOrderPerm(H, n)), [1, 3, 5, 0, 2, 4]);
  const m = 3;
  const W = randnArray(mulberry32(9), m * n);
  const r = gptq(W, H, m, n, { ...base, groupSize: 4, staticGroups: true, actOrder: true });
  t.same(Array.from(r.gIdx), [0, 0, 0, 0, 1, 1]);
  t.equal(r.ngroups, 2);
  // static groups are fitted on the ORIGINAL column order (no dead columns here): same params as RTN
  const rr = rtn(W, m, n, { ...base, groupSize: 4 });
  t.ok(sameExact(r.scales, rr.scales) && sameExact(r.zeros, rr.zeros), 'static group params equal RTN group params');
});

t.test('dead columns: per-channel params from the ORIGINAL W, the dead column is zeroed, caller arrays untouched', async (t) => {
  const m = 4;
  const n = 8;
  const rng = mulberry32(10);
  const { H: H0 } = randomHessian(rng, n, 3 * n);
  const H = Float64Array.from(H0);
  for (let j = 0; j < n; j++) {
    H[2 * n + j] = 0;
    H[j * n + 2] = 0;
  }
  const W = randnArray(rng, m * n);
  W[0 * n + 2] = 50; // the dead column holds the row maximum
  const Wc = Float64Array.from(W);
  const Hc = Float64Array.from(H);
  const D = randnArray(rng, n * n);
  const Dc = Float64Array.from(D);
  const r = gptq(W, H, m, n, base);
  gptaq(W, H, D, m, n, { ...base, actOrder: true, groupSize: 4 });
  t.ok(sameExact(W, Wc) && sameExact(H, Hc) && sameExact(D, Dc), 'inputs not mutated');
  const p = findParams(W, m, n, base);
  t.ok(sameExact(r.scales, p.scale), 'per-channel scales come from the original W (dead column included)');
  for (let row = 0; row < m; row++) t.equal(r.Q[row * n + 2], quantize(0, p.scale[row], p.zero[row], maxqOf(4)), 'dead column quantizes 0');
  // λ after the dead fix: diag entry counts as 1
  let s = 0;
  for (let i = 0; i < n; i++) s += i === 2 ? 1 : H[i * n + i];
  t.ok(Math.abs(r.damp - (0.01 * s) / n) < 1e-15 * s, 'λ computed after the dead fix');
});

// ---------------------------------------------------------------------------
// (7) quantizer
// ---------------------------------------------------------------------------

t.test('(7) quantizer: round half to even, zero points, all-zero rows, fp16 scales', async (t) => {
  t.equal(roundHalfEven(2.5), 2);
  t.equal(roundHalfEven(3.5), 4);
  t.equal(roundHalfEven(-2.5), -2);
  t.equal(roundHalfEven(-3.5), -4);
  t.equal(roundHalfEven(0.5), 0);
  t.equal(roundHalfEven(1.5), 2);
  t.equal(roundHalfEven(2.4999999999999996), 2);
  t.equal(roundHalfEven(2.5000000000000004), 3);
  t.equal(roundHalfEven(-0.4), 0);

  // x/scale exactly 2.5 and 3.5
  t.equal(quantizeCode(2.5, 1, 0, 15), 2);
  t.equal(quantizeCode(3.5, 1, 0, 15), 4);
  t.equal(quantizeCode(0.625, 0.25, 3, 15), 5, '0.625/0.25 = 2.5 → 2, + zero 3');
  t.equal(quantize(0.625, 0.25, 3, 15), 0.5);
  t.equal(quantizeCode(100, 1, 0, 7), 7, 'clamped to maxq');
  t.equal(quantizeCode(-100, 1, 3, 7), 0, 'clamped to 0');

  for (const bits of [2, 3, 4, 8]) {
    const maxq = maxqOf(bits);
    const zeros = new Float64Array(2 * 5);
    const asym = findParams(zeros, 2, 5, { bits, sym: false });
    const sym = findParams(zeros, 2, 5, { bits, sym: true });
    t.equal(asym.scale[0], 2 / maxq, `bits ${bits}: all-zero row → scale 2/maxq`);
    t.equal(asym.zero[0], roundHalfEven(maxq / 2), `bits ${bits}: all-zero row asym zero = round(maxq/2)`);
    t.equal(sym.scale[0], 2 / maxq);
    t.equal(sym.zero[0], 2 ** (bits - 1), `bits ${bits}: sym zero = 2^(bits−1)`);
  }
  t.equal(findParams(new Float64Array(4), 1, 4, { bits: 4, sym: false }).zero[0], 8, 'round(7.5) = 8 (even)');
  t.equal(findParams(new Float64Array(4), 1, 4, { bits: 2, sym: false }).zero[0], 2, 'round(1.5) = 2');

  // asym zero point: row [−1, 3], 2 bits → scale 4/3, zero round(0.75) = 1
  const a = findParams(Float64Array.from([-1, 3, 0.5, 2]), 1, 4, { bits: 2, sym: false });
  t.equal(a.scale[0], 4 / 3);
  t.equal(a.zero[0], 1);
  // positive-only row: range still contains 0 → xmin = 0, zero 0
  const pos = findParams(Float64Array.from([1, 2, 4]), 1, 3, { bits: 2, sym: false });
  t.equal(pos.scale[0], 4 / 3);
  t.equal(pos.zero[0], 0);
  // sym: xmax = max(|xmin|, xmax); xmin = −xmax where xmin < 0
  const s = findParams(Float64Array.from([-3, 1, 0.5, -3.5, 2]), 1, 5, { bits: 3, sym: true });
  t.equal(s.scale[0], 7 / 7);
  t.equal(s.zero[0], 4);
  // sym quirk: a row without negatives keeps xmin = 0
  const sp = findParams(Float64Array.from([0.5, 7]), 1, 2, { bits: 3, sym: true });
  t.equal(sp.scale[0], 1);
  t.equal(sp.zero[0], 4);

  // MSE grid: scale candidates are (p·xmax − p·xmin)/maxq with p = 1 − i/grid; shrinking
  // cannot be worse than no shrink (p = 1 is the first candidate; strict < keeps the first best)
  const rng = mulberry32(77);
  const X = randnArray(rng, 6 * 32);
  X[5] = 9; // outlier → clipping should pay off in row 0
  const mm = findParams(X, 6, 32, { bits: 3, sym: false });
  const ms = findParams(X, 6, 32, { bits: 3, sym: false, mse: true });
  const errOf = (sc: number, z: number, r: number) => {
    let e = 0;
    for (let c = 0; c < 32; c++) e += Math.abs(quantize(X[r * 32 + c], sc, z, 7) - X[r * 32 + c]) ** 2.4;
    return e;
  };
  for (let r = 0; r < 6; r++) {
    t.ok(ms.scale[r] <= mm.scale[r] * (1 + 1e-12), `row ${r}: MSE scale ≤ min-max scale`);
    t.ok(errOf(ms.scale[r], ms.zero[r], r) <= errOf(mm.scale[r], mm.zero[r], r), `row ${r}: MSE error ≤ min-max error`);
    // the chosen scale is one of the candidates
    let found = false;
    let xmin = 0;
    let xmax = 0;
    for (let c = 0; c < 32; c++) {
      xmin = Math.min(xmin, X[r * 32 + c]);
      xmax = Math.max(xmax, X[r * 32 + c]);
    }
    for (let i = 0; i < 80; i++) {
      const p = 1 - i / 100;
      if ((p * xmax - p * xmin) / 7 === ms.scale[r]) found = true;
    }
    t.ok(found, `row ${r}: MSE scale is a grid candidate`);
  }
  t.ok(ms.scale[0] < mm.scale[0], 'the outlier row is clipped');

  // float16 rounding
  t.equal(roundScaleToF16(1 + 2 ** -11), 1, 'tie → even (1)');
  t.equal(roundScaleToF16(1 + 3 * 2 ** -11), 1 + 2 ** -9, 'tie → even (1 + 2^-9)');
  t.equal(roundScaleToF16(1e-9), 2 ** -24, 'clamped up to 2^-24');
  t.equal(roundScaleToF16(1e6), 65504, 'clamped down to 65504');
  t.equal(roundScaleToF16(3 * 2 ** -25), 2 ** -23, 'subnormal tie → even');
  t.ok(isF16Value(65504) && isF16Value(2 ** -24) && !isF16Value(1 + 2 ** -11) && !isF16Value(0.1));
  for (const sym of [false, true]) {
    for (const mse of [false, true]) {
      const p16 = findParams(X, 6, 32, { bits: 4, sym, mse, fp16Scales: true });
      const p64 = findParams(X, 6, 32, { bits: 4, sym, mse, fp16Scales: false });
      for (let r = 0; r < 6; r++) {
        t.ok(isF16Value(p16.scale[r]), `sym=${sym} mse=${mse} row ${r}: scale ${p16.scale[r]} is a float16 value`);
        t.ok(p16.zero[r] >= 0 && p16.zero[r] <= 15 && Number.isInteger(p16.zero[r]), 'zero in [0, maxq]');
        if (!mse) {
          t.equal(p16.scale[r], roundScaleToF16(p64.scale[r]), 'min-max scale is the rounded float64 scale');
          if (!sym) {
            let xmin = 0;
            for (let c = 0; c < 32; c++) xmin = Math.min(xmin, X[r * 32 + c]);
            t.equal(p16.zero[r], Math.min(15, Math.max(0, roundHalfEven(-xmin / p16.scale[r]))), 'zero from the rounded scale');
          }
        }
      }
    }
  }
  // GPTQ / RTN results expose float16 scales too
  const { H } = randomHessian(mulberry32(78), 16, 48);
  const W = randnArray(mulberry32(79), 4 * 16);
  for (const res of [
    gptq(W, H, 4, 16, { ...base, fp16Scales: true, groupSize: 4, actOrder: true }),
    rtn(W, 4, 16, { ...base, fp16Scales: true, groupSize: 8 }),
  ]) {
    t.ok(Array.from(res.scales).every(isF16Value), 'all result scales are float16 values');
  }
});

// ---------------------------------------------------------------------------
// (8) GPTQ beats RTN on its own objective
// ---------------------------------------------------------------------------

t.test('(8) GPTQ H-norm error (damped H) ≤ RTN on the same per-channel asym grid, H = XᵀX with tokens ≥ 2n', async (t) => {
  for (let seed = 100; seed < 108; seed++) {
    const rng = mulberry32(seed);
    const n = 24 + (seed % 3) * 12;
    const m = 16;
    const { H } = randomHessian(rng, n, 2 * n + (seed % 4) * n);
    const W = randnArray(rng, m * n);
    const bits = 3 + (seed % 2);
    const opts = { ...base, bits, blockSize: seed % 2 ? 16 : 128 };
    const g = gptq(W, H, m, n, opts);
    const r = rtn(W, m, n, opts);
    t.ok(sameExact(g.scales, r.scales) && sameExact(g.zeros, r.zeros), `seed ${seed}: same grid`);
    const { Hd } = dampedHessian(H, n, 0.01);
    const diff = (Q: Float64Array) => W.map((v, i) => v - Q[i]);
    const eg = hessianNorm(diff(g.Q), Hd, m, n);
    const er = hessianNorm(diff(r.Q), Hd, m, n);
    t.ok(eg <= er, `seed ${seed} n=${n} bits=${bits}: GPTQ ${eg.toFixed(3)} ≤ RTN ${er.toFixed(3)} (ratio ${(eg / er).toFixed(3)})`);
    t.ok(Number.isFinite(g.loss) && g.loss > 0, 'loss is finite and positive');
  }
});

t.test('GPTAQ variants: reference and derivation differ only through the lazy P-term (equal with one block)', async (t) => {
  const m = 6;
  const n = 32;
  const rng = mulberry32(200);
  const { X } = randomHessian(rng, n, 3 * n);
  // a correlated full-precision path (x̃ = 1.3·x + noise) gives a sizeable P
  const Xf = Float64Array.from(X, (v) => 1.3 * v + 0.2 * randn(rng));
  const { H, dXXT } = accumulate([{ x: X, xFull: Xf }], n);
  const W = randnArray(rng, m * n);
  const one = { ...base, blockSize: 128 };
  sameResult(t, gptaq(W, H, dXXT, m, n, { ...one, gptaqVariant: 'reference' }), gptaq(W, H, dXXT, m, n, { ...one, gptaqVariant: 'derivation' }), 'one block');
  const ref = gptaq(W, H, dXXT, m, n, { ...base, blockSize: 8 });
  const der = gptaq(W, H, dXXT, m, n, { ...base, blockSize: 8, gptaqVariant: 'derivation' });
  t.ok(!sameExact(ref.Q, der.Q), 'several blocks: the variants differ');
  const gq = gptq(W, H, m, n, { ...base, blockSize: 8 });
  t.ok(!sameExact(ref.Q, gq.Q), 'GPTAQ with a nonzero dXXT differs from GPTQ');
  // blockSize does not change GPTQ (lazy batching is exact algebra), up to float noise
  const gq1 = gptq(W, H, m, n, { ...base, blockSize: 128 });
  t.ok(maxAbsDiff(gq.Q, gq1.Q) < 1e-9 || countDiff(gq.codes, gq1.codes) <= 1, 'GPTQ independent of blockSize (per-channel)');
});

function countDiff(a: Int32Array, b: Int32Array): number {
  let c = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) c++;
  return c;
}
