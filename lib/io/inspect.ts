// `vlmq inspect`: what a checkpoint directory holds — architecture, dimensions, parameter counts
// (language model and vision side), dtypes, size on disk and, for a GPTQ checkpoint, its
// quantization settings. It reads headers only and does not require the tensor set to be complete
// (`vlmq verify` checks that).
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseModelConfig } from '../models/registry.js';
import type { ModelConfig, TensorLayout } from '../models/types.js';
import { byteSize, numel } from '../tensor.js';
import { CONFIG_FILE, Checkpoint } from './checkpoint.js';
import { type GptqSettings, gptqSettings } from './gptq-config.js';

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
}

export async function inspectCheckpoint(dir: string): Promise<InspectReport> {
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
