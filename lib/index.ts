// The public API of vlmq.
export { HessianAccumulator } from './quant/hessian-accumulator.js';
export type { AddBatchOptions, HessianAccumulatorOptions } from './quant/hessian-accumulator.js';
export { quantizeLinear } from './quant/quantize-linear.js';
export type { LinearQuantization, LinearStatistics } from './quant/quantize-linear.js';
export { DEFAULT_LINEAR_OPTIONS, resolveLinearOptions } from './quant/options.js';
export type { QuantMethod, QuantizeLinearOptions } from './quant/options.js';
export { SafetensorsFile, loadSafetensors, readSafetensorsHeader, writeSafetensors } from './io/safetensors.js';
export type { TensorInfo, WritableTensor } from './io/safetensors.js';
export type { DType, Tensor } from './tensor.js';
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, toFloat32 } from './tensor.js';
export { VlmqError } from './errors.js';
export { nativeInfo, setThreads } from './native/info.js';
