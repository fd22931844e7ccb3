// quantize(model, calibration, options) → a run that can be saved as a GPTQ or fake-quant
// checkpoint (DESIGN.md, "Public API"). This release quantizes without calibration data: RTN,
// computed linear by linear while the export writes, so memory stays near one linear.
// GPTQ, GPTAQ and VLMQ need the calibration pipeline and say so.
import { VlmqError, invalidParameterError } from '../errors.js';
import { type ExportFormat, type ExportReport, type QuantizationSettings, type QuantizedLinearData, type QuantizedSource, exportModel } from '../io/export.js';
import type { GptqBits } from '../io/gptq-pack.js';
import type { Model } from '../models/model.js';
import type { LinearSpec } from '../models/types.js';
import { type QuantizeLinearOptions, resolveLinearOptions } from '../quant/options.js';
import { quantizeLinear } from '../quant/quantize-linear.js';

export interface QuantizeModelOptions extends Omit<QuantizeLinearOptions, 'method' | 'onProgress'> {
  method?: 'rtn' | 'gptq' | 'gptaq' | 'vlmq';
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
  ) {}

  /** Writes the quantized model to `dir`: GPTQ (default `gptq` for symmetric, `gptq_v2` otherwise) or fake-quant. */
  save(dir: string, options: SaveOptions = {}): Promise<ExportReport> {
    const format = options.format ?? (this.settings.sym ? 'gptq' : 'gptq_v2');
    return exportModel(this.model, this.source, dir, { ...options, format, settings: this.settings });
  }
}

export async function quantize(model: Model, calibration: null, options: QuantizeModelOptions = {}): Promise<QuantizationRun> {
  const method = options.method ?? 'rtn';
  if (method !== 'rtn') {
    throw new VlmqError('ERR_VLMQ_UNSUPPORTED', `method ${method} needs calibration data and the calibration pipeline, which this release does not have yet; use method rtn`);
  }
  if (calibration !== null) throw invalidParameterError('calibration', 'null (RTN needs no calibration data)', calibration);
  const { method: _ignored, ...linearOptions } = options;
  const resolved = resolveLinearOptions({ ...linearOptions, method: 'rtn' });
  const settings: QuantizationSettings = {
    method,
    bits: resolved.bits as GptqBits,
    groupSize: resolved.groupSize,
    sym: resolved.sym,
    actOrder: false,
    staticGroups: resolved.staticGroups,
    percdamp: resolved.percdamp,
    trueSequential: true,
  };
  const source: QuantizedSource = {
    async get(linear: LinearSpec): Promise<QuantizedLinearData> {
      const { weight } = await model.readLinear(linear);
      return quantizeLinear(weight, null, { ...linearOptions, method: 'rtn' });
    },
  };
  return new QuantizationRun(model, settings, source);
}
