// VLMQ's effect on a controlled problem (docs/algorithm.md, "Measuring VLMQ's effect"): a
// generated Qwen2-VL-layout model and a calibration set in which many redundant vision tokens
// (each image 4 directions plus noise, all images in one 64-dimensional subspace) outnumber a
// few isotropic text tokens (89% vision, as a 448×448 image with a short prompt). The weights are
// N(0, 0.03²): at 0.02 (initializer_range) each layer barely changes the residual stream, at 0.05
// the 4-layer model amplifies 3-bit errors past 50%; 0.03 gives errors of about 1%, as a usable
// 3-bit model has. The vision noise (0.3 of a text coordinate) puts vision tokens in every
// direction too, so that reweighting tokens changes the Hessians outside the vision subspace.
// For RTN, GPTQ, GPTAQ and VLMQ (its default base: GPTAQ at 3 bits, GPTQ at 2 bits), at 3 bits
// per channel and 2 bits g128, all with act-order: the relative squared error ‖ΔY‖²/‖Y‖² of the
// last layer's output on held-out samples of the same distribution, on text tokens, on vision
// tokens and overall, VLMQ's error relative to each baseline, and its mean factors per modality.
import { syntheticSamples } from '../lib/demo/index.js';
import { type ModalityMeans, type ModelMethod, type QuantizeEvent, type QuantizeModelOptions, quantize } from '../lib/index.js';
import { type ModalityErrors, layerErrors } from '../lib/pipeline/evaluate.js';
import { workspace } from './models.js';
import type { BenchOptions, Row } from './util.js';

const SETTINGS: { name: string; options: QuantizeModelOptions }[] = [
  { name: '3-bit per channel', options: { bits: 3, groupSize: -1, actOrder: true } },
  { name: '2-bit g128', options: { bits: 2, groupSize: 128, actOrder: true } },
];
const METHODS: ModelMethod[] = ['rtn', 'gptq', 'gptaq', 'vlmq'];

export async function modalityBenchmarks(o: BenchOptions): Promise<Row[]> {
  const hidden = o.quick ? 128 : 512;
  const calibrationSamples = o.quick ? 6 : 48;
  const heldOutSamples = o.quick ? 2 : 16;
  // 32 text tokens around a 16×16 merged grid: 89% of the tokens are vision tokens, as with a 448×448 image
  const all = syntheticSamples({
    samples: calibrationSamples + heldOutSamples, hidden, textTokens: o.quick ? 8 : 32, imageGrid: o.quick ? [4, 8] : [16, 16],
    mrope: true, seed: 2026, visionNoise: 0.3, visionSubspace: o.quick ? 16 : 64,
  });
  const heldOut = all.slice(calibrationSamples);
  const dims = { hidden, intermediate: 2 * hidden, heads: o.quick ? 2 : 8, kvHeads: o.quick ? 1 : 2, layers: o.quick ? 2 : 4 };
  await using ws = await workspace({ architecture: 'qwen2_vl', ...dims, vocab: 256, seed: 7, dtype: 'BF16', weightStd: 0.03 }, all.slice(0, calibrationSamples));
  const rows: Row[] = [];
  for (const setting of SETTINGS) {
    const errors = new Map<ModelMethod, ModalityErrors>();
    const factors: ModalityMeans[] = [];
    for (const method of METHODS) {
      const onEvent = (e: QuantizeEvent) => e.type === 'importance' && e.fallback === null && factors.push(e.meanByModality);
      const run = await quantize(ws.model, method === 'rtn' ? null : ws.bundle, { ...setting.options, method, actOrder: method !== 'rtn', workDir: `${ws.dir}/work-${method}`, onEvent, device: o.device });
      errors.set(method, (await layerErrors(ws.model, run, heldOut)).at(-1)!);
      await run.discard();
    }
    const vlmq = errors.get('vlmq')!;
    for (const method of METHODS) {
      const e = errors.get(method)!;
      rows.push({
        benchmark: 'modality', case: `${setting.name}, ${method}`,
        ours: describe(e),
        baseline: method === 'vlmq' ? '-' : 'VLMQ / this',
        ratio: method === 'vlmq' ? '-' : `text ${(vlmq.text / e.text).toFixed(3)}×, vision ${(vlmq.image / e.image).toFixed(3)}×, all ${(vlmq.all / e.all).toFixed(3)}×`,
        target: '-',
      });
    }
    rows.push({ benchmark: 'modality', case: `${setting.name}, VLMQ factors`, ours: describeFactors(factors), baseline: '-', ratio: '-', target: '-' });
  }
  return rows;
}

/** Mean factor of text and of vision tokens per projection, averaged over the layers with a block loss. */
function describeFactors(layers: readonly ModalityMeans[]): string {
  const mean = (kind: 'text' | 'image', p: 'q' | 'k' | 'v' | 'o') => layers.reduce((sum, l) => sum + (l[kind]?.[p] ?? 0), 0) / layers.length;
  return `text/vision ${(['q', 'k', 'v', 'o'] as const).map((p) => `${p} ${mean('text', p).toFixed(2)}/${mean('image', p).toFixed(2)}`).join(', ')}`;
}

function describe(e: ModalityErrors): string {
  const percent = (x: number) => `${(100 * x).toFixed(3)}%`;
  return `text ${percent(e.text)}, vision ${percent(e.image)}, all ${percent(e.all)}`;
}
