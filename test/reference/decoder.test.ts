// Checks the naive float64 reference decoder layer (test/reference/decoder.ts) against facts that do
// not depend on its own code: RoPE algebra, M-RoPE sections (docs/formats.md §3.5), causality and
// sample separation, GQA ≡ MHA with duplicated kv heads, finite differences of the block loss, and
// the closed form of the o_proj factors (docs/algorithm.md §4.3, §8.5). Nothing here touches lib/.
import t from 'tap';
import {
  applyRope,
  attentionBlock,
  attentionBlockWithPerturbations,
  blockLoss,
  decoderLayer,
  importanceFactors,
  randomDecoder,
  randomTokens,
  ropeCosSin,
  type DecoderDims,
  type DecoderWeights,
  type ZPerturbations,
} from './decoder.js';

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** max |a − b| / max |b| */
function relErr(a: Float64Array, b: Float64Array): number {
  return maxAbsDiff(a, b) / maxAbs(b);
}

function rowsEqual(a: Float64Array, b: Float64Array, width: number, row: number): boolean {
  for (let c = 0; c < width; c++) if (a[row * width + c] !== b[row * width + c]) return false;
  return true;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

const small: DecoderDims = {
  hidden: 16,
  heads: 4,
  kvHeads: 2,
  headDim: 4,
  intermediate: 24,
  eps: 1e-6,
  ropeTheta: 100,
  mropeSection: null,
};

/** Two samples of 5 and 3 tokens. */
const seg53 = Int32Array.from([0, 5, 8]);
/** 1-D positions restarting in each sample. */
const pos1d = Int32Array.from([0, 1, 2, 3, 4, 0, 1, 2]);
/**
 * M-RoPE positions [3, T] as get_rope_index lays them out: sample A = one text token, then a 2×2
 * merged image starting at s = 1 — (t, h, w) = (1, 1+hi, 1+wi); sample B = three text tokens.
 */
const posM = Int32Array.from([
  // temporal
  0, 1, 1, 1, 1, 0, 1, 2,
  // height
  0, 1, 1, 2, 2, 0, 1, 2,
  // width
  0, 1, 2, 1, 2, 0, 1, 2,
]);

/** The small configuration with 1-D RoPE and with M-RoPE. */
const twoCases: [string, DecoderDims, Int32Array][] = [
  ['1-D', small, pos1d],
  ['M-RoPE', { ...small, mropeSection: [1, 1, 0] }, posM],
];

// ---------------------------------------------------------------------------
// 1. RoPE and M-RoPE
// ---------------------------------------------------------------------------

t.test('RoPE: all positions 0 is the identity', async (t) => {
  for (const mropeSection of [null, [1, 2, 1]]) {
    const dims = { ...small, headDim: 8, mropeSection };
    const T = 3;
    const positions = new Int32Array(mropeSection ? 3 * T : T);
    const { cos, sin } = ropeCosSin(positions, T, dims);
    t.ok(cos.every((c) => c === 1) && sin.every((s) => s === 0), 'cos ≡ 1, sin ≡ 0');
    const x = randomTokens(T, 2 * 8, 1);
    t.same(applyRope(x, T, 2, 8, cos, sin), x, `identity (${mropeSection ? 'M-RoPE' : '1-D'})`);
  }
});

t.test('RoPE: q·k after rotation depends only on the position difference', async (t) => {
  const d = 8;
  for (const ropeTheta of [10000, 1e6]) {
    const dims = { ...small, headDim: d, ropeTheta };
    const q = randomTokens(1, d, 2), k = randomTokens(1, d, 3);
    const rot = (x: Float64Array, p: number): Float64Array => {
      const { cos, sin } = ropeCosSin(Int32Array.of(p), 1, dims);
      return applyRope(x, 1, 1, d, cos, sin);
    };
    const score = (p: number, pp: number): number => dot(rot(q, p), rot(k, pp));
    const ref = score(5, 2);
    for (const shift of [1, 17, 100, 1000]) {
      t.ok(Math.abs(score(5 + shift, 2 + shift) - ref) < 1e-12, `θ=${ropeTheta}: shift ${shift} keeps the score`);
    }
    t.ok(Math.abs(score(5, 3) - ref) > 1e-6, `θ=${ropeTheta}: a different offset gives a different score`);
    // rotation preserves norms
    t.ok(Math.abs(dot(rot(q, 123), rot(q, 123)) - dot(q, q)) < 1e-12, 'norm preserved');
  }
});

t.test('RoPE: element i pairs with i + d/2 and inv_freq[j] = θ^(−2j/d)', async (t) => {
  const d = 8, theta = 10000, p = 3;
  const dims = { ...small, headDim: d, ropeTheta: theta };
  const { cos, sin } = ropeCosSin(Int32Array.of(p), 1, dims);
  for (let j = 0; j < d / 2; j++) {
    const angle = p * Math.pow(theta, (-2 * j) / d);
    t.ok(Math.abs(cos[j] - Math.cos(angle)) < 1e-15 && Math.abs(sin[j] - Math.sin(angle)) < 1e-15, `slot ${j}`);
    t.equal(cos[j + d / 2], cos[j], `slot ${j + d / 2} duplicates slot ${j}`);
    t.equal(sin[j + d / 2], sin[j]);
  }
  // unit vector e_0 rotates into the (0, d/2) plane: (cos, sin) at slots (0, d/2)
  const e0 = new Float64Array(d);
  e0[0] = 1;
  const y = applyRope(e0, 1, 1, d, cos, sin);
  t.ok(Math.abs(y[0] - Math.cos(p)) < 1e-15 && Math.abs(y[d / 2] - Math.sin(p)) < 1e-15, 'e_0 → (cos p, sin p) in slots 0, d/2');
  t.equal(y.filter((v, i) => i !== 0 && i !== d / 2 && v !== 0).length, 0, 'no other slot touched');
});

t.test('M-RoPE with three equal components is exactly 1-D RoPE', async (t) => {
  const d = 16, T = 6;
  const p = Int32Array.from([0, 3, 7, 11, 250, 4095]);
  const one = ropeCosSin(p, T, { ...small, headDim: d, ropeTheta: 1e6, mropeSection: null });
  const three = ropeCosSin(Int32Array.from([...p, ...p, ...p]), T, { ...small, headDim: d, ropeTheta: 1e6, mropeSection: [2, 3, 3] });
  const implied = ropeCosSin(p, T, { ...small, headDim: d, ropeTheta: 1e6, mropeSection: [2, 3, 3] });
  t.same(three.cos, one.cos);
  t.same(three.sin, one.sin);
  t.same(implied.cos, one.cos, 'T positions with an mrope section: components taken equal');
  t.same(implied.sin, one.sin);
});

t.test('M-RoPE section boundaries: each component drives its slots in both halves', async (t) => {
  const changedSlots = (d: number, section: number[], component: number): number[] => {
    const dims = { ...small, headDim: d, ropeTheta: 1e6, mropeSection: section };
    const base = Int32Array.from([5, 5, 5]);
    const moved = Int32Array.from(base);
    moved[component] = 9;
    const a = ropeCosSin(base, 1, dims), b = ropeCosSin(moved, 1, dims);
    const slots: number[] = [];
    for (let i = 0; i < d; i++) if (a.cos[i] !== b.cos[i] || a.sin[i] !== b.sin[i]) slots.push(i);
    // the rotated vector changes in exactly the same slots
    const x = randomTokens(1, d, 4);
    const ya = applyRope(x, 1, 1, d, a.cos, a.sin), yb = applyRope(x, 1, 1, d, b.cos, b.sin);
    const outSlots: number[] = [];
    for (let i = 0; i < d; i++) if (ya[i] !== yb[i]) outSlots.push(i);
    t.same(outSlots, slots, `d=${d} component ${component}: rotated vector changes in the same slots`);
    return slots;
  };
  const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
  // d = 16, section [2, 3, 3]: half = 8
  t.same(changedSlots(16, [2, 3, 3], 0), [...range(0, 2), ...range(8, 10)], 'temporal: 0–1, 8–9');
  t.same(changedSlots(16, [2, 3, 3], 1), [...range(2, 5), ...range(10, 13)], 'height: 2–4, 10–12');
  t.same(changedSlots(16, [2, 3, 3], 2), [...range(5, 8), ...range(13, 16)], 'width: 5–7, 13–15');
  // Qwen2-VL: d = 128, [16, 24, 24] (docs/formats.md §3.5)
  t.same(changedSlots(128, [16, 24, 24], 0), [...range(0, 16), ...range(64, 80)], 'Qwen2-VL temporal');
  t.same(changedSlots(128, [16, 24, 24], 1), [...range(16, 40), ...range(80, 104)], 'Qwen2-VL height');
  t.same(changedSlots(128, [16, 24, 24], 2), [...range(40, 64), ...range(104, 128)], 'Qwen2-VL width');
});

t.test('RoPE input validation', async (t) => {
  t.throws(() => ropeCosSin(new Int32Array(6), 2, small), /positions/, '3·T positions without an mrope section');
  t.throws(() => ropeCosSin(new Int32Array(5), 2, { ...small, mropeSection: [1, 1, 0] }), /positions/);
  t.throws(() => ropeCosSin(new Int32Array(2), 2, { ...small, mropeSection: [1, 1, 1] }), /sum/);
});

// ---------------------------------------------------------------------------
// 2. Attention: causality, segments, hand-checkable cases
// ---------------------------------------------------------------------------

t.test('causality and segments: a change reaches only later tokens of the same sample', async (t) => {
  for (const [name, dims, positions] of twoCases) {
    const w = randomDecoder(dims, 10);
    const T = 8, H = dims.hidden;
    const x = randomTokens(T, H, 11);
    const base = decoderLayer(x, T, w, dims, positions, seg53).out;
    for (const changed of [0, 2, 4, 5, 6]) {
      const x2 = Float64Array.from(x);
      for (let c = 0; c < H; c++) x2[changed * H + c] += 0.5;
      const out2 = decoderLayer(x2, T, w, dims, positions, seg53).out;
      const segEnd = changed < 5 ? 5 : 8;
      for (let tok = 0; tok < T; tok++) {
        const affected = tok >= changed && tok < segEnd;
        t.equal(!rowsEqual(base, out2, H, tok), affected, `${name}: change token ${changed} → token ${tok} ${affected ? 'changes' : 'unchanged'}`);
      }
    }
  }
});

t.test('segments: a packed run equals running each sample alone', async (t) => {
  const dims = { ...small, mropeSection: [1, 1, 0] };
  const w = randomDecoder(dims, 12);
  const T = 8, H = dims.hidden;
  const x = randomTokens(T, H, 13);
  const packed = decoderLayer(x, T, w, dims, posM, seg53).out;
  const comp = (start: number, end: number): Int32Array => {
    const p: number[] = [];
    for (let c = 0; c < 3; c++) for (let i = start; i < end; i++) p.push(posM[c * T + i]);
    return Int32Array.from(p);
  };
  const a = decoderLayer(x.slice(0, 5 * H), 5, w, dims, comp(0, 5), Int32Array.from([0, 5])).out;
  const b = decoderLayer(x.slice(5 * H), 3, w, dims, comp(5, 8), Int32Array.from([0, 3])).out;
  t.same(packed, Float64Array.from([...a, ...b]));
});

t.test('attention: the first token of a sample attends only to itself (attn = its v)', async (t) => {
  const w = randomDecoder(small, 14);
  const { stages } = decoderLayer(randomTokens(8, 16, 15), 8, w, small, pos1d, seg53);
  const { heads, kvHeads, headDim: d } = small;
  for (const tok of [0, 5]) {
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / (heads / kvHeads));
      const a = stages.attn.slice((tok * heads + h) * d, (tok * heads + h + 1) * d);
      const v = stages.v.slice((tok * kvHeads + g) * d, (tok * kvHeads + g + 1) * d);
      t.ok(maxAbsDiff(a, v) < 1e-15, `token ${tok} head ${h} = v of kv head ${g}`);
    }
  }
});

t.test('attention: identical keys give a uniform causal average of the values', async (t) => {
  // zero q/k weights: every score equals bq·bk/√d within a row → uniform softmax over s ≤ t
  const dims = small;
  const w = randomDecoder(dims, 16);
  w.q.fill(0);
  w.k.fill(0);
  const T = 8;
  const { stages } = decoderLayer(randomTokens(T, 16, 17), T, w, dims, new Int32Array(T), seg53);
  const { heads, kvHeads, headDim: d } = dims;
  let worst = 0;
  for (const [start, end] of [[0, 5], [5, 8]]) {
    for (let tok = start; tok < end; tok++) {
      for (let h = 0; h < heads; h++) {
        const g = Math.floor(h / (heads / kvHeads));
        for (let c = 0; c < d; c++) {
          let mean = 0;
          for (let s = start; s <= tok; s++) mean += stages.v[(s * kvHeads + g) * d + c];
          mean /= tok - start + 1;
          worst = Math.max(worst, Math.abs(stages.attn[(tok * heads + h) * d + c] - mean));
        }
      }
    }
  }
  t.ok(worst < 1e-14, `uniform average (max error ${worst})`);
});

t.test('attention: two tokens by hand (scale 1/√d, softmax)', async (t) => {
  const dims = { ...small, heads: 1, kvHeads: 1, headDim: 4 };
  const w = randomDecoder(dims, 18);
  const { stages } = decoderLayer(randomTokens(2, 16, 19), 2, w, dims, new Int32Array(2), Int32Array.from([0, 2]));
  const q1 = stages.q.slice(4, 8), k0 = stages.k.slice(0, 4), k1 = stages.k.slice(4, 8);
  const v0 = stages.v.slice(0, 4), v1 = stages.v.slice(4, 8);
  const s0 = dot(q1, k0) / 2, s1 = dot(q1, k1) / 2; // √4 = 2
  const p0 = Math.exp(s0) / (Math.exp(s0) + Math.exp(s1)), p1 = 1 - p0;
  const expected = Float64Array.from([0, 1, 2, 3].map((c) => p0 * v0[c] + p1 * v1[c]));
  t.ok(maxAbsDiff(stages.attn.slice(4, 8), expected) < 1e-14);
});

t.test('single token: the layer does not depend on the position; stages wire up as in HF', async (t) => {
  const dims = { ...small, mropeSection: [1, 1, 0] };
  const w = randomDecoder(dims, 20);
  const x = randomTokens(1, 16, 21);
  const a = decoderLayer(x, 1, w, dims, Int32Array.from([0, 0, 0]), Int32Array.from([0, 1]));
  const b = decoderLayer(x, 1, w, dims, Int32Array.from([7, 40, 3]), Int32Array.from([0, 1]));
  t.same(a.out, b.out, 'no dependence on the position');
  // restate the layer for one token, written as plain row operations
  const H = 16, I = dims.intermediate;
  const rms = (v: number[], weight: Float64Array): number[] => {
    const r = 1 / Math.sqrt(v.reduce((s, e) => s + e * e, 0) / v.length + dims.eps);
    return v.map((e, i) => weight[i] * e * r);
  };
  const mv = (W: Float64Array, rows: number, v: number[]): number[] =>
    Array.from({ length: rows }, (_, r) => v.reduce((s, e, i) => s + W[r * v.length + i] * e, 0));
  const xn = rms(Array.from(x), w.inputNorm);
  const v = mv(w.v, 8, xn).map((e, i) => e + w.vBias[i]);
  const attn = [0, 0, 1, 1].flatMap((g) => v.slice(g * 4, g * 4 + 4)); // head h reads kv head ⌊h/2⌋
  const h = mv(w.o, H, attn).map((e, i) => e + x[i]);
  const hn = rms(h, w.postNorm);
  const gate = mv(w.gate, I, hn), up = mv(w.up, I, hn);
  const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
  const out = mv(w.down, H, act).map((e, i) => e + h[i]);
  t.ok(maxAbsDiff(a.out, Float64Array.from(out)) < 1e-13, 'matches the hand-written layer');
  t.ok(maxAbsDiff(a.stages.h, Float64Array.from(h)) < 1e-13, 'stage h');
  t.ok(maxAbsDiff(a.stages.act, Float64Array.from(act)) < 1e-13, 'stage act');
});

t.test('RMSNorm (eps = 0) is scale invariant and has unit RMS before the weight', async (t) => {
  const dims = { ...small, eps: 0 };
  const w = randomDecoder(dims, 22);
  w.inputNorm.fill(1);
  const x = randomTokens(8, 16, 23);
  const a = decoderLayer(x, 8, w, dims, pos1d, seg53).stages.normed;
  const b = decoderLayer(x.map((e) => 3 * e), 8, w, dims, pos1d, seg53).stages.normed;
  t.ok(maxAbsDiff(a, b) < 1e-14, 'RMSNorm(3x) = RMSNorm(x)');
  for (let tok = 0; tok < 8; tok++) {
    const row = a.slice(tok * 16, tok * 16 + 16);
    t.ok(Math.abs(dot(row, row) / 16 - 1) < 1e-14, `token ${tok}: mean square 1`);
  }
});

// ---------------------------------------------------------------------------
// 3. GQA ≡ MHA with duplicated kv heads
// ---------------------------------------------------------------------------

/** MHA weights (kvHeads = heads) that repeat each GQA kv head for the query heads that read it. */
function duplicateKv(w: DecoderWeights, dims: DecoderDims): DecoderWeights {
  const { hidden: H, heads, kvHeads, headDim: d } = dims;
  const group = heads / kvHeads;
  const rep = (W: Float64Array, width: number): Float64Array => {
    const out = new Float64Array(heads * d * width);
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      out.set(W.subarray(g * d * width, (g + 1) * d * width), h * d * width);
    }
    return out;
  };
  return { ...w, k: rep(w.k, H), kBias: rep(w.kBias, 1), v: rep(w.v, H), vBias: rep(w.vBias, 1) };
}

t.test('GQA equals MHA with duplicated kv weights (forward and gradients)', async (t) => {
  for (const [name, gqa, positions] of twoCases) {
    const mha = { ...gqa, kvHeads: gqa.heads };
    const w = randomDecoder(gqa, 30);
    const wm = duplicateKv(w, gqa);
    const F = randomTokens(8, 16, 31);
    const U = F.map((e, i) => e + 0.1 * randomTokens(8, 16, 32)[i]);
    const a = decoderLayer(U, 8, w, gqa, positions, seg53);
    const b = decoderLayer(U, 8, wm, mha, positions, seg53);
    t.same(b.out, a.out, `${name}: same layer output`);
    t.same(b.stages.attn, a.stages.attn, `${name}: same attention output`);

    const fa = importanceFactors(U, F, 8, w, gqa, positions, seg53);
    const fb = importanceFactors(U, F, 8, wm, mha, positions, seg53);
    t.equal(fb.loss, fa.loss, `${name}: same loss`);
    t.same(fb.grads.o, fa.grads.o, `${name}: same dZ_o`);
    t.ok(relErr(fb.grads.q, fa.grads.q) < 1e-13, `${name}: same dZ_q`);
    // the GQA kv head's gradient is the sum over the MHA copies that duplicate it
    const { heads, kvHeads, headDim: d } = gqa;
    for (const p of ['k', 'v'] as const) {
      const summed = new Float64Array(8 * kvHeads * d);
      for (let tok = 0; tok < 8; tok++) {
        for (let h = 0; h < heads; h++) {
          const g = Math.floor(h / (heads / kvHeads));
          for (let c = 0; c < d; c++) summed[(tok * kvHeads + g) * d + c] += fb.grads[p][(tok * heads + h) * d + c];
        }
      }
      t.ok(relErr(summed, fa.grads[p]) < 1e-13, `${name}: dZ_${p} of GQA = sum over the duplicated MHA heads`);
    }
  }
});

// ---------------------------------------------------------------------------
// 4–6. Block loss gradients, closed form, degenerate case
// ---------------------------------------------------------------------------

/** Central finite differences of L = Σ (B_perturbed(U) − B(F))² w.r.t. every entry of Z_p. */
function fdGrad(
  U: Float64Array,
  F: Float64Array,
  T: number,
  w: DecoderWeights,
  dims: DecoderDims,
  positions: Int32Array,
  segments: Int32Array,
  p: keyof ZPerturbations,
  size: number,
  step = 1e-5,
): Float64Array {
  const bf = attentionBlock(F, T, w, dims, positions, segments);
  const loss = (pert: Float64Array): number => {
    const bu = attentionBlockWithPerturbations(U, T, w, dims, positions, segments, { [p]: pert });
    let L = 0;
    for (let i = 0; i < bu.length; i++) L += (bu[i] - bf[i]) ** 2;
    return L;
  };
  const g = new Float64Array(size);
  const pert = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    pert[i] = step;
    const plus = loss(pert);
    pert[i] = -step;
    const minus = loss(pert);
    pert[i] = 0;
    g[i] = (plus - minus) / (2 * step);
  }
  return g;
}

const fdCases: [string, DecoderDims, Int32Array][] = [
  ['1-D RoPE, d=4', small, pos1d],
  ['1-D RoPE, d=4, θ=1e6, large positions', { ...small, ropeTheta: 1e6 }, pos1d.map((p, i) => p + (i < 5 ? 1000 : 3000))],
  ['M-RoPE, d=4, [1,1,0]', { ...small, mropeSection: [1, 1, 0] }, posM],
  ['M-RoPE, d=6, [1,1,1]', { ...small, headDim: 6, mropeSection: [1, 1, 1] }, posM],
];

t.test('analytic ∂L/∂Z_p match central finite differences of the block loss', async (t) => {
  const T = 8;
  for (const [name, dims, positions] of fdCases) {
    const w = randomDecoder(dims, 40);
    const F = randomTokens(T, dims.hidden, 41);
    const noise = randomTokens(T, dims.hidden, 42);
    const U = F.map((e, i) => e + 0.3 * noise[i]);
    const f = importanceFactors(U, F, T, w, dims, positions, seg53);
    t.ok(Math.abs(f.loss - blockLoss(U, F, T, w, dims, positions, seg53)) <= 1e-14 * f.loss, `${name}: loss = blockLoss`);
    t.same(attentionBlockWithPerturbations(U, T, w, dims, positions, seg53, {}), attentionBlock(U, T, w, dims, positions, seg53), 'no perturbation = B');
    const sizes = { q: dims.heads * dims.headDim, k: dims.kvHeads * dims.headDim, v: dims.kvHeads * dims.headDim, o: dims.hidden };
    for (const p of ['q', 'k', 'v', 'o'] as const) {
      const analytic = f.grads[p];
      t.equal(analytic.length, T * sizes[p], `${name}: dZ_${p} is [T, ${sizes[p]}]`);
      const fd = fdGrad(U, F, T, w, dims, positions, seg53, p, T * sizes[p]);
      const err = relErr(fd, analytic);
      t.ok(maxAbs(analytic) > 1e-3, `${name}: dZ_${p} is not trivially small (${maxAbs(analytic).toExponential(2)})`);
      t.ok(err < 1e-6, `${name}: dZ_${p} vs finite differences, relative error ${err.toExponential(2)}`);
    }
  }
});

t.test('closed form: g_o[t] = (2/H) Σ_c |B(U) − B(F)|; l2 factors are the RMS', async (t) => {
  const dims = { ...small, mropeSection: [1, 1, 0] };
  const w = randomDecoder(dims, 50);
  const F = randomTokens(8, 16, 51);
  const U = F.map((e, i) => e + 0.2 * Math.sin(i));
  const bu = attentionBlock(U, 8, w, dims, posM, seg53), bf = attentionBlock(F, 8, w, dims, posM, seg53);
  const expected = new Float64Array(8);
  for (let tok = 0; tok < 8; tok++) {
    for (let c = 0; c < 16; c++) expected[tok] += Math.abs(bu[tok * 16 + c] - bf[tok * 16 + c]);
    expected[tok] *= 2 / 16;
  }
  const f = importanceFactors(U, F, 8, w, dims, posM, seg53);
  t.ok(relErr(f.o, expected) < 1e-14, 'g_o closed form');

  const f2 = importanceFactors(U, F, 8, w, dims, posM, seg53, 'l2');
  t.same(f2.grads, f.grads, 'the norm does not change the gradients');
  for (const p of ['q', 'k', 'v', 'o'] as const) {
    const G = f.grads[p], C = G.length / 8;
    for (let tok = 0; tok < 8; tok++) {
      const row = G.slice(tok * C, (tok + 1) * C);
      const rms = Math.sqrt(dot(row, row) / C);
      t.ok(Math.abs(f2[p][tok] - rms) <= 1e-14 * rms, `g_${p}[${tok}] (l2) = RMS of the gradient row`);
      t.ok(f2[p][tok] >= f[p][tok] * (1 - 1e-14), `g_${p}[${tok}]: RMS ≥ mean |·|`);
    }
  }
});

t.test('F == U: zero loss, zero gradients, zero factors', async (t) => {
  for (const [name, dims, positions] of fdCases) {
    const w = randomDecoder(dims, 60);
    const U = randomTokens(8, dims.hidden, 61);
    t.equal(blockLoss(U, U, 8, w, dims, positions, seg53), 0, `${name}: loss 0`);
    for (const norm of ['l1', 'l2'] as const) {
      const f = importanceFactors(U, Float64Array.from(U), 8, w, dims, positions, seg53, norm);
      t.equal(f.loss, 0);
      for (const p of ['q', 'k', 'v', 'o'] as const) {
        t.ok(f[p].every((g) => g === 0), `${name} ${norm}: g_${p} ≡ 0`);
        t.ok(f.grads[p].every((g) => g === 0), `${name} ${norm}: dZ_${p} ≡ 0`);
      }
    }
  }
});

// ---------------------------------------------------------------------------
// 7. Random generators
// ---------------------------------------------------------------------------

t.test('randomDecoder / randomTokens: shapes, determinism, distribution', async (t) => {
  const dims: DecoderDims = { hidden: 256, heads: 8, kvHeads: 2, headDim: 32, intermediate: 512, eps: 1e-6, ropeTheta: 1e6, mropeSection: [4, 6, 6] };
  const w = randomDecoder(dims, 70);
  const H = 256, qd = 256, kd = 64, I = 512;
  const shapes: Record<keyof DecoderWeights, number> = {
    inputNorm: H, postNorm: H, q: qd * H, qBias: qd, k: kd * H, kBias: kd, v: kd * H, vBias: kd, o: H * qd, gate: I * H, up: I * H, down: H * I,
  };
  for (const [k, n] of Object.entries(shapes)) t.equal(w[k as keyof DecoderWeights].length, n, `${k} has ${n} values`);
  t.same(randomDecoder(dims, 70), w, 'same seed, same weights');
  t.not(randomDecoder(dims, 71).q[0], w.q[0], 'another seed, other weights');
  const stats = (a: Float64Array): { mean: number; std: number } => {
    const mean = a.reduce((s, e) => s + e, 0) / a.length;
    return { mean, std: Math.sqrt(a.reduce((s, e) => s + (e - mean) ** 2, 0) / a.length) };
  };
  for (const k of ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const) {
    const s = stats(w[k]);
    t.ok(Math.abs(s.mean) < 0.01 && Math.abs(s.std - 0.1) < 0.01, `${k} ~ N(0, 0.1²): mean ${s.mean.toFixed(4)}, std ${s.std.toFixed(4)}`);
  }
  const biases = stats(Float64Array.from([...w.qBias, ...w.kBias, ...w.vBias]));
  t.ok(Math.abs(biases.mean) < 0.03 && Math.abs(biases.std - 0.1) < 0.02, 'biases ~ N(0, 0.1²)');
  const norms = stats(Float64Array.from([...w.inputNorm, ...w.postNorm]));
  t.ok(Math.abs(norms.mean - 1) < 0.03 && Math.abs(norms.std - 0.1) < 0.02, 'norm weights ~ 1 + N(0, 0.1²)');

  const x = randomTokens(64, 128, 72);
  t.equal(x.length, 64 * 128);
  t.same(randomTokens(64, 128, 72), x, 'tokens deterministic');
  const sx = stats(x);
  t.ok(Math.abs(sx.mean) < 0.05 && Math.abs(sx.std - 1) < 0.05, 'tokens ~ N(0, 1)');
});

t.test('input validation', async (t) => {
  const w = randomDecoder(small, 80);
  const x = randomTokens(8, 16, 81);
  t.throws(() => decoderLayer(x, 8, w, small, pos1d, Int32Array.from([0, 5])), /segments/);
  t.throws(() => decoderLayer(x, 8, w, small, pos1d, Int32Array.from([0, 6, 5, 8])), /segments/);
  t.throws(() => decoderLayer(x, 8, w, { ...small, kvHeads: 3 }, pos1d, seg53), /kvHeads/);
  t.throws(() => attentionBlockWithPerturbations(x, 8, w, small, pos1d, seg53, { q: new Float64Array(3) }), /Z_q/);
});
