// The Qwen2 language model shared by every supported architecture (docs/formats.md §3.3, §3.4):
// its config fields, its tensors and its linears, and the true-sequential module groups.
import { fileError } from '../errors.js';
import { sameJson } from '../json.js';
import { ConfigReader, type Json, MAX_LAYERS } from './config-fields.js';
import type { ExpectedTensor, LanguagePrefixes, LinearName, LinearSpec, TextConfig } from './types.js';

/**
 * The order in which the linears of one decoder layer are quantized (algorithm.md §1.1): each
 * group's statistics come from the layer with the earlier groups already quantized.
 */
export const MODULE_GROUPS: readonly (readonly LinearName[])[] = [
  ['k_proj', 'v_proj', 'q_proj'],
  ['o_proj'],
  ['gate_proj', 'up_proj'],
  ['down_proj'],
];

const LINEAR_PATHS: Readonly<Record<LinearName, string>> = {
  q_proj: 'self_attn.q_proj',
  k_proj: 'self_attn.k_proj',
  v_proj: 'self_attn.v_proj',
  o_proj: 'self_attn.o_proj',
  gate_proj: 'mlp.gate_proj',
  up_proj: 'mlp.up_proj',
  down_proj: 'mlp.down_proj',
};

const TEXT_FIELDS = [
  'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
  'head_dim', 'vocab_size', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'tie_word_embeddings',
  'max_position_embeddings',
];

/**
 * The text fields of a config that keeps them flat (original Qwen uploads), nested under
 * `text_config` (newer transformers, llava-hf), or both — in which case they must agree.
 */
export function textFields(top: ConfigReader, raw: Json): ConfigReader {
  if (!top.has('text_config')) return top;
  const nested = top.child('text_config');
  const merged: Json = {};
  for (const key of TEXT_FIELDS) {
    const flat = raw[key], inner = nested.get(key);
    if (flat !== undefined && inner !== undefined && !sameJson(flat, inner)) {
      throw fileError(top.file, `text_config.${key} (${JSON.stringify(inner)}) and ${key} (${JSON.stringify(flat)}) disagree`);
    }
    merged[key] = inner ?? flat;
  }
  return new ConfigReader(top.file, 'text_config', merged);
}

/** Qwen2 dimensions; `mrope` says whether the architecture uses M-RoPE. */
export function parseTextConfig(text: ConfigReader, options: { mrope: boolean; tieDefault: boolean }): TextConfig {
  const hiddenSize = text.integer('hidden_size');
  const numHeads = text.integer('num_attention_heads');
  const numKvHeads = text.integer('num_key_value_heads', numHeads);
  if (hiddenSize % numHeads !== 0 && !text.has('head_dim')) throw text.error('num_attention_heads', `a divisor of hidden_size (${hiddenSize})`, numHeads);
  if (numHeads % numKvHeads !== 0) throw text.error('num_key_value_heads', `a divisor of num_attention_heads (${numHeads})`, numKvHeads);
  const headDim = text.integer('head_dim', hiddenSize / numHeads);
  if (headDim % 2 !== 0) throw text.error('head_dim', 'an even number (rotary embeddings pair dimensions)', headDim);
  return {
    hiddenSize,
    intermediateSize: text.integer('intermediate_size'),
    numLayers: text.integer('num_hidden_layers', undefined, 1, MAX_LAYERS),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: text.integer('vocab_size'),
    rmsNormEps: text.positive('rms_norm_eps', 1e-6),
    ropeTheta: text.positive('rope_theta', 1e6),
    mropeSection: options.mrope ? mropeSection(text, headDim) : null,
    tieWordEmbeddings: text.boolean('tie_word_embeddings', options.tieDefault),
    maxPositionEmbeddings: text.integer('max_position_embeddings', 32768),
  };
}

function mropeSection(text: ConfigReader, headDim: number): number[] {
  const scaling = text.child('rope_scaling');
  const section = scaling.integers('mrope_section', [16, 24, 24]);
  const sum = section.reduce((a, b) => a + b, 0);
  if (section.length !== 3 || sum !== headDim / 2) {
    throw scaling.error('mrope_section', `3 sections summing to head_dim / 2 = ${headDim / 2}`, section);
  }
  return section;
}

export function decoderLinear(text: TextConfig, prefixes: LanguagePrefixes, layer: number, module: LinearName): LinearSpec {
  const q = text.numHeads * text.headDim, kv = text.numKvHeads * text.headDim;
  const shapes: Record<LinearName, [number, number]> = {
    q_proj: [q, text.hiddenSize],
    k_proj: [kv, text.hiddenSize],
    v_proj: [kv, text.hiddenSize],
    o_proj: [text.hiddenSize, q],
    gate_proj: [text.intermediateSize, text.hiddenSize],
    up_proj: [text.intermediateSize, text.hiddenSize],
    down_proj: [text.hiddenSize, text.intermediateSize],
  };
  const [outFeatures, inFeatures] = shapes[module];
  const bias = module === 'q_proj' || module === 'k_proj' || module === 'v_proj';
  return { layer, module, prefix: `${prefixes.layers}.${layer}.${LINEAR_PATHS[module]}`, inFeatures, outFeatures, bias };
}

/** The seven linears of one decoder layer, in MODULE_GROUPS order. */
export function layerLinears(text: TextConfig, prefixes: LanguagePrefixes, layer: number): LinearSpec[] {
  return MODULE_GROUPS.flat().map((module) => decoderLinear(text, prefixes, layer, module));
}

/** Every tensor of the language model. */
export function languageTensors(text: TextConfig, prefixes: LanguagePrefixes): ExpectedTensor[] {
  const H = text.hiddenSize;
  const tensors: ExpectedTensor[] = [{ name: `${prefixes.embedTokens}.weight`, shape: [text.vocabSize, H] }];
  for (let layer = 0; layer < text.numLayers; layer++) {
    const base = `${prefixes.layers}.${layer}`;
    tensors.push({ name: `${base}.input_layernorm.weight`, shape: [H] });
    tensors.push({ name: `${base}.post_attention_layernorm.weight`, shape: [H] });
    for (const linear of layerLinears(text, prefixes, layer)) {
      tensors.push({ name: `${linear.prefix}.weight`, shape: [linear.outFeatures, linear.inFeatures] });
      if (linear.bias) tensors.push({ name: `${linear.prefix}.bias`, shape: [linear.outFeatures] });
    }
  }
  tensors.push({ name: `${prefixes.norm}.weight`, shape: [H] });
  tensors.push({ name: `${prefixes.lmHead}.weight`, shape: [text.vocabSize, H], optional: text.tieWordEmbeddings });
  return tensors;
}
