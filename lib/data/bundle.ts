// The calibration bundle: one safetensors file with everything the quantizer needs from the
// calibration samples, captured once at the input of the language model's first decoder layer.
//
// Per sample i (0 ≤ i < N, no gaps):
//   samples.{i}.embeddings  F32 | F16 | BF16  [T_i, H]   input embeddings (text and merged vision tokens)
//   samples.{i}.positions   I32  [3, T_i] (M-RoPE: temporal, height, width rows; Qwen2-VL, Qwen2.5-VL)
//                                or [T_i]  (1-D; LLaVA-OneVision)
//   samples.{i}.modality    U8   [T_i]     0 text, 1 image, 2 video
// and `__metadata__` { vlmq_bundle: "1", samples: "N", hidden: "H", position_rows: "1" | "3", … }
// plus free-form strings (source, architecture, …) and the writer's `format: "pt"`.
//
// Every sample's embeddings share one dtype and every sample's positions one layout. The reader
// validates the whole header when it opens the file and reads one sample at a time, so a bundle
// of 512 long samples costs the memory of one.

import { createHash } from 'node:crypto';
import { open as openFile } from 'node:fs/promises';
import { VlmqError, fileError, invalidParameterError } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors-reader.js';
import { writeSafetensors, type WritableTensor } from '../io/safetensors-writer.js';
import { toFloat32, type Tensor } from '../tensor.js';

/** The value of `__metadata__.vlmq_bundle` this code writes and reads. */
export const BUNDLE_VERSION = '1';

/** Modality codes of `samples.{i}.modality`. */
export const MODALITY = Object.freeze({ text: 0, image: 1, video: 2 } as const);

/** Dtypes accepted for the embeddings. */
export const BUNDLE_EMBEDDING_DTYPES = Object.freeze(['F32', 'F16', 'BF16'] as const);
export type BundleEmbeddingDType = (typeof BUNDLE_EMBEDDING_DTYPES)[number];

/** Metadata keys the bundle owns; user metadata may not set them. */
const RESERVED_METADATA = ['vlmq_bundle', 'samples', 'hidden', 'position_rows'] as const;

const TENSOR_KINDS = ['embeddings', 'positions', 'modality'] as const;
type TensorKind = (typeof TENSOR_KINDS)[number];
const TENSOR_NAME = /^samples\.(0|[1-9][0-9]*)\.(embeddings|positions|modality)$/;

/** Name of one tensor of sample i. */
export function bundleTensorName(i: number, kind: TensorKind): string {
  return `samples.${i}.${kind}`;
}

/** One calibration sample as written. */
export interface BundleSample {
  /** [T, H], dtype F32 (Float32Array), F16 or BF16 (Uint16Array of raw bits), row-major. */
  embeddings: Tensor;
  /** T values (1-D) or 3T values (M-RoPE, component-major [3, T]). */
  positions: Int32Array;
  /** T values in {0 text, 1 image, 2 video}. */
  modality: Uint8Array;
}

/** One calibration sample as read: embeddings always decoded to F32. */
export interface BundleSampleData {
  /** [T, H] row-major. */
  embeddings: Float32Array;
  /** [T] or [3, T] component-major, as stored. */
  positions: Int32Array;
  modality: Uint8Array;
  tokens: number;
}

export interface WriteCalibrationBundleOptions {
  /** Free-form string metadata (source, architecture, …); may not set the bundle's own keys. */
  metadata?: Record<string, string>;
}

/** What was written. */
export interface CalibrationBundleSummary {
  samples: number;
  hidden: number;
  positionRows: 1 | 3;
  embeddingsDType: BundleEmbeddingDType;
  totalTokens: number;
}

// --- writing --------------------------------------------------------------------------------

/**
 * A sample whose size is known before its data: the planned writer calls `load` when it reaches
 * the sample, so a bundle built from images holds one sample in memory, not all of them.
 */
export interface PlannedBundleSample {
  tokens: number;
  load: () => Promise<BundleSample>;
}

/** The shape of every sample of a planned bundle. */
export interface BundlePlan {
  hidden: number;
  positionRows: 1 | 3;
  embeddingsDType: BundleEmbeddingDType;
  samples: readonly PlannedBundleSample[];
}

/**
 * Writes a calibration bundle to `path` atomically (temporary sibling + fsync + rename).
 *
 * Every sample is validated before the file is created — T ≥ 1, one hidden size and one
 * embeddings dtype for all samples, positions of length T (1-D) or 3T (M-RoPE) with the same
 * layout for all samples, modality of length T with values in {0, 1, 2} — and an error names
 * the sample and the field. The header precedes the data, so all samples are held until the
 * write (the caller's buffers are written as they are: do not change them while this runs);
 * writePlannedCalibrationBundle writes samples computed one at a time.
 */
export async function writeCalibrationBundle(
  path: string,
  samples: Iterable<BundleSample> | AsyncIterable<BundleSample>,
  options: WriteCalibrationBundleOptions = {},
): Promise<CalibrationBundleSummary> {
  if (typeof path !== 'string' || path === '') throw invalidParameterError('path', 'a non-empty file path', path);
  if (!isIterable(samples)) throw invalidParameterError('samples', 'an iterable or async iterable of { embeddings, positions, modality }', samples);
  checkUserMetadata(options?.metadata);

  const planned: PlannedBundleSample[] = [];
  let first: Omit<BundlePlan, 'samples'> | null = null;
  for await (const sample of samples) {
    const i = planned.length;
    const { tokens, hidden, dtype, positionRows } = checkSample(sample, i);
    if (first === null) {
      first = { hidden, embeddingsDType: dtype, positionRows };
    } else {
      if (hidden !== first.hidden) {
        throw invalidParameterError(`shape of embeddings of sample ${i}`, `[T, ${first.hidden}] (sample 0 has hidden size ${first.hidden})`, sample.embeddings.shape);
      }
      if (dtype !== first.embeddingsDType) {
        throw invalidParameterError(`dtype of embeddings of sample ${i}`, `${first.embeddingsDType} (the dtype of sample 0; all samples share one)`, dtype);
      }
      if (positionRows !== first.positionRows) {
        const expected = first.positionRows === 3 ? `3·T = ${3 * tokens} values (M-RoPE, like sample 0)` : `T = ${tokens} values (1-D, like sample 0)`;
        throw invalidParameterError(`positions of sample ${i}`, expected, sample.positions);
      }
    }
    planned.push({ tokens, load: async () => sample });
  }
  if (first === null) throw invalidParameterError('samples', 'at least one sample', samples);
  return writePlannedCalibrationBundle(path, { ...first, samples: planned }, options);
}

/**
 * Writes a calibration bundle whose samples are computed while it is written: the header comes
 * from the plan, and each sample's `load` runs when the writer reaches it (atomically, as
 * writeCalibrationBundle). A loaded sample that does not match its plan is an error naming it.
 * With F32 embeddings the writer takes every sample's embeddings first and `load` runs once per
 * sample; with 16-bit embeddings the positions come first (the file's layout puts wider dtypes
 * first) and `load` runs twice.
 */
export async function writePlannedCalibrationBundle(path: string, plan: BundlePlan, options: WriteCalibrationBundleOptions = {}): Promise<CalibrationBundleSummary> {
  if (typeof path !== 'string' || path === '') throw invalidParameterError('path', 'a non-empty file path', path);
  const userMetadata = checkUserMetadata(options?.metadata);
  const { hidden, positionRows, embeddingsDType: dtype, samples } = plan;
  if (samples.length === 0) throw invalidParameterError('plan.samples', 'at least one sample', samples);
  const metadata: Record<string, string> = {
    ...userMetadata,
    vlmq_bundle: BUNDLE_VERSION,
    samples: String(samples.length),
    hidden: String(hidden),
    position_rows: String(positionRows),
  };
  // The writer asks for the embeddings first (widest dtype first); the small parts wait here.
  const rest = new Map<number, Pick<BundleSample, 'positions' | 'modality'>>();
  const load = async (i: number) => {
    const sample = await samples[i].load();
    const got = checkSample(sample, i);
    if (got.tokens !== samples[i].tokens || got.hidden !== hidden || got.dtype !== dtype || got.positionRows !== positionRows) {
      const describe = (o: { tokens: number; hidden: number; dtype: string; positionRows: number }) => `${o.tokens} tokens of width ${o.hidden} (${o.dtype}, ${o.positionRows} position row(s))`;
      throw new VlmqError('ERR_VLMQ_INVALID_ARG', `sample ${i} has ${describe(got)}, but the plan said ${describe({ tokens: samples[i].tokens, hidden, dtype, positionRows })}`);
    }
    rest.set(i, { positions: sample.positions, modality: sample.modality });
    return sample;
  };
  const part = async (i: number, kind: 'positions' | 'modality') => {
    const value = (rest.get(i) ?? (await load(i)))[kind];
    if (kind === 'modality') rest.delete(i);
    return value;
  };
  const tensors: WritableTensor[] = samples.flatMap(({ tokens }, i) => [
    { name: bundleTensorName(i, 'embeddings'), dtype, shape: [tokens, hidden], data: async () => (await load(i)).embeddings.data },
    { name: bundleTensorName(i, 'positions'), dtype: 'I32', shape: positionRows === 3 ? [3, tokens] : [tokens], data: () => part(i, 'positions') },
    { name: bundleTensorName(i, 'modality'), dtype: 'U8', shape: [tokens], data: () => part(i, 'modality') },
  ]);
  await writeSafetensors(path, tensors, { metadata });
  const totalTokens = samples.reduce((sum, { tokens }) => sum + tokens, 0);
  return { samples: samples.length, hidden, positionRows, embeddingsDType: dtype, totalTokens };
}

function checkSample(sample: BundleSample, i: number): { tokens: number; hidden: number; dtype: BundleEmbeddingDType; positionRows: 1 | 3 } {
  const where = `sample ${i}`;
  if (typeof sample !== 'object' || sample === null) throw invalidParameterError(where, 'an object { embeddings, positions, modality }', sample);
  const { embeddings, positions, modality } = sample;

  if (typeof embeddings !== 'object' || embeddings === null) throw invalidParameterError(`embeddings of ${where}`, 'a tensor { dtype, shape: [T, H], data }', embeddings);
  const dtype = embeddings.dtype;
  if (!isEmbeddingDType(dtype)) throw invalidParameterError(`dtype of embeddings of ${where}`, `one of ${BUNDLE_EMBEDDING_DTYPES.join(', ')}`, dtype);
  const shape = embeddings.shape;
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isSafeInteger(d) && d >= 1)) {
    throw invalidParameterError(`shape of embeddings of ${where}`, '[T, H] with T ≥ 1 and H ≥ 1', shape);
  }
  const [tokens, hidden] = shape;
  const data = embeddings.data;
  const arrayType = dtype === 'F32' ? Float32Array : Uint16Array;
  if (!(data instanceof arrayType)) {
    throw invalidParameterError(`data of embeddings of ${where}`, `a ${arrayType.name} (${dtype}${dtype === 'F32' ? '' : ' values as raw 16-bit patterns'})`, data);
  }
  if (data.length !== tokens * hidden) throw invalidParameterError(`data of embeddings of ${where}`, `${tokens}·${hidden} = ${tokens * hidden} values for shape [${tokens}, ${hidden}]`, data);

  if (!(positions instanceof Int32Array)) throw invalidParameterError(`positions of ${where}`, 'an Int32Array', positions);
  let positionRows: 1 | 3;
  if (positions.length === tokens) positionRows = 1;
  else if (positions.length === 3 * tokens) positionRows = 3;
  else throw invalidParameterError(`positions of ${where}`, `T = ${tokens} values (1-D) or 3·T = ${3 * tokens} values (M-RoPE [3, T])`, positions);

  if (!(modality instanceof Uint8Array)) throw invalidParameterError(`modality of ${where}`, 'a Uint8Array', modality);
  if (modality.length !== tokens) throw invalidParameterError(`modality of ${where}`, `T = ${tokens} values (one per token)`, modality);
  const bad = findBadModality(modality);
  if (bad >= 0) throw invalidParameterError(`modality of ${where} at token ${bad}`, '0 (text), 1 (image) or 2 (video)', modality[bad]);
  return { tokens, hidden, dtype, positionRows };
}

function checkUserMetadata(metadata: unknown): Record<string, string> {
  if (metadata === undefined) return {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw invalidParameterError('metadata', 'an object of string values', metadata);
  for (const [key, value] of Object.entries(metadata)) {
    if ((RESERVED_METADATA as readonly string[]).includes(key)) {
      throw invalidParameterError(`metadata["${key}"]`, `no value (the bundle sets ${RESERVED_METADATA.join(', ')} itself)`, value);
    }
    if (typeof value !== 'string') throw invalidParameterError(`metadata["${key}"]`, 'a string', value);
  }
  return { ...(metadata as Record<string, string>) };
}

// --- reading --------------------------------------------------------------------------------

/** Where sample i lives and how many tokens it has. */
interface SampleEntry {
  tokens: number;
  names: Record<TensorKind, string>;
}

/**
 * A calibration bundle opened for per-sample reads. `open` validates the whole header; `read(i)`
 * reads only sample i's three tensors. Close it (or `await using` it) when done.
 */
export class CalibrationBundle {
  readonly path: string;
  readonly samples: number;
  readonly hidden: number;
  readonly positionRows: 1 | 3;
  /** The embeddings' stored dtype (read() always returns F32). */
  readonly embeddingsDType: BundleEmbeddingDType;
  /** The whole `__metadata__`: the bundle's own keys, the user's, and the writer's `format`. */
  readonly metadata: Readonly<Record<string, string>>;
  readonly totalTokens: number;
  #file: SafetensorsFile;
  #entries: readonly SampleEntry[];
  #fingerprint: string;

  private constructor(file: SafetensorsFile, layout: BundleLayout, fingerprint: string) {
    this.#file = file;
    this.path = file.path;
    this.samples = layout.entries.length;
    this.hidden = layout.hidden;
    this.positionRows = layout.positionRows;
    this.embeddingsDType = layout.embeddingsDType;
    this.metadata = Object.freeze({ ...file.metadata });
    this.#entries = layout.entries;
    this.totalTokens = layout.entries.reduce((sum, entry) => sum + entry.tokens, 0);
    this.#fingerprint = fingerprint;
  }

  /** Opens `path` and validates its header as a bundle; errors name the file and the sample or tensor. */
  static async open(path: string): Promise<CalibrationBundle> {
    const file = await SafetensorsFile.open(path);
    try {
      const layout = validateLayout(file);
      const fingerprint = await fingerprintOf(file);
      return new CalibrationBundle(file, layout, fingerprint);
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  /** T_i, the token count of sample i. */
  tokens(i: number): number {
    return this.#entry(i).tokens;
  }

  /** Reads sample i (and nothing else); embeddings decoded to F32, modality values checked. */
  async read(i: number): Promise<BundleSampleData> {
    const { tokens, names } = this.#entry(i);
    const embeddings = await this.#file.read(names.embeddings);
    const positions = await this.#file.read(names.positions);
    const modality = await this.#file.read(names.modality);
    const modalityData = modality.data as Uint8Array;
    const bad = findBadModality(modalityData);
    if (bad >= 0) {
      throw fileError(this.path, `sample ${i}: tensor '${names.modality}' holds value ${modalityData[bad]} at token ${bad} (expected 0 text, 1 image or 2 video)`);
    }
    // SafetensorsFile.read returns a fresh buffer, so F32 data needs no further copy.
    const decoded = embeddings.dtype === 'F32' ? (embeddings.data as Float32Array) : toFloat32(embeddings);
    return { embeddings: decoded, positions: positions.data as Int32Array, modality: modalityData, tokens };
  }

  /**
   * SHA-256 (hex) of the file's header bytes (length prefix and JSON) followed by the file size as
   * a little-endian u64. Cheap — no tensor data is read — and it changes whenever the layout
   * (sample count, token counts, hidden size, dtypes, metadata) or the size changes; a rewrite
   * with the same shapes and different values keeps it.
   */
  fingerprint(): string {
    return this.#fingerprint;
  }

  async close(): Promise<void> {
    await this.#file.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #entry(i: number): SampleEntry {
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.#entries.length) {
      throw invalidParameterError('sample index', `an integer in [0, ${this.#entries.length - 1}] (${this.path} holds ${this.#entries.length} samples)`, i);
    }
    return this.#entries[i];
  }
}

interface BundleLayout {
  hidden: number;
  positionRows: 1 | 3;
  embeddingsDType: BundleEmbeddingDType;
  entries: SampleEntry[];
}

/** The bundle-level checks of a header the safetensors reader has already validated. */
function validateLayout(file: SafetensorsFile): BundleLayout {
  const path = file.path;
  const fail = (message: string) => fileError(path, message);
  const metadata = file.metadata;
  if (metadata === null) throw fail('not a calibration bundle: the header has no __metadata__ (expected vlmq_bundle, samples, hidden, position_rows)');
  if (metadata.vlmq_bundle === undefined) throw fail('not a calibration bundle: __metadata__ has no "vlmq_bundle" key');
  if (metadata.vlmq_bundle !== BUNDLE_VERSION) throw fail(`__metadata__ vlmq_bundle is ${JSON.stringify(metadata.vlmq_bundle)}; this version of vlmq reads bundle version "${BUNDLE_VERSION}"`);
  const count = metadataInteger(path, metadata, 'samples');
  const hidden = metadataInteger(path, metadata, 'hidden');
  const rowsText = metadata.position_rows;
  if (rowsText !== '1' && rowsText !== '3') throw fail(`__metadata__ position_rows must be "1" or "3", found ${rowsText === undefined ? 'none' : JSON.stringify(rowsText)}`);
  const positionRows: 1 | 3 = rowsText === '3' ? 3 : 1;

  // Every tensor must be one of a sample's three, with an index below the declared count.
  const seen = new Set<string>();
  for (const name of file.names()) {
    const match = TENSOR_NAME.exec(name);
    if (match === null) throw fail(`unexpected tensor '${name}' (a bundle holds only samples.{i}.embeddings, samples.{i}.positions and samples.{i}.modality)`);
    const index = Number(match[1]);
    if (!Number.isSafeInteger(index) || index >= count) {
      throw fail(`tensor '${name}' belongs to sample ${match[1]}, but __metadata__ declares ${count} samples (indices 0..${count - 1})`);
    }
    seen.add(name);
  }

  const entries: SampleEntry[] = [];
  let embeddingsDType: BundleEmbeddingDType | null = null;
  for (let i = 0; i < count; i++) {
    const names = { embeddings: bundleTensorName(i, 'embeddings'), positions: bundleTensorName(i, 'positions'), modality: bundleTensorName(i, 'modality') };
    for (const kind of TENSOR_KINDS) {
      if (!seen.has(names[kind])) {
        throw fail(`sample ${i}: missing tensor '${names[kind]}' (__metadata__ declares ${count} samples, numbered 0..${count - 1} without gaps)`);
      }
    }
    const embeddings = file.info(names.embeddings);
    const where = `sample ${i}: tensor '${names.embeddings}'`;
    if (!isEmbeddingDType(embeddings.dtype)) throw fail(`${where} has dtype ${embeddings.dtype}; embeddings must be ${BUNDLE_EMBEDDING_DTYPES.join(', ')}`);
    if (embeddingsDType === null) embeddingsDType = embeddings.dtype;
    else if (embeddings.dtype !== embeddingsDType) throw fail(`${where} has dtype ${embeddings.dtype} but sample 0's embeddings are ${embeddingsDType} (all samples share one dtype)`);
    const shape = embeddings.shape;
    if (shape.length !== 2) throw fail(`${where} has shape ${showShape(shape)}; expected [T, ${hidden}]`);
    if (shape[1] !== hidden) throw fail(`${where} has shape ${showShape(shape)} but __metadata__ hidden is ${hidden}`);
    const tokens = shape[0];
    if (tokens < 1) throw fail(`${where} has shape ${showShape(shape)}; a sample needs at least one token`);

    const positions = file.info(names.positions);
    const expectedPositions = positionRows === 3 ? [3, tokens] : [tokens];
    if (positions.dtype !== 'I32') throw fail(`sample ${i}: tensor '${names.positions}' has dtype ${positions.dtype}; positions must be I32`);
    if (!sameShape(positions.shape, expectedPositions)) {
      throw fail(`sample ${i}: tensor '${names.positions}' has shape ${showShape(positions.shape)}; expected ${showShape(expectedPositions)} (T = ${tokens} from the embeddings, position_rows ${positionRows} from __metadata__)`);
    }
    const modality = file.info(names.modality);
    if (modality.dtype !== 'U8') throw fail(`sample ${i}: tensor '${names.modality}' has dtype ${modality.dtype}; modality must be U8`);
    if (!sameShape(modality.shape, [tokens])) throw fail(`sample ${i}: tensor '${names.modality}' has shape ${showShape(modality.shape)}; expected [${tokens}] (T from the embeddings)`);
    entries.push({ tokens, names });
  }
  // count ≥ 1, so the loop ran and set the dtype.
  return { hidden, positionRows, embeddingsDType: embeddingsDType!, entries };
}

function metadataInteger(path: string, metadata: Record<string, string>, key: 'samples' | 'hidden'): number {
  const text = metadata[key];
  if (text === undefined) throw fileError(path, `__metadata__ has no "${key}" key (a calibration bundle records samples, hidden and position_rows)`);
  const value = /^[1-9][0-9]*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) throw fileError(path, `__metadata__ ${key} must be a positive integer, found ${JSON.stringify(text)}`);
  return value;
}

/** Hash of the raw header bytes (read again through a second descriptor) and the file size. */
async function fingerprintOf(file: SafetensorsFile): Promise<string> {
  const length = 8 + file.headerSize;
  const bytes = new Uint8Array(length);
  const handle = await openFile(file.path, 'r');
  try {
    const { size } = await handle.stat();
    let done = 0;
    while (done < length) {
      const { bytesRead } = await handle.read(bytes, done, length - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    const declared = done === length ? new DataView(bytes.buffer).getBigUint64(0, true) : -1n;
    if (size !== file.fileSize || declared !== BigInt(file.headerSize)) {
      throw fileError(file.path, 'the file changed while it was being opened; open it again');
    }
  } finally {
    await handle.close();
  }
  const sizeBytes = new Uint8Array(8);
  new DataView(sizeBytes.buffer).setBigUint64(0, BigInt(file.fileSize), true);
  return createHash('sha256').update(bytes).update(sizeBytes).digest('hex');
}

// --- helpers --------------------------------------------------------------------------------

function isEmbeddingDType(dtype: unknown): dtype is BundleEmbeddingDType {
  return (BUNDLE_EMBEDDING_DTYPES as readonly unknown[]).includes(dtype);
}

/** Index of the first value outside {0, 1, 2}, or −1. */
function findBadModality(modality: Uint8Array): number {
  for (let j = 0; j < modality.length; j++) if (modality[j] > 2) return j;
  return -1;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, k) => d === b[k]);
}

function showShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function isIterable(value: unknown): boolean {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
  const candidate = value as Partial<Iterable<unknown> & AsyncIterable<unknown>>;
  return typeof candidate[Symbol.iterator] === 'function' || typeof candidate[Symbol.asyncIterator] === 'function';
}
