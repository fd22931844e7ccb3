// Qwen2-VL (Qwen2VLForConditionalGeneration): a Qwen2 language model with M-RoPE and a ViT of
// LayerNorm blocks, quick-GELU MLPs and a 2×2 patch merger (docs/formats.md §3).
import { type ConfigReader, MAX_LAYERS } from './config-fields.js';
import { qwenArchitecture, qwenAttention, qwenMergerTensors, qwenPatchEmbed, qwenPatchGeometry, qwenVisionHeads, qwenVisionPrefix } from './qwen-vl-shared.js';
import type { ExpectedTensor, ModelConfig, QwenVisionConfig, TensorLayout } from './types.js';

function parseVision(vision: ConfigReader, llmHidden: number): QwenVisionConfig {
  // Hub configs are sparse: the class defaults fill the rest (formats.md §3.1).
  const width = vision.integer('embed_dim', 1280);
  const numHeads = qwenVisionHeads(vision, width, 'embed_dim');
  // The MLP width is embed_dim · mlp_ratio, which must come out a whole number of units.
  const mlpRatio = vision.positive('mlp_ratio', 4);
  if (!Number.isSafeInteger(width * mlpRatio)) throw vision.error('mlp_ratio', `a ratio that makes embed_dim (${width}) · mlp_ratio an integer`, mlpRatio);
  return {
    kind: 'qwen2_vl',
    depth: vision.integer('depth', 32, 1, MAX_LAYERS),
    width,
    numHeads,
    intermediateSize: width * mlpRatio,
    // In Qwen2-VL `vision_config.hidden_size` is the merger's output, i.e. the LLM width.
    outHiddenSize: vision.integer('hidden_size', llmHidden),
    ...qwenPatchGeometry(vision),
    inChannels: vision.integer('in_chans', vision.integer('in_channels', 3)),
  };
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

export const qwen2VL = qwenArchitecture({ id: 'qwen2_vl', displayName: 'Qwen2-VL', configClass: 'Qwen2VLForConditionalGeneration', parseVision, visionTensors });
