// Reader for the safetensors format (docs/formats.md §1).
//
// It opens a file, reads only the 8-byte length prefix and the JSON header, and validates them
// exactly as the reference Rust reader does (§1.4), plus a few stricter checks (duplicate keys,
// extra fields in a tensor entry). Tensor bytes are read on demand with positional reads, so a
// 60 GB checkpoint costs one file descriptor and its header, not its size in memory.
import type { FileHandle } from 'node:fs/promises';
import { describeValue, fileError, invalidParameterError } from '../errors.js';
import { nestedDeeperThan } from '../json.js';
import { DTYPES, DTYPE_BITS, isDType, byteSize, numel, viewAs, type DType, type Tensor } from '../tensor.js';
import { openRegularFile } from './files.js';
import { IO_CHUNK_BYTES, LENGTH_PREFIX_BYTES, MAX_HEADER_SIZE, METADATA_KEY, isNonNegativeSafeInteger, isPlainObject } from './safetensors-format.js';

/** The only fields of a tensor entry; the published JSON schema forbids others (§1.2). */
const ENTRY_FIELDS = ['dtype', 'shape', 'data_offsets'] as const;

/** Where one tensor's bytes live in a file. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Absolute file offset of the first byte (8 + header length + data_offsets[0]). */
  readonly begin: number;
  readonly byteLength: number;
}

/** What the header of a safetensors file says. */
export interface SafetensorsHeader {
  readonly path: string;
  /** The `__metadata__` object, or null when the file has none. */
  readonly metadata: Record<string, string> | null;
  /** Length N of the JSON header in bytes, excluding the 8-byte length prefix. */
  readonly headerSize: number;
  readonly fileSize: number;
  /** Tensors in header order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
}

/** A safetensors file opened for lazy, per-tensor reads. Close it (or `await using` it) when done. */
export class SafetensorsFile implements SafetensorsHeader {
  readonly path: string;
  readonly metadata: Record<string, string> | null;
  readonly headerSize: number;
  readonly fileSize: number;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  #handle: FileHandle | null;

  private constructor(handle: FileHandle, header: SafetensorsHeader) {
    this.#handle = handle;
    this.path = header.path;
    this.metadata = header.metadata;
    this.headerSize = header.headerSize;
    this.fileSize = header.fileSize;
    this.tensors = header.tensors;
  }

  /** Opens `path`, reads and validates its header; tensor data stays on disk until read. */
  static async open(path: string): Promise<SafetensorsFile> {
    if (typeof path !== 'string' || path === '') throw invalidParameterError('path', 'a non-empty file path', path);
    const handle = await openRegularFile(path, 'safetensors file');
    try {
      return new SafetensorsFile(handle, await readHeader(handle, path));
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Tensor names in header order. */
  names(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (info === undefined) throw fileError(this.path, `no tensor named '${name}' (${describeAvailable(this.names())})`);
    return info;
  }

  /** Reads one whole tensor into a fresh, aligned buffer. */
  async read(name: string): Promise<Tensor> {
    const info = this.info(name);
    const bytes = await this.#readBytes(info, info.begin, info.byteLength);
    return { dtype: info.dtype, shape: [...info.shape], data: viewAs(info.dtype, bytes) };
  }

  /** Reads rows [rowStart, rowStart + rowCount) of the first dimension, e.g. a slice of a huge embedding. */
  async readRows(name: string, rowStart: number, rowCount: number): Promise<Tensor> {
    const info = this.info(name);
    if (info.shape.length === 0) throw fileError(this.path, `tensor '${name}' is a scalar; readRows needs at least one dimension`);
    const rows = info.shape[0];
    checkRowRange(name, rows, rowStart, rowCount);
    const rowShape = info.shape.slice(1);
    const rowBits = numel(rowShape) * DTYPE_BITS[info.dtype];
    if (rowBits % 8 !== 0) {
      throw fileError(this.path, `tensor '${name}': a row of ${info.dtype} [${rowShape.join(', ')}] does not fill whole bytes; read the whole tensor instead`);
    }
    const rowBytes = rowBits / 8;
    const bytes = await this.#readBytes(info, info.begin + rowStart * rowBytes, rowCount * rowBytes);
    return { dtype: info.dtype, shape: [rowCount, ...rowShape], data: viewAs(info.dtype, bytes) };
  }

  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = null;
    await handle?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #readBytes(info: TensorInfo, position: number, length: number): Promise<Uint8Array> {
    if (this.#handle === null) throw fileError(this.path, `cannot read tensor '${info.name}': the file was closed`);
    // A fresh ArrayBuffer (not Buffer.allocUnsafe's shared pool) starts at offset 0, so viewAs
    // can wrap it without a copy whatever the tensor's offset in the file.
    const bytes = new Uint8Array(new ArrayBuffer(length));
    await readFully(this.#handle, this.path, bytes, position, () => `tensor '${info.name}' ends past the end of the file (was it truncated after it was opened?)`);
    return bytes;
  }
}

/** Reads and validates just the header of `path`, then closes the file. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const file = await SafetensorsFile.open(path);
  await file.close();
  const { metadata, headerSize, fileSize, tensors } = file;
  return { path, metadata, headerSize, fileSize, tensors };
}

/** Reads a whole (small) file into memory: metadata and every tensor, in header order. */
export async function loadSafetensors(path: string): Promise<{ metadata: Record<string, string> | null; tensors: Map<string, Tensor> }> {
  const file = await SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, Tensor>();
    for (const name of file.names()) tensors.set(name, await file.read(name));
    return { metadata: file.metadata === null ? null : { ...file.metadata }, tensors };
  } finally {
    await file.close();
  }
}

function describeAvailable(names: string[]): string {
  if (names.length === 0) return 'the file holds no tensors';
  const shown = names.slice(0, 5).map((n) => `'${n}'`).join(', ');
  return names.length > 5 ? `available: ${shown} and ${names.length - 5} more` : `available: ${shown}`;
}

function checkRowRange(name: string, rows: number, rowStart: number, rowCount: number): void {
  if (!isNonNegativeSafeInteger(rowStart) || rowStart > rows) {
    throw invalidParameterError(`rowStart of tensor '${name}'`, `an integer in [0, ${rows}]`, rowStart);
  }
  if (!isNonNegativeSafeInteger(rowCount) || rowStart + rowCount > rows) {
    throw invalidParameterError(`rowCount of tensor '${name}'`, `an integer in [0, ${rows - rowStart}]`, rowCount);
  }
}

/** Fills `target` from `position`; fs may return fewer bytes than asked, so loop. */
async function readFully(handle: FileHandle, path: string, target: Uint8Array, position: number, describeShortRead: () => string): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const length = Math.min(target.byteLength - done, IO_CHUNK_BYTES);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) throw fileError(path, describeShortRead());
    done += bytesRead;
  }
}

// --- header validation (docs/formats.md §1.4, in the reference's order) ------------------------

/** A tensor entry as the header states it, offsets still relative to the data buffer. */
interface HeaderEntry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

async function readHeader(handle: FileHandle, path: string): Promise<SafetensorsHeader> {
  const { size: fileSize } = await handle.stat();
  // Rule 1: even an empty tensor dict needs the 8-byte length prefix.
  if (fileSize < LENGTH_PREFIX_BYTES) throw fileError(path, `file of ${bytes(fileSize)} is too small for a safetensors header (needs at least 8)`);
  const prefix = new Uint8Array(LENGTH_PREFIX_BYTES);
  await readFully(handle, path, prefix, 0, () => 'file shrank while its header was read');
  const headerSize = checkHeaderLength(path, new DataView(prefix.buffer).getBigUint64(0, true), fileSize);
  const headerBytes = new Uint8Array(headerSize);
  await readFully(handle, path, headerBytes, LENGTH_PREFIX_BYTES, () => 'file shrank while its header was read');
  const { metadata, entries } = parseHeader(path, headerBytes);
  checkTiling(path, entries, headerSize, fileSize);
  const dataStart = LENGTH_PREFIX_BYTES + headerSize;
  const tensors = new Map<string, TensorInfo>();
  for (const { name, dtype, shape, begin, end } of entries) {
    // Frozen: the infos are shared by every caller of info() and tensors.
    tensors.set(name, Object.freeze({ name, dtype, shape: Object.freeze(shape), begin: dataStart + begin, byteLength: end - begin }));
  }
  return { path, metadata, headerSize, fileSize, tensors };
}

/** Rules 2 and 3: the header length must be sane and the header must fit in the file. */
function checkHeaderLength(path: string, declared: bigint, fileSize: number): number {
  if (declared > BigInt(MAX_HEADER_SIZE)) {
    throw fileError(path, `header length ${declared} exceeds the limit of ${MAX_HEADER_SIZE} bytes (is this a safetensors file?)`);
  }
  const headerSize = Number(declared);
  if (LENGTH_PREFIX_BYTES + headerSize > fileSize) {
    throw fileError(path, `header length ${headerSize} runs past the end of the file (8 + ${headerSize} > ${fileSize} bytes)`);
  }
  return headerSize;
}

/** Rule 4: UTF-8 JSON object of tensor entries plus optional string→string metadata. */
function parseHeader(path: string, bytes: Uint8Array): { metadata: Record<string, string> | null; entries: HeaderEntry[] } {
  const text = decodeUtf8(path, bytes);
  const root = parseJsonObject(path, text);
  const { keys, nonIntegerLiterals } = scanHeaderKeys(path, text);
  let metadata: Record<string, string> | null = null;
  const entries: HeaderEntry[] = [];
  for (const key of keys) {
    if (key === METADATA_KEY) metadata = parseMetadata(path, root[key]);
    else entries.push(parseEntry(path, key, root[key], nonIntegerLiterals.get(key)));
  }
  return { metadata, entries };
}

function decodeUtf8(path: string, bytes: Uint8Array): string {
  try {
    // ignoreBOM keeps a byte-order mark in the text, where JSON.parse rejects it, as serde_json does.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (error) {
    throw fileError(path, 'header is not valid UTF-8', { cause: error });
  }
}

function parseJsonObject(path: string, text: string): Record<string, unknown> {
  let root: unknown;
  try {
    // JSON.parse accepts exactly JSON whitespace around the value, which is the reference's
    // leniency for padded headers (docs/formats.md §1.1).
    root = JSON.parse(text);
  } catch (error) {
    throw fileError(path, `header is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (!isPlainObject(root)) throw fileError(path, `header must be a JSON object, found ${describeValue(root)}`);
  return root;
}

function parseMetadata(path: string, value: unknown): Record<string, string> | null {
  // The reference models __metadata__ as Option<map>, so an explicit null means "none".
  if (value === null) return null;
  if (!isPlainObject(value)) throw fileError(path, `__metadata__ must be an object of strings, found ${describeValue(value)}`);
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') throw fileError(path, `__metadata__ value of "${key}" must be a string, found ${describeValue(item)}`);
  }
  return value as Record<string, string>;
}

function parseEntry(path: string, name: string, value: unknown, nonIntegerLiteral: string | undefined): HeaderEntry {
  const where = `tensor '${name}'`;
  if (!isPlainObject(value)) throw fileError(path, `${where}: expected an object with dtype, shape and data_offsets, found ${describeValue(value)}`);
  const extra = Object.keys(value).find((field) => !(ENTRY_FIELDS as readonly string[]).includes(field));
  if (extra !== undefined) throw fileError(path, `${where}: unexpected field "${extra}" (an entry holds only dtype, shape and data_offsets)`);
  const missing = ENTRY_FIELDS.find((field) => !Object.hasOwn(value, field));
  if (missing !== undefined) throw fileError(path, `${where}: missing field "${missing}"`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isDType(dtype)) throw fileError(path, `${where}: unknown dtype ${describeValue(dtype)} (known: ${DTYPES.join(', ')})`);
  if (!Array.isArray(shape) || !shape.every(isNonNegativeSafeInteger)) {
    throw fileError(path, `${where}: shape must be an array of non-negative integers, found ${showJson(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeSafeInteger)) {
    throw fileError(path, `${where}: data_offsets must be [begin, end] of non-negative integers, found ${showJson(offsets)}`);
  }
  // The reference parses these as usize, which refuses 1.0, 1e3 and -0 even though JSON.parse
  // maps them to non-negative integers.
  if (nonIntegerLiteral !== undefined) throw fileError(path, `${where}: shape and data_offsets must be plain non-negative integers, found ${nonIntegerLiteral}`);
  return { name, dtype, shape: [...shape], begin: offsets[0], end: offsets[1] };
}

/**
 * Rules 5 and 6: walked in offset order, the tensors must tile the data buffer exactly — no gap,
 * no overlap, sizes matching dtype × shape — and the buffer must end where the file ends.
 * Tiling is what rules out aliasing and polyglot files (docs/formats.md §1.4).
 */
function checkTiling(path: string, entries: readonly HeaderEntry[], headerSize: number, fileSize: number): void {
  const ordered = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let previous: HeaderEntry | undefined;
  for (const entry of ordered) {
    checkStartsWherePreviousEnds(path, entry, previous);
    checkSizeMatchesShape(path, entry);
    previous = entry;
  }
  checkFileEnd(path, previous, headerSize, fileSize);
}

function checkStartsWherePreviousEnds(path: string, entry: HeaderEntry, previous: HeaderEntry | undefined): void {
  const { name, begin, end } = entry;
  if (previous === undefined && begin !== 0) {
    throw fileError(path, `first tensor '${name}' begins at byte ${begin} of the data buffer instead of 0 (bytes 0..${begin} belong to no tensor)`);
  }
  if (previous !== undefined && begin < previous.end) {
    throw fileError(path, `tensors '${previous.name}' and '${name}' overlap: '${previous.name}' ends at byte ${previous.end} of the data buffer but '${name}' begins at byte ${begin}`);
  }
  if (previous !== undefined && begin > previous.end) {
    throw fileError(path, `gap of ${bytes(begin - previous.end)} between tensors '${previous.name}' (ends at byte ${previous.end} of the data buffer) and '${name}' (begins at byte ${begin})`);
  }
  if (end < begin) throw fileError(path, `tensor '${name}': data_offsets [${begin}, ${end}] end before they begin`);
}

function checkSizeMatchesShape(path: string, { name, dtype, shape, begin, end }: HeaderEntry): void {
  const count = numel(shape);
  const bits = count * DTYPE_BITS[dtype];
  if (!Number.isSafeInteger(bits)) throw fileError(path, `tensor '${name}': shape [${shape.join(', ')}] has too many elements`);
  if (bits % 8 !== 0) throw fileError(path, `tensor '${name}': ${count} ${dtype} elements make ${bits} bits, which do not fill whole bytes`);
  const expected = byteSize(dtype, shape);
  if (end - begin !== expected) {
    throw fileError(path, `tensor '${name}': ${dtype} [${shape.join(', ')}] needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
  }
}

function checkFileEnd(path: string, last: HeaderEntry | undefined, headerSize: number, fileSize: number): void {
  const expectedSize = LENGTH_PREFIX_BYTES + headerSize + (last?.end ?? 0);
  const after = last === undefined ? 'the header' : `the last tensor '${last.name}'`;
  if (fileSize < expectedSize) {
    throw fileError(path, `truncated: ${bytes(expectedSize - fileSize)} missing (${after} ends at byte ${expectedSize} of a ${fileSize}-byte file)`);
  }
  if (fileSize > expectedSize) throw fileError(path, `${bytes(fileSize - expectedSize, 'trailing ')} after ${after}`);
}

// --- top-level key scan ---------------------------------------------------------------------

/**
 * JSON.parse keeps the last of duplicate keys silently and reorders integer-like keys, so this
 * scan of the (already parsed, hence well-formed) text recovers what it hides: the top-level keys
 * in file order, duplicate keys at any depth (forbidden by the format, docs/formats.md §1.2), and
 * number literals other than plain digits (fraction, exponent, -0) inside each top-level entry.
 */
function scanHeaderKeys(path: string, text: string): { keys: string[]; nonIntegerLiterals: Map<string, string> } {
  const keys: string[] = [];
  const nonIntegerLiterals = new Map<string, string>();
  const objectKeys: (Set<string> | null)[] = []; // one per open container; null for arrays
  let expectingKey = false;
  let topKey = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      const end = endOfString(text, i);
      const keySet = objectKeys[objectKeys.length - 1];
      if (expectingKey && keySet) {
        const key = JSON.parse(text.slice(i, end)) as string;
        if (keySet.has(key)) throw fileError(path, duplicateKeyMessage(key, objectKeys.length, topKey));
        keySet.add(key);
        if (objectKeys.length === 1) keys.push((topKey = key));
        expectingKey = false;
      }
      i = end;
    } else if (c === '{' || c === '[') {
      objectKeys.push(c === '{' ? new Set() : null);
      expectingKey = c === '{';
      i++;
    } else if (c === '}' || c === ']') {
      objectKeys.pop();
      i++;
    } else if (c === ',') {
      expectingKey = objectKeys[objectKeys.length - 1] != null;
      i++;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      const start = i;
      while (i < text.length && isNumberChar(text[i])) i++;
      const literal = text.slice(start, i);
      if (!/^\d+$/.test(literal) && !nonIntegerLiterals.has(topKey)) nonIntegerLiterals.set(topKey, literal);
    } else {
      i++;
    }
  }
  return { keys, nonIntegerLiterals };
}

function isNumberChar(c: string): boolean {
  return (c >= '0' && c <= '9') || c === '-' || c === '+' || c === '.' || c === 'e' || c === 'E';
}

/** Index just past the closing quote of the string that opens at `start`. */
function endOfString(text: string, start: number): number {
  let quote = text.indexOf('"', start + 1);
  while (isEscaped(text, quote)) quote = text.indexOf('"', quote + 1);
  return quote + 1;
}

function isEscaped(text: string, index: number): boolean {
  let backslashes = 0;
  while (text[index - 1 - backslashes] === '\\') backslashes++;
  return backslashes % 2 === 1;
}

function duplicateKeyMessage(key: string, depth: number, topKey: string): string {
  if (depth === 1) {
    return key === METADATA_KEY ? `duplicate ${METADATA_KEY} in the header` : `duplicate tensor '${key}' in the header (tensor names must be unique)`;
  }
  return topKey === METADATA_KEY
    ? `duplicate key ${JSON.stringify(key)} in __metadata__`
    : `tensor '${topKey}': duplicate key ${JSON.stringify(key)}`;
}

// --- small helpers -------------------------------------------------------------------------

/** "1 byte", "3 bytes", "3 trailing bytes". */
function bytes(count: number, adjective = ''): string {
  return `${count} ${adjective}${count === 1 ? 'byte' : 'bytes'}`;
}

/** Longest JSON shown in a message; longer values are cut. */
const SHOWN_JSON_CHARS = 80;
/** Deepest nesting shown as JSON (JSON.stringify recurses: 5,000 nested arrays in a header overflow its stack). */
const SHOWN_JSON_DEPTH = 16;

/** A header value as JSON for a message: cut to SHOWN_JSON_CHARS, and only described when nested too deep to print. */
function showJson(value: unknown): string {
  if (nestedDeeperThan(value, SHOWN_JSON_DEPTH)) return `${describeValue(value)} nested more than ${SHOWN_JSON_DEPTH} levels deep`;
  const text = JSON.stringify(value) ?? String(value);
  return text.length > SHOWN_JSON_CHARS ? `${text.slice(0, SHOWN_JSON_CHARS - 3)}...` : text;
}
