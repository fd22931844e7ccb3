// The evaluation the demo and the benchmarks report (lib/pipeline/evaluate.ts) against a float64
// computation from the reference decoder (test/reference/decoder.ts): the relative squared error
// of every layer's hidden states and of the logits, per modality, and the top-1 agreement of the
// next-token predictions on text positions. A "run" here is the model's own weights plus seeded
// noise, so the errors are known to be nonzero; with no noise they are exactly zero.
import t from 'tap';
import { join } from 'node:path';
import { MODALITY, type BundleSample } from '../../lib/data/bundle.js';
import { syntheticSamples } from '../../lib/demo/synthetic.js';
import type { QuantizedLinearData } from '../../lib/export/export.js';
import { loadModel } from '../../lib/models/model.js';
import type { LinearSpec } from '../../lib/models/types.js';
import { writeTinyCheckpoint } from '../../lib/demo/tiny-checkpoint.js';
import { layerErrors, modelErrors } from '../../lib/pipeline/evaluate.js';
import { toFloat32 } from '../../lib/tensor.js';
import { type DecoderDims, type DecoderWeights, decoderLayer, randomTokens } from '../reference/decoder.js';

const checkpoint = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_vl', dtype: 'F32', layers: 2, seed: 4 });
const model = await loadModel(checkpoint.dir);
t.teardown(() => model.close());
const text = model.config.text;
const samples = syntheticSamples({ samples: 2, hidden: text.hiddenSize, textTokens: 12, imageGrid: [4, 4], mrope: true, seed: 3 });

/** The model's weights, each linear plus noise · N(0, 1)-ish values (0: the weights themselves). */
function noisyRun(noise: number) {
  const cache = new Map<string, Float32Array>();
  return {
    async linear(linear: LinearSpec): Promise<QuantizedLinearData> {
      if (!cache.has(linear.prefix)) {
        const w = toFloat32(await model.checkpoint.read(`${linear.prefix}.weight`));
        // seeded by the name, so every run of the same noise perturbs each linear alike, whatever the order of requests
        const r = randomTokens(w.length, 1, [...linear.prefix].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7));
        cache.set(linear.prefix, Float32Array.from(w, (v, i) => v + noise * r[i]));
      }
      return { dequantized: cache.get(linear.prefix)! } as QuantizedLinearData;
    },
  };
}

async function weightsOf(l: number, run: ReturnType<typeof noisyRun>): Promise<DecoderWeights> {
  const f64 = async (name: string) => Float64Array.from(toFloat32(await model.checkpoint.read(name)));
  const linear = async (module: string) => Float64Array.from((await run.linear(model.layerLinears(l).find((x) => x.module === module)!)).dequantized);
  const p = `${model.architecture.languagePrefixes(model.layout).layers}.${l}.`;
  return {
    inputNorm: await f64(`${p}input_layernorm.weight`), postNorm: await f64(`${p}post_attention_layernorm.weight`),
    q: await linear('q_proj'), qBias: await f64(`${p}self_attn.q_proj.bias`), k: await linear('k_proj'), kBias: await f64(`${p}self_attn.k_proj.bias`),
    v: await linear('v_proj'), vBias: await f64(`${p}self_attn.v_proj.bias`), o: await linear('o_proj'),
    gate: await linear('gate_proj'), up: await linear('up_proj'), down: await linear('down_proj'),
  };
}

/** Relative squared error of `got` against `want` per modality, rows of `width`, in float64. */
function relative(got: Float64Array[], want: Float64Array[], width: number) {
  const e = { text: 0, image: 0 }, n = { text: 0, image: 0 };
  samples.forEach((s, i) => s.modality.forEach((m, tok) => {
    const kind = m === MODALITY.text ? 'text' : 'image';
    for (let c = tok * width; c < (tok + 1) * width; c++) {
      e[kind] += (got[i][c] - want[i][c]) ** 2;
      n[kind] += want[i][c] ** 2;
    }
  }));
  return { text: e.text / n.text, image: e.image / n.image, all: (e.text + e.image) / (n.text + n.image) };
}

async function referenceErrors(run: ReturnType<typeof noisyRun>) {
  const dims: DecoderDims = { hidden: text.hiddenSize, heads: text.numHeads, kvHeads: text.numKvHeads, headDim: text.headDim, intermediate: text.intermediateSize, eps: text.rmsNormEps, ropeTheta: text.ropeTheta, mropeSection: text.mropeSection ? [...text.mropeSection] : null };
  let full: Float64Array[] = samples.map((s) => Float64Array.from(s.embeddings.data as Float32Array));
  let quantized = full;
  const layers = [];
  for (let l = 0; l < text.numLayers; l++) {
    const [fp, q] = [await weightsOf(l, noisyRun(0)), await weightsOf(l, run)];
    const forward = (x: Float64Array, s: BundleSample, w: DecoderWeights) => decoderLayer(x, s.modality.length, w, dims, s.positions, Int32Array.from([0, s.modality.length])).out;
    full = full.map((x, i) => forward(x, samples[i], fp));
    quantized = quantized.map((x, i) => forward(x, samples[i], q));
    layers.push(relative(quantized, full, dims.hidden));
  }
  const prefixes = model.architecture.languagePrefixes(model.layout);
  const gamma = toFloat32(await model.checkpoint.read(`${prefixes.norm}.weight`));
  const head = toFloat32(await model.checkpoint.read(model.checkpoint.has(`${prefixes.lmHead}.weight`) ? `${prefixes.lmHead}.weight` : `${prefixes.embedTokens}.weight`));
  const H = dims.hidden, V = head.length / H;
  const logits = (x: Float64Array) => {
    const T = x.length / H, out = new Float64Array(T * V);
    for (let tok = 0; tok < T; tok++) {
      const row = x.subarray(tok * H, (tok + 1) * H);
      const r = 1 / Math.sqrt(row.reduce((a, v) => a + v * v, 0) / H + dims.eps);
      for (let v = 0; v < V; v++) for (let c = 0; c < H; c++) out[tok * V + v] += head[v * H + c] * gamma[c] * row[c] * r;
    }
    return out;
  };
  const [lq, lf] = [quantized.map(logits), full.map(logits)];
  let agree = 0, textTokens = 0;
  samples.forEach((s, i) => s.modality.forEach((m, tok) => {
    if (m !== MODALITY.text) return;
    const top = (a: Float64Array) => { let best = 0; for (let v = 1; v < V; v++) if (a[tok * V + v] > a[tok * V + best]) best = v; return best; };
    textTokens++;
    if (top(lq[i]) === top(lf[i])) agree++;
  }));
  return { layers, output: relative(lq, lf, V), top1Text: agree / textTokens, textTokens };
}

const close = (got: number, want: number) => Math.abs(got - want) <= 1e-3 * want;

t.test('layer and logit errors, per modality, equal a float64 computation', async (t) => {
  for (const noise of [0.01, 0.05]) {
    const ours = await modelErrors(model, noisyRun(noise), samples);
    const want = await referenceErrors(noisyRun(noise));
    t.same(await layerErrors(model, noisyRun(noise), samples), ours.layers, 'layerErrors is modelErrors without the output');
    for (const [l, e] of ours.layers.entries()) {
      for (const kind of ['text', 'image', 'all'] as const) {
        t.ok(e[kind] > 0 && close(e[kind], want.layers[l][kind]), `noise ${noise}, layer ${l}, ${kind}: ${e[kind].toExponential(4)} vs ${want.layers[l][kind].toExponential(4)}`);
      }
    }
    for (const kind of ['text', 'image', 'all'] as const) {
      t.ok(ours.output[kind] > 0 && close(ours.output[kind], want.output[kind]), `noise ${noise}, logits ${kind}: ${ours.output[kind].toExponential(4)} vs ${want.output[kind].toExponential(4)}`);
    }
    t.ok(Math.abs(ours.output.top1Text - want.top1Text) <= 1 / want.textTokens + 1e-12, `noise ${noise}: top-1 agreement ${ours.output.top1Text} vs ${want.top1Text} (one near-tie allowed)`);
  }
});

t.test('the model against itself: every error is exactly 0 and every next token agrees', async (t) => {
  const { layers, output } = await modelErrors(model, noisyRun(0), samples);
  t.ok(layers.every((e) => e.text === 0 && e.image === 0 && e.all === 0), 'layers');
  t.match(output, { text: 0, image: 0, all: 0, top1Text: 1 });
});
