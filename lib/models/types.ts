// What vlmq knows about a model architecture: plain data plus small functions. One file per
// architecture (qwen2-vl.ts, qwen2-5-vl.ts, llava-onevision.ts), listed in registry.ts; the
// Qwen2 language model they share is described once in decoder.ts.

export type ArchitectureId = 'qwen2_vl' | 'qwen2_5_vl' | 'llava_onevision';

/**
 * Where tensors live. 'original': the layout of the Hub uploads (Qwen: `model.layers.*`,
 * `visual.*`; llava-hf: `language_model.model.*`, `vision_tower.*`). 'transformers-4.52': what
 * transformers ≥ 4.52 saves (`model.language_model.*`, `model.visual.*`, ...). docs/formats.md §3.3, §4.1.
 */
export type TensorLayout = 'original' | 'transformers-4.52';

/** The Qwen2 language model (every supported architecture has one). */
export interface TextConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** M-RoPE sections (Qwen2-VL, Qwen2.5-VL), summing to headDim / 2; null for 1-D RoPE. */
  mropeSection: number[] | null;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
}

export interface QwenVisionConfig {
  kind: 'qwen2_vl' | 'qwen2_5_vl';
  depth: number;
  /** ViT width (Qwen2-VL `embed_dim`, Qwen2.5-VL `hidden_size`). */
  width: number;
  numHeads: number;
  /** MLP hidden size: width · mlp_ratio (Qwen2-VL) or `intermediate_size` (Qwen2.5-VL, gated). */
  intermediateSize: number;
  /** Width of the merger output = the language model's hidden size. */
  outHiddenSize: number;
  patchSize: number;
  temporalPatchSize: number;
  spatialMergeSize: number;
  inChannels: number;
  /** Qwen2.5-VL window attention. */
  windowSize?: number;
  fullattBlockIndexes?: number[];
}

export interface SiglipVisionConfig {
  kind: 'siglip';
  depth: number;
  width: number;
  numHeads: number;
  intermediateSize: number;
  patchSize: number;
  imageSize: number;
  inChannels: number;
  layerNormEps: number;
}

export type VisionConfig = QwenVisionConfig | SiglipVisionConfig;

export interface ModelConfig {
  architecture: ArchitectureId;
  text: TextConfig;
  vision: VisionConfig;
  /** Special token ids the config names (image_token_id, vision_start_token_id, ...). */
  tokens: Record<string, number>;
  /** config.json as read. */
  raw: Record<string, unknown>;
}

export interface ExpectedTensor {
  name: string;
  shape: number[];
  /** May be absent (e.g. lm_head.weight of a model with tied embeddings). */
  optional?: boolean;
}

export type LinearName = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';

/** One decoder linear: the unit that GPTQ-family methods quantize. */
export interface LinearSpec {
  layer: number;
  module: LinearName;
  /** Full tensor-name prefix, e.g. "model.layers.3.self_attn.q_proj" (+ ".weight", ".bias"). */
  prefix: string;
  inFeatures: number;
  outFeatures: number;
  bias: boolean;
}

/** Tensor-name prefixes of the language model in one layout. */
export interface LanguagePrefixes {
  /** The decoder layers: `${layers}.${i}.self_attn.q_proj.weight`. */
  layers: string;
  embedTokens: string;
  norm: string;
  lmHead: string;
}

export interface Architecture {
  id: ArchitectureId;
  displayName: string;
  /** config.json `architectures` entries that select this architecture. */
  configClasses: string[];
  /** config.json `model_type` values that select it. */
  modelTypes: string[];
  /** config.json (already parsed JSON) → dimensions; `file` names the file in errors. */
  parseConfig(raw: Record<string, unknown>, file: string): ModelConfig;
  /** The layout of a checkpoint, from its tensor names. */
  layoutOf(names: ReadonlySet<string>): TensorLayout;
  languagePrefixes(layout: TensorLayout): LanguagePrefixes;
  /** Every tensor outside the language model (vision tower, projector/merger, newline). */
  visionTensors(config: ModelConfig, layout: TensorLayout): ExpectedTensor[];
  /** Where transformers' GPTQ loader (optimum) finds the decoder blocks: `block_name_to_quantize`. */
  blockNameToQuantize(layout: TensorLayout): string;
}
