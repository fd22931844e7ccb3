// Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration): Qwen2-VL's language model with a ViT of
// RMSNorm blocks, SiLU-gated MLPs with biases and window attention (docs/formats.md §3.6).
import { type ConfigReader, MAX_LAYERS } from './config-fields.js';
import { qwenArchitecture, qwenAttention, qwenMergerTensors, qwenPatchEmbed, qwenPatchGeometry, qwenVisionHeads, qwenVisionPrefix } from './qwen-vl-shared.js';
import type { ExpectedTensor, ModelConfig, QwenVisionConfig, TensorLayout } from './types.js';

function parseVision(vision: ConfigReader, llmHidden: number): QwenVisionConfig {
  const width = vision.integer('hidden_size', 1280);
  const numHeads = qwenVisionHeads(vision, width, 'hidden_size');
  const depth = vision.integer('depth', 32, 1, MAX_LAYERS);
  const fullatt = vision.integers('fullatt_block_indexes', [7, 15, 23, 31]);
  const outside = fullatt.find((j) => j >= depth);
  if (outside !== undefined) throw vision.error('fullatt_block_indexes', `block indexes below depth (${depth})`, fullatt);
  const geometry = qwenPatchGeometry(vision);
  // A window holds whole merged patches.
  const windowSize = vision.integer('window_size', 112, geometry.spatialMergeSize * geometry.patchSize);
  return {
    kind: 'qwen2_5_vl',
    depth,
    width,
    numHeads,
    intermediateSize: vision.integer('intermediate_size', 3420),
    outHiddenSize: vision.integer('out_hidden_size', llmHidden),
    ...geometry,
    inChannels: vision.integer('in_channels', vision.integer('in_chans', 3)),
    windowSize,
    fullattBlockIndexes: fullatt,
  };
}

function visionTensors(config: ModelConfig, layout: TensorLayout): ExpectedTensor[] {
  const v = config.vision as QwenVisionConfig;
  const prefix = qwenVisionPrefix(layout);
  const W = v.width, I = v.intermediateSize;
  const tensors: ExpectedTensor[] = [qwenPatchEmbed(prefix, v)];
  for (let j = 0; j < v.depth; j++) {
    const block = `${prefix}.blocks.${j}`;
    tensors.push({ name: `${block}.norm1.weight`, shape: [W] }, { name: `${block}.norm2.weight`, shape: [W] });
    tensors.push(...qwenAttention(block, W));
    for (const proj of ['gate_proj', 'up_proj']) {
      tensors.push({ name: `${block}.mlp.${proj}.weight`, shape: [I, W] }, { name: `${block}.mlp.${proj}.bias`, shape: [I] });
    }
    tensors.push({ name: `${block}.mlp.down_proj.weight`, shape: [W, I] }, { name: `${block}.mlp.down_proj.bias`, shape: [W] });
  }
  return [...tensors, ...qwenMergerTensors(prefix, v, 'rms')];
}

export const qwen2_5VL = qwenArchitecture({ id: 'qwen2_5_vl', displayName: 'Qwen2.5-VL', configClass: 'Qwen2_5_VLForConditionalGeneration', parseVision, visionTensors });
