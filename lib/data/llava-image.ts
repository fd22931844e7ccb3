/*
 * LLaVA-OneVision (llava-hf) "anyres_max_N" image preprocessing and feature packing, as transformers'
 * slow `LlavaOnevisionImageProcessor` (the PIL/NumPy backend), `LlavaOnevisionProcessor` and
 * `LlavaOnevisionModel.pack_image_features` do it (docs/formats.md §4.2).
 *
 * Pixels (image processor, `get_image_patches`):
 *  - select_best_resolution picks the grid pinpoint [h, w] (h, w multiples of the tile size S = 384)
 *    with the largest effective resolution min(⌊w0·s⌋·⌊h0·s⌋, w0·h0), s = min(w/w0, h/h0); ties go
 *    to the least wasted area w·h − effective, then to the earlier pinpoint;
 *  - the image is resized keeping its aspect to fit it (get_patch_output_size: the limiting side
 *    becomes the pinpoint's, the other ⌈side·scale⌉, at most the pinpoint's) with the processor's
 *    resample, PIL bicubic;
 *  - it is padded to the pinpoint with 0 on the uint8 image, i.e. BEFORE rescale and normalisation
 *    (so padding normalises to (0 − mean)/std, −1 for SigLIP's 0.5/0.5), centred, the odd pixel
 *    at the bottom/right (`_get_padding_size`: divmod(diff, 2) → (q, q + r)). Every transformers
 *    version since LLaVA-OneVision was added pads with 0 before normalisation; the original
 *    LLaVA-NeXT code pastes onto a black canvas too;
 *  - it is cut into S×S tiles, row-major; view 0 is the whole image resized to S×S (aspect not kept);
 *  - each view is rescaled and normalised in float32 (normalizedPlanes), as [3, S, S].
 *
 * Tokens (processor, `_get_number_of_features` / `_get_unpadded_features`), with P = ⌊S/14⌋ = 27
 * features per tile side and a rows×cols tile grid:
 *   current = (rows·P, cols·P); if w0/h0 > current_w/current_h the height is unpadded:
 *   new_h = int(round(h0·(current_w/w0), 7)), current_h −= 2·((current_h − new_h) // 2) (else the
 *   width likewise); ratio = sqrt(current_h·current_w / (N·P²)); if ratio > 1.1 the map shrinks to
 *   (int(current_h // ratio), int(current_w // ratio)) with Python's float floor division;
 *   tokens = P² + h·w + h (one newline per row). vision_feature_select_strategy "full" (no −1).
 *
 * Features (model, `pack_image_features`): base view's P² features first (no newline); the tiles'
 * P×P maps stitched into the (rows·P)×(cols·P) map; `unpad_image` crops the same rows/columns as
 * above (int(round(·, 7)), the current code); if ratio > 1.1, `F.interpolate(mode="bilinear",
 * align_corners=False)` to the size above — reproduced with PyTorch's CPU float32 arithmetic
 * (scale = in/out in float32, source index (o + 0.5)·scale − 0.5 clamped at 0, weights 1 − λ and λ,
 * (x00·w0 + x01·w1)·h0 + (x10·w0 + x11·w1)·h1); then the newline vector after every row, row-major.
 * A GPU kernel (or FMA contraction) can differ from it in the last bit of a value.
 */

import { dirname, join } from 'node:path';
import { fileError, invalidParameterError, VlmqError } from '../errors.js';
import { OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, checkImage, configFields, normalizedPlanes, resizeBicubic, type ConfigFields, type RgbImage } from './image.js';

export interface LlavaImageProcessorConfig {
  /** Side S of the square tiles and of the base view, in pixels (384). */
  size: number;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  /** Multiplies the 0–255 pixel values before normalisation (1/255). */
  rescaleFactor: number;
  /** Candidate [height, width] canvases, multiples of `size` (image_grid_pinpoints). */
  gridPinpoints: [number, number][];
  /** N of vision_aspect_ratio "anyres_max_N": the unpadded map is shrunk above N·P² positions (·1.1); default 9. */
  maxTiles?: number;
}

export interface LlavaImageInput {
  /** [views, 3, size, size] float32: view 0 the whole image resized to size×size, then the tiles row-major. */
  pixelValues: Float32Array;
  views: number;
  /** Original [height, width] (image_sizes). */
  imageSize: [number, number];
  /** The chosen pinpoint [height, width]. */
  bestResolution: [number, number];
  /** [rows, cols] of the tile grid: bestResolution / size. */
  tileGrid: [number, number];
  /** N of anyres_max_N used for `tokens` (packLlavaFeatures uses the same). */
  maxTiles: number;
  /** The number of <image> tokens the processor inserts (_get_number_of_features). */
  tokens: number;
}

const DEFAULT_MAX_TILES = 9;

/** The class default of LlavaOnevisionImageProcessor: every [h, w] with h, w ∈ {1, …, 6}·384. */
function defaultPinpoints(): [number, number][] {
  const points: [number, number][] = [];
  for (let h = 1; h <= 6; h++) for (let w = 1; w <= 6; w++) points.push([h * 384, w * 384]);
  return points;
}

/**
 * Reads the LLaVA-OneVision image settings from the three files transformers reads them from:
 * preprocessor_config.json (`preprocessorJson`, path `file`: size, mean, std, rescale factor,
 * pinpoints), processor_config.json (`processorJson`, may be null: vision_aspect_ratio and
 * vision_feature_select_strategy for the token count) and config.json (`modelConfig`:
 * image_grid_pinpoints, vision_aspect_ratio, vision_config.image_size for packing).
 * Missing fields take the transformers class defaults. Where two files both set the pinpoints or
 * the aspect ratio they must agree: transformers counts tokens with one and packs features with the
 * other, and fails when the two differ. Unimplemented settings are errors naming the file and field.
 */
export function llavaImageProcessorConfig(
  preprocessorJson: Record<string, unknown>,
  processorJson: Record<string, unknown> | null,
  modelConfig: Record<string, unknown>,
  file: string,
): LlavaImageProcessorConfig {
  const pre = configFields(preprocessorJson, file);
  const proc = configFields(processorJson ?? {}, join(dirname(file), 'processor_config.json'));
  const model = configFields(modelConfig, join(dirname(file), 'config.json'));
  pre.only('do_resize', true);
  pre.only('do_rescale', true);
  pre.only('do_normalize', true);
  pre.only('do_center_crop', false);
  pre.only('resample', 3, 'PIL bicubic (3), the only resampling implemented');
  const size = tileSize(pre);
  checkVisionImageSize(model, size);
  for (const field of [proc, model]) field.only('vision_feature_select_strategy', 'full', '"full" (LLaVA-OneVision keeps every SigLIP position)');
  return {
    size,
    imageMean: pre.triple('image_mean', false) ?? OPENAI_CLIP_MEAN,
    imageStd: pre.triple('image_std', true) ?? OPENAI_CLIP_STD,
    rescaleFactor: pre.positiveNumber('rescale_factor') ?? 1 / 255,
    gridPinpoints: agreedPinpoints(pre, model, size),
    maxTiles: agreedMaxTiles(proc, model),
  };
}

/** size: {height, width} (must be square), {shortest_edge} or a number (get_size_dict); default 384. */
function tileSize(pre: ConfigFields): number {
  const raw = pre.raw('size');
  let size = 384;
  if (typeof raw === 'number') {
    size = pre.positiveInteger('size') ?? size;
  } else if (pre.present('size')) {
    const s = configFields(pre.object('size') ?? {}, pre.file, 'size.');
    const height = s.positiveInteger('height');
    const width = s.positiveInteger('width');
    const edge = s.positiveInteger('shortest_edge');
    if (height !== undefined && width !== undefined && height === width) size = height;
    else if (height === undefined && width === undefined && edge !== undefined) size = edge;
    else throw pre.mismatch('size', '{"height": S, "width": S} with equal sides or {"shortest_edge": S}');
  }
  const crop = pre.object('crop_size');
  if (crop !== undefined && (crop.height !== size || crop.width !== size)) {
    throw pre.mismatch('crop_size', `null or {"height": ${size}, "width": ${size}} (tiles are cut at the size)`);
  }
  return size;
}

/** The model stitches tiles of vision_config.image_size pixels; it must be the processor's size. */
function checkVisionImageSize(model: ConfigFields, size: number): void {
  const vision = model.object('vision_config');
  if (vision === undefined) return;
  const imageSize = configFields(vision, model.file, 'vision_config.').positiveInteger('image_size');
  if (imageSize !== undefined && imageSize !== size) {
    throw fileError(model.file, `expected vision_config.image_size ${size} (the image processor's size) but found ${imageSize}`);
  }
}

function agreedPinpoints(pre: ConfigFields, model: ConfigFields, size: number): [number, number][] {
  const fromPre = pinpointsField(pre, size);
  const fromModel = pinpointsField(model, size);
  if (fromPre && fromModel && JSON.stringify(fromPre) !== JSON.stringify(fromModel)) {
    throw fileError(pre.file, `image_grid_pinpoints differ from those of ${model.file}: transformers would count tokens with one and pack features with the other`);
  }
  const pinpoints = fromPre ?? fromModel ?? defaultPinpoints();
  checkPinpoints(pinpoints, size, pre.file);
  return pinpoints;
}

function pinpointsField(field: ConfigFields, size: number): [number, number][] | undefined {
  if (!field.present('image_grid_pinpoints')) return undefined;
  const raw = field.raw('image_grid_pinpoints');
  const ok = Array.isArray(raw) && raw.length > 0 && raw.every((p) => Array.isArray(p) && p.length === 2 && p.every((v) => Number.isSafeInteger(v) && v > 0 && v % size === 0));
  if (!ok) throw field.mismatch('image_grid_pinpoints', `a non-empty list of [height, width] pairs, multiples of the tile size ${size}`);
  return (raw as [number, number][]).map(([h, w]) => [h, w]);
}

function checkPinpoints(pinpoints: [number, number][], size: number, file: string): void {
  if (pinpoints.some(([h, w]) => h % size !== 0 || w % size !== 0)) {
    throw fileError(file, `the default image_grid_pinpoints are multiples of 384, which the tile size ${size} does not divide: set image_grid_pinpoints`);
  }
}

function agreedMaxTiles(proc: ConfigFields, model: ConfigFields): number {
  const fromProc = maxTilesField(proc);
  const fromModel = maxTilesField(model);
  if (fromProc !== undefined && fromModel !== undefined && fromProc !== fromModel) {
    throw fileError(proc.file, `vision_aspect_ratio anyres_max_${fromProc} differs from anyres_max_${fromModel} in ${model.file}`);
  }
  return fromProc ?? fromModel ?? DEFAULT_MAX_TILES;
}

/** vision_aspect_ratio "anyres_max_N" → N (transformers parses it with int(s.strip("anyres_max_"))). */
function maxTilesField(field: ConfigFields): number | undefined {
  const value = field.string('vision_aspect_ratio');
  if (value === undefined) return undefined;
  const match = /^anyres_max_([1-9][0-9]*)$/.exec(value);
  if (!match) throw field.mismatch('vision_aspect_ratio', '"anyres_max_N" with N a positive integer');
  return Number(match[1]);
}

// --- geometry (shared by the pixels, the token count and the packing) ---------------------------

/**
 * transformers' `select_best_resolution` for an image of `height`×`width`: the pinpoint [h, w] with
 * the largest effective resolution, then the least waste, then the earliest. (When every pinpoint
 * shrinks a side to 0 pixels all effective resolutions are 0 and the smallest pinpoint wins, as in
 * transformers.)
 */
export function selectBestResolution(height: number, width: number, pinpoints: readonly (readonly [number, number])[], label = 'image'): [number, number] {
  let best: [number, number] | undefined;
  let maxEffective = 0;
  let minWasted = Infinity;
  for (const [h, w] of pinpoints) {
    const scale = Math.min(w / width, h / height);
    const effective = Math.min(Math.trunc(width * scale) * Math.trunc(height * scale), width * height);
    const wasted = w * h - effective;
    if (effective > maxEffective || (effective === maxEffective && wasted < minWasted)) {
      maxEffective = effective;
      minWasted = wasted;
      best = [h, w];
    }
  }
  if (!best) throw invalidParameterError(`pinpoints for ${label}`, 'a non-empty list of [height, width]', pinpoints);
  return best;
}

/** transformers' `get_patch_output_size`: the aspect-keeping [height, width] that fits the pinpoint. */
export function patchOutputSize(height: number, width: number, target: readonly [number, number]): [number, number] {
  const [th, tw] = target;
  const scaleW = tw / width;
  const scaleH = th / height;
  if (scaleW < scaleH) return [Math.min(Math.ceil(height * scaleW), th), tw];
  return [th, Math.min(Math.ceil(width * scaleH), tw)];
}

/** The window of the stitched (H×W) feature map that `unpad_image` keeps for an h0×w0 image. */
interface Window {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** unpad_image / _get_unpadded_features: crop (H − new)//2 from both ends of the padded axis. */
function unpaddedWindow(h0: number, w0: number, H: number, W: number): Window {
  if (w0 / h0 > W / H) {
    const padding = Math.floor((H - pythonIntRound7(h0 * (W / w0))) / 2);
    return { top: padding, left: 0, height: H - 2 * padding, width: W };
  }
  const padding = Math.floor((W - pythonIntRound7(w0 * (H / h0))) / 2);
  return { top: 0, left: padding, height: H, width: W - 2 * padding };
}

/** The anyres_max_N shrink: (int(h // ratio), int(w // ratio)) when ratio = sqrt(h·w/(N·P²)) > 1.1. */
function downsampledSize(height: number, width: number, maxTiles: number, P: number): [number, number] {
  const ratio = Math.sqrt((height * width) / (maxTiles * P ** 2));
  if (ratio <= 1.1) return [height, width];
  return [Math.trunc(pythonFloorDiv(height, ratio)), Math.trunc(pythonFloorDiv(width, ratio))];
}

/** Python's int(round(x, 7)) for x ≥ 0: round to 7 decimals of the exact binary value, truncate. */
function pythonIntRound7(x: number): number {
  // toFixed rounds the exact value; it differs from Python only on exact ties of the 8th decimal,
  // which cannot move the integer part.
  return Math.trunc(Number(x.toFixed(7)));
}

/** Python's float floor division a // b (CPython float_floor_div: fmod, then a corrected quotient). */
export function pythonFloorDiv(a: number, b: number): number {
  let mod = a % b; // C fmod
  let div = (a - mod) / b;
  if (mod !== 0 && b < 0 !== mod < 0) {
    mod += b;
    div -= 1;
  }
  if (div === 0) return 0;
  const floor = Math.floor(div);
  return div - floor > 0.5 ? floor + 1 : floor;
}

/** Rows and columns of tiles for an image, and its best pinpoint. */
function tileLayout(height: number, width: number, config: LlavaImageProcessorConfig, label: string) {
  const bestResolution = selectBestResolution(height, width, config.gridPinpoints, label);
  const tileGrid: [number, number] = [Math.floor(bestResolution[0] / config.size), Math.floor(bestResolution[1] / config.size)];
  return { bestResolution, tileGrid };
}

/** [height, width] of the unpadded, possibly shrunk, feature map that gets one newline per row. */
function packedMapSize(height: number, width: number, tileGrid: readonly [number, number], maxTiles: number, P: number): [number, number] {
  const window = unpaddedWindow(height, width, tileGrid[0] * P, tileGrid[1] * P);
  return downsampledSize(window.height, window.width, maxTiles, P);
}

/**
 * The number of <image> tokens LlavaOnevisionProcessor inserts for one height×width image
 * (_get_number_of_features with vision_feature_select_strategy "full").
 */
export function llavaImageTokens(height: number, width: number, config: LlavaImageProcessorConfig, patchesPerSide: number, label = 'image'): number {
  const { tileGrid } = tileLayout(height, width, config, label);
  const [h, w] = packedMapSize(height, width, tileGrid, config.maxTiles ?? DEFAULT_MAX_TILES, patchesPerSide);
  return patchesPerSide ** 2 + h * w + h;
}

// --- pixels ---------------------------------------------------------------------------------------

/**
 * LlavaOnevisionImageProcessor (slow) on one RGB image, anyres: base view + tiles of the padded,
 * aspect-keeping resize to the best pinpoint (see the top of this file).
 */
export function preprocessLlavaImage(image: RgbImage, config: LlavaImageProcessorConfig, patchesPerSide: number, label = 'image'): LlavaImageInput {
  checkImage(image, 'image');
  if (!Number.isSafeInteger(patchesPerSide) || patchesPerSide < 1) throw invalidParameterError('patchesPerSide', 'a positive integer', patchesPerSide);
  const S = config.size;
  const maxTiles = config.maxTiles ?? DEFAULT_MAX_TILES;
  const { bestResolution, tileGrid } = tileLayout(image.height, image.width, config, label);
  const canvas = paddedCanvas(image, bestResolution);
  const views = 1 + tileGrid[0] * tileGrid[1];
  const viewLength = 3 * S * S;
  const pixelValues = new Float32Array(views * viewLength);
  pixelValues.set(normalizedPlanes(resizeBicubic(image, S, S), config), 0);
  for (let r = 0, v = 1; r < tileGrid[0]; r++) {
    for (let c = 0; c < tileGrid[1]; c++, v++) {
      pixelValues.set(normalizedPlanes(crop(canvas, r * S, c * S, S), config), v * viewLength);
    }
  }
  const [h, w] = packedMapSize(image.height, image.width, tileGrid, maxTiles, patchesPerSide);
  const tokens = patchesPerSide ** 2 + h * w + h;
  return { pixelValues, views, imageSize: [image.height, image.width], bestResolution, tileGrid, maxTiles, tokens };
}

/** _resize_for_patching + _pad_for_patching: the fitted resize pasted on a zero canvas, centred, odd pixel bottom/right. */
function paddedCanvas(image: RgbImage, target: [number, number]): RgbImage {
  const [height, width] = patchOutputSize(image.height, image.width, target);
  const resized = resizeBicubic(image, width, height);
  const [th, tw] = target;
  const top = Math.floor((th - height) / 2);
  const left = Math.floor((tw - width) / 2);
  const data = new Uint8Array(th * tw * 3); // zeros: np.pad(constant_values=0) on the uint8 image
  for (let y = 0; y < height; y++) {
    data.set(resized.data.subarray(y * width * 3, (y + 1) * width * 3), ((top + y) * tw + left) * 3);
  }
  return { width: tw, height: th, data };
}

/** The S×S square at (top, left) of an image that contains it (divide_to_patches). */
function crop(image: RgbImage, top: number, left: number, S: number): RgbImage {
  const data = new Uint8Array(S * S * 3);
  for (let y = 0; y < S; y++) {
    const start = ((top + y) * image.width + left) * 3;
    data.set(image.data.subarray(start, start + S * 3), y * S * 3);
  }
  return { width: S, height: S, data };
}

// --- features -------------------------------------------------------------------------------------

/**
 * LlavaOnevisionModel.pack_image_features for one image: `features` [views, P², hidden] from the
 * projector, `newline` [hidden] (image_newline) → [input.tokens, hidden]: the base view's P²
 * rows, then the unpadded (and, above anyres_max_N, bilinearly shrunk) tile map row by row, each
 * row followed by the newline.
 */
export function packLlavaFeatures(features: Float32Array, input: LlavaImageInput, patchesPerSide: number, newline: Float32Array, hidden: number): Float32Array {
  const P = patchesPerSide;
  const perView = P * P * hidden;
  if (features.length !== input.views * perView) {
    throw invalidParameterError('features', `${input.views}·${P}²·${hidden} = ${input.views * perView} values ([views, P², hidden])`, features);
  }
  if (newline.length !== hidden) throw invalidParameterError('newline', `${hidden} values`, newline);
  const [rows, cols] = input.tileGrid;
  const window = unpaddedWindow(input.imageSize[0], input.imageSize[1], rows * P, cols * P);
  const [outH, outW] = downsampledSize(window.height, window.width, input.maxTiles, P);
  if (P * P + outH * (outW + 1) !== input.tokens) {
    throw new VlmqError('ERR_VLMQ_INVALID_ARG', `input.tokens is ${input.tokens} but the packed features have ${P * P + outH * (outW + 1)} rows: was input made with patchesPerSide ${P}?`);
  }
  // Offset of map position (y, x) of the stitched (rows·P)×(cols·P) map, inside the window.
  const at = (y: number, x: number) => {
    const my = window.top + y;
    const mx = window.left + x;
    const view = 1 + Math.floor(my / P) * cols + Math.floor(mx / P);
    return view * perView + ((my % P) * P + (mx % P)) * hidden;
  };
  const out = new Float32Array(input.tokens * hidden);
  out.set(features.subarray(0, perView), 0);
  const sample = outH === window.height && outW === window.width ? copyRow(features, at, hidden) : bilinearRow(features, at, hidden, window, outH, outW);
  let o = perView;
  for (let y = 0; y < outH; y++) {
    o = sample(y, outW, out, o);
    out.set(newline, o);
    o += hidden;
  }
  return out;
}

type RowWriter = (y: number, width: number, out: Float32Array, offset: number) => number;

/** Row y of the unshrunk window, copied. */
function copyRow(features: Float32Array, at: (y: number, x: number) => number, hidden: number): RowWriter {
  return (y, width, out, offset) => {
    for (let x = 0; x < width; x++, offset += hidden) out.set(features.subarray(at(y, x), at(y, x) + hidden), offset);
    return offset;
  };
}

/** Row y of the window shrunk to outH×outW with PyTorch's bilinear (align_corners=False) in float32. */
function bilinearRow(features: Float32Array, at: (y: number, x: number) => number, hidden: number, window: Window, outH: number, outW: number): RowWriter {
  const ys = bilinearTaps(window.height, outH);
  const xs = bilinearTaps(window.width, outW);
  const f = Math.fround;
  return (y, width, out, offset) => {
    const [y0, y1, h0, h1] = [ys.i0[y], ys.i1[y], ys.w0[y], ys.w1[y]];
    for (let x = 0; x < width; x++, offset += hidden) {
      const [x0, x1, w0, w1] = [xs.i0[x], xs.i1[x], xs.w0[x], xs.w1[x]];
      const p00 = at(y0, x0), p01 = at(y0, x1), p10 = at(y1, x0), p11 = at(y1, x1);
      for (let c = 0; c < hidden; c++) {
        const top = f(f(features[p00 + c] * w0) + f(features[p01 + c] * w1));
        const bottom = f(f(features[p10 + c] * w0) + f(features[p11 + c] * w1));
        out[offset + c] = f(top * h0) + f(bottom * h1);
      }
    }
    return offset;
  };
}

/**
 * ATen's linear-interpolation taps for one axis, in float32 (opmath of float): scale = in/out,
 * src = max((o + 0.5)·scale − 0.5, 0), i0 = min(⌊src⌋, in − 1), λ = clamp(src − i0, 0, 1),
 * i1 = i0 + 1 unless i0 is the last index.
 */
function bilinearTaps(inSize: number, outSize: number) {
  const f = Math.fround;
  const scale = f(inSize / outSize);
  const taps = { i0: new Int32Array(outSize), i1: new Int32Array(outSize), w0: new Float32Array(outSize), w1: new Float32Array(outSize) };
  for (let o = 0; o < outSize; o++) {
    const src = Math.max(f(f(scale * f(o + 0.5)) - 0.5), 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const lambda = Math.min(Math.max(f(src - i0), 0), 1);
    taps.i0[o] = i0;
    taps.i1[o] = i0 < inSize - 1 ? i0 + 1 : i0;
    taps.w0[o] = f(1 - lambda);
    taps.w1[o] = lambda;
  }
  return taps;
}
