// Image–text pairs → a calibration bundle: the language model's layer-0 input for every sample,
// computed as the Hugging Face processor and model compute it (docs/formats.md §3.6–§3.8, §4.2),
// with no Python: images decoded and preprocessed (data/image.ts, data/qwen-image.ts,
// data/llava-image.ts), the conversation rendered by the chat template and tokenized
// (data/processor.ts), each image placeholder expanded to its token count, the vision tower run
// natively (vision-tower.ts), and the image features scattered into the token embeddings at the
// placeholder positions. Position ids (M-RoPE for Qwen, 1-D for LLaVA-OneVision) and the modality
// mask go with them. It lives in pipeline/, not data/, because it runs the vision tower.
//
// A sample longer than `maxTokens` is cut at the end of its text, unless the cut would fall in an
// image's tokens: then it is dropped, counted and reported (VLMQ's rule, algorithm.md §4.4).
import { createHash } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type BundleSample, CalibrationBundle, MODALITY, writePlannedCalibrationBundle } from '../data/bundle.js';
import { type CalibrationRecord, readCalibrationSet, readShareGPT4V, sampleRecords } from '../data/calibration-set.js';
import { type RgbImage, decodeImage, readImageSize, resolveMaxImagePixels } from '../data/image.js';
import { type LlavaImageInput, type LlavaImageProcessorConfig, llavaImageProcessorConfig, llavaImageTokens, packLlavaFeatures, preprocessLlavaImage } from '../data/llava-image.js';
import { type PositionPart, mropePositions, sequentialPositions } from '../data/positions.js';
import { TextProcessor, readOptionalCheckpointText } from '../data/processor.js';
import { type QwenImageInput, type QwenImageProcessorConfig, preprocessQwenImage, qwenImageProcessorConfig, qwenImageTokens } from '../data/qwen-image.js';
import { VlmqError } from '../errors.js';
import { readOptionalJson } from '../io/checkpoint.js';
import { canonicalJson } from '../json.js';
import type { Model } from '../models/model.js';
import type { QwenVisionConfig, SiglipVisionConfig } from '../models/types.js';
import { gatherRows } from '../tensor.js';
import { packageVersion } from '../version.js';
import { VisionTower } from './vision-tower.js';
import type { Device } from '../native/devices.js';
import { concatRows } from './batches.js';

export interface CalibrationBuildOptions {
  /** Records to use, chosen with `seed` (default: all of them, in a seeded order). */
  samples?: number;
  seed?: number;
  /** Longest sample in tokens (default 512 for Qwen2-VL/Qwen2.5-VL, 8192 for LLaVA-OneVision, whose anyres images alone take thousands). */
  maxTokens?: number;
  /**
   * Images with more pixels than this are refused from their header, undecoded, as decompression
   * bombs: a positive integer, or Infinity or null for no limit. Default 89,478,485, PIL's
   * Image.MAX_IMAGE_PIXELS. It does not enter the fingerprint: it changes no bundle it lets through.
   */
  maxImagePixels?: number | null;
  /** Called after each record, with (done, total). */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** Where the vision tower runs: 'auto' (default), 'cpu', 'cuda' or 'cuda:N'. */
  device?: Device;
}

export interface CalibrationReport {
  path: string;
  /** Records asked for: the `samples` option, or every record of the set when it was not given. */
  requested: number;
  /** Records in the set. When fewer than `requested`, all of them are used. */
  available: number;
  /** Samples written: min(requested, available) − dropped.length. */
  samples: number;
  tokens: number;
  imageTokens: number;
  /** Samples cut at the end of their text to fit maxTokens. */
  truncated: number;
  /** Records left out, with why. */
  dropped: { id: string; reason: string }[];
}

export const DEFAULT_MAX_TOKENS = { qwen: 512, llava: 8192 } as const;

/**
 * Why a report has fewer samples than were requested, as one sentence for a warning, or null when
 * it has them all: the set holds fewer records than requested, and/or records were dropped for length.
 */
export function calibrationShortfall(report: CalibrationReport): string | null {
  if (report.samples >= report.requested) return null;
  const why: string[] = [];
  if (report.available < report.requested) why.push(`the calibration set has only ${report.available} record(s)`);
  if (report.dropped.length > 0) why.push(`${report.dropped.length} record(s) dropped for length (${report.dropped[0].id}: ${report.dropped[0].reason}${report.dropped.length > 1 ? ', …' : ''})`);
  return `${report.samples} calibration sample(s) of the ${report.requested} requested: ${why.join('; ')}`;
}

/**
 * Image–text calibration data for quantize(): records from a ShareGPT4V JSON, a JSONL file or the
 * built-in set, and how to sample them. The bundle (the model's layer-0 inputs) is built for a
 * model when needed, and reused when a bundle built from the same records, options and model
 * already exists at the path (a resumed run).
 */
export class Calibration {
  private constructor(readonly records: readonly CalibrationRecord[], readonly options: Readonly<Omit<CalibrationBuildOptions, 'onProgress' | 'signal'>>) {
    resolveMaxImagePixels(options.maxImagePixels); // a bad limit fails here, not after the set is read
  }

  /** `path`: ShareGPT4V JSON (.json) or JSONL (.jsonl) with image paths relative to `images`. */
  static async fromFile(path: string, options: { images?: string } & Omit<CalibrationBuildOptions, 'onProgress' | 'signal'> = {}): Promise<Calibration> {
    const { images, ...build } = options;
    return new Calibration(await readCalibrationSet(path, { images }), build);
  }

  static async fromShareGPT4V(path: string, options: { images: string } & Omit<CalibrationBuildOptions, 'onProgress' | 'signal'>): Promise<Calibration> {
    const { images, ...build } = options;
    return new Calibration(await readShareGPT4V(path, { images }), build);
  }

  static fromRecords(records: readonly CalibrationRecord[], options: Omit<CalibrationBuildOptions, 'onProgress' | 'signal'> = {}): Calibration {
    return new Calibration(records, options);
  }

  /** What identifies the bundle this calibration builds for `model`: records, options, model config and preprocessing files. */
  async fingerprint(model: Model): Promise<string> {
    const files = await Promise.all(['preprocessor_config.json', 'processor_config.json', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.json', 'chat_template.jinja']
      .map(async (f) => [f, await readOptionalCheckpointText(join(model.dir, f))]));
    const images = await Promise.all(this.records.flatMap((r) => r.images).map(async (f) => [f, (await stat(f).catch(() => null))?.size ?? null]));
    // the pixel limit only refuses images; a bundle built under one limit is the bundle under another
    const { maxImagePixels: _limit, ...options } = this.options;
    return createHash('sha256').update(canonicalJson({ vlmq: packageVersion(), records: this.records, images, options, config: model.config.raw, files })).digest('hex');
  }

  /** The bundle at `path`: reused when it was built from this calibration for this model, built otherwise. */
  async bundle(model: Model, path: string, progress: Pick<CalibrationBuildOptions, 'onProgress' | 'signal' | 'device'> = {}): Promise<{ bundle: CalibrationBundle; report: CalibrationReport | null }> {
    const fingerprint = await this.fingerprint(model);
    const existing = await CalibrationBundle.open(path).catch(() => null);
    if (existing?.metadata[SOURCE_KEY] === fingerprint) return { bundle: existing, report: null };
    await existing?.close();
    await mkdir(dirname(path), { recursive: true });
    const report = await buildCalibrationBundle(model, this.records, path, { ...this.options, ...progress }, { [SOURCE_KEY]: fingerprint });
    return { bundle: await CalibrationBundle.open(path), report };
  }
}

/** Bundle metadata: the fingerprint of the calibration it was built from. */
const SOURCE_KEY = 'vlmq_calibration_source';

/** One image, preprocessed for the model's vision tower. */
type ImageInput = { kind: 'qwen'; input: QwenImageInput } | { kind: 'llava'; input: LlavaImageInput };

/** The model's image processor: the token count of an image size, and the preprocessing itself. */
interface ImageProcessor {
  tokens(size: { width: number; height: number }, label: string): number;
  preprocess(image: RgbImage, label: string): ImageInput;
}

/**
 * Builds the calibration bundle of `records` for `model` at `path` (written atomically). Every
 * problem with an image or a record is an error that names it.
 *
 * Two passes: the first plans every sample from the image headers alone (token ids, the length
 * rule), so the bundle's header is known before any image is decoded; the second computes each
 * sample (decode, preprocess, vision tower, embeddings) when the writer reaches it, so memory
 * holds one sample, not the whole set.
 */
export async function buildCalibrationBundle(model: Model, records: readonly CalibrationRecord[], path: string, options: CalibrationBuildOptions = {}, metadata: Record<string, string> = {}): Promise<CalibrationReport> {
  const llava = model.architecture.id === 'llava_onevision';
  const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS[llava ? 'llava' : 'qwen'];
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new VlmqError('ERR_VLMQ_INVALID_ARG', `Expected a positive integer for maxTokens but received ${maxTokens}`);
  const limits = { maxImagePixels: resolveMaxImagePixels(options.maxImagePixels) };
  const requested = options.samples ?? records.length;
  const chosen = sampleRecords(records, requested, options.seed ?? 0);
  const text = await TextProcessor.load(model);
  const images = await imageProcessor(model);
  const report: CalibrationReport = { path, requested, available: records.length, samples: 0, tokens: 0, imageTokens: 0, truncated: 0, dropped: [] };

  const planned: { record: CalibrationRecord; ids: Int32Array }[] = [];
  for (const record of chosen) {
    options.signal?.throwIfAborted();
    const sizes = await Promise.all(record.images.map((file) => readImageSize(file, file, limits)));
    let ids = await text.conversationIds({ images: sizes.length, prompt: record.prompt, answer: record.answer }, sizes.map((size, k) => images.tokens(size, record.images[k])), `record ${record.id}`);
    if (ids.length > maxTokens) {
      if (ids.lastIndexOf(text.imageTokenId) >= maxTokens) {
        report.dropped.push({ id: record.id, reason: `${ids.length} tokens; cutting to ${maxTokens} would cut into an image` });
        continue;
      }
      ids = ids.subarray(0, maxTokens);
      report.truncated++;
    }
    planned.push({ record, ids });
    report.samples++;
    report.tokens += ids.length;
    report.imageTokens += ids.reduce((n, id) => n + (id === text.imageTokenId ? 1 : 0), 0);
  }
  if (planned.length === 0) throw new VlmqError('ERR_VLMQ_BAD_FILE', `no calibration sample fits in ${maxTokens} tokens (${report.dropped.length} dropped: ${report.dropped[0]?.reason ?? 'no records'})`);

  const tower = await VisionTower.load(model, options.device);
  const table = await model.readTensor(`${model.architecture.languagePrefixes(model.layout).embedTokens}.weight`);
  let done = 0;
  const sample = async ({ record, ids }: (typeof planned)[number]): Promise<BundleSample> => {
    options.signal?.throwIfAborted();
    const label = `record ${record.id}`;
    // one image decoded at a time: a sample's memory is its largest image, not all of them at once
    const inputs: ImageInput[] = [];
    for (const file of record.images) inputs.push(images.preprocess(await decodeImage(file, file, limits), file));
    const result = assemble(model, ids, text.imageTokenId, table, await imageFeatures(tower, inputs, model), inputs, label);
    options.onProgress?.(++done, planned.length);
    return result;
  };
  try {
    await writePlannedCalibrationBundle(path, {
      hidden: model.config.text.hiddenSize, positionRows: model.config.text.mropeSection ? 3 : 1, embeddingsDType: 'F32',
      samples: planned.map((p) => ({ tokens: p.ids.length, load: () => sample(p) })),
    }, { metadata: { ...metadata, source: 'vlmq image-text calibration', model_type: model.architecture.id } });
  } finally {
    tower.dispose();
  }
  return report;
}

/** The model's image processor, from its preprocessor_config.json (and processor_config.json). */
async function imageProcessor(model: Model): Promise<ImageProcessor> {
  const file = join(model.dir, 'preprocessor_config.json');
  const json = await readOptionalJson(file);
  if (json === null) throw new VlmqError('ERR_VLMQ_BAD_FILE', `${file}: missing; vlmq needs the image processor settings to calibrate on images`);
  if (model.architecture.id === 'llava_onevision') {
    const processor = await readOptionalJson(join(model.dir, 'processor_config.json'));
    const config: LlavaImageProcessorConfig = llavaImageProcessorConfig(json, processor, model.config.raw, file);
    const vision = model.config.vision as SiglipVisionConfig;
    const perSide = Math.floor(vision.imageSize / vision.patchSize);
    return {
      tokens: ({ width, height }, label) => llavaImageTokens(height, width, config, perSide, label),
      preprocess: (image, label) => ({ kind: 'llava', input: preprocessLlavaImage(image, config, perSide, label) }),
    };
  }
  const config: QwenImageProcessorConfig = qwenImageProcessorConfig(json, file, model.architecture.displayName);
  return {
    tokens: ({ width, height }, label) => qwenImageTokens(height, width, config, label),
    preprocess: (image, label) => ({ kind: 'qwen', input: preprocessQwenImage(image, config, label) }),
  };
}

/** The language-model inputs of a sample's images, in order: [Σ tokens, hidden]. */
async function imageFeatures(tower: VisionTower, inputs: readonly ImageInput[], model: Model): Promise<Float32Array> {
  const H = model.config.text.hiddenSize;
  const parts: Float32Array[] = [];
  const qwen = inputs.filter((i): i is Extract<ImageInput, { kind: 'qwen' }> => i.kind === 'qwen').map((i) => i.input);
  if (qwen.length > 0) parts.push(await tower.qwen(concatRows(qwen.map((q) => q.pixelValues)), qwen.map((q) => q.grid)));
  const perSide = Math.floor(tower.dims.imageSize / tower.dims.patch);
  for (const i of inputs) {
    if (i.kind === 'llava') parts.push(packLlavaFeatures(await tower.siglip(i.input.pixelValues, i.input.views), i.input, perSide, tower.imageNewline!, H));
  }
  return concatRows(parts);
}

/** Token embeddings with the image features at the placeholders, positions and the modality mask. */
function assemble(model: Model, ids: Int32Array, imageTokenId: number, table: Awaited<ReturnType<Model['checkpoint']['read']>>, features: Float32Array, inputs: readonly ImageInput[], label: string): BundleSample {
  const H = model.config.text.hiddenSize;
  const T = ids.length;
  const vocab = table.shape[0];
  const bad = ids.findIndex((id) => id < 0 || id >= vocab);
  if (bad >= 0) throw new VlmqError('ERR_VLMQ_BAD_FILE', `${label}: token id ${ids[bad]} at position ${bad} is outside the embedding table (${vocab} rows)`);
  const embeddings = gatherRows(table, ids, H);
  const modality = new Uint8Array(T);
  let image = 0;
  for (let t = 0; t < T; t++) {
    if (ids[t] !== imageTokenId) continue;
    embeddings.set(features.subarray(image * H, (image + 1) * H), t * H);
    modality[t] = MODALITY.image;
    image++;
  }
  if (image * H !== features.length) throw new VlmqError('ERR_VLMQ_INTERNAL', `${label}: ${image} image placeholders for ${features.length / H} image features`);
  const positions = model.config.text.mropeSection ? mropePositions(positionParts(modality, inputs, (model.config.vision as QwenVisionConfig).spatialMergeSize)).positions : sequentialPositions(T);
  return { embeddings: { dtype: 'F32', shape: [T, H], data: embeddings }, positions, modality };
}

/** Text runs and images (on the merged grid) of a Qwen sample, for get_rope_index. */
function positionParts(modality: Uint8Array, inputs: readonly ImageInput[], merge: number): PositionPart[] {
  const parts: PositionPart[] = [];
  let t = 0, image = 0;
  while (t < modality.length) {
    if (modality[t] === MODALITY.image) {
      const { grid } = (inputs[image++] as Extract<ImageInput, { kind: 'qwen' }>).input;
      const part = { kind: 'image' as const, gridT: grid[0], gridH: grid[1] / merge, gridW: grid[2] / merge };
      parts.push(part);
      t += part.gridT * part.gridH * part.gridW;
    } else {
      let end = t;
      while (end < modality.length && modality[end] !== MODALITY.image) end++;
      parts.push({ kind: 'text', length: end - t });
      t = end;
    }
  }
  return parts;
}
