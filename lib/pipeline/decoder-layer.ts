// One decoder layer of a model, loaded into native memory: forward passes to the input of any
// module group (or the output), VLMQ's attention-block importance factors, and replacing a linear
// by its quantized weights while the pipeline works through the layer.
import { invalidParameterError } from '../errors.js';
import type { Model } from '../models/model.js';
import type { LinearName, TextConfig } from '../models/types.js';
import type { DecoderStage, NativeDecoderDims, NativeDecoderLayer, NativeTensor, NativeTokens } from '../native/binding.js';
import { type Device, resolveDevice } from '../native/devices.js';
import { binding } from '../native/loader.js';
import { DeviceTensor } from '../quant/device-tensor.js';
import { enqueue, runNative } from '../native/jobs.js';
import { toNativeMatrix } from '../quant/matrix.js';
import type { Tensor } from '../tensor.js';

export type { DecoderStage, NativeTokens as TokenLayout } from '../native/binding.js';

/** Tokens of a packed batch: positions [T] or [3, T] and sample offsets [0, ..., T]. */
export interface PackedTokens extends NativeTokens {
  tokens: number;
}

export interface ImportanceResult {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  loss: number;
}

export function decoderDims(text: TextConfig): NativeDecoderDims {
  return {
    hidden: text.hiddenSize,
    heads: text.numHeads,
    kvHeads: text.numKvHeads,
    headDim: text.headDim,
    intermediate: text.intermediateSize,
    eps: text.rmsNormEps,
    ropeTheta: text.ropeTheta,
    mropeSection: text.mropeSection,
  };
}

export class DecoderLayer implements Disposable {
  private constructor(readonly dims: NativeDecoderDims, private readonly native: NativeDecoderLayer) {}

  /** Layer `index` of `model` on `device`, its tensors read from the checkpoint (BF16/F16/F32 → f32). */
  static async load(model: Model, index: number, device?: Device): Promise<DecoderLayer> {
    const layer = DecoderLayer.empty(decoderDims(model.config.text), device);
    const prefix = `${model.architecture.languagePrefixes(model.layout).layers}.${index}`;
    await layer.set('input_layernorm', await model.readTensor(`${prefix}.input_layernorm.weight`));
    await layer.set('post_attention_layernorm', await model.readTensor(`${prefix}.post_attention_layernorm.weight`));
    for (const linear of model.layerLinears(index)) {
      const { weight, bias } = await model.readLinear(linear);
      await layer.set(linear.module, weight);
      if (bias) await layer.set(`${linear.module}.bias`, bias);
    }
    return layer;
  }

  /** A layer with no tensors yet (tests and synthetic models set them). */
  static empty(dims: NativeDecoderDims, device?: Device): DecoderLayer {
    return new DecoderLayer(dims, new (binding().DecoderLayer)(dims, resolveDevice(device)));
  }

  /** Stores a tensor: a norm weight, a linear [out, in] or a q/k/v bias. */
  set(name: string, tensor: Tensor): Promise<void> {
    const callSite = new Error();
    const matrix = toNativeMatrix(tensor, name);
    return enqueue(() => runNative(callSite, undefined, () => this.native.setTensor(name, matrix)));
  }

  /** Replaces a linear's weights, e.g. by its quantized (dequantized) values. */
  setLinear(module: LinearName, weight: Float32Array, shape: readonly [number, number]): Promise<void> {
    return this.set(module, { dtype: 'F32', shape, data: weight });
  }

  /**
   * The hidden states x [T, hidden] through the layer, up to `until`: host memory in, host memory
   * out; a DeviceTensor (on this layer's device) in, a DeviceTensor out.
   */
  forward(x: Float32Array, tokens: PackedTokens, until?: DecoderStage): Promise<Float32Array>;
  forward(x: DeviceTensor, tokens: PackedTokens, until?: DecoderStage): Promise<DeviceTensor>;
  forward(x: Float32Array | DeviceTensor, tokens: PackedTokens, until: DecoderStage = 'output'): Promise<Float32Array | DeviceTensor> {
    const callSite = new Error();
    checkTokens(x, tokens, this.dims);
    if (x instanceof DeviceTensor) {
      const input = x.native;
      return enqueue(() => runNative(callSite, undefined, async () => new DeviceTensor(await this.native.forward(input, tokens, until))));
    }
    return enqueue(() => runNative(callSite, undefined, () => this.native.forward(x, tokens, until)));
  }

  /**
   * VLMQ's factors: per token, the mean |∂L/∂Z_p| (or its root mean square, l2) for the outputs of
   * q/k/v/o_proj, with L = Σ (B(u) − B(f))² over the attention block B. `reference` replaces B(f)
   * when it was computed by another layer (the full-precision one, for a probe).
   */
  importance(u: Stream, f: Stream | null, tokens: PackedTokens, options: { l2?: boolean; reference?: Stream } = {}): Promise<ImportanceResult> {
    const callSite = new Error();
    checkTokens(u, tokens, this.dims);
    if (!f === !options.reference) throw invalidParameterError('importance', 'either f or options.reference', 'both or neither');
    const [nu, nf, nr] = [u, f, options.reference ?? null].map(native);
    return enqueue(() => runNative(callSite, undefined, () => this.native.importance(nu!, nf, tokens, options.l2 ?? false, nr)));
  }

  dispose(): void {
    this.native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Hidden states [T, hidden]: host memory, or a DeviceTensor on the layer's device. */
export type Stream = Float32Array | DeviceTensor;

function native(x: Stream | null): Float32Array | NativeTensor | null {
  if (!(x instanceof DeviceTensor)) return x;
  if (x.disposed) throw invalidParameterError('hidden states', 'a live DeviceTensor', 'a disposed one');
  return x.native;
}

function checkTokens(x: Stream, tokens: PackedTokens, dims: NativeDecoderDims): void {
  const length = x instanceof DeviceTensor ? (x.cols === dims.hidden ? x.rows * x.cols : -1) : x.length;
  if (length !== tokens.tokens * dims.hidden) throw invalidParameterError('hidden states', `${tokens.tokens} × ${dims.hidden} floats`, x);
  const rows = dims.mropeSection ? 3 : 1;
  if (tokens.positions.length !== rows * tokens.tokens) throw invalidParameterError('positions', `${rows} × ${tokens.tokens} ids`, tokens.positions);
  const s = tokens.segments;
  if (s.length < 2 || s[0] !== 0 || s[s.length - 1] !== tokens.tokens) throw invalidParameterError('segments', `offsets from 0 to ${tokens.tokens}`, s);
}
