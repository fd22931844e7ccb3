// Model-level helpers of the pipeline benchmarks: a generated checkpoint in a temporary directory,
// a calibration bundle beside it, and the last layer's output of held-out samples through the
// full-precision model and through a quantization run, with its error split by modality.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BundleSample, CalibrationBundle, DecoderLayer, MODALITY, type Model, type QuantizationRun, loadModel, writeCalibrationBundle } from '../lib/index.js';
import { type TinyCheckpointOptions, writeTinyCheckpoint } from '../test/fixtures/checkpoints.js';

export interface Workspace extends AsyncDisposable {
  dir: string;
  model: Model;
  bundle: CalibrationBundle;
}

/** A checkpoint with `checkpoint`'s dimensions and a bundle of `samples`, removed on dispose. */
export async function workspace(checkpoint: TinyCheckpointOptions, samples: readonly BundleSample[]): Promise<Workspace> {
  const dir = await mkdtemp(join(tmpdir(), 'vlmq-bench-'));
  await writeTinyCheckpoint(join(dir, 'model'), { ...checkpoint, extraFiles: false });
  await writeCalibrationBundle(join(dir, 'calib.safetensors'), samples);
  const model = await loadModel(join(dir, 'model'));
  const bundle = await CalibrationBundle.open(join(dir, 'calib.safetensors'));
  return {
    dir, model, bundle,
    async [Symbol.asyncDispose]() {
      await bundle.close();
      await model.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Each sample's hidden states after the last decoder layer, with the run's weights (the model's for null). */
export async function lastLayerOutputs(model: Model, run: QuantizationRun | null, samples: readonly BundleSample[]): Promise<Float32Array[]> {
  let states = samples.map((s) => s.embeddings.data as Float32Array);
  for (let l = 0; l < model.config.text.numLayers; l++) {
    const layer = await DecoderLayer.load(model, l);
    try {
      if (run) for (const linear of model.layerLinears(l)) await layer.setLinear(linear.module, (await run.linear(linear)).dequantized, [linear.outFeatures, linear.inFeatures]);
      const next: Float32Array[] = [];
      for (const [i, s] of samples.entries()) {
        const T = s.modality.length;
        next.push(await layer.forward(states[i], { tokens: T, positions: s.positions, segments: Int32Array.from([0, T]) }));
      }
      states = next;
    } finally {
      layer.dispose();
    }
  }
  return states;
}

export interface ModalityError {
  text: number;
  vision: number;
  all: number;
}

/** Relative squared error Σ‖got − want‖² / Σ‖want‖² over the text tokens, the vision tokens and all tokens. */
export function modalityError(got: readonly Float32Array[], want: readonly Float32Array[], samples: readonly BundleSample[]): ModalityError {
  const error = { text: 0, vision: 0 }, norm = { text: 0, vision: 0 };
  for (const [i, s] of samples.entries()) {
    const H = got[i].length / s.modality.length;
    for (let t = 0; t < s.modality.length; t++) {
      const kind = s.modality[t] === MODALITY.text ? 'text' : 'vision';
      for (let c = t * H; c < (t + 1) * H; c++) {
        error[kind] += (got[i][c] - want[i][c]) ** 2;
        norm[kind] += want[i][c] ** 2;
      }
    }
  }
  return { text: error.text / norm.text, vision: error.vision / norm.vision, all: (error.text + error.vision) / (norm.text + norm.vision) };
}
