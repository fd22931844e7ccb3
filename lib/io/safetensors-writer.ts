// Writer for the safetensors format (docs/formats.md §1).
//
// It mimics the reference layout (§1.5) so that every tensor of a ≥4-byte dtype lands on an offset
// aligned to its element size, and writes atomically (temporary sibling + fsync + rename): a crash
// or a failing tensor never leaves a half-written checkpoint at the destination.
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileError, invalidParameterError } from '../errors.js';
import { DTYPES, DTYPE_BITS, isDType, byteSize, numel, type DType } from '../tensor.js';
import { checkFileDestination, writeError } from './files.js';
import { temporarySibling } from './move-into-place.js';
import { IO_CHUNK_BYTES, LENGTH_PREFIX_BYTES, MAX_HEADER_SIZE, METADATA_KEY, isNonNegativeSafeInteger, isPlainObject } from './safetensors-format.js';

/** One tensor to write; `data` may be a thunk so that huge exports hold one tensor at a time. */
export interface WritableTensor {
  name: string;
  dtype: DType;
  shape: readonly number[];
  data: ArrayBufferView | (() => Promise<ArrayBufferView>);
}

export interface WriteSafetensorsOptions {
  /** String→string metadata; `format: "pt"` is added unless given (transformers checks it, §1.2). */
  metadata?: Record<string, string>;
  /**
   * 'reference' (default): the reference writer's layout, which aligns every tensor. 'given': the
   * caller's order, so that thunks producing several tensors from one computation run together;
   * the caller keeps tensors aligned (readers must not assume alignment anyway, §1.5).
   */
  order?: 'reference' | 'given';
}

/** A validated tensor with its place in the data buffer. */
interface PlannedTensor {
  name: string;
  dtype: DType;
  shape: number[];
  byteLength: number;
  begin: number;
  data: WritableTensor['data'];
}

/**
 * Writes a safetensors file laid out like the reference writer (docs/formats.md §1.5). Everything
 * is validated before the file is created; data is written tensor by tensor (thunks are called
 * one at a time, in layout order) into a temporary sibling that replaces `path` only when complete.
 */
export async function writeSafetensors(
  path: string,
  tensors: Iterable<WritableTensor> | AsyncIterable<WritableTensor>,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  if (typeof path !== 'string' || path === '') throw invalidParameterError('path', 'a non-empty file path', path);
  const metadata = checkWriterMetadata(options?.metadata);
  const order = options?.order ?? 'reference';
  if (order !== 'reference' && order !== 'given') throw invalidParameterError('order', "'reference' or 'given'", order);
  const planned = planLayout(await collectTensors(tensors), order);
  const header = encodeHeader(path, headerMetadata(metadata, planned.length), planned);
  await checkFileDestination(path, 'safetensors file');
  await writeAtomically(path, async (handle) => {
    await writeFully(handle, header);
    for (const tensor of planned) await writeFully(handle, await resolveData(tensor));
  });
}

async function collectTensors(tensors: Iterable<WritableTensor> | AsyncIterable<WritableTensor>): Promise<PlannedTensor[]> {
  if (!isIterable(tensors)) {
    throw invalidParameterError('tensors', 'an iterable of { name, dtype, shape, data }', tensors);
  }
  const collected: PlannedTensor[] = [];
  const seen = new Set<string>();
  for await (const tensor of tensors) {
    const checked = checkWritableTensor(tensor, collected.length);
    if (seen.has(checked.name)) throw invalidParameterError(`name of tensors[${collected.length}]`, 'a unique tensor name', checked.name);
    seen.add(checked.name);
    collected.push(checked);
  }
  return collected;
}

function checkWritableTensor(tensor: WritableTensor, index: number): PlannedTensor {
  if (!isPlainObject(tensor)) throw invalidParameterError(`tensors[${index}]`, 'an object { name, dtype, shape, data }', tensor);
  const { name, dtype, shape, data } = tensor;
  if (typeof name !== 'string' || name === '' || name === METADATA_KEY || hasLoneSurrogate(name)) {
    throw invalidParameterError(`name of tensors[${index}]`, `a non-empty string other than "${METADATA_KEY}"`, name);
  }
  const where = `tensor '${name}'`;
  if (!isDType(dtype)) throw invalidParameterError(`dtype of ${where}`, `one of ${DTYPES.join(', ')}`, dtype);
  if (!Array.isArray(shape) || !shape.every(isNonNegativeSafeInteger)) {
    throw invalidParameterError(`shape of ${where}`, 'an array of non-negative integers', shape);
  }
  const bits = numel(shape) * DTYPE_BITS[dtype];
  if (!Number.isSafeInteger(bits) || bits % 8 !== 0) {
    throw invalidParameterError(`shape of ${where}`, `a shape whose ${dtype} elements fill whole bytes`, `[${shape.join(', ')}]`);
  }
  const byteLength = byteSize(dtype, shape);
  const planned = { name, dtype, shape: [...shape], byteLength, begin: 0, data };
  if (typeof data !== 'function') checkDataSize(planned, data);
  return planned;
}

function checkDataSize({ name, dtype, shape, byteLength }: PlannedTensor, data: unknown): asserts data is ArrayBufferView {
  if (!ArrayBuffer.isView(data)) throw invalidParameterError(`data of tensor '${name}'`, 'an ArrayBufferView or a function returning a promise of one', data);
  if (data.byteLength !== byteLength) {
    throw invalidParameterError(`data of tensor '${name}'`, `a view of ${byteLength} bytes (${dtype} [${shape.join(', ')}])`, data);
  }
}

function checkWriterMetadata(metadata: unknown): Record<string, string> | undefined {
  if (metadata === undefined) return undefined;
  if (!isPlainObject(metadata)) throw invalidParameterError('metadata', 'an object of string values', metadata);
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string' || hasLoneSurrogate(key) || hasLoneSurrogate(value)) {
      throw invalidParameterError(`metadata["${key}"]`, 'a string', value);
    }
  }
  return metadata as Record<string, string>;
}

/**
 * Always `format: "pt"` (docs/formats.md §1.2) — except for a file with no tensors and no metadata,
 * which serializes exactly like the reference's empty file: N = 8, `{}` and six spaces (§1.1).
 */
function headerMetadata(metadata: Record<string, string> | undefined, tensorCount: number): Record<string, string> | null {
  if (metadata === undefined && tensorCount === 0) return null;
  return { format: 'pt', ...metadata };
}

/**
 * Layout order of the reference writer (docs/formats.md §1.5): dtype descending in enum order,
 * then name ascending by UTF-8 bytes (Rust's String order). Large elements first keep every
 * tensor aligned to its element size, given the 8-aligned data buffer.
 */
function planLayout(tensors: PlannedTensor[], order: 'reference' | 'given'): PlannedTensor[] {
  const rank = (dtype: DType) => DTYPES.indexOf(dtype);
  const nameBytes = new Map(tensors.map((t) => [t.name, Buffer.from(t.name, 'utf8')]));
  const ordered = order === 'given' ? [...tensors]
    : [...tensors].sort((a, b) => rank(b.dtype) - rank(a.dtype) || Buffer.compare(nameBytes.get(a.name)!, nameBytes.get(b.name)!));
  let offset = 0;
  for (const tensor of ordered) {
    tensor.begin = offset;
    offset += tensor.byteLength;
  }
  return ordered;
}

/** Length prefix + compact JSON (metadata first, then layout order) + spaces up to a multiple of 8. */
function encodeHeader(path: string, metadata: Record<string, string> | null, planned: readonly PlannedTensor[]): Uint8Array {
  const members: string[] = [];
  if (metadata !== null) members.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  for (const { name, dtype, shape, begin, byteLength } of planned) {
    // Field order as the reference's TensorInfo struct serializes it.
    members.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [begin, begin + byteLength] })}`);
  }
  const json = Buffer.from(`{${members.join(',')}}`, 'utf8');
  const headerSize = Math.ceil(json.byteLength / 8) * 8;
  if (headerSize > MAX_HEADER_SIZE) {
    throw fileError(path, `header of ${headerSize} bytes exceeds the limit of ${MAX_HEADER_SIZE} bytes readers accept; split the tensors into shards`);
  }
  const header = Buffer.alloc(LENGTH_PREFIX_BYTES + headerSize, 0x20);
  header.writeBigUInt64LE(BigInt(headerSize), 0);
  json.copy(header, LENGTH_PREFIX_BYTES);
  return header;
}

/** The tensor's bytes, calling its thunk now if it has one, re-checking the size it promised. */
async function resolveData(tensor: PlannedTensor): Promise<Uint8Array> {
  const data = typeof tensor.data === 'function' ? await tensor.data() : tensor.data;
  checkDataSize(tensor, data);
  // The view's own window, not its whole buffer (it may be a slice of a larger one). Typed arrays
  // use host byte order, which is little-endian on every platform Node supports in practice.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

async function writeFully(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const length = Math.min(bytes.byteLength - done, IO_CHUNK_BYTES);
    const { bytesWritten } = await handle.write(bytes, done, length);
    done += bytesWritten;
  }
}

/** Writes into `${path}.tmp-<pid>-<random>`, fsyncs, renames onto `path`; removes the temporary file on any error. */
async function writeAtomically(path: string, writeContent: (handle: FileHandle) => Promise<void>): Promise<void> {
  const temporary = temporarySibling(path);
  // 'wx' so that we never clobber (and later delete) a file we did not create.
  let handle: FileHandle | null = await open(temporary, 'wx').catch((error: unknown) => {
    throw writeError(path, error);
  });
  try {
    await writeContent(handle);
    await handle.sync();
    await handle.close();
    handle = null;
    await rename(temporary, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(temporary, { force: true }).catch(() => undefined);
    throw writeError(path, error);
  }
  await syncDirectory(dirname(path));
}

/** Makes the rename durable; some platforms (Windows) cannot fsync a directory, which is harmless. */
async function syncDirectory(directory: string): Promise<void> {
  try {
    const handle = await open(directory, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort: the file itself is complete and fsynced
  }
}

// --- small helpers -------------------------------------------------------------------------

function isIterable(value: unknown): boolean {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
  const candidate = value as Partial<Iterable<unknown> & AsyncIterable<unknown>>;
  return typeof candidate[Symbol.iterator] === 'function' || typeof candidate[Symbol.asyncIterator] === 'function';
}

/** A lone UTF-16 surrogate cannot be encoded as UTF-8, so it would corrupt the header. */
function hasLoneSurrogate(text: string): boolean {
  return /\p{Surrogate}/u.test(text);
}
