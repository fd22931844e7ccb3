// The calibrated pipeline end to end at the dimensions of Qwen2-VL-2B's language model (hidden
// 1536, MLP 8960, 12 heads, 2 KV heads, M-RoPE), random weights, 2 layers, 16 samples of 512
// tokens (32 text tokens around a 16×30 image): seconds per layer by phase and each phase's share,
// for GPTQ, GPTAQ and VLMQ (3-bit, act-order). Baseline, measured in the same run: one forward
// pass of a layer over all tokens, so the ratio reads as "a quantized layer costs N forwards".
import { syntheticSamples } from '../lib/demo/index.js';
import { DecoderLayer, type PipelineEvent, quantize } from '../lib/index.js';
import { describePhases } from '../lib/cli/run-log.js';
import { type BundleSample } from '../lib/data/bundle.js';
import { concatRows, packBatches } from '../lib/pipeline/batches.js';
import { workspace } from './models.js';
import { type BenchOptions, type Row, bestOf, secs } from './util.js';

export async function pipelineBenchmarks(o: BenchOptions): Promise<Row[]> {
  const dims = o.quick
    ? { hidden: 128, intermediate: 256, heads: 4, kvHeads: 2 }
    : { hidden: 1536, intermediate: 8960, heads: 12, kvHeads: 2 };
  const samples = syntheticSamples({ samples: o.quick ? 2 : 16, hidden: dims.hidden, textTokens: 32, imageGrid: o.quick ? [4, 8] : [16, 30], mrope: true, seed: 1 });
  await using ws = await workspace({ architecture: 'qwen2_vl', ...dims, layers: 2, vocab: 1024, seed: 3, dtype: 'BF16' }, samples);
  const tokens = ws.bundle.totalTokens;
  const forward = await forwardSeconds(ws.model, samples, o);
  const rows: Row[] = [];
  for (const method of ['gptq', 'gptaq', 'vlmq'] as const) {
    const layers: Extract<PipelineEvent, { type: 'layer' }>[] = [];
    const started = performance.now();
    const run = await quantize(ws.model, ws.bundle, { method, bits: 3, actOrder: true, workDir: `${ws.dir}/work-${method}`, device: o.device, onEvent: (e) => e.type === 'layer' && layers.push(e) });
    const total = (performance.now() - started) / 1000;
    await run.discard();
    for (const layer of layers) {
      rows.push({
        benchmark: 'pipeline', case: `${method} 3-bit act-order, layer ${layer.layer} (${tokens} tokens)`,
        ours: `${secs(layer.seconds)}: ${describePhases(layer.phases, layer.seconds)}`,
        baseline: `${secs(forward)} one forward`,
        ratio: `${(layer.seconds / forward).toFixed(1)} forwards`,
        target: '-',
      });
    }
    rows.push({ benchmark: 'pipeline', case: `${method}, whole run`, ours: `${secs(total)}, peak RSS ${(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2)} GiB`, baseline: '-', ratio: '-', target: '-' });
  }
  return rows;
}

/** Best time of one full-precision forward of layer 0 over every sample, batched as the pipeline batches. */
async function forwardSeconds(model: Parameters<typeof DecoderLayer.load>[0], samples: readonly BundleSample[], { repeats, device }: BenchOptions): Promise<number> {
  const layer = await DecoderLayer.load(model, 0, device);
  try {
    const batches = packBatches(samples.map((s) => s.positions), samples.map((s) => s.modality.length), 3, 4096);
    const inputs = batches.map((b) => concatRows(b.samples.map((i) => samples[i].embeddings.data as Float32Array)));
    return await bestOf(repeats, async () => {
      for (const [k, b] of batches.entries()) await layer.forward(inputs[k], b);
    });
  } finally {
    layer.dispose();
  }
}
