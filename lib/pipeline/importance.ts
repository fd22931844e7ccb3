// VLMQ's importance factors for one decoder layer (algorithm.md §4.3): per token and per
// projection p ∈ {q, k, v, o}, g_p = mean |∂L/∂Z_p| of the attention-block loss
// L = Σ ‖B(F) − B(U)‖², normalised over the layer to mean 1, then raised to the weight power.
// When the loss is 0 (layer 0, where both streams are equal) the factors carry no information:
// 'uniform' uses 1 for every token, 'rtn-probe' takes them from the block with its q/k/v/o
// round-to-nearest quantized, measured against the full-precision block.
import { quantizeLinear } from '../quant/quantize-linear.js';
import type { Device } from '../native/devices.js';
import type { QuantizeLinearOptions } from '../quant/options.js';
import type { Model } from '../models/model.js';
import type { LinearName } from '../models/types.js';
import type { Batch } from './batches.js';
import { DecoderLayer } from './decoder-layer.js';
import type { BatchStream } from './streams.js';

export type ImportanceProjection = 'q' | 'k' | 'v' | 'o';
export const IMPORTANCE_PROJECTIONS: readonly ImportanceProjection[] = ['q', 'k', 'v', 'o'];
export const PROJECTION_OF: Partial<Record<LinearName, ImportanceProjection>> = { q_proj: 'q', k_proj: 'k', v_proj: 'v', o_proj: 'o' };

export interface ImportanceOptions {
  /** 'l1': mean |∂L/∂Z| over channels (the paper's); 'l2': its root mean square. */
  norm: 'l1' | 'l2';
  /** 1: token weight g (the v1 objective, G^½ inside the norm); 2: g² (v2). */
  power: 1 | 2;
  /** What a layer with zero block loss uses. */
  fallback: 'uniform' | 'rtn-probe';
}

export interface LayerImportance {
  /** Token weights per projection over all tokens of the calibration set (mean 1 before the power). */
  weights: Record<ImportanceProjection, Float32Array>;
  loss: number;
  /** Set when the factors did not come from the layer's own block loss. */
  fallback: 'uniform' | 'rtn-probe' | null;
}

export async function layerImportance(
  model: Model,
  layerIndex: number,
  fp: DecoderLayer,
  batches: readonly Batch[],
  streams: { full: BatchStream; quantized: BatchStream },
  totalTokens: number,
  options: ImportanceOptions,
  probeGrid: QuantizeLinearOptions,
  device: Device,
): Promise<LayerImportance> {
  const l2 = options.norm === 'l2';
  let result = await collect(batches, totalTokens, (b, i) =>
    streams.quantized.use(i, (u) => streams.full.use(i, (f) => fp.importance(u, f, b, { l2 }))));
  let fallback: LayerImportance['fallback'] = null;
  if (!(result.loss > 0)) {
    fallback = options.fallback;
    if (fallback === 'uniform') {
      const ones = () => new Float32Array(totalTokens).fill(1);
      return { weights: { q: ones(), k: ones(), v: ones(), o: ones() }, loss: 0, fallback };
    }
    const probe = await rtnProbe(model, layerIndex, probeGrid, device);
    try {
      result = await collect(batches, totalTokens, async (b, i) => {
        using reference = await streams.full.use(i, (f) => fp.forward(f, b, 'attention-output'));
        return await streams.quantized.use(i, (u) => probe.importance(u, null, b, { l2, reference }));
      });
    } finally {
      probe.dispose();
    }
  }
  const weights = {} as Record<ImportanceProjection, Float32Array>;
  for (const p of IMPORTANCE_PROJECTIONS) weights[p] = normalise(result.factors[p], options.power);
  return { weights, loss: result.loss, fallback };
}

async function collect(batches: readonly Batch[], total: number, compute: (b: Batch, index: number) => Promise<{ q: Float32Array; k: Float32Array; v: Float32Array; o: Float32Array; loss: number }>) {
  const factors = { q: new Float32Array(total), k: new Float32Array(total), v: new Float32Array(total), o: new Float32Array(total) };
  let loss = 0;
  for (const [i, b] of batches.entries()) {
    const r = await compute(b, i);
    for (const p of IMPORTANCE_PROJECTIONS) factors[p].set(r[p], b.firstToken);
    loss += r.loss;
  }
  return { factors, loss };
}

/** Divide by the mean over the layer (a global rescale changes nothing but keeps λ well scaled, §1.5), then apply the power. */
function normalise(g: Float32Array, power: 1 | 2): Float32Array {
  let sum = 0;
  for (const v of g) sum += v;
  const mean = sum / g.length;
  if (!(mean > 0)) return g.fill(1);
  return g.map((v) => (power === 1 ? v / mean : (v / mean) ** 2));
}

/** The layer with q/k/v/o round-to-nearest quantized on the run's grid. */
async function rtnProbe(model: Model, layerIndex: number, grid: QuantizeLinearOptions, device: Device): Promise<DecoderLayer> {
  const probe = await DecoderLayer.load(model, layerIndex, device);
  for (const linear of model.layerLinears(layerIndex)) {
    if (!PROJECTION_OF[linear.module]) continue;
    const { weight } = await model.readLinear(linear);
    const q = await quantizeLinear(weight, null, { ...grid, method: 'rtn', actOrder: false, device });
    await probe.setLinear(linear.module, q.dequantized, [linear.outFeatures, linear.inFeatures]);
  }
  return probe;
}
