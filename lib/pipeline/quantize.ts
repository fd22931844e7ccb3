// quantize(model, calibration, options) → a run that can be saved as a GPTQ or fake-quant
// checkpoint (DESIGN.md, "Public API"). RTN needs no calibration data: each linear is computed
// while the export writes it. GPTQ, GPTAQ and VLMQ run the calibrated layer loop over a
// calibration bundle, layer by layer into a work directory that makes the run resumable.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CalibrationBundle } from '../data/bundle.js';
import { VlmqError, invalidParameterError } from '../errors.js';
import {
  type ExportFormat, type ExportOptions, type ExportReport, type QuantizationSettings, type QuantizedLinearData, type QuantizedSource, exportFormat, exportModel,
} from '../export/export.js';
import type { GptqBits } from '../export/gptq-pack.js';
import { placement } from '../io/files.js';
import { Model } from '../models/model.js';
import type { LinearSpec } from '../models/types.js';
import type { NativeLinearOptions } from '../native/binding.js';
import { type Device, describeDevice, resolveDevice } from '../native/devices.js';
import { type QuantizeLinearOptions, resolveLinearOptions } from '../quant/options.js';
import { quantizeLinear } from '../quant/quantize-linear.js';
import { type CalibratedMethod, type PipelineEvent, calibratedLoop } from './calibrated.js';
import { Calibration, type CalibrationReport } from './calibration.js';
import { runFingerprint } from './fingerprint.js';
import type { ImportanceOptions } from './importance.js';
import { LayerStore } from './store.js';
import { BUNDLE_FILE, WorkDir } from './work-dir.js';

export const MODEL_METHODS = ['rtn', 'gptq', 'gptaq', 'vlmq'] as const;
export type ModelMethod = (typeof MODEL_METHODS)[number];
/** The sweeps VLMQ runs on. */
export const VLMQ_BASES = ['gptq', 'gptaq'] as const;
/** The values of each importance option. */
export const IMPORTANCE_CHOICES = { norm: ['l1', 'l2'], power: [1, 2], fallback: ['uniform', 'rtn-probe'] } as const;
export const DEFAULT_IMPORTANCE: Readonly<ImportanceOptions> = { norm: 'l1', power: 1, fallback: 'uniform' };
export const DEFAULT_BATCH_TOKENS = 4096;
/** RAM for the two activation streams: 4 GiB. */
export const DEFAULT_MEMORY_BYTES = 4 * 2 ** 30;

export interface QuantizeModelOptions extends Omit<QuantizeLinearOptions, 'method' | 'onProgress'> {
  /** Default vlmq with a calibration set, rtn without. */
  method?: ModelMethod;
  /** VLMQ's base sweep: gptaq (default for 3, 4 and 8 bits) or gptq (default for 2 bits). */
  base?: (typeof VLMQ_BASES)[number];
  /** VLMQ's factors: norm 'l1' (default) or 'l2'; power 1 (default, token weight g) or 2 (g²); fallback for a layer with zero block loss: 'uniform' (default) or 'rtn-probe'. */
  importance?: Partial<ImportanceOptions>;
  /** Tokens per native batch (default DEFAULT_BATCH_TOKENS, 4096). */
  batchTokens?: number;
  /** Bytes of RAM for the two activation streams before they spill to the work directory (default DEFAULT_MEMORY_BYTES, 4 GiB). */
  memory?: number;
  /** Where layers are stored as they finish (default: a directory in the OS temp dir named by the run's fingerprint). */
  workDir?: string;
  /** Continue the unfinished run in workDir (it must have the same model, calibration set and options). */
  resume?: boolean;
  /** Where the layers run: 'auto' (default: CUDA when usable, else the CPU), 'cpu', 'cuda' or 'cuda:N'. */
  device?: Device;
  onEvent?: (event: QuantizeEvent) => void;
}

/** The calibrated loop's events, and those of the steps before it. */
export type QuantizeEvent =
  | PipelineEvent
  /** Something the user should hear of: a stale lock taken over. */
  | { type: 'notice'; message: string }
  /** The backend the run uses (first), as asked ('auto' by default) and as chosen, with why for 'auto' on the CPU. */
  | { type: 'device'; requested: string; device: Device; description: string }
  /** Image–text calibration: records turned into bundle samples so far. */
  | { type: 'calibration-progress'; done: number; total: number }
  /** Image–text calibration: the bundle built (its report), or reused (report null). */
  | { type: 'calibration-set'; report: CalibrationReport | null; samples: number };

/** The export's options; the format defaults to the one exportFormat() chooses for the run's settings. */
export interface SaveOptions extends Omit<ExportOptions, 'format' | 'settings'> {
  format?: ExportFormat;
}

export class QuantizationRun {
  constructor(
    readonly model: Model,
    readonly settings: QuantizationSettings,
    private readonly source: QuantizedSource,
    /** The calibrated run's work directory, locked while the run is open (null for RTN). */
    private readonly work: WorkDir | null = null,
  ) {}

  /** Where a calibrated run keeps its layers (null for RTN). */
  get workDir(): string | null {
    return this.work?.path ?? null;
  }

  /** Writes the quantized model to `dir`: GPTQ (default `gptq` for symmetric, `gptq_v2` otherwise) or fake-quant. */
  async save(dir: string, options: SaveOptions = {}): Promise<ExportReport> {
    if (this.work !== null && typeof dir === 'string') {
      const relation = await placement(dir, this.work.path);
      if (relation !== 'apart') throw invalidParameterError('out', `a directory apart from the run's work directory ${this.work.path}`, dir);
    }
    return exportModel(this.model, this.source, dir, { ...options, format: exportFormat(this.settings, options.format), settings: this.settings });
  }

  /** One quantized linear: codes, scales, zero points, g_idx and the dequantized weights. */
  linear(linear: LinearSpec): Promise<QuantizedLinearData> {
    return this.source.get(linear);
  }

  /**
   * After the last save: removes the files the run wrote into its work directory, and the
   * directory itself if vlmq made it and nothing else is in it; releases its lock.
   */
  async discard(): Promise<void> {
    await this.work?.discard();
  }

  /** Releases the work directory's lock and keeps its files (to export or resume later). */
  async close(): Promise<void> {
    await this.work?.close();
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
  /** The registry name of the backend ('cpu', 'cuda:0', ...); not part of the run's fingerprint. */
  device: Device;
  /** What the checkpoint's quantization_config records. */
  settings: QuantizationSettings;
}

/**
 * Checks the options of a run and fills in the defaults, before any work: a CLI can report the
 * settings (and which loaders take them) and every bad option ahead of a long calibration.
 */
export function resolveQuantizeOptions(options: QuantizeModelOptions, withCalibration: boolean): ResolvedQuantizeOptions {
  const method = options.method ?? (withCalibration ? 'vlmq' : 'rtn');
  oneOf('method', method, MODEL_METHODS);
  if (options.base !== undefined) oneOf('base', options.base, VLMQ_BASES);
  if (method !== 'vlmq' && options.base !== undefined && options.base !== method) throw invalidParameterError('base', `${method} (only vlmq chooses a base)`, options.base);
  const { method: _m, base: _b, importance: imp, batchTokens = DEFAULT_BATCH_TOKENS, memory = DEFAULT_MEMORY_BYTES, workDir: _w, resume: _r, onEvent: _e, signal: _s, device: requested, ...rest } = options;
  const base = method === 'rtn' ? null : method === 'vlmq' ? (options.base ?? (options.bits === 2 ? 'gptq' : 'gptaq')) : method;
  const linear = resolveLinearOptions({ ...rest, method: base ?? 'rtn' });
  const importance: ImportanceOptions = {
    norm: imp?.norm ?? DEFAULT_IMPORTANCE.norm, power: imp?.power ?? DEFAULT_IMPORTANCE.power, fallback: imp?.fallback ?? DEFAULT_IMPORTANCE.fallback,
  };
  for (const key of ['norm', 'power', 'fallback'] as const) oneOf(`importance.${key}`, importance[key], IMPORTANCE_CHOICES[key]);
  if (!Number.isSafeInteger(batchTokens) || batchTokens < 1) throw invalidParameterError('batchTokens', 'a positive integer', batchTokens);
  if (!(Number.isSafeInteger(memory) && memory >= 0)) throw invalidParameterError('memory', 'a whole number of bytes ≥ 0', memory);
  const device = resolveDevice(requested);
  const settings: QuantizationSettings = {
    method, bits: linear.bits as GptqBits, groupSize: linear.groupSize, sym: linear.sym, actOrder: method !== 'rtn' && linear.actOrder,
    staticGroups: linear.staticGroups, percdamp: linear.percdamp, trueSequential: true,
  };
  return { method, base, linear, importance: method === 'vlmq' ? importance : null, batchTokens, memory, device, settings };
}

function oneOf(name: string, value: unknown, allowed: readonly unknown[]): void {
  if (!allowed.includes(value)) throw invalidParameterError(name, `one of ${allowed.join(', ')}`, value);
}

/**
 * Quantizes the language model of `model`: RTN without calibration data (computed as the export
 * writes each linear), GPTQ, GPTAQ or VLMQ over image–text calibration data (its bundle built
 * into the work directory, or reused from there) or a calibration bundle, layer by layer into the
 * work directory (resumable, read by QuantizationRun.save, locked until the run is discarded or
 * closed).
 */
export async function quantize(model: Model, calibration: CalibrationBundle | Calibration | null, options: QuantizeModelOptions = {}): Promise<QuantizationRun> {
  checkArguments(model, calibration, options);
  const run = resolveQuantizeOptions(options, calibration != null);
  const requested = options.device ?? 'auto';
  options.onEvent?.({ type: 'device', requested, device: run.device, description: describeDevice(requested, run.device) });
  if (run.method === 'rtn') return quantizeRtn(model, run);
  if (calibration == null) throw invalidParameterError('calibration', `a Calibration or a calibration bundle (method ${run.method} needs calibration data)`, calibration);
  if (calibration instanceof CalibrationBundle) checkBundle(model, calibration);
  const dir = options.workDir ?? join(tmpdir(), `vlmq-run-${(await defaultFingerprint(model, calibration, run)).slice(0, 16)}`);
  const emit = options.onEvent ?? (() => {});
  const work = await WorkDir.open(dir, { model: model.dir }, (message) => emit({ type: 'notice', message }));
  try {
    const bundle = calibration instanceof Calibration ? await buildBundle(model, calibration, work.path, options, run.device) : calibration;
    try {
      const store = await LayerStore.open(work.path, await runFingerprint(model, bundle, fingerprinted(run)), model.config.text.numLayers, options.resume ?? false);
      await calibratedLoop(model, bundle, store, {
        method: run.method as CalibratedMethod, base: run.base!, linear: run.linear, importance: run.importance ?? DEFAULT_IMPORTANCE, batchTokens: run.batchTokens,
        memoryBytes: run.memory, device: run.device, spillDir: work.path, signal: options.signal, onEvent: options.onEvent,
      });
      return new QuantizationRun(model, run.settings, store.source(), work);
    } finally {
      if (bundle !== calibration) await bundle.close();
    }
  } catch (error) {
    await work.closeAfterFailure();
    throw error;
  }
}

/** Misuse of the call itself, said at the call rather than as a TypeError later. */
function checkArguments(model: Model, calibration: unknown, options: unknown): void {
  if (!(model instanceof Model)) throw invalidParameterError('model', 'a model from loadModel()', model);
  if (calibration != null && !(calibration instanceof Calibration) && !(calibration instanceof CalibrationBundle)) {
    throw invalidParameterError('calibration', 'a Calibration, a CalibrationBundle or null', calibration);
  }
  if (typeof options !== 'object' || options === null) throw invalidParameterError('options', 'an object', options);
  const { onEvent, signal } = options as QuantizeModelOptions;
  if (onEvent !== undefined && typeof onEvent !== 'function') throw invalidParameterError('onEvent', 'a function', onEvent);
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidParameterError('signal', 'an AbortSignal', signal);
}

const fingerprinted = ({ method, base, linear, importance, batchTokens }: ResolvedQuantizeOptions) => ({ method, base, linear, importance, batchTokens });

/** What names the default work directory: the run's fingerprint, or for image–text data the calibration's. */
function defaultFingerprint(model: Model, calibration: CalibrationBundle | Calibration, run: ResolvedQuantizeOptions): Promise<string> {
  return calibration instanceof Calibration ? calibration.fingerprint(model) : runFingerprint(model, calibration, fingerprinted(run));
}

/**
 * Image–text calibration: the bundle is built into the work directory, or reused from there when
 * it was built from the same records, options and model; an unfinished run of other settings is
 * refused before anything is built.
 */
async function buildBundle(model: Model, calibration: Calibration, dir: string, options: QuantizeModelOptions, device: Device): Promise<CalibrationBundle> {
  await LayerStore.refuseUnfinished(dir, options.resume ?? false);
  const emit = options.onEvent ?? (() => {});
  const { bundle, report } = await calibration.bundle(model, join(dir, BUNDLE_FILE), {
    signal: options.signal,
    device,
    onProgress: (done, total) => emit({ type: 'calibration-progress', done, total }),
  });
  emit({ type: 'calibration-set', report, samples: bundle.samples });
  return bundle;
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
      return quantizeLinear(weight, null, { ...run.linear, device: run.device });
    },
  };
  return new QuantizationRun(model, run.settings, source);
}
