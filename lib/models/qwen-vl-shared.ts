// What Qwen2-VL and Qwen2.5-VL share: tensor layouts, config reading of the language model, the
// vision tower's common tensors and the Architecture around them (docs/formats.md §3.1–§3.3).
import { ConfigReader, type Json, tokenIds } from './config-fields.js';
import { parseTextConfig, textFields } from './decoder.js';
import type { Architecture, ExpectedTensor, LanguagePrefixes, ModelConfig, QwenVisionConfig, TensorLayout, TextConfig } from './types.js';

export const QWEN_TOKEN_FIELDS = [
  'image_token_id', 'video_token_id', 'vision_start_token_id', 'vision_end_token_id', 'vision_token_id',
  'bos_token_id', 'eos_token_id',
] as const;

export function qwenLayout(names: ReadonlySet<string>): TensorLayout {
  for (const name of names) if (name.startsWith('model.language_model.')) return 'transformers-4.52';
  return 'original';
}

export function qwenLanguagePrefixes(layout: TensorLayout): LanguagePrefixes {
  const lm = layout === 'original' ? 'model' : 'model.language_model';
  return { layers: `${lm}.layers`, embedTokens: `${lm}.embed_tokens`, norm: `${lm}.norm`, lmHead: 'lm_head' };
}

export function qwenVisionPrefix(layout: TensorLayout): string {
  return layout === 'original' ? 'visual' : 'model.visual';
}

export function qwenText(raw: Json, file: string): { top: ConfigReader; text: TextConfig; tokens: Record<string, number> } {
  const top = new ConfigReader(file, '', raw);
  const text = parseTextConfig(textFields(top, raw), { mrope: true, tieDefault: false });
  return { top, text, tokens: tokenIds(top, QWEN_TOKEN_FIELDS) };
}

/** The ViT's head count: it divides the width, and each head splits in four for the 2-D rotary embedding. */
export function qwenVisionHeads(vision: ConfigReader, width: number, widthKey: string): number {
  const numHeads = vision.integer('num_heads', 16);
  if (width % numHeads !== 0) throw vision.error('num_heads', `a divisor of ${widthKey} (${width})`, numHeads);
  const headDim = width / numHeads;
  if (headDim % 4 !== 0) throw vision.error('num_heads', `a head count that makes ${widthKey} / num_heads a multiple of 4 (the 2-D rotary embedding), not ${headDim}`, numHeads);
  return numHeads;
}

/** Patch and merge sizes, within what the native tower handles. */
export function qwenPatchGeometry(vision: ConfigReader) {
  return {
    patchSize: vision.integer('patch_size', 14),
    temporalPatchSize: vision.integer('temporal_patch_size', 2, 1, 64),
    spatialMergeSize: vision.integer('spatial_merge_size', 2, 1, 64),
  };
}

export function qwenMergerTensors(prefix: string, v: QwenVisionConfig, norm: 'layer' | 'rms'): ExpectedTensor[] {
  const merged = v.width * v.spatialMergeSize ** 2;
  return [
    { name: `${prefix}.merger.ln_q.weight`, shape: [v.width] },
    ...(norm === 'layer' ? [{ name: `${prefix}.merger.ln_q.bias`, shape: [v.width] }] : []),
    { name: `${prefix}.merger.mlp.0.weight`, shape: [merged, merged] },
    { name: `${prefix}.merger.mlp.0.bias`, shape: [merged] },
    { name: `${prefix}.merger.mlp.2.weight`, shape: [v.outHiddenSize, merged] },
    { name: `${prefix}.merger.mlp.2.bias`, shape: [v.outHiddenSize] },
  ];
}

export function qwenPatchEmbed(prefix: string, v: QwenVisionConfig): ExpectedTensor {
  return { name: `${prefix}.patch_embed.proj.weight`, shape: [v.width, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize] };
}

export function qwenAttention(block: string, width: number): ExpectedTensor[] {
  return [
    { name: `${block}.attn.qkv.weight`, shape: [3 * width, width] },
    { name: `${block}.attn.qkv.bias`, shape: [3 * width] },
    { name: `${block}.attn.proj.weight`, shape: [width, width] },
    { name: `${block}.attn.proj.bias`, shape: [width] },
  ];
}

/** A Qwen-VL architecture: the shared language model and layouts around its own vision config and tensors. */
export function qwenArchitecture(spec: {
  id: 'qwen2_vl' | 'qwen2_5_vl';
  displayName: string;
  configClass: string;
  parseVision: (vision: ConfigReader, llmHidden: number) => QwenVisionConfig;
  visionTensors: (config: ModelConfig, layout: TensorLayout) => ExpectedTensor[];
}): Architecture {
  return {
    id: spec.id,
    displayName: spec.displayName,
    configClasses: [spec.configClass],
    modelTypes: [spec.id],
    parseConfig(raw, file): ModelConfig {
      const { top, text, tokens } = qwenText(raw, file);
      return { architecture: spec.id, text, vision: spec.parseVision(top.child('vision_config'), text.hiddenSize), tokens, raw };
    },
    layoutOf: qwenLayout,
    languagePrefixes: qwenLanguagePrefixes,
    visionTensors: spec.visionTensors,
    blockNameToQuantize: (layout) => qwenLanguagePrefixes(layout).layers,
  };
}
