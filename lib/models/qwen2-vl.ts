// Qwen2-VL (Qwen2VLForConditionalGeneration): a Qwen2 language model with M-RoPE and a ViT of
// LayerNorm blocks, quick-GELU MLPs and a 2×2 patch merger (docs/formats.md §3).
import type { ConfigReader } from './config-fields.js';
import { qwenLanguagePrefixes, qwenLayout, qwenText, qwenVisionPrefix } from './qwen-vl-shared.js';
import type { Architecture, ExpectedTensor, ModelConfig, QwenVisionConfig, TensorLayout } from './types.js';

function parseVision(vision: ConfigReader, llmHidden: number): QwenVisionConfig {
  // Hub configs are sparse: the class defaults fill the rest (formats.md §3.1).
  const width = vision.integer('embed_dim', 1280);
  const numHeads = vision.integer('num_heads', 16);
  if (width % numHeads !== 0) throw vision.error('num_heads', `a divisor of embed_dim (${width})`, numHeads);
  return {
    kind: 'qwen2_vl',
    depth: vision.integer('depth', 32),
    width,
    numHeads,
    intermediateSize: width * vision.number('mlp_ratio', 4),
    // In Qwen2-VL `vision_config.hidden_size` is the merger's output, i.e. the LLM width.
    outHiddenSize: vision.integer('hidden_size', llmHidden),
    patchSize: vision.integer('patch_size', 14),
    temporalPatchSize: vision.integer('temporal_patch_size', 2),
    spatialMergeSize: vision.integer('spatial_merge_size', 2),
    inChannels: vision.integer('in_chans', vision.integer('in_channels', 3)),
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

function visionTensors(config: ModelConfig, layout: TensorLayout): ExpectedTensor[] {
  const v = config.vision as QwenVisionConfig;
  const prefix = qwenVisionPrefix(layout);
  const W = v.width, I = v.intermediateSize;
  const tensors: ExpectedTensor[] = [qwenPatchEmbed(prefix, v)];
  for (let j = 0; j < v.depth; j++) {
    const block = `${prefix}.blocks.${j}`;
    for (const norm of ['norm1', 'norm2']) {
      tensors.push({ name: `${block}.${norm}.weight`, shape: [W] }, { name: `${block}.${norm}.bias`, shape: [W] });
    }
    tensors.push(...qwenAttention(block, W));
    tensors.push(
      { name: `${block}.mlp.fc1.weight`, shape: [I, W] }, { name: `${block}.mlp.fc1.bias`, shape: [I] },
      { name: `${block}.mlp.fc2.weight`, shape: [W, I] }, { name: `${block}.mlp.fc2.bias`, shape: [W] },
    );
  }
  return [...tensors, ...qwenMergerTensors(prefix, v, 'layer')];
}

export const qwen2VL: Architecture = {
  id: 'qwen2_vl',
  displayName: 'Qwen2-VL',
  configClasses: ['Qwen2VLForConditionalGeneration'],
  modelTypes: ['qwen2_vl'],
  parseConfig(raw, file): ModelConfig {
    const { top, text, tokens } = qwenText(raw, file);
    return { architecture: 'qwen2_vl', text, vision: parseVision(top.child('vision_config'), text.hiddenSize), tokens, raw };
  },
  layoutOf: qwenLayout,
  languagePrefixes: qwenLanguagePrefixes,
  visionTensors,
  blockNameToQuantize: (layout) => qwenLanguagePrefixes(layout).layers,
};
