// The raw native module, typed by hand: the single source of truth at the boundary
// (native/napi/addon.cpp registers exactly these). No module but lib/native imports the addon;
// everything else goes through the wrappers in lib/quant. Slow entries return Promises.

/** A row-major matrix handed to native code without a copy. F16/BF16 data are raw bit patterns. */
export interface NativeMatrix {
  data: Float32Array | Uint16Array;
  dtype: 'F32' | 'F16' | 'BF16';
  rows: number;
  cols: number;
}

/** A cancel flag native loops poll between column blocks and token slabs. */
export interface NativeCancelToken {
  cancel(): void;
  readonly cancelled: boolean;
}

export interface NativeHessianAccumulator {
  readonly n: number;
  readonly crossTerm: boolean;
  readonly samples: number;
  readonly disposed: boolean;
  add(x: NativeMatrix | NativeTensor, xFull: NativeMatrix | NativeTensor | null, tokenWeights: Float32Array | null, samples: number,
    cancel: NativeCancelToken | null): Promise<void>;
  /** A copy of H (made symmetric) or, with cross = true, of the cross term. */
  read(cross: boolean): Promise<Float32Array>;
  dispose(): void;
}

/** Every field is required: lib/quant fills defaults before the call. */
export interface NativeLinearOptions {
  method: 'rtn' | 'gptq' | 'gptaq';
  bits: number;
  sym: boolean;
  groupSize: number;
  actOrder: boolean;
  staticGroups: boolean;
  blockSize: number;
  percdamp: number;
  dampIncrement: number;
  maxPercdamp: number;
  mse: boolean;
  mseNorm: number;
  mseGrid: number;
  mseMaxShrink: number;
  fp32Scales: boolean;
  alpha: number;
  gptaqVariant: 'reference' | 'derivation';
}

export type NativeStatistics =
  | { accumulator: NativeHessianAccumulator }
  | { hessian: Float32Array; dxxt: Float32Array | null }
  | null;

export interface NativeLinearResult {
  rows: number;
  cols: number;
  groups: number;
  dequantized: Float32Array;
  codes: Uint8Array;
  scales: Float32Array;
  zeros: Float32Array;
  gIdx: Int32Array;
  perm: Int32Array | null;
  loss: number;
  fallback: boolean;
  deadColumns: number;
  damping: { ok: boolean; percdamp: number; lambda: number; tried: number[]; failedMinor: number };
  seconds: { prepare: number; factor: number; sweep: number; correction: number };
}

export interface NativeInfo {
  version: string;
  buildSystem: 'cmake-js' | 'node-gyp' | string;
  buildType: 'Release' | 'Debug';
  backends: string[];
  cpu: { blas: string; blasCore: string; blasThreads: number; threads: number; hardwareThreads: number };
  cuda: {
    compiled: boolean;
    usable: boolean;
    reason: string;
    runtimeVersion: number;
    driverVersion: number;
    deviceCount: number;
    deviceName: string;
    libraries: string;
  };
}

/** A decoder layer's dimensions (Qwen2). mropeSection: null for 1-D RoPE. */
export interface NativeDecoderDims {
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  eps: number;
  ropeTheta: number;
  mropeSection: number[] | null;
}

/** Where a forward pass stops: the inputs of the module groups [k,v,q] → [o] → [gate,up] → [down], the attention block's output, or the layer output. */
export type DecoderStage = 'attention-input' | 'o-input' | 'attention-output' | 'mlp-input' | 'down-input' | 'output';

/** positions [T] (1-D RoPE) or [3, T] (M-RoPE, component-major); segments: sample offsets [0, ..., T]. */
export interface NativeTokens {
  positions: Int32Array;
  segments: Int32Array;
}

type Stream = Float32Array | NativeTensor;

export interface NativeDecoderLayer {
  /** input_layernorm, post_attention_layernorm, q_proj … down_proj, q_proj.bias, k_proj.bias, v_proj.bias */
  setTensor(name: string, value: NativeMatrix): Promise<void>;
  /** A Float32Array in, a Float32Array out; a Tensor in, a Tensor (on the layer's backend) out. */
  forward(x: Float32Array, tokens: NativeTokens, until: DecoderStage): Promise<Float32Array>;
  forward(x: NativeTensor, tokens: NativeTokens, until: DecoderStage): Promise<NativeTensor>;
  /**
   * VLMQ factors of the attention block for the quantized stream u against the full-precision
   * stream f — or against `reference` = B(f) computed elsewhere (then f is null). Streams are
   * Float32Arrays or Tensors on the layer's backend.
   */
  importance(u: Stream, f: Stream | null, tokens: NativeTokens, l2: boolean, reference: Stream | null): Promise<{ q: Float32Array; k: Float32Array; v: Float32Array; o: Float32Array; loss: number }>;
  dispose(): void;
}

/** Activations of the vision towers and projectors, by their transformers (ACT2FN) names. */
export type VisionActivation = 'gelu' | 'gelu_pytorch_tanh' | 'quick_gelu' | 'silu';

/**
 * A vision tower's dimensions. Every field is required: lib/pipeline/vision-tower.ts fills the ones
 * a kind does not use (Qwen: imageSize 0; SigLIP: temporalPatch 1, merge 1, window 0, fullatt []).
 */
export interface NativeVisionDims {
  kind: 'qwen2_vl' | 'qwen2_5_vl' | 'siglip';
  width: number;
  heads: number;
  /** MLP width (Qwen2-VL: width · mlp_ratio). */
  intermediate: number;
  /** Blocks (Qwen) or encoder layers run (SigLIP: the feature layer). */
  depth: number;
  channels: number;
  patch: number;
  temporalPatch: number;
  /** spatial_merge_size (Qwen). */
  merge: number;
  /** Qwen2.5-VL window_size in pixels. */
  window: number;
  /** Qwen2.5-VL blocks that attend over the whole image (the others attend within windows). */
  fullatt: number[];
  /** SigLIP: the position embedding has (imageSize / patch)² rows. */
  imageSize: number;
  /** Merger / projector output: the language model's hidden size. */
  outHidden: number;
  eps: number;
  /** The blocks' MLP activation (Qwen2.5-VL: the gate's, always silu). */
  mlpAct: VisionActivation;
  /** Between the merger's (Qwen) or the projector's (LLaVA-OneVision) two linears. */
  headAct: VisionActivation;
}

export interface NativeVisionTower {
  /** A tensor by its name relative to the tower (native/include/vlmq/vision.h lists them); convolution weights as [out, in · kernel]. */
  setTensor(name: string, value: NativeMatrix): Promise<void>;
  /** Qwen: pixel rows [Σ t·h·w, C·T·P·P] and grids (t, h, w) per image → merged tokens [Σ t·h·w / merge², outHidden]. */
  qwen(pixels: Float32Array, grids: Int32Array): Promise<Float32Array>;
  /** SigLIP: views [views, C, size, size] → projected features [views · (size / patch)², outHidden]. */
  siglip(pixels: Float32Array, views: number, size: number): Promise<Float32Array>;
  /**
   * Qwen2.5-VL's window order: `index` lists merged tokens window by window (a permutation of
   * [0, Σ t·h·w / merge²)); `windows` the window boundaries in patches [0, ..., Σ t·h·w].
   */
  windowIndex(grids: Int32Array): { index: Int32Array; windows: Int32Array };
  dispose(): void;
}

/** Baseline kernels timed natively for benchmarks/ (best of `repeats`). */
export type BenchKernel = 'sgemm' | 'ssyrk' | 'sgemm-cross' | 'spotrf' | 'chain-reference' | 'chain-vlmq';

/** An f32 matrix in a backend's memory (native/napi/tensor.h). */
export interface NativeTensor {
  readonly rows: number;
  readonly cols: number;
  /** The registry name of its backend; null once disposed. */
  readonly device: string | null;
  readonly disposed: boolean;
  /** A host copy of the elements. */
  read(): Promise<Float32Array>;
  dispose(): void;
}

/** One entry of the native registry of backends (native/include/vlmq/devices.h). */
export interface NativeBackendInfo {
  /** 'cpu', 'cuda' (no device), 'cuda:0', ... */
  name: string;
  kind: 'cpu' | 'cuda';
  /** The binary holds this backend's code. */
  compiled: boolean;
  /** It can run on this machine. */
  usable: boolean;
  /** Why not usable ('' when usable). */
  reason: string;
  deviceName: string;
  memoryBytes: number;
}

/** One case of the Backend conformance suite (native/include/vlmq/conformance.h). */
export interface NativeConformanceResult {
  /** The Backend primitive the case checks ('memory_pool' for the pool every backend allocates from). */
  primitive: string;
  name: string;
  ok: boolean;
  /** What differed, or how close the result came. */
  detail: string;
}

/**
 * Native objects and quantizeLinear take a device name ('auto', 'cpu', 'cuda', 'cuda:N'; undefined
 * means 'auto') and throw ERR_VLMQ_UNSUPPORTED with the registry's reason when it is not usable.
 */
export interface BindingModule {
  info(): NativeInfo;
  setThreads(threads: number): void;
  backends(): NativeBackendInfo[];
  /** The registry name of the backend a device name selects ('auto' → 'cpu' or 'cuda:N'). */
  resolveDevice(device: string): string;
  benchmark(kernel: BenchKernel, params: { m: number; n: number; k: number; repeats: number }): Promise<{ seconds: number; flops: number }>;
  CancelToken: new () => NativeCancelToken;
  Tensor: abstract new (...args: never[]) => NativeTensor;
  tensorFromHost(data: Float32Array, rows: number, cols: number, device?: string): Promise<NativeTensor>;
  HessianAccumulator: new (n: number, crossTerm: boolean, device?: string) => NativeHessianAccumulator;
  DecoderLayer: new (dims: NativeDecoderDims, device?: string) => NativeDecoderLayer;
  VisionTower: new (dims: NativeVisionDims, device?: string) => NativeVisionTower;
  quantizeLinear(weight: NativeMatrix, statistics: NativeStatistics, options: NativeLinearOptions,
    cancel: NativeCancelToken | null, onProgress: ((done: number, total: number) => void) | null, device?: string): Promise<NativeLinearResult>;
  /** The Backend conformance suite on a device's backend (throws ERR_VLMQ_UNSUPPORTED when it is not usable). */
  conformance(device?: string): Promise<NativeConformanceResult[]>;
  /** The suite on a CPU backend broken on purpose in gemm and gather_rows: exactly those fail. */
  conformanceSelfTest(): Promise<NativeConformanceResult[]>;
}
