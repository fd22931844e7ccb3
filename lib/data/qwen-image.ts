/*
 * Qwen2-VL / Qwen2.5-VL image preprocessing, as transformers' slow `Qwen2VLImageProcessor` does it
 * (the PIL/NumPy backend, `Qwen2VLImageProcessorPil` in transformers 5; docs/formats.md §3.7).
 *
 *  1. smart_resize(h, w, factor = patch·merge, min_pixels, max_pixels) picks the size: both sides
 *     multiples of `factor`, area within [min, max], aspect kept as well as possible. The current
 *     transformers version is reproduced: no error for images smaller than `factor` (older versions
 *     raised for h or w < factor, the oldest for < 10); a side that rounds to 0 is rescued by the
 *     min_pixels branch, and the max_pixels branch keeps each side ≥ factor. Python's round() is
 *     banker's rounding (roundHalfEven).
 *  2. PIL bicubic resize of the uint8 RGB image (resizeBicubic, bit-exact with Pillow).
 *  3. rescale: `image.astype(float64) · rescale_factor`, then cast to float32 (image_transforms.rescale);
 *     normalize: `(x − mean) / std` in float32 with mean and std cast to float32
 *     (image_transforms.normalize). Two float32 roundings per value, reproduced with Math.fround
 *     (a double op then fround equals the float32 op for +, −, ·, /). Done through a 256-entry
 *     table per channel, since the input is a byte.
 *  4. The frame is repeated temporal_patch_size times (a still image is a 2-frame "video"), so
 *     grid_t = 1, grid_h = h̄/patch, grid_w = w̄/patch.
 *  5. Patches are flattened in the order of the processor's reshape + transpose:
 *     (gh/m, m, P, gw/m, m, P) → (gh/m, gw/m, m, m, C, T, P, P): row r of pixel_values is the patch
 *     at block (by, bx), position (my, mx) inside the m×m merge block, r = ((by·gw/m + bx)·m + my)·m + mx;
 *     within a row the values run over channel, then frame, then the P×P pixels row-major.
 *     Consecutive groups of m² rows are one merge block, so the language model gets
 *     grid_t·grid_h·grid_w / m² tokens.
 * The fast (torchvision) processor resizes with torchvision's antialiased bicubic and fuses
 * rescale into normalize, so its pixel values differ in low bits; it is not reproduced.
 */

import { fileError, invalidParameterError } from '../errors.js';
import { OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, checkImage, configFields, normalizationTables, resizeBicubic, roundHalfEven, type RgbImage } from './image.js';

export interface QwenImageProcessorConfig {
  /** Spatial patch size of the vision tower (14). */
  patchSize: number;
  /** Frames per temporal patch (2): a still image is repeated this many times. */
  temporalPatchSize: number;
  /** Side of the patch block merged into one language-model token (2). */
  mergeSize: number;
  /** Smallest resized area in pixels (min_pixels / size.shortest_edge). */
  minPixels: number;
  /** Largest resized area in pixels (max_pixels / size.longest_edge). */
  maxPixels: number;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  /** Multiplies the 0–255 pixel values before normalisation (1/255). */
  rescaleFactor: number;
  /** The architecture whose processor this is, for messages ("Qwen2.5-VL"); default "Qwen2-VL/Qwen2.5-VL". */
  modelName?: string;
}


/** The class defaults of Qwen2VLImageProcessor, used for every field the file does not set. */
const QWEN_DEFAULTS: QwenImageProcessorConfig = {
  patchSize: 14,
  temporalPatchSize: 2,
  mergeSize: 2,
  minPixels: 56 * 56,
  maxPixels: 28 * 28 * 1280,
  imageMean: OPENAI_CLIP_MEAN,
  imageStd: OPENAI_CLIP_STD,
  rescaleFactor: 1 / 255,
};

/**
 * Reads a Qwen2-VL / Qwen2.5-VL preprocessor_config.json. Pixel bounds come, in rising priority,
 * from the class defaults, `size` ({shortest_edge, longest_edge}; files saved by old transformers
 * have {min_pixels, max_pixels} there), then top-level `min_pixels` / `max_pixels` (as the
 * processor's __init__ applies them). Settings this module does not implement (no resize, rescale
 * or normalisation, a resample other than bicubic) are errors rather than silently different
 * pixels. Every error names `file` and the field. `modelName` (the architecture's display name)
 * is what the aspect-ratio error names.
 */
export function qwenImageProcessorConfig(json: Record<string, unknown>, file: string, modelName?: string): QwenImageProcessorConfig {
  const field = configFields(json, file);
  field.only('do_resize', true);
  field.only('do_rescale', true);
  field.only('do_normalize', true);
  field.only('resample', 3, 'PIL bicubic (3), the only resampling implemented');
  const sizeField = configFields(field.object('size') ?? {}, file, 'size.');
  const config: QwenImageProcessorConfig = {
    patchSize: field.positiveInteger('patch_size') ?? QWEN_DEFAULTS.patchSize,
    temporalPatchSize: field.positiveInteger('temporal_patch_size') ?? QWEN_DEFAULTS.temporalPatchSize,
    mergeSize: field.positiveInteger('merge_size') ?? QWEN_DEFAULTS.mergeSize,
    minPixels:
      field.positiveInteger('min_pixels') ?? sizeField.positiveInteger('shortest_edge') ?? sizeField.positiveInteger('min_pixels') ?? QWEN_DEFAULTS.minPixels,
    maxPixels:
      field.positiveInteger('max_pixels') ?? sizeField.positiveInteger('longest_edge') ?? sizeField.positiveInteger('max_pixels') ?? QWEN_DEFAULTS.maxPixels,
    imageMean: field.triple('image_mean', false) ?? QWEN_DEFAULTS.imageMean,
    imageStd: field.triple('image_std', true) ?? QWEN_DEFAULTS.imageStd,
    rescaleFactor: field.positiveNumber('rescale_factor') ?? QWEN_DEFAULTS.rescaleFactor,
    ...(modelName === undefined ? {} : { modelName }),
  };
  if (config.minPixels > config.maxPixels) {
    throw fileError(file, `expected min_pixels ≤ max_pixels but found ${config.minPixels} > ${config.maxPixels}`);
  }
  return config;
}

/**
 * transformers' `smart_resize` (qwen2_vl image processing, current version): the [height, width]
 * the image is resized to. Throws a VlmqError naming `label` (and `o.modelName`, the architecture)
 * for an aspect ratio above 200.
 */
export function smartResize(
  height: number,
  width: number,
  o: { factor: number; minPixels: number; maxPixels: number; modelName?: string },
  label = 'image',
): [number, number] {
  for (const [name, value] of [['height', height], ['width', width], ['factor', o.factor]] as const) {
    if (!Number.isSafeInteger(value) || value < 1) throw invalidParameterError(name, 'a positive integer', value);
  }
  for (const [name, value] of [['minPixels', o.minPixels], ['maxPixels', o.maxPixels]] as const) {
    if (!Number.isFinite(value) || value < 0) throw invalidParameterError(name, 'a non-negative number', value);
  }
  const { factor, minPixels, maxPixels } = o;
  const aspect = Math.max(height, width) / Math.min(height, width);
  if (aspect > 200) {
    throw fileError(label, `absolute aspect ratio must be at most 200 for the ${o.modelName ?? 'Qwen2-VL/Qwen2.5-VL'} image processor, but ${height}×${width} (h×w) has ${aspect}`);
  }
  let hBar = roundHalfEven(height / factor) * factor;
  let wBar = roundHalfEven(width / factor) * factor;
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  if (hBar < 1 || wBar < 1) {
    // Only reachable with min_pixels 0; transformers would fail later, inside PIL.
    throw fileError(label, `${height}×${width} (h×w) resizes to ${hBar}×${wBar}: raise min_pixels (${minPixels})`);
  }
  return [hBar, wBar];
}

export interface QwenImageInput {
  /** [gridT·gridH·gridW, C·temporalPatchSize·patchSize²] float32, in the processor's patch order. */
  pixelValues: Float32Array;
  /** [gridT, gridH, gridW] (image_grid_thw). */
  grid: [number, number, number];
  /** tokens the language model gets for it: gridT·gridH·gridW / mergeSize² */
  tokens: number;
}

/** The resized [height, width] of an image of this size (smart_resize with the config's bounds). */
function resizedSize(height: number, width: number, config: QwenImageProcessorConfig, label: string): [number, number] {
  const { minPixels, maxPixels, modelName } = config;
  return smartResize(height, width, { factor: config.patchSize * config.mergeSize, minPixels, maxPixels, modelName }, label);
}

/** The language-model tokens of an image of this size: (h̄/P)·(w̄/P) / merge² (one temporal patch). */
export function qwenImageTokens(height: number, width: number, config: QwenImageProcessorConfig, label = 'image'): number {
  const [h, w] = resizedSize(height, width, config, label);
  return (h / config.patchSize) * (w / config.patchSize) / (config.mergeSize * config.mergeSize);
}

/**
 * Qwen2VLImageProcessor (slow) on one RGB image: smart_resize → PIL bicubic → rescale →
 * normalize (float32) → temporal repeat → patch flattening (see the top of this file).
 */
export function preprocessQwenImage(image: RgbImage, config: QwenImageProcessorConfig, label = 'image'): QwenImageInput {
  checkImage(image, 'image');
  const { patchSize: P, temporalPatchSize: T, mergeSize: m } = config;
  const [height, width] = resizedSize(image.height, image.width, config, label);
  const resized = resizeBicubic(image, width, height);
  const tables = normalizationTables(config);
  const gridH = height / P;
  const gridW = width / P;
  const rowLength = 3 * T * P * P;
  const pixelValues = new Float32Array(gridH * gridW * rowLength);
  let row = 0;
  for (let by = 0; by < gridH / m; by++) {
    for (let bx = 0; bx < gridW / m; bx++) {
      for (let my = 0; my < m; my++) {
        for (let mx = 0; mx < m; mx++, row++) {
          copyPatch(resized, tables, (by * m + my) * P, (bx * m + mx) * P, P, T, pixelValues, row * rowLength);
        }
      }
    }
  }
  return { pixelValues, grid: [1, gridH, gridW], tokens: (gridH * gridW) / (m * m) };
}

/**
 * One patch row: for each channel c, each of the T identical frames, the P×P pixels row-major,
 * normalised by table lookup straight from the resized bytes (no float copy of the whole image:
 * at the shipped max_pixels that would be 150 MB more).
 */
function copyPatch(image: RgbImage, tables: readonly Float32Array[], top: number, left: number, P: number, T: number, out: Float32Array, offset: number): void {
  const { data, width } = image;
  let o = offset;
  for (let c = 0; c < 3; c++) {
    const table = tables[c];
    const first = o;
    for (let i = 0; i < P; i++) {
      for (let j = 0, p = ((top + i) * width + left) * 3 + c; j < P; j++, p += 3) out[o++] = table[data[p]];
    }
    for (let t = 1; t < T; t++, o += P * P) out.copyWithin(o, first, first + P * P); // the repeated frames
  }
}
