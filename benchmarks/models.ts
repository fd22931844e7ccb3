// The pipeline benchmarks' workspace: a generated checkpoint in a temporary directory with a
// calibration bundle beside it, removed when disposed.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BundleSample, CalibrationBundle, type Model, loadModel, writeCalibrationBundle } from '../lib/index.js';
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
