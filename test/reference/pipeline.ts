// The calibrated layer loop of docs/algorithm.md §1.1, §3(c) and §4.3–4.4, written as plainly as
// possible in float64 on top of the reference decoder and the oracle quantizers, one sample at a
// time (batch = 1, as the reference tools run it). It shares no code with lib/pipeline/: it is
// what the native pipeline's codes are compared with.
//
// For each layer l, with F (full precision) and U (quantized) hidden states per sample:
//   VLMQ: g_p from ∂L/∂Z_p of L = Σ (B(U) − B(F))² per sample, pooled over the calibration set,
//         divided by their mean (all ones when L = 0), raised to `power`;
//   groups [k, v, q] → [o] → [gate, up] → [down]: the group's input from U through the layer as
//         quantized so far, H (and dXXT with the input from F through the full-precision layer)
//         as running averages over samples, each module quantized and replaced by Q;
//   U through the quantized layer, F through the full-precision one.
import { decoderLayer, importanceFactors, type DecoderDims, type DecoderStages, type DecoderWeights } from './decoder.js';
import { accumulate, gptaq, gptq, type OracleBatch, type OracleQuantOptions, type OracleResult } from './oracle.js';

export interface ReferenceSample {
  /** Layer-0 input [T, hidden]. */
  x: Float64Array;
  T: number;
  /** [T] or [3, T] component-major. */
  positions: Int32Array;
}

export interface ReferencePipelineOptions {
  method: 'gptq' | 'gptaq' | 'vlmq';
  /** VLMQ's base sweep. */
  base?: 'gptq' | 'gptaq';
  quant: OracleQuantOptions;
  /** VLMQ token weight g (1) or g² (2). */
  power?: 1 | 2;
  /**
   * The weights that replace module m of layer l once it is quantized (default: the reference's
   * own Q). Given another quantizer's result, every module is computed from that quantizer's
   * earlier decisions, so that one rounding-boundary flip is not carried into every later module.
   */
  quantized?: (layer: number, module: Module) => Float64Array;
}

export type Module = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';
const GROUPS: readonly (readonly Module[])[] = [['k', 'v', 'q'], ['o'], ['gate', 'up'], ['down']];
const INPUT: Record<Module, keyof DecoderStages> = { q: 'normed', k: 'normed', v: 'normed', o: 'attn', gate: 'normed2', up: 'normed2', down: 'act' };
const WEIGHTED: readonly Module[] = ['q', 'k', 'v', 'o'];

export interface ReferenceLayer {
  results: Record<Module, OracleResult>;
  /** Each module's statistics (H, and dXXT for a GPTAQ base). */
  statistics: Record<Module, { H: Float64Array; dXXT: Float64Array | null }>;
  /** VLMQ's token weights per projection over all tokens (null for GPTQ and GPTAQ). */
  factors: Record<'q' | 'k' | 'v' | 'o', Float64Array> | null;
  /** Σ block loss over samples (VLMQ). */
  loss: number;
}

export function referencePipeline(layers: readonly DecoderWeights[], dims: DecoderDims, samples: readonly ReferenceSample[], options: ReferencePipelineOptions): ReferenceLayer[] {
  let F = samples.map((s) => s.x);
  let U = samples.map((s) => s.x);
  const out: ReferenceLayer[] = [];
  const crossTerm = options.method === 'gptaq' || (options.method === 'vlmq' && options.base === 'gptaq');
  for (const [l, fp] of layers.entries()) {
    const forward = (w: DecoderWeights, x: Float64Array, i: number) => decoderLayer(x, samples[i].T, w, dims, samples[i].positions, Int32Array.from([0, samples[i].T]));
    const { factors, loss } = options.method === 'vlmq' ? layerFactors(fp, dims, samples, F, U, options.power ?? 1) : { factors: null, loss: 0 };
    const q: DecoderWeights = { ...fp };
    const results = {} as Record<Module, OracleResult>;
    const statistics = {} as ReferenceLayer['statistics'];
    for (const group of GROUPS) {
      const xs = U.map((u, i) => forward(q, u, i).stages);
      const xf = F.map((f, i) => forward(fp, f, i).stages);
      for (const m of group) {
        let first = 0;
        const batches: OracleBatch[] = samples.map((s, i) => {
          const weights = factors && WEIGHTED.includes(m) ? factors[m as 'q'].subarray(first, first + s.T) : undefined;
          first += s.T;
          return { x: xs[i][INPUT[m]], xFull: crossTerm ? xf[i][INPUT[m]] : undefined, weights, samples: 1 };
        });
        const n = fp[m].length / rowsOf(m, dims);
        const stats = accumulate(batches, n);
        statistics[m] = { H: stats.H, dXXT: crossTerm ? stats.dXXT : null };
        results[m] = crossTerm ? gptaq(fp[m], stats.H, stats.dXXT, rowsOf(m, dims), n, options.quant) : gptq(fp[m], stats.H, rowsOf(m, dims), n, options.quant);
      }
      for (const m of group) q[m] = options.quantized?.(l, m) ?? results[m].Q;
    }
    U = U.map((u, i) => forward(q, u, i).out);
    F = F.map((f, i) => forward(fp, f, i).out);
    out.push({ results, statistics, factors, loss });
  }
  return out;
}

function rowsOf(m: Module, d: DecoderDims): number {
  return { q: d.heads * d.headDim, k: d.kvHeads * d.headDim, v: d.kvHeads * d.headDim, o: d.hidden, gate: d.intermediate, up: d.intermediate, down: d.hidden }[m];
}

function layerFactors(w: DecoderWeights, dims: DecoderDims, samples: readonly ReferenceSample[], F: Float64Array[], U: Float64Array[], power: 1 | 2) {
  const total = samples.reduce((a, s) => a + s.T, 0);
  const factors = { q: new Float64Array(total), k: new Float64Array(total), v: new Float64Array(total), o: new Float64Array(total) };
  let loss = 0, first = 0;
  for (const [i, s] of samples.entries()) {
    const r = importanceFactors(U[i], F[i], s.T, w, dims, s.positions, Int32Array.from([0, s.T]));
    for (const p of WEIGHTED) factors[p as 'q'].set(r[p as 'q'], first);
    loss += r.loss;
    first += s.T;
  }
  for (const p of WEIGHTED) {
    const g = factors[p as 'q'];
    const mean = g.reduce((a, b) => a + b, 0) / total;
    for (let t = 0; t < total; t++) g[t] = loss > 0 ? (g[t] / mean) ** power : 1;
  }
  return { factors, loss };
}
