// The whole calibrated pipeline (native decoder, importance factors, statistics, sweeps, the
// order of groups and streams) against the float64 reference loop in test/reference/pipeline.ts,
// which shares no code with lib/pipeline/. Native arithmetic is float32, so a code can flip where
// a value sits within rounding noise of a decision (and GPTQ then compensates differently along
// the row); agreement is judged as the share of identical codes per module. A pipeline that took
// a wrong stream, stage, group order or weighting disagrees on a large share (checked below by
// comparing the reference with itself under another method).
import t from 'tap';
import { join } from 'node:path';
import { CalibrationBundle, writeCalibrationBundle } from '../../lib/data/bundle.js';
import { syntheticSamples } from '../../lib/demo/synthetic.js';
import { loadSafetensors } from '../../lib/io/safetensors-reader.js';
import type { QuantizedLinearData as LinearQuantizationData } from '../../lib/export/export.js';
import { loadModel, type Model } from '../../lib/models/model.js';
import { quantize, type QuantizeModelOptions } from '../../lib/pipeline/quantize.js';
import { writeTinyCheckpoint, type Architecture } from '../fixtures/checkpoints.js';
import type { DecoderDims, DecoderWeights } from '../reference/decoder.js';
import { referencePipeline, type ReferencePipelineOptions, type ReferenceSample } from '../reference/pipeline.js';
import { oracleOptions } from '../helpers/reference-quant.js';

const MODULES = { q: 'q_proj', k: 'k_proj', v: 'v_proj', o: 'o_proj', gate: 'gate_proj', up: 'up_proj', down: 'down_proj' } as const;
const PATHS = { q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj', gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj' } as const;
type Short = keyof typeof MODULES;

async function referenceWeights(dir: string, prefix: string, layers: number): Promise<DecoderWeights[]> {
  const { tensors } = await loadSafetensors(join(dir, 'model.safetensors'));
  const f64 = (name: string) => Float64Array.from(tensors.get(name)!.data as Float32Array);
  return Array.from({ length: layers }, (_, l) => {
    const p = `${prefix}layers.${l}.`;
    return {
      inputNorm: f64(`${p}input_layernorm.weight`), postNorm: f64(`${p}post_attention_layernorm.weight`),
      q: f64(`${p}${PATHS.q}.weight`), qBias: f64(`${p}${PATHS.q}.bias`), k: f64(`${p}${PATHS.k}.weight`), kBias: f64(`${p}${PATHS.k}.bias`),
      v: f64(`${p}${PATHS.v}.weight`), vBias: f64(`${p}${PATHS.v}.bias`), o: f64(`${p}${PATHS.o}.weight`),
      gate: f64(`${p}${PATHS.gate}.weight`), up: f64(`${p}${PATHS.up}.weight`), down: f64(`${p}${PATHS.down}.weight`),
    };
  });
}

function dimsOf(model: Model): DecoderDims {
  const c = model.config.text;
  return { hidden: c.hiddenSize, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim, intermediate: c.intermediateSize, eps: c.rmsNormEps, ropeTheta: c.ropeTheta, mropeSection: c.mropeSection ? [...c.mropeSection] : null };
}

const agreement = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let same = 0;
  for (let i = 0; i < a.length; i++) same += a[i] === b[i] ? 1 : 0;
  return same / a.length;
};

interface Case {
  title: string;
  options: QuantizeModelOptions & { method: 'gptq' | 'gptaq' | 'vlmq' };
  /** The same settings for the reference. */
  reference: Omit<ReferencePipelineOptions, 'quant'>;
  /** A method that must disagree with the reference (shows the comparison can fail). */
  other: Omit<ReferencePipelineOptions, 'quant'>;
}

const CASES: Case[] = [
  { title: 'GPTQ 3-bit per channel', options: { method: 'gptq', bits: 3 }, reference: { method: 'gptq' }, other: { method: 'gptaq' } },
  { title: 'GPTAQ 3-bit act-order', options: { method: 'gptaq', bits: 3, actOrder: true }, reference: { method: 'gptaq' }, other: { method: 'gptq' } },
  { title: 'VLMQ on GPTAQ, 3-bit', options: { method: 'vlmq', bits: 3 }, reference: { method: 'vlmq', base: 'gptaq' }, other: { method: 'gptaq' } },
  { title: 'VLMQ on GPTQ, 2-bit', options: { method: 'vlmq', bits: 2 }, reference: { method: 'vlmq', base: 'gptq' }, other: { method: 'gptq' } },
  { title: 'VLMQ on GPTQ, 3-bit weight g²', options: { method: 'vlmq', bits: 3, base: 'gptq', importance: { power: 2 } }, reference: { method: 'vlmq', base: 'gptq', power: 2 }, other: { method: 'gptq' } },
  { title: 'VLMQ on GPTQ, 2-bit g32 act-order, weight g²', options: { method: 'vlmq', bits: 2, groupSize: 32, actOrder: true, importance: { power: 2 } }, reference: { method: 'vlmq', base: 'gptq', power: 2 }, other: { method: 'gptq' } },
];

for (const architecture of ['qwen2_vl', 'qwen2_5_vl', 'llava_onevision'] as Architecture[]) {
  t.test(`${architecture}: the native pipeline reproduces the float64 reference loop`, async (t) => {
    const dir = t.testdir();
    const checkpoint = await writeTinyCheckpoint(join(dir, 'model'), { architecture, dtype: 'F32', layers: 2, seed: 7 });
    const model = await loadModel(checkpoint.dir);
    const samples = syntheticSamples({ samples: 6, hidden: model.config.text.hiddenSize, textTokens: 10, imageGrid: [4, 5], mrope: architecture !== 'llava_onevision', seed: 3 });
    await writeCalibrationBundle(join(dir, 'calib.safetensors'), samples);
    const bundle = await CalibrationBundle.open(join(dir, 'calib.safetensors'));
    const weights = await referenceWeights(checkpoint.dir, checkpoint.prefixes.text, 2);
    const referenceSamples: ReferenceSample[] = samples.map((s) => ({ x: Float64Array.from(s.embeddings.data as Float32Array), T: s.embeddings.shape[0], positions: s.positions }));

    for (const c of CASES) {
      const run = await quantize(model, bundle, { ...c.options, workDir: join(dir, `work-${c.title.replace(/\W+/g, '-')}`) });
      const native = new Map<string, LinearQuantizationData>();
      for (let l = 0; l < 2; l++) for (const linear of model.layerLinears(l)) native.set(`${l}.${linear.module}`, await run.linear(linear));
      await run.discard();
      const nativeOf = (l: number, m: Short) => native.get(`${l}.${MODULES[m]}`)!;
      const quant = oracleOptions({ bits: c.options.bits, groupSize: c.options.groupSize ?? -1, actOrder: c.options.actOrder ?? false });
      const quantized = (l: number, m: Short) => Float64Array.from(nativeOf(l, m).dequantized);
      const reference = referencePipeline(weights, dimsOf(model), referenceSamples, { ...c.reference, quant, quantized });
      const other = referencePipeline(weights, dimsOf(model), referenceSamples, { ...c.other, quant, quantized });
      let worst = 1, otherWorst = 1;
      for (const [l, layer] of reference.entries()) {
        for (const m of Object.keys(MODULES) as Short[]) {
          const { codes, gIdx } = nativeOf(l, m);
          const share = agreement(codes, layer.results[m].codes);
          if (process.env.VERBOSE_PIPELINE) t.comment(`${c.title}, layer ${l} ${m}: ${share}`);
          worst = Math.min(worst, share);
          otherWorst = Math.min(otherWorst, agreement(codes, other[l].results[m].codes));
          t.same(Array.from(gIdx), Array.from(layer.results[m].gIdx), `${c.title}: layer ${l} ${m} has the reference's g_idx`);
        }
      }
      t.ok(worst >= 0.99, `${c.title}: every module has ≥ 99% of its codes equal to the reference's (worst ${(100 * worst).toFixed(2)}%)`);
      t.ok(otherWorst < 0.9, `… while ${c.other.method} differs (worst ${(100 * otherWorst).toFixed(1)}% equal)`);
      if (c.reference.method === 'vlmq') {
        t.equal(reference[0].loss, 0, 'layer 0 has F = U: no block loss, uniform factors');
        t.ok(reference[1].loss > 0, 'layer 1 has a block loss');
      }
    }
    await bundle.close();
    await model.close();
  });
}
