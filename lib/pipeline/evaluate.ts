// How far a quantized language model is from the full-precision one on given samples: both run
// layer by layer from the same layer-0 input, and after every layer the relative squared error
// ‖Y_q − Y‖² / ‖Y‖² of the hidden states is measured over the text tokens, the image tokens and all
// tokens (the modality mask of the samples says which is which). modelErrors also measures the
// output: the logits (final RMSNorm, then lm_head) and how often the most likely next token of a
// text position is the full-precision model's.
import type { BundleSample } from '../data/bundle.js';
import { MODALITY } from '../data/bundle.js';
import type { Model } from '../models/model.js';
import type { QuantizedLinearData } from '../export/export.js';
import type { LinearSpec } from '../models/types.js';
import { toFloat32 } from '../tensor.js';
import { DecoderLayer } from './decoder-layer.js';
import type { Device } from '../native/devices.js';

export interface ModalityErrors {
  text: number;
  image: number;
  all: number;
}

export interface LayerErrors extends ModalityErrors {
  layer: number;
}

/** What evaluate needs of a quantization run: its quantized linears. */
export interface QuantizedLinears {
  linear(linear: LinearSpec): Promise<QuantizedLinearData>;
}

export interface OutputErrors extends ModalityErrors {
  /** Share of text positions whose most likely next token (argmax of the logits) is the full-precision model's. */
  top1Text: number;
}

/** The error after every decoder layer (the last entry is the model's final hidden state before the norm). */
export async function layerErrors(model: Model, run: QuantizedLinears, samples: readonly BundleSample[], options: EvaluateOptions = {}): Promise<LayerErrors[]> {
  return (await compareLayers(model, run, samples, options.device)).layers;
}

/** The error after every decoder layer, and of the logits. */
export async function modelErrors(model: Model, run: QuantizedLinears, samples: readonly BundleSample[], options: EvaluateOptions = {}): Promise<{ layers: LayerErrors[]; output: OutputErrors }> {
  const { layers, full, quantized } = await compareLayers(model, run, samples, options.device);
  return { layers, output: await outputErrors(model, quantized, full, samples) };
}

export interface EvaluateOptions {
  /** Where the layers run: 'auto' (default), 'cpu', 'cuda' or 'cuda:N'. */
  device?: Device;
}

async function compareLayers(model: Model, run: QuantizedLinears, samples: readonly BundleSample[], device?: Device) {
  let full = samples.map((s) => s.embeddings.data as Float32Array);
  let quantized = full;
  const out: LayerErrors[] = [];
  for (let l = 0; l < model.config.text.numLayers; l++) {
    const fp = await DecoderLayer.load(model, l, device);
    const q = await DecoderLayer.load(model, l, device);
    try {
      for (const linear of model.layerLinears(l)) await q.setLinear(linear.module, (await run.linear(linear)).dequantized, [linear.outFeatures, linear.inFeatures]);
      const nextFull: Float32Array[] = [], nextQuantized: Float32Array[] = [];
      for (const [i, s] of samples.entries()) {
        const T = s.modality.length;
        const tokens = { tokens: T, positions: s.positions, segments: Int32Array.from([0, T]) };
        nextFull.push(await fp.forward(full[i], tokens));
        nextQuantized.push(await q.forward(quantized[i], tokens));
      }
      full = nextFull;
      quantized = nextQuantized;
    } finally {
      fp.dispose();
      q.dispose();
    }
    out.push({ layer: l, ...modalityErrors(quantized, full, samples) });
  }
  return { layers: out, full, quantized };
}

/** The logits' errors: final RMSNorm and lm_head (or the tied embeddings) applied to both models' last hidden states. */
async function outputErrors(model: Model, got: readonly Float32Array[], want: readonly Float32Array[], samples: readonly BundleSample[]): Promise<OutputErrors> {
  const { norm, lmHead, embedTokens } = model.architecture.languagePrefixes(model.layout);
  const gamma = toFloat32(await model.readTensor(`${norm}.weight`));
  const head = toFloat32(await model.readTensor(model.checkpoint.has(`${lmHead}.weight`) ? `${lmHead}.weight` : `${embedTokens}.weight`));
  const H = gamma.length, V = head.length / H, eps = model.config.text.rmsNormEps;
  const logits = (x: Float32Array, t: number, out: Float64Array) => {
    const h = x.subarray(t * H, (t + 1) * H);
    let ms = 0;
    for (let c = 0; c < H; c++) ms += h[c] * h[c];
    const r = 1 / Math.sqrt(ms / H + eps);
    for (let v = 0; v < V; v++) {
      let dot = 0;
      for (let c = 0; c < H; c++) dot += head[v * H + c] * h[c] * r * gamma[c];
      out[v] = dot;
    }
  };
  const argmax = (a: Float64Array) => a.reduce((best, x, i) => (x > a[best] ? i : best), 0);
  const gotLogits: Float32Array[] = [], wantLogits: Float32Array[] = [];
  const a = new Float64Array(V), b = new Float64Array(V);
  let textTokens = 0, agree = 0;
  for (const [i, s] of samples.entries()) {
    const T = s.modality.length;
    const [g, w] = [new Float32Array(T * V), new Float32Array(T * V)];
    for (let t = 0; t < T; t++) {
      logits(got[i], t, a);
      logits(want[i], t, b);
      g.set(a, t * V);
      w.set(b, t * V);
      if (s.modality[t] === MODALITY.text) {
        textTokens++;
        if (argmax(a) === argmax(b)) agree++;
      }
    }
    gotLogits.push(g);
    wantLogits.push(w);
  }
  return { ...modalityErrors(gotLogits, wantLogits, samples), top1Text: textTokens > 0 ? agree / textTokens : 1 };
}

/** Relative squared error of `got` against `want` per modality (image and video tokens count as image). */
export function modalityErrors(got: readonly Float32Array[], want: readonly Float32Array[], samples: readonly BundleSample[]): ModalityErrors {
  const error = { text: 0, image: 0 }, norm = { text: 0, image: 0 };
  for (const [i, s] of samples.entries()) {
    const H = want[i].length / s.modality.length;
    for (let t = 0; t < s.modality.length; t++) {
      const kind = s.modality[t] === MODALITY.text ? 'text' : 'image';
      for (let c = t * H; c < (t + 1) * H; c++) {
        error[kind] += (got[i][c] - want[i][c]) ** 2;
        norm[kind] += want[i][c] ** 2;
      }
    }
  }
  const ratio = (e: number, n: number) => (n > 0 ? e / n : 0);
  return { text: ratio(error.text, norm.text), image: ratio(error.image, norm.image), all: ratio(error.text + error.image, norm.text + norm.image) };
}
