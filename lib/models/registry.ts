// The supported architectures. Adding one means a new file and a line here.
import { VlmqError, describeValue, fileError } from '../errors.js';
import { languageTensors } from './decoder.js';
import { llavaOneVision } from './llava-onevision.js';
import { qwen2_5VL } from './qwen2-5-vl.js';
import { qwen2VL } from './qwen2-vl.js';
import type { Architecture, ExpectedTensor, ModelConfig, TensorLayout } from './types.js';

export const ARCHITECTURES: readonly Architecture[] = [qwen2VL, qwen2_5VL, llavaOneVision];

/** The architecture a config.json names, by `architectures` first and `model_type` second. */
export function architectureOf(raw: Record<string, unknown>, file: string): Architecture {
  const classes = Array.isArray(raw.architectures) ? raw.architectures : [];
  for (const arch of ARCHITECTURES) if (classes.some((c) => arch.configClasses.includes(c as string))) return arch;
  for (const arch of ARCHITECTURES) if (arch.modelTypes.includes(raw.model_type as string)) return arch;
  const supported = ARCHITECTURES.map((a) => `${a.configClasses[0]} (model_type ${a.modelTypes[0]})`).join(', ');
  const named = classes[0] ?? raw.model_type;
  if (named === undefined || named === null) {
    throw new VlmqError('ERR_VLMQ_UNSUPPORTED_MODEL', `${file}: names no architecture (neither \`architectures\` nor \`model_type\` is set); vlmq supports ${supported}`);
  }
  throw new VlmqError('ERR_VLMQ_UNSUPPORTED_MODEL', `${file}: unsupported architecture ${describeValue(named)}; vlmq supports ${supported}`);
}

/** Every tensor a checkpoint of this architecture, config and layout holds. */
export function expectedTensors(arch: Architecture, config: ModelConfig, layout: TensorLayout): ExpectedTensor[] {
  return [...languageTensors(config.text, arch.languagePrefixes(layout)), ...arch.visionTensors(config, layout)];
}

export function parseModelConfig(raw: unknown, file: string): { architecture: Architecture; config: ModelConfig } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw fileError(file, `expected a JSON object, found ${describeValue(raw)}`);
  const architecture = architectureOf(raw as Record<string, unknown>, file);
  return { architecture, config: architecture.parseConfig(raw as Record<string, unknown>, file) };
}
