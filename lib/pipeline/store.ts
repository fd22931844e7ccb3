// A calibrated run's work directory: one safetensors file per finished decoder layer (the codes,
// scales, zero points and g_idx of its linears, with their statistics) and state.json with the
// run's fingerprint. It makes runs resumable, and the export reads the quantized model from it.
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VlmqError } from '../errors.js';
import type { QuantizedLinearData, QuantizedSource } from '../export/export.js';
import { writeError } from '../io/files.js';
import { temporarySibling } from '../io/move-into-place.js';
import { SafetensorsFile } from '../io/safetensors-reader.js';
import { writeSafetensors } from '../io/safetensors-writer.js';
import type { LinearName, LinearSpec } from '../models/types.js';
import { STATE_FILE as STATE, layerFileName as layerFile } from './work-dir.js';

export interface LinearRecord {
  module: LinearName;
  rows: number;
  cols: number;
  groups: number;
  codes: Uint8Array;
  scales: Float32Array;
  zeros: Int32Array;
  gIdx: Int32Array;
  /** Loss, damping, fallback, seconds…: recorded as JSON in the layer file's metadata. */
  stats: Record<string, unknown>;
}

interface State {
  version: 1;
  fingerprint: string;
  layers: number;
  completed: number;
}

export class LayerStore {
  private constructor(readonly dir: string, private state: State) {}

  /**
   * The layers of a run in the work directory `dir` (made and locked by WorkDir). A directory left
   * by an earlier run is resumed only when `resume` is set and its fingerprint matches (same model,
   * calibration set and options); otherwise it is an error that says what to do.
   */
  static async open(dir: string, fingerprint: string, layers: number, resume: boolean): Promise<LayerStore> {
    const existing = await LayerStore.refuseUnfinished(dir, resume);
    if (existing) {
      if (existing.fingerprint !== fingerprint || existing.layers !== layers) {
        throw new VlmqError('ERR_VLMQ_RESUME_MISMATCH', `${dir} belongs to a run with another model, calibration set or options; it cannot be resumed with these (remove it to start over)`);
      }
      return new LayerStore(dir, existing);
    }
    const store = new LayerStore(dir, { version: 1, fingerprint, layers, completed: 0 });
    await store.saveState();
    return store;
  }

  /**
   * The state of an earlier run in `dir` (null if none), or an error when there is one and
   * `resume` is not set: checked before a run builds anything into the directory.
   */
  static async refuseUnfinished(dir: string, resume: boolean): Promise<State | null> {
    const existing = await readState(dir);
    if (existing && !resume) throw new VlmqError('ERR_VLMQ_WORK_EXISTS', `${dir} holds an unfinished run (${existing.completed} of ${existing.layers} layers); resume it, or remove the directory to start over`);
    return existing;
  }

  /** Layers finished (and stored) so far; they are 0 … completed − 1. */
  get completed(): number {
    return this.state.completed;
  }

  async writeLayer(layer: number, records: readonly LinearRecord[]): Promise<void> {
    if (layer !== this.state.completed) throw new VlmqError('ERR_VLMQ_INTERNAL', `layer ${layer} stored out of order (next is ${this.state.completed})`);
    const tensors = records.flatMap((r) => [
      { name: `${r.module}.codes`, dtype: 'U8' as const, shape: [r.rows, r.cols], data: r.codes },
      { name: `${r.module}.scales`, dtype: 'F32' as const, shape: [r.rows, r.groups], data: r.scales },
      { name: `${r.module}.zeros`, dtype: 'I32' as const, shape: [r.rows, r.groups], data: r.zeros },
      { name: `${r.module}.g_idx`, dtype: 'I32' as const, shape: [r.cols], data: r.gIdx },
    ]);
    const stats = Object.fromEntries(records.map((r) => [r.module, r.stats]));
    await writeSafetensors(join(this.dir, layerFile(layer)), tensors, { metadata: { vlmq_stats: JSON.stringify(stats) } });
    this.state = { ...this.state, completed: layer + 1 };
    await this.saveState();
  }

  /** The quantized linear, with its dequantized weights, from a finished layer. */
  async readLinear(linear: LinearSpec): Promise<QuantizedLinearData> {
    if (linear.layer >= this.state.completed) throw new VlmqError('ERR_VLMQ_INTERNAL', `layer ${linear.layer} is not finished`);
    const file = await SafetensorsFile.open(join(this.dir, layerFile(linear.layer)));
    try {
      const read = async (suffix: string) => (await file.read(`${linear.module}.${suffix}`)).data;
      const codes = (await read('codes')) as Uint8Array;
      const scales = (await read('scales')) as Float32Array;
      const zeros = (await read('zeros')) as Int32Array;
      const gIdx = (await read('g_idx')) as Int32Array;
      const groups = scales.length / linear.outFeatures;
      return { codes, scales, zeros, gIdx, groups, dequantized: dequantize(codes, scales, zeros, gIdx, linear.outFeatures, linear.inFeatures, groups) };
    } finally {
      await file.close();
    }
  }

  source(): QuantizedSource {
    return { get: (linear) => this.readLinear(linear) };
  }

  private async saveState(): Promise<void> {
    const path = join(this.dir, STATE);
    const temporary = temporarySibling(path);
    try {
      await writeFile(temporary, `${JSON.stringify(this.state, null, 2)}\n`);
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw writeError(path, error);
    }
  }
}

async function readState(dir: string): Promise<State | null> {
  const path = join(dir, STATE);
  const exists = await stat(path).then(() => true, () => false);
  if (!exists) return null;
  let state: Partial<State>;
  try {
    state = JSON.parse(await readFile(path, 'utf8')) as Partial<State>;
  } catch (error) {
    throw new VlmqError('ERR_VLMQ_BAD_FILE', `${path}: unreadable (${(error as Error).message}); remove the directory to start over`);
  }
  const valid = state?.version === 1 && typeof state.fingerprint === 'string' && Number.isSafeInteger(state.layers) && Number.isSafeInteger(state.completed) &&
    state.completed! >= 0 && state.completed! <= state.layers!;
  if (!valid) throw new VlmqError('ERR_VLMQ_BAD_FILE', `${path}: not the state of a vlmq run (version 1, fingerprint, layers, completed); remove the directory to start over`);
  return state as State;
}

/** scale[g] · (code − zero[g]) in f32, exactly as the native quantizer computes it. */
export function dequantize(codes: Uint8Array, scales: Float32Array, zeros: Int32Array, gIdx: Int32Array, rows: number, cols: number, groups: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const g = r * groups + gIdx[j];
      out[r * cols + j] = Math.fround(scales[g] * (codes[r * cols + j] - zeros[g]));
    }
  }
  return out;
}
