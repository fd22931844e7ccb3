// quantize(model, calibration, options) → a run that can be saved as a GPTQ or fake-quant
// checkpoint (DESIGN.md, "Public API"). RTN needs no calibration data: each linear is computed
// while the export writes it. GPTQ, GPTAQ and VLMQ run the calibrated layer loop over a
// calibration bundle, layer by layer into a work directory that makes the run resumable.
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CalibrationBundle } from '../data/bundle.js';
import { Calibration } from '../data/calibration.js';
import { VlmqError, invalidParameterError } from '../errors.js';
import { type ExportFormat, type ExportReport, type QuantizationSettings, type QuantizedLinearData, type QuantizedSource, exportModel } from '../io/export.js';
import type { GptqBits } from '../io/gptq-pack.js';
import type { Model } from '../models/model.js';
import type { LinearSpec } from '../models/types.js';
import type { NativeLinearOptions } from '../native/binding.js';
import { type QuantizeLinearOptions, resolveLinearOptions } from '../quant/options.js';
import { quantizeLinear } from '../quant/quantize-linear.js';
import { type CalibratedMethod, type PipelineEvent, calibratedLoop } from './calibrated.js';
import { runFingerprint } from './fingerprint.js';
import type { ImportanceOptions } from './importance.js';
import { LayerStore } from './store.js';

export const MODEL_METHODS = ['rtn', 'gptq', 'gptaq', 'vlmq'] as const;
export type ModelMethod = (typeof MODEL_METHODS)[number];
const DEFAULT_IMPORTANCE: ImportanceOptions = { norm: 'l1', power: 1, fallback: 'uniform' };

export interface QuantizeModelOptions extends Omit<QuantizeLinearOptions, 'method' | 'onProgress'> {
  /** Default vlmq with a calibration set, rtn without. */
  method?: ModelMethod;
  /** VLMQ's base sweep: gptaq (default for 3, 4 and 8 bits) or gptq (default for 2 bits). */
  base?: 'gptq' | 'gptaq';
  /** VLMQ's factors: norm 'l1' (default) or 'l2'; power 1 (default, token weight g) or 2 (g²); fallback for a layer with zero block loss: 'uniform' (default) or 'rtn-probe'. */
  importance?: Partial<ImportanceOptions>;
  /** Tokens per native batch (default 4096). */
  batchTokens?: number;
  /** Bytes of RAM for the two activation streams before they spill to the work directory (default 4 GiB). */
  memory?: number;
  /** Where layers are stored as they finish (default: a directory in the OS temp dir named by the run's fingerprint). */
  workDir?: string;
  /** Continue the unfinished run in workDir (it must have the same model, calibration set and options). */
  resume?: boolean;
  onEvent?: (event: PipelineEvent) => void;
}

export interface SaveOptions {
  format?: ExportFormat;
  maxShardBytes?: number;
  overwrite?: boolean;
  fakeQuantDtype?: 'original' | 'BF16' | 'F16' | 'F32';
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export class QuantizationRun {
  constructor(
    readonly model: Model,
    readonly settings: QuantizationSettings,
    private readonly source: QuantizedSource,
    /** The calibrated run's work directory (null for RTN). */
    readonly workDir: string | null = null,
  ) {}

  /** Writes the quantized model to `dir`: GPTQ (default `gptq` for symmetric, `gptq_v2` otherwise) or fake-quant. */
  save(dir: string, options: SaveOptions = {}): Promise<ExportReport> {
    const format = options.format ?? (this.settings.sym ? 'gptq' : 'gptq_v2');
    return exportModel(this.model, this.source, dir, { ...options, format, settings: this.settings });
  }

  /** One quantized linear: codes, scales, zero points, g_idx and the dequantized weights. */
  linear(linear: LinearSpec): Promise<QuantizedLinearData> {
    return this.source.get(linear);
  }

  /** Removes the work directory (after the last save). */
  async discard(): Promise<void> {
    if (this.workDir) await rm(this.workDir, { recursive: true, force: true });
  }
}

/** Every option of a run, checked and with its defaults filled in. */
export interface ResolvedQuantizeOptions {
  method: ModelMethod;
  /** The sweep the calibrated methods run (null for RTN). */
  base: 'gptq' | 'gptaq' | null;
  linear: NativeLinearOptions;
  importance: ImportanceOptions | null;
  batchTokens: number;
  memory: number;
  /** What the checkpoint's quantization_config records. */
  settings: QuantizationSettings;
}

/**
 * Checks the options of a run and fills in the defaults, before any work: a CLI can report the
 * settings (and which loaders take them) and every bad option ahead of a long calibration.
 */
export function resolveQuantizeOptions(options: QuantizeModelOptions, withCalibration: boolean): ResolvedQuantizeOptions {
  const method = options.method ?? (withCalibration ? 'vlmq' : 'rtn');
  if (!(MODEL_METHODS as readonly string[]).includes(method)) throw invalidParameterError('method', MODEL_METHODS.join(', '), method);
  if (method !== 'vlmq' && options.base !== undefined && options.base !== method) throw invalidParameterError('base', `${method} (only vlmq chooses a base)`, options.base);
  const { method: _m, base: _b, importance: imp, batchTokens = 4096, memory = 4 * 2 ** 30, workDir: _w, resume: _r, onEvent: _e, signal: _s, ...rest } = options;
  const base = method === 'rtn' ? null : method === 'vlmq' ? (options.base ?? (options.bits === 2 ? 'gptq' : 'gptaq')) : method;
  if (base !== null && base !== 'gptq' && base !== 'gptaq') throw invalidParameterError('base', "'gptq' or 'gptaq'", base);
  const linear = resolveLinearOptions({ ...rest, method: base ?? 'rtn' });
  const importance: ImportanceOptions = { norm: imp?.norm ?? 'l1', power: imp?.power ?? 1, fallback: imp?.fallback ?? 'uniform' };
  if (!['l1', 'l2'].includes(importance.norm)) throw invalidParameterError('importance.norm', "'l1' or 'l2'", importance.norm);
  if (![1, 2].includes(importance.power)) throw invalidParameterError('importance.power', '1 or 2', importance.power);
  if (!['uniform', 'rtn-probe'].includes(importance.fallback)) throw invalidParameterError('importance.fallback', "'uniform' or 'rtn-probe'", importance.fallback);
  if (!Number.isSafeInteger(batchTokens) || batchTokens < 1) throw invalidParameterError('batchTokens', 'a positive integer', batchTokens);
  if (!(Number.isSafeInteger(memory) && memory >= 0)) throw invalidParameterError('memory', 'a whole number of bytes ≥ 0', memory);
  const settings: QuantizationSettings = {
    method, bits: linear.bits as GptqBits, groupSize: linear.groupSize, sym: linear.sym, actOrder: method !== 'rtn' && linear.actOrder,
    staticGroups: linear.staticGroups, percdamp: linear.percdamp, trueSequential: true,
  };
  return { method, base, linear, importance: method === 'vlmq' ? importance : null, batchTokens, memory, settings };
}

/**
 * Quantizes the language model of `model`: RTN without calibration data (computed as the export
 * writes each linear), GPTQ, GPTAQ or VLMQ over a calibration bundle, layer by layer into a work
 * directory (resumable, read by QuantizationRun.save).
 */
export async function quantize(model: Model, calibration: CalibrationBundle | Calibration | null, options: QuantizeModelOptions = {}): Promise<QuantizationRun> {
  if (calibration instanceof Calibration) return quantizeWithCalibration(model, calibration, options);
  const run = resolveQuantizeOptions(options, calibration !== null);
  if (run.method === 'rtn') return quantizeRtn(model, run);
  if (!calibration) throw invalidParameterError('calibration', `a calibration bundle (method ${run.method} needs calibration data)`, calibration);
  checkBundle(model, calibration);
  const { method, base, linear, importance, batchTokens, memory } = run;
  const fingerprint = await runFingerprint(model, calibration, { method, base, linear, importance, batchTokens });
  const dir = options.workDir ?? join(tmpdir(), `vlmq-run-${fingerprint.slice(0, 16)}`);
  const store = await LayerStore.open(dir, fingerprint, model.config.text.numLayers, options.resume ?? false);
  await calibratedLoop(model, calibration, store, {
    method: method as CalibratedMethod, base: base!, linear, importance: importance ?? DEFAULT_IMPORTANCE, batchTokens, memoryBytes: memory, spillDir: dir,
    signal: options.signal, onEvent: options.onEvent,
  });
  return new QuantizationRun(model, run.settings, store.source(), dir);
}

/**
 * Image–text calibration: its bundle is built into the work directory (default: one in the OS temp
 * dir named by the calibration's fingerprint), or reused from there, then the run goes on as with
 * a bundle.
 */
async function quantizeWithCalibration(model: Model, calibration: Calibration, options: QuantizeModelOptions): Promise<QuantizationRun> {
  resolveQuantizeOptions(options, true);
  const workDir = options.workDir ?? join(tmpdir(), `vlmq-run-${(await calibration.fingerprint(model)).slice(0, 16)}`);
  await LayerStore.refuseUnfinished(workDir, options.resume ?? false);
  const { bundle } = await calibration.bundle(model, join(workDir, 'calibration.safetensors'), { signal: options.signal });
  try {
    return await quantize(model, bundle, { ...options, workDir });
  } finally {
    await bundle.close();
  }
}

function checkBundle(model: Model, bundle: CalibrationBundle): void {
  const { hiddenSize, mropeSection } = model.config.text;
  if (bundle.hidden !== hiddenSize) throw new VlmqError('ERR_VLMQ_BAD_FILE', `${bundle.path}: embeddings of width ${bundle.hidden}, but the model's hidden size is ${hiddenSize}`);
  const rows = mropeSection ? 3 : 1;
  if (bundle.positionRows !== rows) {
    throw new VlmqError('ERR_VLMQ_BAD_FILE', `${bundle.path}: position ids with ${bundle.positionRows} row(s), but ${model.architecture.displayName} needs ${rows} (${mropeSection ? 'M-RoPE' : '1-D RoPE'})`);
  }
}

function quantizeRtn(model: Model, run: ResolvedQuantizeOptions): QuantizationRun {
  const source: QuantizedSource = {
    async get(linear: LinearSpec): Promise<QuantizedLinearData> {
      const { weight } = await model.readLinear(linear);
      return quantizeLinear(weight, null, run.linear);
    },
  };
  return new QuantizationRun(model, run.settings, source);
}
