// quantize(model, calibration, options) → a run that can be saved as a GPTQ or fake-quant
// checkpoint (DESIGN.md, "Public API"). RTN needs no calibration data: each linear is computed
// while the export writes it. GPTQ, GPTAQ and VLMQ run the calibrated layer loop over a
// calibration bundle, layer by layer into a work directory that makes the run resumable.
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CalibrationBundle } from '../data/bundle.js';
import { VlmqError, invalidParameterError } from '../errors.js';
import { type ExportFormat, type ExportReport, type QuantizationSettings, type QuantizedLinearData, type QuantizedSource, exportModel } from '../io/export.js';
import type { GptqBits } from '../io/gptq-pack.js';
import type { Model } from '../models/model.js';
import type { LinearSpec } from '../models/types.js';
import { type QuantizeLinearOptions, resolveLinearOptions } from '../quant/options.js';
import { quantizeLinear } from '../quant/quantize-linear.js';
import { type PipelineEvent, calibratedLoop } from './calibrated.js';
import { runFingerprint } from './fingerprint.js';
import type { ImportanceOptions } from './importance.js';
import { LayerStore } from './store.js';

export type ModelMethod = 'rtn' | 'gptq' | 'gptaq' | 'vlmq';

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

export async function quantize(model: Model, calibration: CalibrationBundle | null, options: QuantizeModelOptions = {}): Promise<QuantizationRun> {
  const method = options.method ?? (calibration ? 'vlmq' : 'rtn');
  if (method === 'rtn') return quantizeRtn(model, options);
  if (!calibration) throw invalidParameterError('calibration', `a calibration bundle (method ${method} needs calibration data)`, calibration);
  checkBundle(model, calibration);
  const base = options.base ?? (method === 'gptq' ? 'gptq' : method === 'gptaq' ? 'gptaq' : options.bits === 2 ? 'gptq' : 'gptaq');
  if (method !== 'vlmq' && options.base !== undefined && options.base !== method) throw invalidParameterError('base', `${method} (only vlmq chooses a base)`, options.base);
  const { method: _m, base: _b, importance: imp, batchTokens = 4096, memory = 4 * 2 ** 30, workDir, resume = false, onEvent, signal, ...rest } = options;
  const linear = resolveLinearOptions({ ...rest, method: base });
  const importance: ImportanceOptions = { norm: imp?.norm ?? 'l1', power: imp?.power ?? 1, fallback: imp?.fallback ?? 'uniform' };
  if (!['l1', 'l2'].includes(importance.norm)) throw invalidParameterError('importance.norm', "'l1' or 'l2'", importance.norm);
  if (![1, 2].includes(importance.power)) throw invalidParameterError('importance.power', '1 or 2', importance.power);
  if (!['uniform', 'rtn-probe'].includes(importance.fallback)) throw invalidParameterError('importance.fallback', "'uniform' or 'rtn-probe'", importance.fallback);
  if (!Number.isInteger(batchTokens) || batchTokens < 1) throw invalidParameterError('batchTokens', 'a positive integer', batchTokens);
  if (!(memory >= 0)) throw invalidParameterError('memory', 'a number of bytes ≥ 0', memory);

  const recorded = { method, base, linear, importance: method === 'vlmq' ? importance : null, batchTokens };
  const fingerprint = await runFingerprint(model, calibration, recorded);
  const dir = workDir ?? join(tmpdir(), `vlmq-run-${fingerprint.slice(0, 16)}`);
  const store = await LayerStore.open(dir, fingerprint, model.config.text.numLayers, resume);
  await calibratedLoop(model, calibration, store, {
    method, base, linear: { ...linear, signal }, importance, batchTokens, memoryBytes: memory, spillDir: dir, signal, onEvent,
  });
  const settings: QuantizationSettings = {
    method, bits: linear.bits as GptqBits, groupSize: linear.groupSize, sym: linear.sym, actOrder: linear.actOrder,
    staticGroups: linear.staticGroups, percdamp: linear.percdamp, trueSequential: true,
  };
  return new QuantizationRun(model, settings, store.source(), dir);
}

function checkBundle(model: Model, bundle: CalibrationBundle): void {
  const { hiddenSize, mropeSection } = model.config.text;
  if (bundle.hidden !== hiddenSize) throw new VlmqError('ERR_VLMQ_BAD_FILE', `${bundle.path}: embeddings of width ${bundle.hidden}, but the model's hidden size is ${hiddenSize}`);
  const rows = mropeSection ? 3 : 1;
  if (bundle.positionRows !== rows) {
    throw new VlmqError('ERR_VLMQ_BAD_FILE', `${bundle.path}: position ids with ${bundle.positionRows} row(s), but ${model.architecture.displayName} needs ${rows} (${mropeSection ? 'M-RoPE' : '1-D RoPE'})`);
  }
}

function quantizeRtn(model: Model, options: QuantizeModelOptions): QuantizationRun {
  const { method: _m, base, importance, batchTokens, memory, workDir, resume, onEvent, ...linearOptions } = options;
  void [base, importance, batchTokens, memory, workDir, resume, onEvent];
  const resolved = resolveLinearOptions({ ...linearOptions, method: 'rtn' });
  const settings: QuantizationSettings = {
    method: 'rtn', bits: resolved.bits as GptqBits, groupSize: resolved.groupSize, sym: resolved.sym,
    actOrder: false, staticGroups: resolved.staticGroups, percdamp: resolved.percdamp, trueSequential: true,
  };
  const source: QuantizedSource = {
    async get(linear: LinearSpec): Promise<QuantizedLinearData> {
      const { weight } = await model.readLinear(linear);
      return quantizeLinear(weight, null, { ...linearOptions, method: 'rtn' });
    },
  };
  return new QuantizationRun(model, settings, source);
}
