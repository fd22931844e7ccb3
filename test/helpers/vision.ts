// What the vision-tower tests share: tiny checkpoints with informative weights, the float64
// oracle's view of them (weights by relative name, dimensions read from config.json on their own,
// not through lib/), and seeded pixel values.
import { join } from 'node:path';
import { loadModel } from '../../lib/index.js';
import type { Model } from '../../lib/models/model.js';
import { toFloat32 } from '../../lib/tensor.js';
import { type TinyCheckpoint, type TinyCheckpointOptions, writeTinyCheckpoint } from '../fixtures/checkpoints.js';
import { mulberry32, randnArray } from '../reference/oracle.js';
import type * as ref from '../reference/vision.js';

/**
 * Weights of std 0.2 instead of the initializer's 0.02: attention then has logits of order 1
 * (not uniform), so the rotary tables, the windows and the segments all change the output.
 */
export const WEIGHT_STD = 0.2;

export async function tinyModel(dir: string, options: TinyCheckpointOptions): Promise<{ checkpoint: TinyCheckpoint; model: Model }> {
  const checkpoint = await writeTinyCheckpoint(join(dir, options.architecture), { weightStd: WEIGHT_STD, ...options });
  return { checkpoint, model: await loadModel(checkpoint.dir) };
}

/** Every vision, projector and newline tensor of the checkpoint in float64, by its name relative to the tower (the projector keeps `multi_modal_projector.`). */
export async function oracleWeights(checkpoint: TinyCheckpoint, model: Model): Promise<ref.Weights> {
  const { vision, projector } = checkpoint.prefixes;
  const tower = checkpoint.architecture === 'llava_onevision' ? `${vision}vision_model.` : vision;
  const weights = new Map<string, Float64Array>();
  for (const name of checkpoint.tensors.keys()) {
    let local: string | null = null;
    if (name.startsWith(tower)) local = name.slice(tower.length);
    else if (projector && name.startsWith(projector)) local = `multi_modal_projector.${name.slice(projector.length)}`;
    if (local !== null) weights.set(local, Float64Array.from(toFloat32(await model.checkpoint.read(name))));
  }
  return (name) => {
    const w = weights.get(name);
    if (!w) throw new Error(`oracle: no tensor ${name}`);
    return w;
  };
}

type Json = Record<string, unknown>;

/** The Qwen tower's dimensions read straight from config.json, with the config classes' defaults. */
export function qwenSpec(checkpoint: TinyCheckpoint): ref.QwenVisionSpec {
  const config = checkpoint.config as Json;
  const v = config.vision_config as Json;
  const qwen25 = checkpoint.architecture === 'qwen2_5_vl';
  return {
    kind: qwen25 ? 'qwen2_5_vl' : 'qwen2_vl',
    width: (qwen25 ? v.hidden_size : v.embed_dim) as number,
    heads: v.num_heads as number,
    depth: v.depth as number,
    channels: (v.in_chans ?? v.in_channels ?? 3) as number,
    patch: v.patch_size as number,
    temporalPatch: v.temporal_patch_size as number,
    merge: v.spatial_merge_size as number,
    outHidden: (qwen25 ? v.out_hidden_size : v.hidden_size) as number,
    hiddenAct: (v.hidden_act ?? (qwen25 ? 'silu' : 'quick_gelu')) as ref.Activation,
    windowSize: v.window_size as number | undefined,
    fullattBlockIndexes: v.fullatt_block_indexes as number[] | undefined,
  };
}

/** SigLIP's and the projector's dimensions from config.json; `layers` from vision_feature_layer (−1: all). */
export function siglipSpec(checkpoint: TinyCheckpoint): ref.SiglipSpec {
  const config = checkpoint.config as Json;
  const v = config.vision_config as Json;
  const depth = v.num_hidden_layers as number;
  const layer = (config.vision_feature_layer ?? -1) as number;
  return {
    width: v.hidden_size as number,
    heads: v.num_attention_heads as number,
    layers: layer < 0 ? depth + 1 + layer : layer,
    channels: (v.num_channels ?? 3) as number,
    patch: v.patch_size as number,
    layerNormEps: v.layer_norm_eps as number,
    hiddenAct: v.hidden_act as ref.Activation,
    projectorAct: (config.projector_hidden_act ?? 'gelu') as ref.Activation,
    outHidden: (config.text_config as Json).hidden_size as number,
  };
}

/** Seeded standard-normal pixel values (the processor's output is normalized to about this range). */
export function pixels(count: number, seed: number): Float32Array {
  return Float32Array.from(randnArray(mulberry32(seed), count));
}
