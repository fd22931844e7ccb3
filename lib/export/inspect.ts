// `vlmq inspect`: what a checkpoint directory holds — architecture, dimensions, parameter counts
// (language model and vision side), dtypes, size on disk and, for a GPTQ checkpoint, its
// quantization settings — and every problem loadModel would refuse it for (a tensor missing, of
// the wrong dtype or shape, or one the config does not account for). It reads headers only;
// tensor values are checked when a command reads them.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UNKNOWN_TENSOR_POLICIES, type TensorProblem, type TensorRule, type UnknownTensorPolicy, checkTensors, floatRules } from '../models/checks.js';
import { layerLinears } from '../models/decoder.js';
import { expectedTensors, parseModelConfig } from '../models/registry.js';
import type { Architecture, LanguagePrefixes, ModelConfig, TensorLayout } from '../models/types.js';
import { invalidParameterError } from '../errors.js';
import { byteSize, numel } from '../tensor.js';
import { CONFIG_FILE, Checkpoint } from '../io/checkpoint.js';
import { type GptqSettings, gptqSettings } from './gptq-config.js';
import { gptqShapes } from './gptq-pack.js';

export interface InspectReport {
  dir: string;
  architecture: string;
  layout: TensorLayout;
  config: Pick<ModelConfig, 'text' | 'vision'>;
  /** Parameters of the language model and of everything else (vision tower, projector). */
  parameters: { language: number; vision: number };
  dtypes: Record<string, { tensors: number; bytes: number }>;
  files: { name: string; bytes: number }[];
  diskBytes: number;
  quantization: (Omit<GptqSettings, 'raw'> & { quantizedLinears: number; producer: string | null }) | null;
  /** Every problem loadModel would refuse the checkpoint for (for a GPTQ checkpoint: its packed tensor set); empty when none. */
  problems: TensorProblem[];
  /** Tensors the architecture and config do not account for (a problem, unless inspected with unknownTensors: 'keep'). */
  unknownTensors: string[];
}

export interface InspectOptions {
  /** As loadModel's: 'keep' lists unknown tensors without counting them as a problem. Default 'error'. */
  unknownTensors?: UnknownTensorPolicy;
}

export async function inspectCheckpoint(dir: string, options: InspectOptions = {}): Promise<InspectReport> {
  const policy = options.unknownTensors ?? 'error';
  if (!UNKNOWN_TENSOR_POLICIES.includes(policy)) throw invalidParameterError('unknownTensors', "'error' or 'keep'", policy);
  const checkpoint = await Checkpoint.open(dir);
  try {
    const configFile = join(dir, CONFIG_FILE);
    const { architecture, config } = parseModelConfig(checkpoint.config, configFile);
    const layout = architecture.layoutOf(new Set(checkpoint.tensors.keys()));
    const settings = gptqSettings(checkpoint.config, configFile);
    const lm = Object.values(architecture.languagePrefixes(layout));
    const parameters = { language: 0, vision: 0 };
    const dtypes: InspectReport['dtypes'] = {};
    let quantizedLinears = 0;
    for (const t of checkpoint.tensors.values()) {
      const count = parameterCount(t.name, t.shape, settings);
      parameters[lm.some((prefix) => t.name.startsWith(`${prefix}.`)) ? 'language' : 'vision'] += count;
      if (t.name.endsWith('.qweight')) quantizedLinears++;
      const entry = (dtypes[t.dtype] ??= { tensors: 0, bytes: 0 });
      entry.tensors++;
      entry.bytes += byteSize(t.dtype, t.shape);
    }
    const names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name).sort();
    const files = await Promise.all(names.map(async (name) => ({ name, bytes: (await stat(join(dir, name))).size })));
    const { problems, unknownTensors } = tensorCheck(checkpoint, architecture, config, layout, settings);
    const meta = settings?.raw.meta as { quantizer?: unknown } | undefined;
    const { raw: _raw, ...rest } = settings ?? { raw: null };
    return {
      dir,
      architecture: architecture.displayName,
      layout,
      config: { text: config.text, vision: config.vision },
      parameters,
      dtypes,
      files,
      diskBytes: files.reduce((sum, f) => sum + f.bytes, 0),
      quantization: settings ? { ...(rest as Omit<GptqSettings, 'raw'>), quantizedLinears, producer: Array.isArray(meta?.quantizer) ? meta!.quantizer.join(', ') : null } : null,
      problems: policy === 'keep' ? problems.filter((p) => p.kind !== 'unknown-tensors') : problems,
      unknownTensors,
    };
  } finally {
    await checkpoint.close();
  }
}

/** Weights a tensor stands for: a packed qweight counts its unpacked K·N; qzeros/scales/g_idx count nothing. */
function parameterCount(name: string, shape: readonly number[], settings: GptqSettings | null): number {
  if (settings && name.endsWith('.qweight')) return (shape[0] * 32 / settings.bits) * shape[1];
  if (settings && /\.(qzeros|scales|g_idx)$/.test(name)) return 0;
  return numel(shape);
}

/** loadModel's tensor checks; a GPTQ checkpoint is checked against its packed tensor set instead. */
function tensorCheck(checkpoint: Checkpoint, architecture: Architecture, config: ModelConfig, layout: TensorLayout, settings: GptqSettings | null) {
  const expected = expectedTensors(architecture, config, layout);
  const prefixes = architecture.languagePrefixes(layout);
  const naming = { layers: prefixes.layers, text: config.text };
  if (settings === null) return checkTensors(checkpoint, floatRules(expected), naming);
  const { rules, problems } = gptqRules(floatRules(expected), config, prefixes, settings);
  const check = checkTensors(checkpoint, rules, naming);
  return { ...check, problems: [...problems, ...check.problems] };
}

/**
 * The tensors of a GPTQ checkpoint (docs/formats.md §2.1): each decoder linear's `.weight` becomes
 * qweight, qzeros and g_idx (I32) and scales (a float); every other tensor stays a float. A
 * linear whose dimensions cannot be packed at these settings is itself a problem.
 */
function gptqRules(floats: TensorRule[], config: ModelConfig, prefixes: LanguagePrefixes, settings: GptqSettings): { rules: TensorRule[]; problems: TensorProblem[] } {
  const all = Array.from({ length: config.text.numLayers }, (_, layer) => layerLinears(config.text, prefixes, layer)).flat();
  const linears = new Map(all.map((l) => [`${l.prefix}.weight`, l]));
  const rules: TensorRule[] = [];
  const problems: TensorProblem[] = [];
  for (const rule of floats) {
    const linear = linears.get(rule.name);
    if (!linear) {
      rules.push(rule);
      continue;
    }
    const groups = settings.groupSize < 0 ? 1 : Math.ceil(linear.inFeatures / settings.groupSize);
    try {
      const shapes = gptqShapes(linear.outFeatures, linear.inFeatures, groups, settings.bits);
      rules.push(
        { name: `${linear.prefix}.qweight`, shape: shapes.qweight, dtypes: ['I32'] },
        { name: `${linear.prefix}.qzeros`, shape: shapes.qzeros, dtypes: ['I32'] },
        { name: `${linear.prefix}.scales`, shape: shapes.scales, dtypes: rule.dtypes },
        { name: `${linear.prefix}.g_idx`, shape: shapes.gIdx, dtypes: ['I32'] },
      );
    } catch (error) {
      problems.push({ kind: 'shape', message: `${linear.prefix}: cannot be packed at ${settings.bits} bits: ${(error as Error).message}`, tensors: [rule.name], files: [] });
    }
  }
  return { rules, problems };
}
