// How far a quantized language model is from the full-precision one on given samples: both run
// layer by layer from the same layer-0 input, and after every layer the relative squared error
// ‖Y_q − Y‖² / ‖Y‖² of the hidden states is measured over the text tokens, the image tokens and all
// tokens (the modality mask of the samples says which is which).
import type { BundleSample } from '../data/bundle.js';
import { MODALITY } from '../data/bundle.js';
import type { Model } from '../models/model.js';
import type { QuantizedLinearData } from '../io/export.js';
import type { LinearSpec } from '../models/types.js';
import { DecoderLayer } from './decoder-layer.js';

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

/** The error after every decoder layer (the last entry is the model's final hidden state before the norm). */
export async function layerErrors(model: Model, run: QuantizedLinears, samples: readonly BundleSample[]): Promise<LayerErrors[]> {
  let full = samples.map((s) => s.embeddings.data as Float32Array);
  let quantized = full;
  const out: LayerErrors[] = [];
  for (let l = 0; l < model.config.text.numLayers; l++) {
    const fp = await DecoderLayer.load(model, l);
    const q = await DecoderLayer.load(model, l);
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
  return out;
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
