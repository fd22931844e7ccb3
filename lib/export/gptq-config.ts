// Reading back the quantization settings of a GPTQ checkpoint (config.json quantization_config
// and quantize_config.json, docs/formats.md §2.6) with the checks loaders make.
import { describeValue, fileError } from '../errors.js';
import type { GptqBits } from './gptq-pack.js';

export interface GptqSettings {
  bits: GptqBits;
  groupSize: number;
  descAct: boolean;
  sym: boolean;
  format: 'gptq' | 'gptq_v2';
  staticGroups: boolean;
  raw: Record<string, unknown>;
}

/** The quantization_config of a config.json, or null when the checkpoint is not quantized. */
export function gptqSettings(config: Record<string, unknown>, file: string): GptqSettings | null {
  const raw = config.quantization_config;
  if (raw === undefined) return null;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw fileError(file, `quantization_config: expected an object, found ${describeValue(raw)}`);
  const q = raw as Record<string, unknown>;
  const field = (key: string, ok: (v: unknown) => boolean, expected: string) => {
    if (!ok(q[key])) throw fileError(file, `quantization_config.${key}: expected ${expected}, found ${describeValue(q[key])}`);
    return q[key];
  };
  field('quant_method', (v) => v === 'gptq', '"gptq" (vlmq reads GPTQ checkpoints)');
  const bits = field('bits', (v) => [2, 3, 4, 8].includes(v as number), 'one of 2, 3, 4, 8') as GptqBits;
  const groupSize = field('group_size', (v) => Number.isInteger(v) && ((v as number) === -1 || (v as number) > 0), '-1 or a positive integer') as number;
  const descAct = field('desc_act', (v) => typeof v === 'boolean', 'a boolean') as boolean;
  const sym = field('sym', (v) => typeof v === 'boolean', 'a boolean') as boolean;
  const format = (q.checkpoint_format ?? 'gptq') as string;
  if (format !== 'gptq' && format !== 'gptq_v2') throw fileError(file, `quantization_config.checkpoint_format: expected "gptq" or "gptq_v2", found ${describeValue(format)}`);
  if (q.format !== undefined && q.format !== format) throw fileError(file, `quantization_config.format (${describeValue(q.format)}) disagrees with checkpoint_format (${describeValue(format)})`);
  if ('is_marlin_format' in q) throw fileError(file, 'quantization_config.is_marlin_format is present; current GPTQModel rejects it');
  return { bits, groupSize, descAct, sym, format, staticGroups: q.static_groups === true, raw: q };
}
