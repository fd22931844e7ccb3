// LLaVA-OneVision in the llava-hf layout (LlavaOnevisionForConditionalGeneration) with a Qwen2
// language model: a SigLIP vision tower, a two-layer projector and a learned `image_newline`
// (docs/formats.md §4.1).
import { ConfigReader, MAX_LAYERS, tokenIds } from './config-fields.js';
import { parseTextConfig } from './decoder.js';
import type { Architecture, ExpectedTensor, LanguagePrefixes, ModelConfig, SiglipVisionConfig, TensorLayout } from './types.js';

function parseVision(vision: ConfigReader): SiglipVisionConfig {
  const width = vision.integer('hidden_size', 1152);
  const numHeads = vision.integer('num_attention_heads', 16);
  if (width % numHeads !== 0) throw vision.error('num_attention_heads', `a divisor of hidden_size (${width})`, numHeads);
  const patchSize = vision.integer('patch_size', 14);
  const imageSize = vision.integer('image_size', 384, patchSize, 65536);
  return {
    kind: 'siglip',
    depth: vision.integer('num_hidden_layers', 26, 1, MAX_LAYERS),
    width,
    numHeads,
    intermediateSize: vision.integer('intermediate_size', 4304),
    patchSize,
    imageSize,
    inChannels: vision.integer('num_channels', 3),
    layerNormEps: vision.positive('layer_norm_eps', 1e-6),
  };
}

function languagePrefixes(layout: TensorLayout): LanguagePrefixes {
  return layout === 'original'
    ? { layers: 'language_model.model.layers', embedTokens: 'language_model.model.embed_tokens', norm: 'language_model.model.norm', lmHead: 'language_model.lm_head' }
    : { layers: 'model.language_model.layers', embedTokens: 'model.language_model.embed_tokens', norm: 'model.language_model.norm', lmHead: 'lm_head' };
}

function visionTensors(config: ModelConfig, layout: TensorLayout): ExpectedTensor[] {
  const v = config.vision as SiglipVisionConfig;
  const root = layout === 'original' ? '' : 'model.';
  const tower = `${root}vision_tower.vision_model`;
  const W = v.width, I = v.intermediateSize, H = config.text.hiddenSize;
  // The patch convolution has no padding: 384 px in patches of 14 gives 27 per side (§4.1).
  const positions = Math.floor(v.imageSize / v.patchSize) ** 2;
  const tensors: ExpectedTensor[] = [
    { name: `${tower}.embeddings.patch_embedding.weight`, shape: [W, v.inChannels, v.patchSize, v.patchSize] },
    { name: `${tower}.embeddings.patch_embedding.bias`, shape: [W] },
    { name: `${tower}.embeddings.position_embedding.weight`, shape: [positions, W] },
  ];
  for (let i = 0; i < v.depth; i++) {
    const layer = `${tower}.encoder.layers.${i}`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      tensors.push({ name: `${layer}.self_attn.${proj}.weight`, shape: [W, W] }, { name: `${layer}.self_attn.${proj}.bias`, shape: [W] });
    }
    for (const norm of ['layer_norm1', 'layer_norm2']) {
      tensors.push({ name: `${layer}.${norm}.weight`, shape: [W] }, { name: `${layer}.${norm}.bias`, shape: [W] });
    }
    tensors.push(
      { name: `${layer}.mlp.fc1.weight`, shape: [I, W] }, { name: `${layer}.mlp.fc1.bias`, shape: [I] },
      { name: `${layer}.mlp.fc2.weight`, shape: [W, I] }, { name: `${layer}.mlp.fc2.bias`, shape: [W] },
    );
  }
  // The feature layer is the last encoder layer's output; conversions may keep or drop the
  // final LayerNorm, which the forward pass does not use.
  tensors.push({ name: `${tower}.post_layernorm.weight`, shape: [W], optional: true }, { name: `${tower}.post_layernorm.bias`, shape: [W], optional: true });
  const projector = `${root}multi_modal_projector`;
  tensors.push(
    { name: `${projector}.linear_1.weight`, shape: [H, W] }, { name: `${projector}.linear_1.bias`, shape: [H] },
    { name: `${projector}.linear_2.weight`, shape: [H, H] }, { name: `${projector}.linear_2.bias`, shape: [H] },
    { name: `${root}image_newline`, shape: [H] },
  );
  return tensors;
}

export const llavaOneVision: Architecture = {
  id: 'llava_onevision',
  displayName: 'LLaVA-OneVision (Qwen2)',
  configClasses: ['LlavaOnevisionForConditionalGeneration'],
  modelTypes: ['llava_onevision'],
  parseConfig(raw, file): ModelConfig {
    const top = new ConfigReader(file, '', raw);
    const textReader = top.child('text_config');
    const textType = textReader.get('model_type');
    if (textType !== undefined && textType !== 'qwen2') throw textReader.error('model_type', '"qwen2" (vlmq supports LLaVA-OneVision with a Qwen2 language model)', textType);
    // Either level may say the embeddings are tied; lm_head is then optional.
    const tied = top.boolean('tie_word_embeddings', false) || textReader.boolean('tie_word_embeddings', false);
    const text = parseTextConfig(textReader, { mrope: false, tieDefault: tied });
    const visionReader = top.child('vision_config');
    const visionType = visionReader.get('model_type');
    if (visionType !== undefined && visionType !== 'siglip_vision_model') throw visionReader.error('model_type', '"siglip_vision_model"', visionType);
    const tokens = tokenIds(top, ['image_token_index', 'video_token_index']);
    return { architecture: 'llava_onevision', text: { ...text, tieWordEmbeddings: tied || text.tieWordEmbeddings }, vision: parseVision(visionReader), tokens, raw };
  },
  layoutOf(names) {
    for (const name of names) if (name.startsWith('model.language_model.')) return 'transformers-4.52';
    return 'original';
  },
  languagePrefixes,
  visionTensors,
  blockNameToQuantize: (layout) => languagePrefixes(layout).layers,
};
