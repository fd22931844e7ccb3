// The native decoder layer against the float64 reference (test/reference/decoder.ts): every
// stage of the forward pass and VLMQ's attention-block factors, with 1-D RoPE and M-RoPE, GQA,
// and several packed samples.
import t from 'tap';
import { DecoderLayer, type PackedTokens } from '../../lib/pipeline/decoder-layer.js';
import * as ref from '../reference/decoder.js';
import { maxRelativeError } from '../helpers/problems.js';

const f32 = (a: Float64Array) => Float32Array.from(a);

interface Case {
  name: string;
  dims: ref.DecoderDims;
  segments: number[];
  positions: (T: number, segments: number[]) => Int32Array;
}

/** Positions restart in every sample; with M-RoPE the three components differ for a middle run. */
function positions1d(T: number, segments: number[]): Int32Array {
  const p = new Int32Array(T);
  for (let s = 0; s + 1 < segments.length; s++) for (let i = segments[s]; i < segments[s + 1]; i++) p[i] = i - segments[s];
  return p;
}

function positionsMrope(T: number, segments: number[]): Int32Array {
  const base = positions1d(T, segments);
  const p = new Int32Array(3 * T);
  for (let i = 0; i < T; i++) {
    const image = base[i] >= 2 && base[i] < 6;  // four "image" tokens on a 2 × 2 grid
    p[i] = image ? 2 : base[i] - (base[i] >= 6 ? 2 : 0);
    p[T + i] = image ? 2 + Math.floor((base[i] - 2) / 2) : p[i];
    p[2 * T + i] = image ? 2 + ((base[i] - 2) % 2) : p[i];
  }
  return p;
}

const cases: Case[] = [
  { name: 'M-RoPE, GQA 4/2, two samples', dims: { hidden: 32, heads: 4, kvHeads: 2, headDim: 8, intermediate: 48, eps: 1e-6, ropeTheta: 1e6, mropeSection: [1, 2, 1] }, segments: [0, 9, 16], positions: positionsMrope },
  { name: '1-D RoPE, GQA 6/2, three samples', dims: { hidden: 48, heads: 6, kvHeads: 2, headDim: 8, intermediate: 64, eps: 1e-6, ropeTheta: 1e4, mropeSection: null }, segments: [0, 5, 12, 20], positions: positions1d },
  { name: '1-D RoPE, MHA, one sample', dims: { hidden: 32, heads: 2, kvHeads: 2, headDim: 16, intermediate: 40, eps: 1e-5, ropeTheta: 1e6, mropeSection: null }, segments: [0, 11], positions: positions1d },
];

async function nativeLayer(dims: ref.DecoderDims, w: ref.DecoderWeights): Promise<DecoderLayer> {
  const layer = DecoderLayer.empty(dims);
  const H = dims.hidden, q = dims.heads * dims.headDim, kv = dims.kvHeads * dims.headDim, I = dims.intermediate;
  const set = (name: string, data: Float64Array, shape: [number, number]) => layer.set(name, { dtype: 'F32', shape, data: f32(data) });
  await set('input_layernorm', w.inputNorm, [1, H]);
  await set('post_attention_layernorm', w.postNorm, [1, H]);
  await set('q_proj', w.q, [q, H]);
  await set('q_proj.bias', w.qBias, [1, q]);
  await set('k_proj', w.k, [kv, H]);
  await set('k_proj.bias', w.kBias, [1, kv]);
  await set('v_proj', w.v, [kv, H]);
  await set('v_proj.bias', w.vBias, [1, kv]);
  await set('o_proj', w.o, [H, q]);
  await set('gate_proj', w.gate, [I, H]);
  await set('up_proj', w.up, [I, H]);
  await set('down_proj', w.down, [H, I]);
  return layer;
}

for (const c of cases) {
  const T = c.segments[c.segments.length - 1];
  const positions = c.positions(T, c.segments);
  const tokens: PackedTokens = { tokens: T, positions, segments: Int32Array.from(c.segments) };
  const w = ref.randomDecoder(c.dims, 7);
  const x = ref.randomTokens(T, c.dims.hidden, 8);

  t.test(`decoder forward matches the reference at every stage: ${c.name}`, async (t) => {
    const layer = await nativeLayer(c.dims, w);
    const expected = ref.decoderLayer(x, T, w, c.dims, positions, Int32Array.from(c.segments)).stages;
    const stages: [Parameters<DecoderLayer['forward']>[2], Float64Array][] = [
      ['attention-input', expected.normed], ['o-input', expected.attn], ['attention-output', expected.h],
      ['mlp-input', expected.normed2], ['down-input', expected.act], ['output', expected.out],
    ];
    for (const [stage, want] of stages) {
      const got = await layer.forward(f32(x), tokens, stage);
      t.equal(got.length, want.length, `${stage}: shape`);
      t.ok(maxRelativeError(got, want) < 2e-5, `${stage}: within 2e-5 of the float64 reference (${maxRelativeError(got, want).toExponential(1)})`);
    }
    layer.dispose();
  });

  t.test(`attention-block importance factors match the reference backward: ${c.name}`, async (t) => {
    const layer = await nativeLayer(c.dims, w);
    const U = ref.randomTokens(T, c.dims.hidden, 9).map((v, i) => x[i] + 0.1 * v);
    for (const norm of ['l1', 'l2'] as const) {
      const want = ref.importanceFactors(U, x, T, w, c.dims, positions, Int32Array.from(c.segments), norm);
      const got = await layer.importance(f32(U), f32(x), tokens, { l2: norm === 'l2' });
      for (const p of ['q', 'k', 'v', 'o'] as const) {
        t.ok(maxRelativeError(got[p], want[p]) < 1e-4, `${norm} g_${p} within 1e-4 (${maxRelativeError(got[p], want[p]).toExponential(1)})`);
      }
      t.ok(Math.abs(got.loss - want.loss) <= 1e-4 * want.loss, `loss ${got.loss} ≈ ${want.loss}`);
    }
    const reference = await layer.forward(f32(x), tokens, 'attention-output');
    const viaReference = await layer.importance(f32(U), null, tokens, { reference });
    const direct = await layer.importance(f32(U), f32(x), tokens);
    t.ok(maxRelativeError(viaReference.q, direct.q) < 1e-5, 'passing B(f) as the reference gives the same factors');
    const same = await layer.importance(f32(x), f32(x), tokens);
    t.equal(same.loss, 0, 'F == U: zero loss');
    t.ok(same.q.every((g) => g === 0) && same.o.every((g) => g === 0), 'and zero factors');
    layer.dispose();
  });
}

t.test('the o_proj factors have the closed form (2/H) Σ_c |B(U) − B(F)|', async (t) => {
  const c = cases[0];
  const T = 16;
  const layer = await nativeLayer(c.dims, ref.randomDecoder(c.dims, 3));
  const tokens: PackedTokens = { tokens: T, positions: positionsMrope(T, [0, 16]), segments: Int32Array.from([0, 16]) };
  const F = f32(ref.randomTokens(T, c.dims.hidden, 4));
  const U = F.map((v, i) => v + 0.05 * Math.cos(i));
  const [bu, bf] = [await layer.forward(U, tokens, 'attention-output'), await layer.forward(F, tokens, 'attention-output')];
  const H = c.dims.hidden;
  const closed = Array.from({ length: T }, (_, i) => {
    let s = 0;
    for (let j = 0; j < H; j++) s += Math.abs(bu[i * H + j] - bf[i * H + j]);
    return (2 / H) * s;
  });
  const { o } = await layer.importance(U, F, tokens);
  t.ok(maxRelativeError(o, closed) < 1e-5, `g_o = (2/H) Σ|B(U) − B(F)| (${maxRelativeError(o, closed).toExponential(1)})`);
  layer.dispose();
});

t.test('native factors equal mean |∂L/∂Z_p| from central finite differences of the float64 block loss', async (t) => {
  const dims: ref.DecoderDims = { hidden: 16, heads: 4, kvHeads: 2, headDim: 4, intermediate: 24, eps: 1e-6, ropeTheta: 1e4, mropeSection: [1, 1, 0] };
  const segments = [0, 5, 8];
  const T = 8;
  const positions = positionsMrope(T, segments);
  const seg = Int32Array.from(segments);
  const w = ref.randomDecoder(dims, 11);
  const F = ref.randomTokens(T, dims.hidden, 12);
  const U = ref.randomTokens(T, dims.hidden, 13).map((v, i) => F[i] + 0.2 * v);
  const bf = ref.attentionBlock(F, T, w, dims, positions, seg);
  const loss = (pert: ref.ZPerturbations) => {
    const bu = ref.attentionBlockWithPerturbations(U, T, w, dims, positions, seg, pert);
    let l = 0;
    for (let i = 0; i < bu.length; i++) l += (bu[i] - bf[i]) ** 2;
    return l;
  };
  const layer = await nativeLayer(dims, w);
  const got = await layer.importance(f32(U), f32(F), { tokens: T, positions, segments: seg });
  const widths = { q: dims.heads * dims.headDim, k: dims.kvHeads * dims.headDim, v: dims.kvHeads * dims.headDim, o: dims.hidden };
  const h = 1e-5;
  for (const p of ['q', 'k', 'v', 'o'] as const) {
    const C = widths[p];
    const fd = new Float64Array(T);
    for (let i = 0; i < T * C; i++) {
      const plus = new Float64Array(T * C), minus = new Float64Array(T * C);
      plus[i] = h;
      minus[i] = -h;
      fd[Math.floor(i / C)] += Math.abs((loss({ [p]: plus }) - loss({ [p]: minus })) / (2 * h)) / C;
    }
    t.ok(maxRelativeError(got[p], fd) < 1e-4, `g_${p} (${maxRelativeError(got[p], fd).toExponential(1)})`);
  }
  layer.dispose();
});
