// A model's vision tower in native memory, in full precision: pixel values in, the language
// model's input embeddings out (docs/formats.md §3.6, §4.1).
// - Qwen2-VL / Qwen2.5-VL: the ViT and its patch merger; rows of pixel values in the processor's
//   order and one (t, h, w) grid per image → one merged token per merge² patches.
// - LLaVA-OneVision: the SigLIP tower up to its feature layer (vision_feature_layer, −1 = the last
//   encoder layer; post_layernorm is not part of the features, as in transformers'
//   get_image_features, which takes hidden_states[vision_feature_layer]) with every position
//   (strategy "full"), then the projector. Packing views with `image_newline` happens elsewhere.
import { join } from 'node:path';
import { VlmqError, invalidParameterError } from '../errors.js';
import { CONFIG_FILE } from '../io/checkpoint.js';
import { ConfigReader } from '../models/config-fields.js';
import type { Model } from '../models/model.js';
import type { ModelConfig, QwenVisionConfig, SiglipVisionConfig } from '../models/types.js';
import type { NativeVisionDims, NativeVisionTower, VisionActivation } from '../native/binding.js';
import { type Device, resolveDevice } from '../native/devices.js';
import { binding } from '../native/loader.js';
import { enqueue, runNative } from '../native/jobs.js';
import { toNativeMatrix } from '../quant/matrix.js';
import { type Tensor, numel, toFloat32 } from '../tensor.js';

export type { NativeVisionDims as VisionDims, VisionActivation } from '../native/binding.js';

/** One image's grid in patches: (t, h, w). */
export type ImageGrid = readonly [number, number, number];

/** transformers' ACT2FN names vlmq computes natively, and their aliases. */
const ACTIVATIONS: Record<string, VisionActivation> = {
  gelu: 'gelu',
  gelu_pytorch_tanh: 'gelu_pytorch_tanh',
  gelu_new: 'gelu_pytorch_tanh', // the same tanh formula
  quick_gelu: 'quick_gelu',
  silu: 'silu',
  swish: 'silu',
};

function activation(reader: ConfigReader, key: string, fallback: string): VisionActivation {
  const name = reader.string(key, fallback);
  const act = ACTIVATIONS[name];
  if (!act) throw reader.error(key, `one of ${Object.keys(ACTIVATIONS).join(', ')}`, name);
  return act;
}

/**
 * The native dimensions of `config`'s vision tower; activations and LLaVA-OneVision's feature
 * selection come from config.json (`file` names it in errors), with the config classes' defaults.
 */
export function visionDims(config: ModelConfig, file: string): NativeVisionDims {
  const top = new ConfigReader(file, '', config.raw);
  const reader = top.child('vision_config');
  if (config.vision.kind !== 'siglip') {
    const v: QwenVisionConfig = config.vision;
    const mlpAct = activation(reader, 'hidden_act', v.kind === 'qwen2_vl' ? 'quick_gelu' : 'silu');
    if (v.kind === 'qwen2_5_vl' && mlpAct !== 'silu') throw reader.error('hidden_act', 'silu (Qwen2.5-VL\'s gated MLP)', reader.get('hidden_act'));
    return {
      kind: v.kind, width: v.width, heads: v.numHeads, intermediate: v.intermediateSize, depth: v.depth,
      channels: v.inChannels, patch: v.patchSize, temporalPatch: v.temporalPatchSize, merge: v.spatialMergeSize,
      window: v.windowSize ?? 0, fullatt: [...(v.fullattBlockIndexes ?? [])], imageSize: 0,
      outHidden: v.outHiddenSize, eps: 1e-6, mlpAct, headAct: 'gelu', // the merger's nn.GELU()
    };
  }
  const v: SiglipVisionConfig = config.vision;
  // hidden_states has depth + 1 entries (the embeddings first): layer −1 is the last encoder layer's output.
  const layer = top.get('vision_feature_layer') ?? -1;
  if (!Number.isSafeInteger(layer) || (layer as number) < -(v.depth + 1) || (layer as number) > v.depth) {
    throw top.error('vision_feature_layer', `one integer in [${-(v.depth + 1)}, ${v.depth}]`, layer);
  }
  const strategy = top.string('vision_feature_select_strategy', 'full');
  if (strategy !== 'full') throw top.error('vision_feature_select_strategy', '"full" (SigLIP has no CLS token to drop)', strategy);
  return {
    kind: 'siglip', width: v.width, heads: v.numHeads, intermediate: v.intermediateSize,
    depth: (layer as number) < 0 ? v.depth + 1 + (layer as number) : (layer as number),
    channels: v.inChannels, patch: v.patchSize, temporalPatch: 1, merge: 1, window: 0, fullatt: [], imageSize: v.imageSize,
    outHidden: config.text.hiddenSize, eps: v.layerNormEps,
    mlpAct: activation(reader, 'hidden_act', 'gelu_pytorch_tanh'),
    headAct: activation(top, 'projector_hidden_act', 'gelu'),
  };
}

/**
 * The native name of a checkpoint tensor (relative to the tower; the projector keeps its
 * `multi_modal_projector.` prefix), or null for tensors the forward pass does not use
 * (post_layernorm, encoder layers past the feature layer, image_newline).
 */
function nativeName(name: string, towerPrefix: string, dims: NativeVisionDims): string | null {
  if (dims.kind !== 'siglip') return name.startsWith(towerPrefix) ? name.slice(towerPrefix.length) : null;
  const projector = name.indexOf('multi_modal_projector.');
  if (projector >= 0) return name.slice(projector);
  if (!name.startsWith(towerPrefix)) return null;
  const local = name.slice(towerPrefix.length);
  const layer = /^encoder\.layers\.(\d+)\./.exec(local);
  if (layer && Number(layer[1]) >= dims.depth) return null;
  return local.startsWith('post_layernorm.') ? null : local;
}

/** A tensor as the native matrix [shape[0], rest] (convolution weights flattened per output channel; vectors [1, n]). */
function asMatrix(tensor: Tensor): Tensor {
  if (tensor.shape.length <= 2) return tensor;
  return { ...tensor, shape: [tensor.shape[0], numel(tensor.shape) / Math.max(tensor.shape[0], 1)] };
}

export class VisionTower implements Disposable {
  private constructor(
    readonly dims: NativeVisionDims,
    private readonly native: NativeVisionTower,
    /** LLaVA-OneVision's learned newline vector [textHidden], f32; null for Qwen. */
    readonly imageNewline: Float32Array | null,
  ) {}

  /** The vision tower of `model` on `device`, every tensor it uses read from the checkpoint (BF16/F16/F32 → f32). */
  static async load(model: Model, device?: Device): Promise<VisionTower> {
    const dims = visionDims(model.config, join(model.dir, CONFIG_FILE));
    const expected = model.architecture.visionTensors(model.config, model.layout);
    const anchor = dims.kind === 'siglip' ? 'embeddings.patch_embedding.weight' : 'patch_embed.proj.weight';
    const first = expected.find((t) => t.name.endsWith(anchor));
    if (!first) throw new VlmqError('ERR_VLMQ_INTERNAL', `${model.architecture.displayName} lists no ${anchor}`);
    const towerPrefix = first.name.slice(0, -anchor.length);
    const tower = VisionTower.empty(dims, device);
    try {
      let imageNewline: Float32Array | null = null;
      for (const { name, optional } of expected) {
        if (optional && !model.checkpoint.tensors.has(name)) continue;
        if (name.endsWith('image_newline')) {
          imageNewline = toFloat32(await model.readTensor(name));
          continue;
        }
        const local = nativeName(name, towerPrefix, dims);
        if (local !== null) await tower.set(local, await model.readTensor(name));
      }
      return new VisionTower(dims, tower.native, imageNewline);
    } catch (error) {
      tower.dispose();
      throw error;
    }
  }

  /** A tower with no tensors yet (tests and synthetic models set them with set()). */
  static empty(dims: NativeVisionDims, device?: Device): VisionTower {
    return new VisionTower(dims, new (binding().VisionTower)(dims, resolveDevice(device)), null);
  }

  /** Stores a tensor by its name relative to the tower (native/include/vlmq/vision.h). */
  set(name: string, tensor: Tensor): Promise<void> {
    const callSite = new Error();
    const matrix = toNativeMatrix(asMatrix(tensor), name);
    return enqueue(() => runNative(callSite, undefined, () => this.native.setTensor(name, matrix)));
  }

  /** Qwen2-VL / Qwen2.5-VL: pixel rows [Σ t·h·w, C·T·P·P] of several images, in order → merged tokens [Σ t·h·w / merge², outHidden]. */
  qwen(pixelValues: Float32Array, grids: readonly ImageGrid[]): Promise<Float32Array> {
    const callSite = new Error();
    this.requireKind('qwen');
    const flat = this.checkGrids(grids);
    const d = this.dims;
    const features = d.channels * d.temporalPatch * d.patch * d.patch;
    let patches = 0;
    for (const [t, h, w] of grids) patches += t * h * w;
    if (!(pixelValues instanceof Float32Array) || pixelValues.length !== patches * features) {
      throw invalidParameterError('pixelValues', `a Float32Array of ${patches} × ${features} floats (Σ t·h·w rows of C·T·P·P)`, pixelValues);
    }
    return enqueue(() => runNative(callSite, undefined, () => this.native.qwen(pixelValues, flat)));
  }

  /** LLaVA-OneVision: views [views, 3, S, S] → projected features [views · P², textHidden] (P = floor(S / patch)). */
  siglip(pixelValues: Float32Array, views: number): Promise<Float32Array> {
    const callSite = new Error();
    this.requireKind('siglip');
    const d = this.dims;
    if (!Number.isSafeInteger(views) || views < 1) throw invalidParameterError('views', 'a positive integer', views);
    const side = Math.floor(d.imageSize / d.patch);
    const size = pixelValues instanceof Float32Array ? Math.round(Math.sqrt(pixelValues.length / (views * d.channels))) : 0;
    if (!(pixelValues instanceof Float32Array) || size * size * views * d.channels !== pixelValues.length || Math.floor(size / d.patch) !== side) {
      throw invalidParameterError('pixelValues', `a Float32Array of ${views} square views × ${d.channels} channels of ${d.imageSize} px (${side}² patches of ${d.patch} px)`, pixelValues);
    }
    return enqueue(() => runNative(callSite, undefined, () => this.native.siglip(pixelValues, views, size)));
  }

  /**
   * Qwen2.5-VL's window order for `grids` (transformers' get_window_index): `index` lists the
   * merged tokens window by window, `windows` the window boundaries in patches.
   */
  windowIndex(grids: readonly ImageGrid[]): { index: Int32Array; windows: Int32Array } {
    if (this.dims.kind !== 'qwen2_5_vl') throw new VlmqError('ERR_VLMQ_INVALID_ARG', `windowIndex() needs a Qwen2.5-VL tower; this one is ${this.dims.kind}`);
    return this.native.windowIndex(this.checkGrids(grids));
  }

  dispose(): void {
    this.native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private requireKind(call: 'qwen' | 'siglip'): void {
    const isSiglip = this.dims.kind === 'siglip';
    if ((call === 'siglip') !== isSiglip) {
      throw new VlmqError('ERR_VLMQ_INVALID_ARG', `${call}() needs ${call === 'siglip' ? 'a SigLIP' : 'a Qwen2-VL or Qwen2.5-VL'} tower; this one is ${this.dims.kind} (call ${isSiglip ? 'siglip' : 'qwen'}())`);
    }
  }

  /** (t, h, w) per image: positive integers, h and w multiples of the merge size; flattened for native. */
  private checkGrids(grids: readonly ImageGrid[]): Int32Array {
    if (!Array.isArray(grids) || grids.length === 0) throw invalidParameterError('grids', 'a non-empty array of (t, h, w) grids', grids);
    const m = this.dims.merge;
    const flat = new Int32Array(3 * grids.length);
    let patches = 0;
    grids.forEach((grid, i) => {
      const ok = Array.isArray(grid) && grid.length === 3 && grid.every((v) => Number.isSafeInteger(v) && v >= 1 && v <= 0x7fffffff);
      if (!ok) throw invalidParameterError(`grids[${i}]`, '(t, h, w): three positive integers', grid);
      const [t, h, w] = grid;
      if (h % m !== 0 || w % m !== 0) throw invalidParameterError(`grids[${i}]`, `h and w multiples of the merge size ${m}`, grid);
      patches += t * h * w;
      if (patches > 0x7fffffff) throw invalidParameterError('grids', 'at most 2³¹ − 1 patches in all', grids);
      flat.set(grid, 3 * i);
    });
    return flat;
  }
}
