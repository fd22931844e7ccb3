// Seeded generators of tiny Hugging Face checkpoints of the three architectures vlmq reads:
// Qwen2-VL, Qwen2.5-VL and LLaVA-OneVision (llava-hf, Qwen2 backbone). `vlmq demo` and the tests
// call writeTinyCheckpoint(dir, options) and get a checkpoint directory with the real tensor
// names, real config.json fields and the real architecture (every shape follows from the config
// as in docs/formats.md §3.1–§3.3 and §4.1), only with small dimensions and seeded random weights.
//
// Token ids: the real models use ids around 151643–151656, which a 256-row embedding cannot hold.
// The tiny checkpoints place the same special tokens, in the same order, right after the regular
// tokens of a tiny byte-level BPE tokenizer (see tokenizer.ts), and write those ids consistently in
// config.json, generation_config.json, tokenizer.json and tokenizer_config.json. TinyCheckpoint's
// `specialTokens` lists them.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensors, type WritableTensor } from '../io/safetensors-writer.js';
import { mulberry32Uint } from '../random.js';
import { byteSize, f32ToBf16, f32ToF16, numel, type DType } from '../tensor.js';
import {
  LLAVA_OV_CHAT_TEMPLATE, LLAVA_OV_SPECIALS, QWEN_VL_CHAT_TEMPLATE, QWEN_VL_SPECIALS,
  addedTokensDecoder, specialTokenIds, tokenizerJson,
} from './tiny-tokenizer.js';

export type Architecture = 'qwen2_vl' | 'qwen2_5_vl' | 'llava_onevision';

/**
 * Tensor-name layout.
 * - Qwen: 'original' = `model.layers.*`, `model.embed_tokens`, `model.norm`, `visual.*`, `lm_head`;
 *   'transformers-4.52' = `model.language_model.*`, `model.visual.*`, `lm_head` (§3.3).
 * - LLaVA-OV: 'original' = `language_model.model.*`, `language_model.lm_head`, `vision_tower.*`,
 *   `multi_modal_projector.*`, `image_newline`; 'transformers-4.52' = `model.language_model.*`,
 *   `lm_head`, `model.vision_tower.*`, `model.multi_modal_projector.*`, `model.image_newline` (§4.1).
 */
export type Layout = 'original' | 'transformers-4.52';
export type WeightDType = 'BF16' | 'F16' | 'F32';

/** Where the Qwen text fields live in config.json: top level (Hub uploads), `text_config`, or both (transformers ≥ 4.52 saves). */
export type TextConfigStyle = 'flat' | 'nested' | 'both';

export interface TinyVisionOptions {
  /** Qwen: vision blocks (`depth`); LLaVA-OV: SigLIP encoder layers. Default 2. */
  depth?: number;
  /** ViT width: Qwen2-VL `embed_dim`, Qwen2.5-VL `hidden_size`, SigLIP `hidden_size`. Default 32. */
  width?: number;
  /** Attention heads of the ViT. Default 2 (head dim 16). */
  heads?: number;
  /** MLP width of Qwen2.5-VL's gated MLP and of SigLIP's MLP. Default 2 × width. */
  intermediate?: number;
  /** Qwen2-VL `mlp_ratio` (fc1 = ratio × width). Default 4. */
  mlpRatio?: number;
  /** Patch side in pixels. Default 14 (as every real checkpoint). */
  patchSize?: number;
  /** Qwen `temporal_patch_size`. Default 2. */
  temporalPatchSize?: number;
  /** Qwen `spatial_merge_size`. Default 2. */
  spatialMergeSize?: number;
  /** SigLIP `image_size`. Default 28: 2 × 2 = 4 patches, position_embedding [4, width]. */
  imageSize?: number;
  /** Qwen2.5-VL `fullatt_block_indexes`. Default: every second block (odd indexes), e.g. [1] for depth 2. */
  fullattBlockIndexes?: number[];
  /** SigLIP `post_layernorm` tensors (llava-hf checkpoints carry them although the features are taken before it). Default true. */
  postLayernorm?: boolean;
}

export interface TinyCheckpointOptions {
  architecture: Architecture;
  /** Default 'original'. */
  layout?: Layout;
  /** Storage dtype of every tensor. Default 'BF16'. */
  dtype?: WeightDType;
  /** 1 (default): model.safetensors without index; N > 1: model-0000i-of-0000N.safetensors + model.safetensors.index.json. */
  shards?: number;
  /** Seed of the weights (unsigned 32-bit integer). Default 0. */
  seed?: number;
  /** Decoder layers. Default 2. */
  layers?: number;
  /** Decoder hidden size. Default 64. */
  hidden?: number;
  /** Decoder MLP width. Default 128. */
  intermediate?: number;
  /** Query heads. Default 4 (head_dim 16). */
  heads?: number;
  /** Key/value heads. Default 2. */
  kvHeads?: number;
  /** Embedding rows (`vocab_size`). Default 256. */
  vocab?: number;
  /** Default true for Qwen2-VL and Qwen2.5-VL (2B/3B-like), false for LLaVA-OV. lm_head is written only when false. */
  tieWordEmbeddings?: boolean;
  /** Qwen only. Default 'flat' for the original layout, 'both' for transformers-4.52 (what that version saves). */
  nestedTextConfig?: TextConfigStyle;
  /** Qwen only: `rope_scaling` as the Hub uploads have it (`{type: "mrope", …}`) or as newer transformers saves it (`{type/rope_type: "default", …}`). Default follows the layout. */
  ropeScalingStyle?: 'mrope' | 'default';
  vision?: TinyVisionOptions;
  /** tokenizer.json, tokenizer_config.json, chat_template.json, preprocessor_config.json, generation_config.json (+ processor_config.json for LLaVA-OV). Default true. */
  extraFiles?: boolean;
  /** Standard deviation of linear and embedding weights and biases (norm weights keep 1 + N(0, 0.02²)). Default 0.02, as initializer_range. */
  weightStd?: number;
  /** Qwen only: `max_pixels` of preprocessor_config.json. Default 16384 · 28², as the Hub's configs (a small value makes images shrink). */
  imageMaxPixels?: number;
}

export interface TinyTensor {
  dtype: DType;
  shape: number[];
  /** Basename of the safetensors file that holds it. */
  file: string;
}

export interface TinyCheckpoint {
  dir: string;
  architecture: Architecture;
  layout: Layout;
  dtype: WeightDType;
  /** config.json as written. */
  config: Record<string, unknown>;
  /** Every tensor, in state-dict order (the order used to fill shards). */
  tensors: Map<string, TinyTensor>;
  /** Every file written, relative to dir, sorted. */
  files: string[];
  /** The safetensors files, in shard order. */
  shardFiles: string[];
  /**
   * Module paths (tensor name without `.weight`) of the decoder Linears a GPTQ export quantizes
   * (§2.8): per layer q, k, v, o, gate, up, down, layers in order.
   */
  quantizable: string[];
  /** Special token → id, as written in config.json and the tokenizer files. */
  specialTokens: Record<string, number>;
  /** Name prefixes of this layout. */
  prefixes: { text: string; lmHead: string; vision: string; projector: string | null; imageNewline: string | null };
}

// --- options ----------------------------------------------------------------------------------

interface Resolved {
  architecture: Architecture;
  layout: Layout;
  dtype: WeightDType;
  shards: number;
  seed: number;
  layers: number;
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  tie: boolean;
  textStyle: TextConfigStyle;
  ropeStyle: 'mrope' | 'default';
  extraFiles: boolean;
  weightStd: number;
  imageMaxPixels: number | null;
  vision: Required<TinyVisionOptions>;
}

function positiveNumber(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`writeTinyCheckpoint: ${name} must be a positive number, got ${value}`);
  return value;
}

const ARCHITECTURES: readonly Architecture[] = ['qwen2_vl', 'qwen2_5_vl', 'llava_onevision'];

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`writeTinyCheckpoint: ${name} must be a positive integer, got ${value}`);
  return value;
}

/** Fills every default in one place and checks that the dimensions make a valid model. */
function resolveOptions(options: TinyCheckpointOptions): Resolved {
  const { architecture } = options;
  if (!ARCHITECTURES.includes(architecture)) throw new RangeError(`writeTinyCheckpoint: unknown architecture ${String(architecture)}`);
  const layout = options.layout ?? 'original';
  if (layout !== 'original' && layout !== 'transformers-4.52') throw new RangeError(`writeTinyCheckpoint: unknown layout ${String(layout)}`);
  const dtype = options.dtype ?? 'BF16';
  if (dtype !== 'BF16' && dtype !== 'F16' && dtype !== 'F32') throw new RangeError(`writeTinyCheckpoint: dtype must be BF16, F16 or F32, got ${String(dtype)}`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`writeTinyCheckpoint: seed must be an unsigned 32-bit integer, got ${seed}`);

  const layers = positiveInteger('layers', options.layers ?? 2);
  const hidden = positiveInteger('hidden', options.hidden ?? 64);
  const intermediate = positiveInteger('intermediate', options.intermediate ?? 128);
  const heads = positiveInteger('heads', options.heads ?? 4);
  const kvHeads = positiveInteger('kvHeads', options.kvHeads ?? 2);
  const vocab = positiveInteger('vocab', options.vocab ?? 256);
  const shards = positiveInteger('shards', options.shards ?? 1);
  if (hidden % heads !== 0) throw new RangeError(`writeTinyCheckpoint: hidden ${hidden} is not a multiple of heads ${heads}`);
  const headDim = hidden / heads;
  if (headDim % 2 !== 0) throw new RangeError(`writeTinyCheckpoint: head_dim ${headDim} (hidden / heads) must be even for rotary embeddings`);
  if (architecture !== 'llava_onevision' && headDim < 6) throw new RangeError(`writeTinyCheckpoint: head_dim ${headDim} is too small for a three-part mrope_section`);
  if (heads % kvHeads !== 0) throw new RangeError(`writeTinyCheckpoint: heads ${heads} is not a multiple of kvHeads ${kvHeads}`);

  const isQwen = architecture !== 'llava_onevision';
  const v = options.vision ?? {};
  const width = positiveInteger('vision.width', v.width ?? 32);
  const depth = positiveInteger('vision.depth', v.depth ?? 2);
  const visionHeads = positiveInteger('vision.heads', v.heads ?? 2);
  if (width % visionHeads !== 0) throw new RangeError(`writeTinyCheckpoint: vision.width ${width} is not a multiple of vision.heads ${visionHeads}`);
  // Qwen's 2D vision RoPE splits head_dim/2 into row and column halves (§3.6).
  if (isQwen && (width / visionHeads) % 4 !== 0) throw new RangeError(`writeTinyCheckpoint: vision head dim ${width / visionHeads} must be a multiple of 4 for the 2D rotary embedding`);
  const patchSize = positiveInteger('vision.patchSize', v.patchSize ?? 14);
  const imageSize = positiveInteger('vision.imageSize', v.imageSize ?? 2 * patchSize);
  if (imageSize % patchSize !== 0) throw new RangeError(`writeTinyCheckpoint: vision.imageSize ${imageSize} is not a multiple of vision.patchSize ${patchSize}`);
  const fullatt = v.fullattBlockIndexes ?? Array.from({ length: depth }, (_, i) => i).filter((i) => i % 2 === 1);
  if (!fullatt.every((i) => Number.isInteger(i) && i >= 0 && i < depth)) throw new RangeError(`writeTinyCheckpoint: vision.fullattBlockIndexes must lie in [0, ${depth - 1}]`);

  return {
    architecture, layout, dtype, shards, seed: seed >>> 0, layers, hidden, intermediate, heads, kvHeads, headDim, vocab,
    tie: options.tieWordEmbeddings ?? isQwen,
    textStyle: options.nestedTextConfig ?? (layout === 'original' ? 'flat' : 'both'),
    ropeStyle: options.ropeScalingStyle ?? (layout === 'original' ? 'mrope' : 'default'),
    extraFiles: options.extraFiles ?? true,
    weightStd: positiveNumber('weightStd', options.weightStd ?? 0.02),
    imageMaxPixels: options.imageMaxPixels === undefined ? null : positiveInteger('imageMaxPixels', options.imageMaxPixels),
    vision: {
      depth, width, heads: visionHeads,
      intermediate: positiveInteger('vision.intermediate', v.intermediate ?? 2 * width),
      mlpRatio: positiveInteger('vision.mlpRatio', v.mlpRatio ?? 4),
      patchSize,
      temporalPatchSize: positiveInteger('vision.temporalPatchSize', v.temporalPatchSize ?? 2),
      spatialMergeSize: positiveInteger('vision.spatialMergeSize', v.spatialMergeSize ?? 2),
      imageSize,
      fullattBlockIndexes: [...fullatt],
      postLayernorm: v.postLayernorm ?? true,
    },
  };
}

/** `mrope_section` with the proportions of the real [16, 24, 24] (temporal, height, width), summing to head_dim / 2. */
export function mropeSection(headDim: number): [number, number, number] {
  const half = headDim / 2;
  const t = Math.max(1, Math.round(half / 4));
  const h = Math.floor((half - t) / 2);
  return [t, h, half - t - h];
}

// --- tensor specs --------------------------------------------------------------------------------

/** How a tensor is initialized: Linear/embedding weights and biases ~ N(0, weightStd²); norm weights ~ 1 + N(0, 0.02²). */
type Init = 'weight' | 'bias' | 'norm';

interface Spec {
  name: string;
  shape: number[];
  init: Init;
}

function prefixesOf(r: Resolved): TinyCheckpoint['prefixes'] {
  const modern = r.layout === 'transformers-4.52';
  if (r.architecture === 'llava_onevision') {
    return modern
      ? { text: 'model.language_model.', lmHead: 'lm_head.weight', vision: 'model.vision_tower.', projector: 'model.multi_modal_projector.', imageNewline: 'model.image_newline' }
      : { text: 'language_model.model.', lmHead: 'language_model.lm_head.weight', vision: 'vision_tower.', projector: 'multi_modal_projector.', imageNewline: 'image_newline' };
  }
  return modern
    ? { text: 'model.language_model.', lmHead: 'lm_head.weight', vision: 'model.visual.', projector: null, imageNewline: null }
    : { text: 'model.', lmHead: 'lm_head.weight', vision: 'visual.', projector: null, imageNewline: null };
}

/** Linear layer: weight [out, in] (+ bias [out]). */
function linear(name: string, out: number, inp: number, bias: boolean): Spec[] {
  const specs: Spec[] = [{ name: `${name}.weight`, shape: [out, inp], init: 'weight' }];
  if (bias) specs.push({ name: `${name}.bias`, shape: [out], init: 'bias' });
  return specs;
}

function layerNorm(name: string, size: number, bias: boolean): Spec[] {
  const specs: Spec[] = [{ name: `${name}.weight`, shape: [size], init: 'norm' }];
  if (bias) specs.push({ name: `${name}.bias`, shape: [size], init: 'bias' });
  return specs;
}

/** Qwen2 decoder in module registration order (§3.3): embed, layers (attn, mlp, norms), final norm. */
function decoderSpecs(r: Resolved, p: string): Spec[] {
  const { hidden: H, intermediate: I, heads, kvHeads, headDim: d } = r;
  const specs: Spec[] = [{ name: `${p}embed_tokens.weight`, shape: [r.vocab, H], init: 'weight' }];
  for (let i = 0; i < r.layers; i++) {
    const l = `${p}layers.${i}`;
    specs.push(
      ...linear(`${l}.self_attn.q_proj`, heads * d, H, true),
      ...linear(`${l}.self_attn.k_proj`, kvHeads * d, H, true),
      ...linear(`${l}.self_attn.v_proj`, kvHeads * d, H, true),
      ...linear(`${l}.self_attn.o_proj`, H, heads * d, false),
      ...linear(`${l}.mlp.gate_proj`, I, H, false),
      ...linear(`${l}.mlp.up_proj`, I, H, false),
      ...linear(`${l}.mlp.down_proj`, H, I, false),
      ...layerNorm(`${l}.input_layernorm`, H, false),
      ...layerNorm(`${l}.post_attention_layernorm`, H, false),
    );
  }
  specs.push(...layerNorm(`${p}norm`, H, false));
  return specs;
}

/** Qwen2-VL / Qwen2.5-VL vision tower (§3.3): Conv3d patch embed, blocks, patch merger. */
function qwenVisionSpecs(r: Resolved, p: string): Spec[] {
  const v = r.vision;
  const W = v.width;
  const is25 = r.architecture === 'qwen2_5_vl';
  const merged = W * v.spatialMergeSize ** 2;
  const specs: Spec[] = [{ name: `${p}patch_embed.proj.weight`, shape: [W, 3, v.temporalPatchSize, v.patchSize, v.patchSize], init: 'weight' }];
  for (let j = 0; j < v.depth; j++) {
    const b = `${p}blocks.${j}`;
    // Qwen2-VL: LayerNorm (weight + bias); Qwen2.5-VL: RMSNorm (weight only).
    specs.push(...layerNorm(`${b}.norm1`, W, !is25), ...layerNorm(`${b}.norm2`, W, !is25));
    specs.push(...linear(`${b}.attn.qkv`, 3 * W, W, true), ...linear(`${b}.attn.proj`, W, W, true));
    if (is25) {
      specs.push(
        ...linear(`${b}.mlp.gate_proj`, v.intermediate, W, true),
        ...linear(`${b}.mlp.up_proj`, v.intermediate, W, true),
        ...linear(`${b}.mlp.down_proj`, W, v.intermediate, true),
      );
    } else {
      const mlp = W * v.mlpRatio;
      specs.push(...linear(`${b}.mlp.fc1`, mlp, W, true), ...linear(`${b}.mlp.fc2`, W, mlp, true));
    }
  }
  specs.push(
    ...layerNorm(`${p}merger.ln_q`, W, !is25),
    ...linear(`${p}merger.mlp.0`, merged, merged, true),
    ...linear(`${p}merger.mlp.2`, r.hidden, merged, true),
  );
  return specs;
}

/** SigLIP vision tower as llava-hf stores it (§4.1), under `<vision prefix>vision_model.`. */
function siglipSpecs(r: Resolved, p: string): Spec[] {
  const v = r.vision;
  const W = v.width;
  const m = `${p}vision_model.`;
  const patches = (v.imageSize / v.patchSize) ** 2;
  const specs: Spec[] = [
    { name: `${m}embeddings.patch_embedding.weight`, shape: [W, 3, v.patchSize, v.patchSize], init: 'weight' },
    { name: `${m}embeddings.patch_embedding.bias`, shape: [W], init: 'bias' },
    { name: `${m}embeddings.position_embedding.weight`, shape: [patches, W], init: 'weight' },
  ];
  for (let i = 0; i < v.depth; i++) {
    const l = `${m}encoder.layers.${i}`;
    specs.push(
      ...linear(`${l}.self_attn.k_proj`, W, W, true),
      ...linear(`${l}.self_attn.v_proj`, W, W, true),
      ...linear(`${l}.self_attn.q_proj`, W, W, true),
      ...linear(`${l}.self_attn.out_proj`, W, W, true),
      ...layerNorm(`${l}.layer_norm1`, W, true),
      ...linear(`${l}.mlp.fc1`, v.intermediate, W, true),
      ...linear(`${l}.mlp.fc2`, W, v.intermediate, true),
      ...layerNorm(`${l}.layer_norm2`, W, true),
    );
  }
  if (v.postLayernorm) specs.push(...layerNorm(`${m}post_layernorm`, W, true));
  return specs;
}

/** Every tensor of the checkpoint, in state-dict order. */
function tensorSpecs(r: Resolved): Spec[] {
  const p = prefixesOf(r);
  const lmHead: Spec[] = r.tie ? [] : [{ name: p.lmHead, shape: [r.vocab, r.hidden], init: 'weight' }];
  if (r.architecture === 'llava_onevision') {
    return [
      { name: p.imageNewline!, shape: [r.hidden], init: 'weight' },
      ...siglipSpecs(r, p.vision),
      ...linear(`${p.projector!}linear_1`, r.hidden, r.vision.width, true),
      ...linear(`${p.projector!}linear_2`, r.hidden, r.hidden, true),
      ...decoderSpecs(r, p.text),
      ...lmHead,
    ];
  }
  return [...qwenVisionSpecs(r, p.vision), ...decoderSpecs(r, p.text), ...lmHead];
}

function quantizableModules(r: Resolved): string[] {
  const { text } = prefixesOf(r);
  const names: string[] = [];
  for (let i = 0; i < r.layers; i++) {
    for (const m of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']) {
      names.push(`${text}layers.${i}.${m}`);
    }
  }
  return names;
}

// --- seeded values ------------------------------------------------------------------------------

/** 32-bit hash of (seed, tensor name): each tensor gets its own stream, independent of order and sharding. */
function streamSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** `count` standard normal samples (Box–Muller). */
function normals(seed: number, count: number): Float64Array {
  const next = mulberry32Uint(seed);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i += 2) {
    const u1 = (next() + 1) / 4294967297; // (0, 1]
    const u2 = next() / 4294967296;
    const radius = Math.sqrt(-2 * Math.log(u1));
    out[i] = radius * Math.cos(2 * Math.PI * u2);
    if (i + 1 < count) out[i + 1] = radius * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

const NORM_STD = 0.02;

function tensorData(spec: Spec, seed: number, dtype: WeightDType, weightStd: number): ArrayBufferView {
  const z = normals(streamSeed(seed, spec.name), numel(spec.shape));
  const offset = spec.init === 'norm' ? 1 : 0;
  const STD = spec.init === 'norm' ? NORM_STD : weightStd;
  if (dtype === 'F32') {
    const out = new Float32Array(z.length);
    for (let i = 0; i < z.length; i++) out[i] = offset + STD * z[i];
    return out;
  }
  const encode = dtype === 'BF16' ? f32ToBf16 : f32ToF16;
  const out = new Uint16Array(z.length);
  for (let i = 0; i < z.length; i++) out[i] = encode(offset + STD * z[i]);
  return out;
}

// --- sharding -----------------------------------------------------------------------------------

/** Shard basename as huggingface_hub names it (§1.6): model-00001-of-00003.safetensors. */
export function shardName(index: number, count: number): string {
  if (count === 1) return 'model.safetensors';
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/**
 * Splits tensors (in order) into `count` contiguous, non-empty groups of about equal bytes: shard s
 * starts at the first tensor whose cumulative start offset reaches s/count of the total, moved as
 * little as needed to keep every shard non-empty.
 */
function assignShards(sizes: readonly number[], count: number): number[] {
  const n = sizes.length;
  if (count > n) throw new RangeError(`writeTinyCheckpoint: ${count} shards need at least ${count} tensors, the model has ${n}`);
  const total = sizes.reduce((a, b) => a + b, 0);
  const starts: number[] = [0];
  let cumulative = 0;
  let j = 0;
  for (let s = 1; s < count; s++) {
    while (j < n && cumulative < (s * total) / count) cumulative += sizes[j++];
    const start = Math.min(Math.max(j, starts[s - 1] + 1), n - (count - s));
    starts.push(start);
    if (start > j) {
      for (; j < start; j++) cumulative += sizes[j];
    }
  }
  const shardOf: number[] = [];
  for (let s = 0; s < count; s++) {
    const end = s + 1 < count ? starts[s + 1] : n;
    for (let i = starts[s]; i < end; i++) shardOf.push(s);
  }
  return shardOf;
}

// --- config files -------------------------------------------------------------------------------

const TORCH_DTYPE: Record<WeightDType, string> = { BF16: 'bfloat16', F16: 'float16', F32: 'float32' };

/** transformers_version written into config files: an old release for the original layout, a ≥ 4.52 one for the new layout. */
function transformersVersion(r: Resolved): string {
  return r.layout === 'original' ? (r.architecture === 'llava_onevision' ? '4.45.0.dev0' : '4.49.0') : '4.53.1';
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]));
  }
  return value;
}

/** JSON as transformers writes it: sorted keys, two-space indent, trailing newline. */
export const INDEX_FILE = 'model.safetensors.index.json';

/** The Qwen2 language model's config fields, as both families write them (rope_scaling aside). */
function qwen2TextFields(r: Resolved, tok: Record<string, number>, maxPositions: number): Record<string, unknown> {
  return {
    attention_dropout: 0.0,
    bos_token_id: tok['<|endoftext|>'],
    eos_token_id: tok['<|im_end|>'],
    hidden_act: 'silu',
    hidden_size: r.hidden,
    initializer_range: 0.02,
    intermediate_size: r.intermediate,
    max_position_embeddings: maxPositions,
    max_window_layers: r.layers,
    num_attention_heads: r.heads,
    num_hidden_layers: r.layers,
    num_key_value_heads: r.kvHeads,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    sliding_window: 32768,
    use_cache: true,
    use_sliding_window: false,
    vocab_size: r.vocab,
  };
}

/** JSON as Hugging Face writes it: sorted keys, two-space indent, a final newline. */
export function jsonText(value: unknown): string {
  return `${JSON.stringify(sortKeys(value), null, 2)}\n`;
}

function tokenIds(r: Resolved): Record<string, number> {
  const specials = r.architecture === 'llava_onevision' ? LLAVA_OV_SPECIALS : QWEN_VL_SPECIALS;
  return Object.fromEntries(specialTokenIds(r.vocab, specials).map(({ id, content }) => [content, id]));
}

function qwenConfig(r: Resolved, tok: Record<string, number>): Record<string, unknown> {
  const v = r.vision;
  const is25 = r.architecture === 'qwen2_5_vl';
  const modern = r.layout === 'transformers-4.52';
  const section = mropeSection(r.headDim);
  const ropeScaling = r.ropeStyle === 'mrope'
    ? { type: 'mrope', mrope_section: section }
    : { type: 'default', rope_type: 'default', mrope_section: section };
  const text: Record<string, unknown> = { ...qwen2TextFields(r, tok, is25 ? 128000 : 32768), rope_scaling: ropeScaling };
  const vision: Record<string, unknown> = is25
    ? {
      depth: v.depth, hidden_act: 'silu', hidden_size: v.width, intermediate_size: v.intermediate, num_heads: v.heads,
      in_chans: 3, out_hidden_size: r.hidden, patch_size: v.patchSize, spatial_merge_size: v.spatialMergeSize,
      spatial_patch_size: v.patchSize, temporal_patch_size: v.temporalPatchSize, window_size: 112,
      fullatt_block_indexes: v.fullattBlockIndexes, tokens_per_second: 2,
    }
    : {
      depth: v.depth, embed_dim: v.width, mlp_ratio: v.mlpRatio, num_heads: v.heads, in_chans: 3, hidden_size: r.hidden,
      patch_size: v.patchSize, spatial_merge_size: v.spatialMergeSize, spatial_patch_size: v.patchSize,
      temporal_patch_size: v.temporalPatchSize,
    };
  if (modern) {
    Object.assign(vision, { model_type: r.architecture, in_channels: 3, initializer_range: 0.02 });
    if (!is25) vision.hidden_act = 'quick_gelu';
  }
  const config: Record<string, unknown> = {
    architectures: [is25 ? 'Qwen2_5_VLForConditionalGeneration' : 'Qwen2VLForConditionalGeneration'],
    model_type: r.architecture,
    image_token_id: tok['<|image_pad|>'],
    video_token_id: tok['<|video_pad|>'],
    vision_start_token_id: tok['<|vision_start|>'],
    vision_end_token_id: tok['<|vision_end|>'],
    vision_token_id: tok['<|vision_pad|>'],
    tie_word_embeddings: r.tie,
    torch_dtype: TORCH_DTYPE[r.dtype],
    transformers_version: transformersVersion(r),
    vision_config: vision,
  };
  if (r.textStyle !== 'nested') Object.assign(config, text);
  if (r.textStyle !== 'flat') {
    config.text_config = { ...text, model_type: `${r.architecture}_text`, tie_word_embeddings: r.tie, torch_dtype: TORCH_DTYPE[r.dtype] };
  }
  return config;
}

/** Every (h, w) with h, w ∈ {1, …, 6} · image_size, in the order of the llava-hf configs (36 entries, §4.1). */
function pinpoints(imageSize: number): number[][] {
  const points: number[][] = [];
  for (let h = 1; h <= 6; h++) for (let w = 1; w <= 6; w++) points.push([h * imageSize, w * imageSize]);
  return points;
}

function llavaConfig(r: Resolved, tok: Record<string, number>): Record<string, unknown> {
  const v = r.vision;
  return {
    architectures: ['LlavaOnevisionForConditionalGeneration'],
    model_type: 'llava_onevision',
    image_grid_pinpoints: pinpoints(v.imageSize),
    image_token_index: tok['<image>'],
    video_token_index: tok['<video>'],
    multimodal_projector_bias: true,
    projector_hidden_act: 'gelu',
    tie_word_embeddings: r.tie,
    torch_dtype: TORCH_DTYPE[r.dtype],
    transformers_version: transformersVersion(r),
    use_image_newline_parameter: true,
    vision_aspect_ratio: 'anyres_max_9',
    vision_feature_layer: -1,
    vision_feature_select_strategy: 'full',
    text_config: {
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      ...qwen2TextFields(r, tok, 32768),
      rope_scaling: null,
      tie_word_embeddings: r.tie,
      torch_dtype: TORCH_DTYPE[r.dtype],
    },
    vision_config: {
      model_type: 'siglip_vision_model',
      attention_dropout: 0.0,
      hidden_act: 'gelu_pytorch_tanh',
      hidden_size: v.width,
      image_size: v.imageSize,
      intermediate_size: v.intermediate,
      layer_norm_eps: 1e-6,
      num_attention_heads: v.heads,
      num_channels: 3,
      num_hidden_layers: v.depth,
      patch_size: v.patchSize,
      vision_use_head: false,
    },
  };
}

const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/** The files next to the weights: tokenizer, chat template, image processor, generation defaults. */
function extraFiles(r: Resolved, tok: Record<string, number>): Map<string, string> {
  const files = new Map<string, string>();
  const llava = r.architecture === 'llava_onevision';
  const specials = llava ? LLAVA_OV_SPECIALS : QWEN_VL_SPECIALS;
  const template = llava ? LLAVA_OV_CHAT_TEMPLATE : QWEN_VL_CHAT_TEMPLATE;
  const v = r.vision;
  files.set('tokenizer.json', jsonText(tokenizerJson(r.vocab, specials)));
  files.set('tokenizer_config.json', jsonText({
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder(r.vocab, specials),
    additional_special_tokens: specials.filter((s) => s !== '<|endoftext|>'),
    bos_token: null,
    chat_template: template,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: 32768,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
    ...(llava ? { processor_class: 'LlavaOnevisionProcessor' } : {}),
  }));
  files.set('chat_template.json', jsonText({ chat_template: template }));
  files.set('generation_config.json', jsonText({
    bos_token_id: tok['<|endoftext|>'],
    eos_token_id: [tok['<|im_end|>'], tok['<|endoftext|>']],
    pad_token_id: tok['<|endoftext|>'],
    transformers_version: transformersVersion(r),
    ...(llava ? {} : { do_sample: true, temperature: 0.01, top_k: 1, top_p: 0.001 }),
  }));
  if (llava) {
    files.set('preprocessor_config.json', jsonText({
      do_convert_rgb: true, do_normalize: true, do_pad: true, do_rescale: true, do_resize: true,
      image_grid_pinpoints: pinpoints(v.imageSize),
      image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5],
      image_processor_type: 'LlavaOnevisionImageProcessor', processor_class: 'LlavaOnevisionProcessor',
      resample: 3, rescale_factor: 1 / 255,
      size: { height: v.imageSize, width: v.imageSize },
    }));
    files.set('processor_config.json', jsonText({
      num_image_tokens: (v.imageSize / v.patchSize) ** 2,
      processor_class: 'LlavaOnevisionProcessor',
      vision_aspect_ratio: 'anyres_max_9',
      vision_feature_select_strategy: 'full',
    }));
  } else {
    const factor = v.patchSize * v.spatialMergeSize;
    files.set('preprocessor_config.json', jsonText({
      do_convert_rgb: true, do_normalize: true, do_rescale: true, do_resize: true,
      image_mean: CLIP_MEAN, image_std: CLIP_STD,
      image_processor_type: 'Qwen2VLImageProcessor',
      processor_class: r.architecture === 'qwen2_5_vl' ? 'Qwen2_5_VLProcessor' : 'Qwen2VLProcessor',
      max_pixels: r.imageMaxPixels ?? 16384 * factor * factor, min_pixels: (2 * factor) ** 2,
      merge_size: v.spatialMergeSize, patch_size: v.patchSize, temporal_patch_size: v.temporalPatchSize,
      resample: 3, rescale_factor: 1 / 255,
    }));
  }
  return files;
}

// --- writing --------------------------------------------------------------------------------------

/** Writes a tiny checkpoint of `options.architecture` into `dir` (created if needed) and describes it. */
export async function writeTinyCheckpoint(dir: string, options: TinyCheckpointOptions): Promise<TinyCheckpoint> {
  const r = resolveOptions(options);
  const specs = tensorSpecs(r);
  const tok = tokenIds(r);
  const config = r.architecture === 'llava_onevision' ? llavaConfig(r, tok) : qwenConfig(r, tok);

  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  const writeText = async (name: string, text: string) => {
    await writeFile(join(dir, name), text);
    written.push(name);
  };
  await writeText('config.json', jsonText(config));
  if (r.extraFiles) for (const [name, text] of extraFiles(r, tok)) await writeText(name, text);

  const sizes = specs.map((s) => byteSize(r.dtype, s.shape));
  const shardOf = assignShards(sizes, r.shards);
  const shardFiles = Array.from({ length: r.shards }, (_, s) => shardName(s, r.shards));
  const tensors = new Map<string, TinyTensor>();
  specs.forEach((s, i) => tensors.set(s.name, { dtype: r.dtype, shape: [...s.shape], file: shardFiles[shardOf[i]] }));

  for (let s = 0; s < r.shards; s++) {
    const members: WritableTensor[] = specs
      .filter((_, i) => shardOf[i] === s)
      .map((spec) => ({ name: spec.name, dtype: r.dtype, shape: spec.shape, data: tensorData(spec, r.seed, r.dtype, r.weightStd) }));
    await writeSafetensors(join(dir, shardFiles[s]), members);
    written.push(shardFiles[s]);
  }
  if (r.shards > 1) {
    const index = {
      metadata: { total_size: sizes.reduce((a, b) => a + b, 0) },
      weight_map: Object.fromEntries(specs.map((s, i) => [s.name, shardFiles[shardOf[i]]])),
    };
    await writeText(INDEX_FILE, jsonText(index));
  }

  return {
    dir,
    architecture: r.architecture,
    layout: r.layout,
    dtype: r.dtype,
    config,
    tensors,
    files: written.sort(),
    shardFiles,
    quantizable: quantizableModules(r),
    specialTokens: tok,
    prefixes: prefixesOf(r),
  };
}

