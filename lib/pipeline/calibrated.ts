// The calibrated layer loop (algorithm.md §1.1, §3(c), §4.4), shared by GPTQ, GPTAQ and VLMQ so
// that they differ only where the papers say they do. Two streams per batch of samples start from
// the same embeddings: full precision F and quantized U, both kept on the device as tensors (the
// layer's weights, both streams and each group's inputs stay there; JavaScript holds handles).
// For each decoder layer:
//   1. VLMQ: importance factors from one backward of the attention block (F vs U);
//   2. the module groups [k,v,q] → [o] → [gate,up] → [down] in order: statistics of each group's
//      input from U through the layer as quantized so far (GPTAQ and VLMQ-on-GPTAQ add the cross
//      term with F's input through the full-precision layer; VLMQ weights q/k/v/o's tokens), then
//      each module quantized and put back into the layer;
//   3. U through the quantized layer, F through the full-precision one; the layer is stored.
import { join } from 'node:path';
import { HessianAccumulator } from '../quant/hessian-accumulator.js';
import { quantizeLinear, type LinearQuantization } from '../quant/quantize-linear.js';
import type { Device } from '../native/devices.js';
import type { QuantizeLinearOptions } from '../quant/options.js';
import { type CalibrationBundle, MODALITY } from '../data/bundle.js';
import type { Model } from '../models/model.js';
import { MODULE_GROUPS } from '../models/decoder.js';
import type { LinearName, LinearSpec } from '../models/types.js';
import { type Batch, batchRanges, concatRows, packBatches } from './batches.js';
import { DecoderLayer, type DecoderStage } from './decoder-layer.js';
import { type ImportanceOptions, type ImportanceProjection, PROJECTION_OF, layerImportance } from './importance.js';
import type { LayerStore } from './store.js';
import { BatchStream } from './streams.js';
import { SPILL_FILES } from './work-dir.js';

export type CalibratedMethod = 'gptq' | 'gptaq' | 'vlmq';

export interface LoopSettings {
  method: CalibratedMethod;
  /** The sweep VLMQ runs on (GPTQ for 2 bits, GPTAQ otherwise, unless chosen). */
  base: 'gptq' | 'gptaq';
  linear: QuantizeLinearOptions;
  importance: ImportanceOptions;
  batchTokens: number;
  memoryBytes: number;
  /** The registry name of the backend that runs the layers ('cpu', 'cuda:0', ...). */
  device: Device;
  spillDir: string;
  signal?: AbortSignal;
  onEvent?: (event: PipelineEvent) => void;
}

/** Mean token weight per projection over the tokens of each modality (1 overall before the weight power). */
export type ModalityMeans = Partial<Record<keyof typeof MODALITY, Record<ImportanceProjection, number>>>;

export type Phase = 'forward' | 'importance' | 'statistics' | 'cholesky' | 'sweep';

export type PipelineEvent =
  | { type: 'start'; method: CalibratedMethod; base: 'gptq' | 'gptaq'; layers: number; samples: number; tokens: number; resumedLayers: number; spilledSamples: number }
  | { type: 'replay'; layer: number; seconds: number }
  | { type: 'importance'; layer: number; loss: number; fallback: 'uniform' | 'rtn-probe' | null; meanByModality: ModalityMeans; seconds: number }
  | { type: 'module'; layer: number; module: LinearName; loss: number; percdamp: number; lambda: number; fallback: boolean; deadColumns: number; seconds: number; tokens: number }
  | { type: 'layer'; layer: number; layers: number; seconds: number; phases: Record<Phase, number> }
  | { type: 'done'; seconds: number };

const STAGE: Readonly<Record<LinearName, DecoderStage>> = {
  q_proj: 'attention-input', k_proj: 'attention-input', v_proj: 'attention-input', o_proj: 'o-input',
  gate_proj: 'mlp-input', up_proj: 'mlp-input', down_proj: 'down-input',
};

class PhaseClock {
  readonly totals: Record<Phase, number> = { forward: 0, importance: 0, statistics: 0, cholesky: 0, sweep: 0 };
  async time<T>(phase: Phase, work: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await work();
    } finally {
      this.totals[phase] += (performance.now() - t0) / 1000;
    }
  }
}

/** What every step of a run works on. */
interface Run {
  model: Model;
  store: LayerStore;
  batches: readonly Batch[];
  streams: Streams;
  /** Modality of every token of the calibration set, in batch order (0 text, 1 image, 2 video). */
  modality: Uint8Array;
  s: LoopSettings;
}

export type Streams = { full: BatchStream; quantized: BatchStream };

export async function calibratedLoop(model: Model, bundle: CalibrationBundle, store: LayerStore, s: LoopSettings): Promise<void> {
  const started = performance.now();
  const H = model.config.text.hiddenSize;
  const tokens = Array.from({ length: bundle.samples }, (_, i) => bundle.tokens(i));
  const ranges = batchRanges(tokens, s.batchTokens);
  const batchTokens = ranges.map(([start, end]) => tokens.slice(start, end).reduce((a, b) => a + b, 0));
  const positions: Int32Array[] = [];
  const modality = new Uint8Array(bundle.totalTokens);
  const full = await BatchStream.create('F', batchTokens, H, s.memoryBytes / 2, join(s.spillDir, SPILL_FILES.full), s.device);
  const quantized = await BatchStream.create('U', batchTokens, H, s.memoryBytes / 2, join(s.spillDir, SPILL_FILES.quantized), s.device);
  try {
    let first = 0;
    for (const [b, [start, end]] of ranges.entries()) {
      const rows: Float32Array[] = [];
      for (let i = start; i < end; first += tokens[i], i++) {
        const sample = await bundle.read(i);
        positions.push(sample.positions);
        modality.set(sample.modality, first);
        rows.push(sample.embeddings);
      }
      const embeddings = concatRows(rows);
      await full.initialize(b, embeddings);
      await quantized.initialize(b, embeddings);
    }
    const run: Run = { model, store, batches: packBatches(positions, tokens, bundle.positionRows, s.batchTokens), streams: { full, quantized }, modality, s };
    const layers = model.config.text.numLayers;
    const spilledSamples = ranges.reduce((n, [start, end], b) => n + (end - start) * (Number(full.spilled(b)) + Number(quantized.spilled(b))), 0);
    s.onEvent?.({ type: 'start', method: s.method, base: s.base, layers, samples: bundle.samples, tokens: bundle.totalTokens, resumedLayers: store.completed, spilledSamples });
    for (let layer = 0; layer < store.completed; layer++) {
      s.signal?.throwIfAborted();
      const t0 = performance.now();
      await replayLayer(run, layer);
      s.onEvent?.({ type: 'replay', layer, seconds: (performance.now() - t0) / 1000 });
    }
    for (let layer = store.completed; layer < layers; layer++) {
      s.signal?.throwIfAborted();
      await quantizeLayer(run, layer);
    }
    s.onEvent?.({ type: 'done', seconds: (performance.now() - started) / 1000 });
  } finally {
    await full.dispose();
    await quantized.dispose();
  }
}

/** Both streams through one layer: F with its full-precision weights, U with the quantized ones. */
async function advance({ batches, streams }: Run, fp: DecoderLayer, q: DecoderLayer): Promise<void> {
  for (const [i, b] of batches.entries()) {
    const u = await streams.quantized.use(i, (x) => q.forward(x, b));
    const f = await streams.full.use(i, (x) => fp.forward(x, b));
    await streams.quantized.replace(i, u);
    await streams.full.replace(i, f);
  }
}

/** A finished layer again, forward only: the streams continue exactly as the interrupted run left them. */
async function replayLayer(run: Run, layer: number): Promise<void> {
  const fp = await DecoderLayer.load(run.model, layer, run.s.device);
  const q = await DecoderLayer.load(run.model, layer, run.s.device);
  try {
    for (const linear of run.model.layerLinears(layer)) {
      const { dequantized } = await run.store.readLinear(linear);
      await q.setLinear(linear.module, dequantized, [linear.outFeatures, linear.inFeatures]);
    }
    await advance(run, fp, q);
  } finally {
    fp.dispose();
    q.dispose();
  }
}

async function quantizeLayer(run: Run, layer: number): Promise<void> {
  const { model, s } = run;
  const started = performance.now();
  const clock = new PhaseClock();
  const fp = await DecoderLayer.load(model, layer, s.device);
  const q = await DecoderLayer.load(model, layer, s.device);
  try {
    const factors = s.method === 'vlmq' ? await clock.time('importance', () => importanceOf(run, layer, fp)) : null;
    const crossTerm = s.method === 'gptaq' || (s.method === 'vlmq' && s.base === 'gptaq');
    const records = [];
    const linears = new Map(model.layerLinears(layer).map((l) => [l.module, l]));
    for (const group of MODULE_GROUPS) {
      const accumulators = await groupStatistics(run, group.map((m) => linears.get(m)!), fp, q, crossTerm, factors, clock);
      try {
        for (const module of group) {
          const linear = linears.get(module)!;
          const result = await quantizeModule(model, linear, accumulators.get(module)!, s, crossTerm, clock);
          await q.setLinear(module, result.dequantized, [linear.outFeatures, linear.inFeatures]);
          records.push(record(linear, result));
          s.onEvent?.({
            type: 'module', layer, module, loss: result.loss, percdamp: result.damping.percdamp, lambda: result.damping.lambda,
            fallback: result.fallback !== null, deadColumns: result.deadColumns, seconds: result.seconds.prepare + result.seconds.factor + result.seconds.sweep, tokens: run.modality.length,
          });
          s.signal?.throwIfAborted();
        }
      } finally {
        for (const acc of new Set(accumulators.values())) acc.dispose();
      }
    }
    await clock.time('forward', () => advance(run, fp, q));
    await run.store.writeLayer(layer, records);
    s.onEvent?.({ type: 'layer', layer, layers: model.config.text.numLayers, seconds: (performance.now() - started) / 1000, phases: clock.totals });
  } finally {
    fp.dispose();
    q.dispose();
  }
}

async function importanceOf({ model, batches, streams, modality, s }: Run, layer: number, fp: DecoderLayer) {
  const t0 = performance.now();
  const { bits, groupSize, sym, mse, fp32Scales, staticGroups } = s.linear;
  const result = await layerImportance(model, layer, fp, batches, streams, modality.length, s.importance, { bits, groupSize, sym, mse, fp32Scales, staticGroups }, s.device);
  s.onEvent?.({ type: 'importance', layer, loss: result.loss, fallback: result.fallback, meanByModality: meanByModality(result.weights, modality), seconds: (performance.now() - t0) / 1000 });
  return result.weights;
}

/** The mean token weight of each projection over the text, image and video tokens present. */
function meanByModality(weights: Record<ImportanceProjection, Float32Array>, modality: Uint8Array): ModalityMeans {
  const out: ModalityMeans = {};
  for (const [name, code] of Object.entries(MODALITY) as [keyof typeof MODALITY, number][]) {
    let count = 0;
    for (const m of modality) count += m === code ? 1 : 0;
    if (count === 0) continue;
    const mean = (g: Float32Array) => g.reduce((sum, v, t) => sum + (modality[t] === code ? v : 0), 0) / count;
    out[name] = { q: mean(weights.q), k: mean(weights.k), v: mean(weights.v), o: mean(weights.o) };
  }
  return out;
}

/**
 * The statistics of one module group: modules that see the same token weights share one
 * accumulator (all of a group unless VLMQ weights q, k and v differently).
 */
async function groupStatistics(
  { batches, streams, s }: Run,
  group: LinearSpec[],
  fp: DecoderLayer,
  q: DecoderLayer,
  crossTerm: boolean,
  factors: Record<ImportanceProjection, Float32Array> | null,
  clock: PhaseClock,
): Promise<Map<LinearName, HessianAccumulator>> {
  const stage = STAGE[group[0].module];
  const n = group[0].inFeatures;
  const weightsOf = (m: LinearName) => (factors && PROJECTION_OF[m] ? factors[PROJECTION_OF[m]!] : null);
  const accumulators = new Map<LinearName, HessianAccumulator>();
  const shared = new Map<Float32Array | null, HessianAccumulator>();
  for (const linear of group) {
    const w = weightsOf(linear.module);
    if (!shared.has(w)) shared.set(w, new HessianAccumulator(n, { crossTerm, device: s.device }));
    accumulators.set(linear.module, shared.get(w)!);
  }
  for (const [i, b] of batches.entries()) {
    const x = await clock.time('forward', () => streams.quantized.use(i, (rows) => q.forward(rows, b, stage)));
    const xFull = crossTerm ? await clock.time('forward', () => streams.full.use(i, (rows) => fp.forward(rows, b, stage))) : undefined;
    try {
      await clock.time('statistics', async () => {
        for (const [w, acc] of shared) {
          const tokenWeights = w ? w.subarray(b.firstToken, b.firstToken + b.tokens) : undefined;
          await acc.add(x, { xFull, tokenWeights, samples: b.samples.length });
        }
      });
    } finally {
      x.dispose();
      xFull?.dispose();
    }
  }
  return accumulators;
}

async function quantizeModule(model: Model, linear: LinearSpec, acc: HessianAccumulator, s: LoopSettings, crossTerm: boolean, clock: PhaseClock): Promise<LinearQuantization> {
  const { weight } = await model.readLinear(linear);
  // No signal here: a stop request takes effect between modules, never inside one.
  const result = await quantizeLinear(weight, acc, { ...s.linear, method: crossTerm ? 'gptaq' : 'gptq' });
  clock.totals.cholesky += result.seconds.prepare + result.seconds.factor;
  clock.totals.sweep += result.seconds.sweep;
  return result;
}

function record(linear: LinearSpec, r: LinearQuantization) {
  return {
    module: linear.module, rows: r.rows, cols: r.cols, groups: r.groups, codes: r.codes, scales: r.scales, zeros: r.zeros, gIdx: r.gIdx,
    stats: { loss: r.loss, percdamp: r.damping.percdamp, lambda: r.damping.lambda, fallback: r.fallback?.reason ?? null, deadColumns: r.deadColumns },
  };
}

