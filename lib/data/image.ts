/*
 * Decoding and resizing images exactly as the Hugging Face "slow" (PIL) image processors see them.
 *
 * decodeImage: file or bytes → 8-bit RGB, the pixels `Image.open(path)` + transformers'
 * `image_transforms.convert_to_rgb` give (that function is `image.convert("RGB")` for every mode but
 * RGB; Qwen2-VL and LLaVA-OneVision both use it):
 *  - decoded with sharp/libvips, no EXIF rotation (neither PIL nor transformers rotates), and the
 *    embedded ICC profile ignored (`ignoreIcc`: PIL does not colour-manage on open);
 *  - an alpha channel is DROPPED by default, as PIL's convert("RGB") does for RGBA, LA and P with
 *    transparency. `{ alpha: 'white' }` composites over white instead, bit-exact with PIL's
 *    `Image.alpha_composite(white, rgba)` — what qwen-vl-utils' `to_rgb` and the idefics2/mllama
 *    convert_to_rgb do, not what the Qwen2-VL/LLaVA-OV processors themselves do;
 *  - grey is replicated to R = G = B; 16-bit RGB(A) and grey+alpha keep the high byte (PIL's
 *    ";16B" raw modes); 16-bit grey alone is CLIPPED to 255 (PIL opens it as mode I;16 and its
 *    I;16 → RGB conversion clips); CMYK is converted with PIL's formula
 *    R = 255 − K − C·(255 − K)/255 (Convert.c `cmyk2rgb`), not with an ICC profile.
 *
 * resizeBicubic: Pillow's `Image.resize((w, h), Image.BICUBIC)` on an RGB image, bit for bit
 * (Pillow src/libImaging/Resample.c, `ImagingResample` with the 8-bit path):
 *  - separable: horizontal pass first, then vertical; a pass whose size does not change is skipped
 *    (both skipped: a copy, as `Image.resize` returns `self.copy()` for the same size);
 *  - per output pixel xx: scale = in/out, filterscale = max(scale, 1) (antialiasing: the kernel is
 *    stretched when shrinking), support = 2·filterscale, center = (xx + 0.5)·scale, taps
 *    x ∈ [trunc(center − support + 0.5), trunc(center + support + 0.5)) ∩ [0, in), weights
 *    bicubic((x − center + 0.5)/filterscale) with a = −0.5, normalised to sum 1, all in double;
 *  - weights to fixed point with PRECISION_BITS = 22, rounding away from zero; each pass sums
 *    2^21 + Σ pixel·weight in int32 and clips (sum >> 22) to [0, 255].
 * Pillow runs the horizontal pass only over the rows the vertical pass reads; the pixels are the
 * same, so it is run over all rows here. Pillow built for x86-64 has no FMA contraction; a build
 * that contracts (some aarch64 builds) can differ in the last fixed-point unit, rarely in a pixel.
 *
 * roundHalfEven: Python's round() of a float (banker's rounding), for the size rules of the
 * processors.
 *
 * Decompression bombs: a 250 KB PNG can declare 16000×16000 pixels (768 MB of RGB, gigabytes once
 * resized). As PIL does with Image.MAX_IMAGE_PIXELS, an image with more pixels than the limit is
 * refused from its header, before any pixel is decoded; `maxImagePixels` raises or lifts it.
 */

import sharp, { type Sharp } from 'sharp';
import { describeValue, fileError, invalidParameterError } from '../errors.js';
import { readRegularFile } from '../io/files.js';

/** transformers' OPENAI_CLIP_MEAN / OPENAI_CLIP_STD: the image processors' class defaults. */
export const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** An 8-bit RGB image: `data[(y·width + x)·3 + c]`, row-major, channels interleaved. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/**
 * PIL's `Image.MAX_IMAGE_PIXELS`, int(1024·1024·1024 // 4 // 3) = 89,478,485: about 0.25 GB of RGB.
 * PIL warns above it (and raises DecompressionBombError above twice it); vlmq refuses above it.
 */
export const MAX_IMAGE_PIXELS = 89_478_485;

export interface ImageLimits {
  /**
   * The most pixels (width × height, from the header) an image may have before it is refused
   * undecoded, as a decompression bomb: a positive integer, or `Infinity` or `null` for no limit
   * (PIL's `Image.MAX_IMAGE_PIXELS = None`). Default MAX_IMAGE_PIXELS (89,478,485, PIL's). Raise it
   * only for images you trust: decoding takes 3 bytes per pixel, and more while resizing.
   */
  maxImagePixels?: number | null;
}

export interface DecodeOptions extends ImageLimits {
  /**
   * What happens to an alpha channel: 'drop' (default) keeps the colour values and discards alpha,
   * as transformers' convert_to_rgb (PIL `convert("RGB")`) does; 'white' composites over white as
   * PIL's `alpha_composite` does (qwen-vl-utils' `to_rgb`).
   */
  alpha?: 'drop' | 'white';
}

/** `maxImagePixels` checked, with its default; Infinity for no limit. */
export function resolveMaxImagePixels(value: number | null | undefined): number {
  if (value === undefined) return MAX_IMAGE_PIXELS;
  if (value === null || value === Infinity) return Infinity;
  if (!Number.isSafeInteger(value) || value < 1) throw invalidParameterError('maxImagePixels', 'a positive integer, Infinity or null (no limit)', value);
  return value;
}

/**
 * Decodes an image file (path) or encoded bytes to 8-bit RGB as transformers' slow processors see
 * it (see the top of this file). Every failure is a VlmqError 'ERR_VLMQ_BAD_FILE' whose message
 * starts with `label` (default: the path, or "image bytes"), an image over `maxImagePixels`
 * included: that one is refused from its header, before decoding.
 */
export async function decodeImage(source: string | Uint8Array, label?: string, options: DecodeOptions = {}): Promise<RgbImage> {
  const alpha = options.alpha ?? 'drop';
  if (alpha !== 'drop' && alpha !== 'white') throw invalidParameterError('alpha', "'drop' or 'white'", alpha);
  const limit = resolveMaxImagePixels(options.maxImagePixels);
  const name = label ?? (typeof source === 'string' ? source : 'image bytes');
  const { bytes, metadata } = await probe(source, name, limit);
  if (metadata.space === 'cmyk') return decodeStep(name, () => decodeCmyk(bytes, limit));
  if (metadata.space === 'grey16' && metadata.channels === 1) return decodeStep(name, () => decodeGrey16(bytes, limit));
  const { data, info } = await decodeStep(name, () => open(bytes, limit).raw().toBuffer({ resolveWithObject: true }));
  return { width: info.width, height: info.height, data: toRgb(data, info.channels, alpha) };
}

/**
 * The size of an image file as decodeImage gives it (no EXIF rotation), from its header, with the
 * same errors (the pixel limit included): what a calibration set is planned with before any image
 * is decoded.
 */
export async function readImageSize(path: string, label?: string, options: ImageLimits = {}): Promise<{ width: number; height: number }> {
  const { metadata } = await probe(path, label ?? path, resolveMaxImagePixels(options.maxImagePixels));
  return { width: metadata.width!, height: metadata.height! };
}

/** The bytes and header of an image, or an error that names it; a header over `limit` pixels is refused. */
async function probe(source: string | Uint8Array, name: string, limit: number) {
  const bytes = typeof source === 'string' ? await readImageFile(source, name) : source;
  if (bytes.length === 0) throw fileError(name, 'is empty (0 bytes), not an image');
  // The header only: sharp's own pixel limit is lifted here so that the check below, with its
  // message, is the one that refuses; decoding then runs under the same limit (open()).
  const metadata = await decodeStep(name, () => open(bytes, Infinity).metadata());
  if (!metadata.width || !metadata.height) {
    throw fileError(name, `has zero size (${metadata.width ?? 0}×${metadata.height ?? 0} pixels)`);
  }
  checkPixelCount(name, metadata.width, metadata.height, limit);
  return { bytes, metadata };
}

/** PIL's decompression-bomb check, from the header: more than `limit` pixels is an error. */
function checkPixelCount(name: string, width: number, height: number, limit: number): void {
  const pixels = width * height;
  if (pixels <= limit) return;
  const count = (n: number) => n.toLocaleString('en-US');
  throw fileError(name,
    `${width}×${height} = ${count(pixels)} pixels is more than the limit of ${count(limit)} ` +
    `(${limit === MAX_IMAGE_PIXELS ? "PIL's Image.MAX_IMAGE_PIXELS, " : ''}a guard against decompression bombs); ` +
    `if the image is trusted, raise the limit with the maxImagePixels option (Infinity or null for none)`);
}

/** A regular file's bytes; a missing file, a directory, a FIFO or a device is an error naming it. */
async function readImageFile(path: string, name: string): Promise<Uint8Array> {
  try {
    return await readRegularFile(path, 'image file');
  } catch (error) {
    // the error names the path; a caller's label (a record, an upload) goes in front of it
    throw name === path ? error : fileError(name, (error as Error).message, { cause: error });
  }
}

/** Runs one sharp call and re-homes its error as a VlmqError that names the image. */
async function decodeStep<T>(name: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw fileError(name, `cannot be decoded as an image (${(error as Error).message})`, { cause: error });
  }
}

/**
 * A sharp pipeline that matches PIL's view of the file: no ICC conversion (PIL ignores profiles),
 * no EXIF rotation (sharp's default), and failing on decoder errors and truncation but not on
 * libjpeg warnings (PIL loads JPEGs with "extraneous bytes" warnings, and refuses truncated files).
 */
function open(bytes: Uint8Array, maxPixels: number): Sharp {
  return sharp(bytes, { ignoreIcc: true, failOn: 'error', limitInputPixels: Number.isFinite(maxPixels) ? maxPixels : false });
}

/** Grey, grey+alpha, RGB or RGBA bytes → RGB, handling alpha as `alpha` says. */
function toRgb(data: Uint8Array, channels: number, alpha: 'drop' | 'white'): Uint8Array {
  // already RGB: the decoder's buffer is the image (no second copy of a large image)
  if (channels === 3) return new Uint8Array(data.buffer, data.byteOffset, data.length);
  const pixels = data.length / channels;
  const out = new Uint8Array(pixels * 3);
  const colours = channels >= 3 ? 3 : 1;
  const hasAlpha = channels === 2 || channels === 4;
  for (let i = 0; i < pixels; i++) {
    const a = hasAlpha && alpha === 'white' ? data[i * channels + channels - 1] : 255;
    for (let c = 0; c < 3; c++) {
      const value = data[i * channels + (colours === 3 ? c : 0)];
      out[i * 3 + c] = a === 255 ? value : overWhite(value, a);
    }
  }
  return out;
}

/**
 * PIL's alpha_composite of one colour value over an opaque white pixel (AlphaComposite.c with
 * dst = 255, dst.a = 255): its 7-bit-precision integer formula reduces to round((v·a + 255·(255 − a)) / 255),
 * computed here as ((u + (u >> 8)) >> 8) with u = S + 128 — equal for all 65,536 (v, a) pairs
 * (checked exhaustively against Pillow 9.4).
 */
function overWhite(value: number, a: number): number {
  const u = value * a + 255 * (255 - a) + 128;
  return (u + (u >> 8)) >> 8;
}

/** CMYK (as PIL stores it, Adobe inversion undone by the decoder) → RGB with Pillow's cmyk2rgb. */
async function decodeCmyk(bytes: Uint8Array, maxPixels: number): Promise<RgbImage> {
  const { data, info } = await open(bytes, maxPixels).pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 4) throw new Error(`expected 4 CMYK channels, decoder gave ${info.channels}`);
  const pixels = info.width * info.height;
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    const nk = 255 - data[i * 4 + 3];
    for (let c = 0; c < 3; c++) out[i * 3 + c] = clip8(nk - mulDiv255(data[i * 4 + c], nk));
  }
  return { width: info.width, height: info.height, data: out };
}

/** Pillow's MULDIV255: a·b/255 rounded, in integers. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/** 16-bit grey alone: PIL opens it as I;16 and converts to RGB by clipping at 255 (Convert.c I16_RGB). */
async function decodeGrey16(bytes: Uint8Array, maxPixels: number): Promise<RgbImage> {
  const { data, info } = await open(bytes, maxPixels).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
  const grey = new Uint16Array(Uint8Array.prototype.slice.call(data).buffer); // copy: the Buffer may be unaligned
  const out = new Uint8Array(grey.length * 3);
  for (let i = 0; i < grey.length; i++) out.fill(Math.min(grey[i], 255), i * 3, i * 3 + 3);
  return { width: info.width, height: info.height, data: out };
}

function clip8(value: number): number {
  return value < 0 ? 0 : value > 255 ? 255 : value;
}

// --- Pillow's bicubic resampling --------------------------------------------------------------

/** Resample.c: 8 bits of result, 2 bits of headroom for negative lobes, in a 32-bit int. */
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);
const BICUBIC_SUPPORT = 2;

/** Resample.c `bicubic_filter`, a = −0.5, with the same operation order (it decides the last bit). */
function bicubicFilter(t: number): number {
  const a = -0.5;
  const x = t < 0 ? -t : t;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Taps of one pass: output i reads `count[i]` inputs from `first[i]` with fixed-point `weights[i·ksize + k]`. */
interface PassCoefficients {
  first: Int32Array;
  count: Int32Array;
  weights: Int32Array;
  ksize: number;
}

/** Resample.c `precompute_coeffs` + `normalize_coeffs_8bpc` for one axis. */
function passCoefficients(inSize: number, outSize: number): PassCoefficients {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const ss = 1 / filterscale;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < n; x++) {
      k[x] = bicubicFilter((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    for (let x = 0; x < n; x++) weights[xx * ksize + x] = toFixedPoint(ww !== 0 ? k[x] / ww : k[x]);
    first[xx] = xmin;
    count[xx] = n;
  }
  return { first, count, weights, ksize };
}

/** `(int)(k·2^22 ± 0.5)`: C's truncating cast after adding ±0.5, i.e. rounding half away from zero. */
function toFixedPoint(k: number): number {
  return Math.trunc(k < 0 ? -0.5 + k * ONE : 0.5 + k * ONE);
}

/** Resample.c `clip8`: the integer part of a fixed-point sum, clipped to a byte. */
function clipFixed(sum: number): number {
  const value = sum >> PRECISION_BITS;
  return value < 0 ? 0 : value > 255 ? 255 : value;
}

/** ImagingResampleHorizontal_8bpc for 3 bands: every row, width → `width`. */
function resampleHorizontal(image: RgbImage, width: number): RgbImage {
  const { first, count, weights, ksize } = passCoefficients(image.width, width);
  const src = image.data;
  const out = new Uint8Array(width * image.height * 3);
  for (let y = 0; y < image.height; y++) {
    const row = y * image.width * 3;
    for (let xx = 0; xx < width; xx++) {
      let r = HALF, g = HALF, b = HALF;
      const w0 = xx * ksize;
      for (let x = 0, p = row + first[xx] * 3; x < count[xx]; x++, p += 3) {
        const w = weights[w0 + x];
        r += src[p] * w;
        g += src[p + 1] * w;
        b += src[p + 2] * w;
      }
      const o = (y * width + xx) * 3;
      out[o] = clipFixed(r);
      out[o + 1] = clipFixed(g);
      out[o + 2] = clipFixed(b);
    }
  }
  return { width, height: image.height, data: out };
}

/** ImagingResampleVertical_8bpc for 3 bands: every column, height → `height`. */
function resampleVertical(image: RgbImage, height: number): RgbImage {
  const { first, count, weights, ksize } = passCoefficients(image.height, height);
  const src = image.data;
  const stride = image.width * 3;
  const out = new Uint8Array(image.width * height * 3);
  for (let yy = 0; yy < height; yy++) {
    const w0 = yy * ksize;
    for (let xx = 0; xx < image.width; xx++) {
      let r = HALF, g = HALF, b = HALF;
      for (let y = 0, p = first[yy] * stride + xx * 3; y < count[yy]; y++, p += stride) {
        const w = weights[w0 + y];
        r += src[p] * w;
        g += src[p + 1] * w;
        b += src[p + 2] * w;
      }
      const o = (yy * image.width + xx) * 3;
      out[o] = clipFixed(r);
      out[o + 1] = clipFixed(g);
      out[o + 2] = clipFixed(b);
    }
  }
  return { width: image.width, height, data: out };
}

/**
 * Pillow's `image.resize((width, height), Image.BICUBIC)` for an 8-bit RGB image, bit for bit
 * (see the top of this file). Returns a new image; a same-size resize is a copy.
 */
export function resizeBicubic(image: RgbImage, width: number, height: number): RgbImage {
  checkImage(image, 'image');
  if (!Number.isSafeInteger(width) || width < 1) throw invalidParameterError('width', 'a positive integer', width);
  if (!Number.isSafeInteger(height) || height < 1) throw invalidParameterError('height', 'a positive integer', height);
  let out: RgbImage = image;
  if (width !== image.width) out = resampleHorizontal(out, width);
  if (height !== image.height) out = resampleVertical(out, height);
  return out === image ? { width, height, data: image.data.slice() } : out;
}

/** Throws unless `image` is a consistent RgbImage (positive integer sizes, 3 bytes per pixel). */
export function checkImage(image: RgbImage, name: string): void {
  const { width, height, data } = image ?? ({} as RgbImage);
  if (!Number.isSafeInteger(width) || width < 1 || !Number.isSafeInteger(height) || height < 1) {
    throw invalidParameterError(`${name} size`, 'positive integer width and height', [width, height]);
  }
  if (!(data instanceof Uint8Array) || data.length !== width * height * 3) {
    throw invalidParameterError(`${name}.data`, `a Uint8Array of ${width}·${height}·3 = ${width * height * 3} bytes`, data);
  }
}

/**
 * Python's round() of a float: the nearest integer, ties to the even one (round(2.5) = 2,
 * round(-0.5) = 0). Non-finite values are returned unchanged (Python raises for them).
 */
export function roundHalfEven(x: number): number {
  if (!Number.isFinite(x)) return x;
  // Ties-to-even is symmetric, so work on |x|, where |x| − floor(|x|) is exact in double.
  const magnitude = Math.abs(x);
  const floor = Math.floor(magnitude);
  const fraction = magnitude - floor;
  const rounded = fraction < 0.5 ? floor : fraction > 0.5 ? floor + 1 : floor % 2 === 0 ? floor : floor + 1;
  return rounded === 0 ? 0 : x < 0 ? -rounded : rounded; // no −0: Python returns the int 0
}

// --- rescale and normalise, as transformers' image_transforms does ------------------------------

/**
 * The image rescaled and normalised as channel planes [3, h, w] (CHW, the processors' layout),
 * with the arithmetic of transformers' `rescale` (uint8 → float64 · factor → float32) and
 * `normalize` ((x − mean) / std in float32, mean and std cast to float32).
 */
export function normalizedPlanes(image: RgbImage, o: NormalizationSettings): Float32Array {
  const tables = normalizationTables(o);
  const pixels = image.width * image.height;
  const planes = new Float32Array(3 * pixels);
  for (let c = 0; c < 3; c++) {
    const table = tables[c];
    for (let i = 0; i < pixels; i++) planes[c * pixels + i] = table[image.data[i * 3 + c]];
  }
  return planes;
}

/** What rescale + normalize need: the factor and the per-channel mean and std. */
export interface NormalizationSettings {
  rescaleFactor: number;
  imageMean: readonly number[];
  imageStd: readonly number[];
}

/** The normalised value of every byte, one table per channel (what normalizedPlanes looks up). */
export function normalizationTables(o: NormalizationSettings): [Float32Array, Float32Array, Float32Array] {
  return [0, 1, 2].map((c) => normalizationTable(o.rescaleFactor, o.imageMean[c], o.imageStd[c])) as [Float32Array, Float32Array, Float32Array];
}

/**
 * float32((float32(v·rescale) − float32(mean)) / float32(std)) for each byte v: a double
 * operation followed by Math.fround equals the float32 operation for −, · and / (53 ≥ 2·24 + 2
 * bits), so this is NumPy's float32 result.
 */
function normalizationTable(rescale: number, mean: number, std: number): Float32Array {
  const mean32 = Math.fround(mean);
  const std32 = Math.fround(std);
  const table = new Float32Array(256);
  for (let v = 0; v < 256; v++) table[v] = Math.fround(Math.fround(v * rescale) - mean32) / std32;
  return table;
}

// --- reading image-processor config files -------------------------------------------------------

export type ConfigFields = ReturnType<typeof configFields>;

/**
 * Typed reads of optional config fields: absent (or null) gives undefined; a present field of the
 * wrong kind is a VlmqError 'ERR_VLMQ_BAD_FILE' naming `file` and the field.
 */
export function configFields(json: Record<string, unknown>, file: string, prefix = '') {
  const present = (key: string) => json[key] !== undefined && json[key] !== null;
  const mismatch = (key: string, expected: string) =>
    fileError(file, `expected ${expected} for "${prefix}${key}" but found ${describeValue(json[key])}`);
  return {
    file,
    present,
    mismatch,
    raw: (key: string): unknown => json[key],
    positiveInteger(key: string): number | undefined {
      if (!present(key)) return undefined;
      const v = json[key];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw mismatch(key, 'a positive integer');
      return v;
    },
    positiveNumber(key: string): number | undefined {
      if (!present(key)) return undefined;
      const v = json[key];
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw mismatch(key, 'a positive number');
      return v;
    },
    string(key: string): string | undefined {
      if (!present(key)) return undefined;
      const v = json[key];
      if (typeof v !== 'string') throw mismatch(key, 'a string');
      return v;
    },
    object(key: string): Record<string, unknown> | undefined {
      if (!present(key)) return undefined;
      const v = json[key];
      if (typeof v !== 'object' || Array.isArray(v)) throw mismatch(key, 'an object');
      return v as Record<string, unknown>;
    },
    /** A per-channel mean or std: three numbers, or one for all channels (as transformers accepts); `positive` for a divisor. */
    triple(key: string, positive: boolean): [number, number, number] | undefined {
      if (!present(key)) return undefined;
      const raw = json[key];
      const v = typeof raw === 'number' ? [raw, raw, raw] : raw;
      const ok = Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0));
      if (!ok) throw mismatch(key, positive ? 'three positive numbers' : 'three finite numbers');
      return [v[0], v[1], v[2]];
    },
    /** A setting implemented at one value only: absent or equal to it, else an error. */
    only(key: string, value: unknown, what = JSON.stringify(value)): void {
      if (present(key) && json[key] !== value) throw mismatch(key, what);
    },
  };
}
