// The public API of vlmq. The generators of tiny checkpoints and calibration data, and the demo,
// are in `vlmq/demo` (lib/demo/index.ts).

// One linear layer: statistics and the quantizer.
export { HessianAccumulator } from './quant/hessian-accumulator.js';
export type { AddBatchOptions, HessianAccumulatorOptions } from './quant/hessian-accumulator.js';
export { quantizeLinear } from './quant/quantize-linear.js';
export type { LinearQuantization, LinearStatistics } from './quant/quantize-linear.js';
export { DEFAULT_LINEAR_OPTIONS, resolveLinearOptions } from './quant/options.js';
export type { QuantMethod, QuantizeLinearOptions } from './quant/options.js';

// Tensors and files.
export type { DType, Tensor } from './tensor.js';
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, toFloat32 } from './tensor.js';
export { SafetensorsFile, loadSafetensors, readSafetensorsHeader } from './io/safetensors-reader.js';
export type { TensorInfo } from './io/safetensors-reader.js';
export { writeSafetensors } from './io/safetensors-writer.js';
export type { WritableTensor } from './io/safetensors-writer.js';
export { Checkpoint } from './io/checkpoint.js';

// Errors and the native addon.
export { VlmqError } from './errors.js';
export { nativeInfo, setThreads } from './native/info.js';
export { backends, resolveDevice } from './native/devices.js';
export type { BackendInfo, Device } from './native/devices.js';
export { DeviceTensor } from './quant/device-tensor.js';

// Models.
export { Model, loadModel } from './models/model.js';
export type { LoadModelOptions } from './models/model.js';
export type { TensorProblem, UnknownTensorPolicy } from './models/checks.js';
export { ARCHITECTURES } from './models/registry.js';
export type { Architecture, ArchitectureId, LinearSpec, ModelConfig, TensorLayout } from './models/types.js';

// Calibration data: records, images, text, bundles.
export { IMAGE_PLACEHOLDER, readCalibrationJsonl, readCalibrationSet, readShareGPT4V, sampleRecords } from './data/calibration-set.js';
export type { CalibrationRecord } from './data/calibration-set.js';
export { TextProcessor } from './data/processor.js';
export type { Conversation, TextProcessorOptions } from './data/processor.js';
export { TEMPLATE_HEAP_LIMIT_MB, TEMPLATE_OUTPUT_LIMIT, TEMPLATE_TIME_LIMIT_MS } from './data/template-renderer.js';
export type { TemplateLimits } from './data/template-renderer.js';
export { MAX_IMAGE_PIXELS, decodeImage, resizeBicubic, roundHalfEven } from './data/image.js';
export type { DecodeOptions, ImageLimits, RgbImage } from './data/image.js';
export { preprocessQwenImage, qwenImageProcessorConfig, smartResize } from './data/qwen-image.js';
export type { QwenImageInput, QwenImageProcessorConfig } from './data/qwen-image.js';
export { llavaImageProcessorConfig, llavaImageTokens, packLlavaFeatures, preprocessLlavaImage, selectBestResolution } from './data/llava-image.js';
export type { LlavaImageInput, LlavaImageProcessorConfig } from './data/llava-image.js';
export { CalibrationBundle, MODALITY, writeCalibrationBundle } from './data/bundle.js';
export type { BundleSample, BundleSampleData, CalibrationBundleSummary, WriteCalibrationBundleOptions } from './data/bundle.js';
export { modalityMask, mropePositions, sequentialPositions } from './data/positions.js';
export type { ImagePart, PositionPart, TextPart } from './data/positions.js';

// Quantizing a model: calibration bundles, the layer loop, the native layers it runs, evaluation.
export { Calibration, DEFAULT_MAX_TOKENS, buildCalibrationBundle, calibrationShortfall } from './pipeline/calibration.js';
export type { CalibrationBuildOptions, CalibrationReport } from './pipeline/calibration.js';
export { MODEL_METHODS, QuantizationRun, quantize, resolveQuantizeOptions } from './pipeline/quantize.js';
export type { ModelMethod, QuantizeEvent, QuantizeModelOptions, ResolvedQuantizeOptions, SaveOptions } from './pipeline/quantize.js';
export type { ModalityMeans, Phase, PipelineEvent } from './pipeline/calibrated.js';
export type { ImportanceOptions } from './pipeline/importance.js';
export { VisionTower } from './pipeline/vision-tower.js';
export type { ImageGrid } from './pipeline/vision-tower.js';
export { DecoderLayer } from './pipeline/decoder-layer.js';
export type { DecoderStage, PackedTokens } from './pipeline/decoder-layer.js';
export { layerErrors, modelErrors } from './pipeline/evaluate.js';
export type { EvaluateOptions, LayerErrors, ModalityErrors, OutputErrors } from './pipeline/evaluate.js';

// Quantized checkpoints: export, verify, loader compatibility.
export { exportModel } from './export/export.js';
export type { ExportFormat, ExportOptions, ExportReport, QuantizationSettings, QuantizedLinearData, QuantizedSource } from './export/export.js';
export { verifyCheckpoint } from './export/verify.js';
export type { VerifyOptions, VerifyReport } from './export/verify.js';
export { gptqCompatibility } from './export/compat.js';
