// Calibration sets on disk: image–text pairs that the pipeline turns into calibration samples.
//
// Two formats are read (docs/formats.md §5):
//  - ShareGPT4V / LLaVA JSON: one array of `{ id, image, conversations: [{ from, value }] }`, the
//    format MBQ calibrates from. The first "human" turn is the prompt and the turn right after it,
//    which must be from "gpt", is the answer; later turns are checked for shape and otherwise unused.
//  - JSONL: one `{ "image": "a.jpg" | ["a.jpg", "b.jpg"] | null, "prompt": "...", "answer": "...",
//    "id"?: "..." }` per line, blank lines skipped.
//
// Image placeholders. A prompt may mark its images with `<image>`. Each placeholder is removed
// together with one adjacent newline (the one after it, else the one before it) or, inside a line,
// one adjacent space, and the prompt is trimmed. When placeholders are present their count must
// equal the number of images; when there are none, the images go before the text, as LLaVA data
// often has it. Either way a CalibrationRecord carries the images in order and the text without
// placeholders, and the chat template puts the images back — before the text, which is where
// LLaVA and MBQ put them too (they strip `<image>` and prepend it).
//
// Every problem is a VlmqError 'ERR_VLMQ_BAD_FILE' that names the file, the record (index and id,
// or line number for JSONL) and what was expected. Image files are checked after all records are
// valid, and all missing ones are reported together (the first few and a count).
//
// The file itself must be a regular file (a FIFO would block the read, a device never end; both
// are refused by kind, lib/io/files.ts) holding UTF-8: a byte that is not UTF-8 is an error naming
// its line and column, not a U+FFFD that would silently change a prompt.

import { type FileHandle, stat } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { describeValue, fileError, invalidParameterError, VlmqError } from '../errors.js';
import { openRegularFile, readRegularFile } from '../io/files.js';
import { Random } from '../random.js';

/** One image–text pair for calibration. */
export interface CalibrationRecord {
  id: string;
  /** absolute image paths, in the order they appear (0 or more) */
  images: string[];
  /** the user's turn with the image placeholders removed (the chat template puts the images back) */
  prompt: string;
  /** the assistant's turn */
  answer: string;
}

/** The placeholder LLaVA-style data marks an image with. */
export const IMAGE_PLACEHOLDER = '<image>';

/** Missing image files listed by name in one error; the rest are counted. */
const MISSING_LISTED = 5;

/** stat() calls in flight at once when checking image files. */
const STAT_CONCURRENCY = 32;

/** What messages call the JSON or JSONL file ("is a FIFO (named pipe), not a regular calibration file"). */
const WHAT = 'calibration file';

/**
 * Reads a ShareGPT4V JSON file (an array of `{ id, image, conversations }`, docs/formats.md §5.2).
 * `image` is a path or a list of paths relative to `options.images` (absolute paths are kept), or
 * absent/null for a text-only record. The prompt is the first "human" turn with its placeholders
 * removed (see the file comment), the answer the "gpt" turn right after it.
 */
export async function readShareGPT4V(jsonPath: string, options: { images: string }): Promise<CalibrationRecord[]> {
  if (typeof jsonPath !== 'string' || jsonPath === '') throw invalidParameterError('jsonPath', 'a non-empty file path', jsonPath);
  if (typeof options?.images !== 'string' || options.images === '') {
    throw invalidParameterError('images', 'the directory the records\' image paths are relative to', options?.images);
  }
  const imageRoot = resolve(options.images);
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(jsonPath, WHAT);
  } catch (error) {
    throw readError(jsonPath, error);
  }
  const data = parseJson(jsonPath, stripBom(decodeUtf8(jsonPath, bytes, 0)), '');
  if (!Array.isArray(data)) throw fileError(jsonPath, `expected a JSON array of records but received ${describeValue(data)}`);
  if (data.length === 0) throw fileError(jsonPath, 'expected at least one record but the array is empty');

  const records = data.map((item, index) => shareGPT4VRecord(jsonPath, item, index, imageRoot));
  await checkImageFiles(jsonPath, records.map((record, index) => ({ where: `record ${index} (id ${record.id})`, images: record.images })));
  return records;
}

/**
 * Reads a JSONL calibration set: one `{ image, prompt, answer, id? }` object per line (blank lines
 * are skipped). `image` is a path, a list of paths or null; relative paths resolve against
 * `options.images`, or else the JSONL file's directory. `id` defaults to "line-N". Keys other than
 * these four are an error (a misspelt "images" would otherwise silently drop the pictures).
 */
export async function readCalibrationJsonl(path: string, options: { images?: string } = {}): Promise<CalibrationRecord[]> {
  if (typeof path !== 'string' || path === '') throw invalidParameterError('path', 'a non-empty file path', path);
  if (options?.images !== undefined && (typeof options.images !== 'string' || options.images === '')) {
    throw invalidParameterError('images', 'a directory path (or undefined for the JSONL file\'s directory)', options.images);
  }
  const imageRoot = resolve(options?.images ?? dirname(path));
  const handle = await openRegularFile(path, WHAT).catch((error: unknown) => {
    throw readError(path, error);
  });

  const records: CalibrationRecord[] = [];
  const where: string[] = [];
  let lineNumber = 0;
  try {
    for await (const raw of jsonlLines(handle, path)) {
      lineNumber++;
      const line = lineNumber === 1 ? stripBom(raw) : raw;
      if (line.trim() === '') continue;
      const at = `line ${lineNumber}`;
      const record = jsonlRecord(path, parseJson(path, line, `${at}: `), at, lineNumber, imageRoot);
      records.push(record);
      where.push(`${at} (id ${record.id})`);
    }
  } catch (error) {
    if (error instanceof VlmqError) throw error;
    throw readError(path, error);
  } finally {
    await handle.close().catch(() => undefined);
  }
  if (records.length === 0) throw fileError(path, 'expected at least one record but the file has no non-blank lines');
  await checkImageFiles(path, records.map((record, i) => ({ where: where[i], images: record.images })));
  return records;
}

/**
 * Reads a calibration set by its extension: `.json` is ShareGPT4V (images relative to
 * `options.images`, or else the JSON file's directory), `.jsonl` is the JSONL format.
 */
export async function readCalibrationSet(path: string, options: { images?: string } = {}): Promise<CalibrationRecord[]> {
  if (typeof path !== 'string' || path === '') throw invalidParameterError('path', 'a non-empty file path', path);
  const extension = extname(path).toLowerCase();
  if (extension === '.json') return readShareGPT4V(path, { images: options?.images ?? dirname(path) });
  if (extension === '.jsonl') return readCalibrationJsonl(path, options);
  throw fileError(path, `expected a .json file (ShareGPT4V array) or a .jsonl file (one { image, prompt, answer } per line) but the extension is ${extension === '' ? 'missing' : JSON.stringify(extension)}`);
}

/**
 * A seeded choice of `count` records without replacement, in the order they were drawn: a forward
 * Fisher–Yates shuffle stopped after `count` steps. So the result is a prefix of the full shuffle
 * for that seed (sampling k+1 records keeps the first k), and with count ≥ length it is all the
 * records in shuffled order. Only sfc32's integer stream is used: identical on every platform.
 */
export function sampleRecords<T>(records: readonly T[], count: number, seed: number): T[] {
  if (!Array.isArray(records)) throw invalidParameterError('records', 'an array', records);
  if (!Number.isSafeInteger(count) || count < 1) throw invalidParameterError('count', 'an integer ≥ 1', count);
  if (!Number.isSafeInteger(seed)) throw invalidParameterError('seed', 'a safe integer', seed);
  const n = records.length;
  const take = Math.min(count, n);
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = new Random(seed);
  for (let i = 0; i < take; i++) {
    const j = i + Math.floor(rng.uniform() * (n - i));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order.slice(0, take).map((i) => records[i]);
}

// --- ShareGPT4V ------------------------------------------------------------------------------

/** Throws "FILE: WHERE: FIELD: expected E but received R". */
type Fail = (field: string, expected: string, received: unknown) => never;

function shareGPT4VRecord(file: string, item: unknown, index: number, imageRoot: string): CalibrationRecord {
  let where = `record ${index}`;
  const fail: Fail = (field, expected, received) => {
    throw fileError(file, `${where}: ${field}: expected ${expected} but received ${describeValue(received)}`);
  };
  if (!isPlainObject(item)) fail('record', 'an object { id, image, conversations }', item);
  const record = item;
  const id = recordId(record.id);
  if (id === null) fail('id', 'a non-empty string (or an integer)', record.id);
  where = `record ${index} (id ${id})`;

  const images = imagePaths(record.image, imageRoot, (expected, received) => fail('image', expected, received));

  const conversations: unknown = record.conversations;
  if (!Array.isArray(conversations)) fail('conversations', 'an array of { from, value } turns', conversations);
  const turns = (conversations as unknown[]).map((turn, k): { from: 'human' | 'gpt'; value: string } => {
    if (!isPlainObject(turn)) fail(`conversations[${k}]`, 'an object { from, value }', turn);
    const { from, value } = turn;
    if (from !== 'human' && from !== 'gpt') fail(`conversations[${k}].from`, '"human" or "gpt"', from);
    if (typeof value !== 'string') fail(`conversations[${k}].value`, 'a string', value);
    return { from, value };
  });
  const human = turns.findIndex((turn) => turn.from === 'human');
  if (human < 0) {
    throw fileError(file, `${where}: conversations: expected a turn from "human" but ${turns.length === 0 ? 'the array is empty' : 'every turn is from "gpt"'}`);
  }
  const g = human + 1;
  if (g >= turns.length) throw fileError(file, `${where}: conversations: expected a "gpt" turn after conversations[${human}] (the first "human" turn) but the conversation ends there`);
  const gptTurn = turns[g];
  if (gptTurn.from !== 'gpt') fail(`conversations[${g}].from`, '"gpt"', gptTurn.from);

  const { prompt, placeholders } = removePlaceholders(turns[human].value);
  checkPlaceholders(placeholders, images.length, prompt, (message) => {
    throw fileError(file, `${where}: conversations[${human}].value: ${message}`);
  });
  const answer = gptTurn.value.trim();
  if (answer === '') fail(`conversations[${g}].value`, 'a non-empty answer', gptTurn.value);
  if (answer.includes(IMAGE_PLACEHOLDER)) {
    throw fileError(file, `${where}: conversations[${g}].value: expected no ${IMAGE_PLACEHOLDER} placeholder in the answer but found ${countPlaceholders(answer)}`);
  }
  return { id, images, prompt, answer };
}

// --- JSONL -----------------------------------------------------------------------------------

const JSONL_KEYS = new Set(['id', 'image', 'prompt', 'answer']);

function jsonlRecord(file: string, item: unknown, at: string, lineNumber: number, imageRoot: string): CalibrationRecord {
  const fail: Fail = (field, expected, received) => {
    throw fileError(file, `${at}: ${field}: expected ${expected} but received ${describeValue(received)}`);
  };
  if (!isPlainObject(item)) fail('record', 'an object { image, prompt, answer, id? }', item);
  const record = item;
  for (const key of Object.keys(record)) {
    if (!JSONL_KEYS.has(key)) throw fileError(file, `${at}: unknown key ${JSON.stringify(key)} (expected image, prompt, answer and optionally id)`);
  }
  let id = `line-${lineNumber}`;
  if (record.id !== undefined) {
    const given = recordId(record.id);
    if (given === null) fail('id', 'a non-empty string or an integer (or no id)', record.id);
    id = given;
  }
  if (!('image' in record)) fail('image', 'a path, a list of paths or null', undefined);
  const images = imagePaths(record.image, imageRoot, (expected, received) => fail('image', expected, received));
  if (typeof record.prompt !== 'string') fail('prompt', 'a string', record.prompt);
  if (typeof record.answer !== 'string' || record.answer.trim() === '') fail('answer', 'a non-empty string', record.answer);
  const { prompt, placeholders } = removePlaceholders(record.prompt);
  checkPlaceholders(placeholders, images.length, prompt, (message) => {
    throw fileError(file, `${at}: prompt: ${message}`);
  });
  const answer = record.answer.trim();
  if (answer.includes(IMAGE_PLACEHOLDER)) {
    throw fileError(file, `${at}: answer: expected no ${IMAGE_PLACEHOLDER} placeholder in the answer but found ${countPlaceholders(answer)}`);
  }
  return { id, images, prompt, answer };
}

// --- pieces ----------------------------------------------------------------------------------

/**
 * The prompt without its `<image>` placeholders: each goes with one adjacent newline (after, else
 * before) or else one adjacent space; then the text is trimmed.
 */
function removePlaceholders(text: string): { prompt: string; placeholders: number } {
  const placeholders = countPlaceholders(text);
  const prompt = text.replace(/<image>\r?\n|\r?\n<image>|<image> | <image>|<image>/g, '').trim();
  return { prompt, placeholders };
}

function countPlaceholders(text: string): number {
  return text.split(IMAGE_PLACEHOLDER).length - 1;
}

/**
 * The placeholders must number the images (or be absent), and removing them must leave none: in
 * "<<image>image>" the removal joins "<" and "image>" into a new one, which the chat template would
 * take for an image of its own, so such a prompt is refused rather than guessed at.
 */
function checkPlaceholders(placeholders: number, images: number, prompt: string, fail: (message: string) => never): void {
  if (prompt.includes(IMAGE_PLACEHOLDER)) {
    fail(`expected ${IMAGE_PLACEHOLDER} placeholders that stand apart, but removing the ${placeholders} found leaves another (as in "<<image>image>")`);
  }
  if (placeholders === 0 || placeholders === images) return;
  fail(`expected ${images} ${IMAGE_PLACEHOLDER} placeholder${images === 1 ? '' : 's'} (one per image${images === 0 ? '; the record has no image' : ''}) or none but found ${placeholders}`);
}

/** `image` as absolute paths: a path, a list of paths, or absent/null for none. */
function imagePaths(value: unknown, root: string, fail: (expected: string, received: unknown) => never): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list)) return fail('a path, a list of paths or null', value);
  return list.map((path, k) => {
    if (typeof path !== 'string' || path.trim() === '') fail(Array.isArray(value) ? `a non-empty path at image[${k}]` : 'a non-empty path', path);
    return resolve(root, path as string);
  });
}

function recordId(value: unknown): string | null {
  if (typeof value === 'string' && value !== '') return value;
  if (Number.isSafeInteger(value)) return String(value);
  return null;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * The lines of a JSONL file as Node's readline splits them (a line ends at LF, CRLF or a lone CR),
 * each decoded as strict UTF-8. Bytes are split before decoding: no UTF-8 sequence contains 0x0A
 * or 0x0D, and a character cut by a chunk boundary is whole again in the line's bytes.
 */
async function* jsonlLines(handle: FileHandle, path: string): AsyncGenerator<string> {
  let parts: Buffer[] = []; // the current line's bytes so far
  let afterCr = false; // the last line ended with CR: an LF right after it belongs to that end
  let lineNumber = 0;
  for await (const chunk of handle.createReadStream({ autoClose: false }) as AsyncIterable<Buffer>) {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (afterCr) {
        afterCr = false;
        if (byte === 0x0a) {
          start = i + 1;
          continue;
        }
      }
      if (byte !== 0x0a && byte !== 0x0d) continue;
      parts.push(chunk.subarray(start, i));
      yield decodeUtf8(path, Buffer.concat(parts), ++lineNumber);
      parts = [];
      afterCr = byte === 0x0d;
      start = i + 1;
    }
    if (start < chunk.length) parts.push(chunk.subarray(start));
  }
  if (parts.length > 0) yield decodeUtf8(path, Buffer.concat(parts), ++lineNumber);
}

/**
 * Strict UTF-8 (a byte-order mark is kept, for stripBom); an invalid byte is an error naming its line
 * and column. `line` 0: `bytes` is a whole file, whose line is counted; else the line it is.
 */
function decodeUtf8(path: string, bytes: Uint8Array, line: number): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (error) {
    if (!(error instanceof TypeError)) throw readError(path, error); // too long for one string
    const offset = Math.max(0, invalidUtf8Offset(bytes));
    const lineStart = line === 0 && offset > 0 ? bytes.lastIndexOf(0x0a, offset - 1) + 1 : 0; // (a negative start would count from the end)
    const lineNumber = line === 0 ? countByte(bytes, 0x0a, offset) + 1 : line;
    const column = new TextDecoder().decode(bytes.subarray(lineStart, offset)).length + 1;
    const at = line === 0 ? `line ${lineNumber}, column ${column}` : `column ${column}`;
    const hex = bytes[offset].toString(16).padStart(2, '0');
    throw fileError(path, `${line === 0 ? '' : `line ${line}: `}expected UTF-8 text but found byte 0x${hex} at ${at}`, { cause: error });
  }
}

/** Offset of the first character that is not UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF); -1 if none. */
function invalidUtf8Offset(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length;) {
    const lead = bytes[i];
    if (lead < 0x80) {
      i++;
      continue;
    }
    // continuation bytes after the lead, and the range of the first one (it rules out overlong forms and surrogates)
    const [count, low, high] =
      lead >= 0xc2 && lead <= 0xdf ? [1, 0x80, 0xbf]
        : lead === 0xe0 ? [2, 0xa0, 0xbf]
          : lead === 0xed ? [2, 0x80, 0x9f]
            : lead >= 0xe1 && lead <= 0xef ? [2, 0x80, 0xbf]
              : lead === 0xf0 ? [3, 0x90, 0xbf]
                : lead >= 0xf1 && lead <= 0xf3 ? [3, 0x80, 0xbf]
                  : lead === 0xf4 ? [3, 0x80, 0x8f]
                    : [0, 0, 0];
    if (count === 0) return i;
    for (let k = 1; k <= count; k++) {
      const next = bytes[i + k];
      if (next === undefined || next < (k === 1 ? low : 0x80) || next > (k === 1 ? high : 0xbf)) return i;
    }
    i += count + 1;
  }
  return -1;
}

function countByte(bytes: Uint8Array, byte: number, end: number): number {
  let count = 0;
  for (let i = bytes.indexOf(byte); i >= 0 && i < end; i = bytes.indexOf(byte, i + 1)) count++;
  return count;
}

function readError(path: string, error: unknown) {
  // openRegularFile and readRegularFile already name the path and say what went wrong, in words.
  const cause = error instanceof VlmqError ? error.cause : error;
  const code = (cause as { code?: string })?.code;
  if (code === 'ENOENT') return fileError(path, 'no such file', { cause });
  if (error instanceof VlmqError) return error;
  if (code === 'ERR_STRING_TOO_LONG') {
    return fileError(path, 'is too large to read as one JSON string; convert it to JSONL (one record per line) or take a subset', { cause: error });
  }
  return fileError(path, `cannot be read: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

/** JSON.parse, with the line and column of a syntax error (V8's message in Node 20 gives neither). */
function parseJson(file: string, text: string, prefix: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const offset = jsonErrorOffset(text);
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < offset; i++) {
      if (text.charCodeAt(i) === 10) {
        line++;
        lineStart = i + 1;
      }
    }
    const found = offset >= text.length ? 'the end of the text' : JSON.stringify(text[offset]);
    const position = prefix === '' ? `line ${line}, column ${offset - lineStart + 1}` : `column ${offset - lineStart + 1}`;
    throw fileError(file, `${prefix}expected valid JSON but found ${found} at ${position}`, { cause: error });
  }
}

/**
 * Offset of the first syntax error in `text` (RFC 8259), for error messages only: JSON.parse has
 * already rejected the text, this finds where. Returns text.length for an early end.
 */
function jsonErrorOffset(text: string): number {
  let i = 0;
  const stop = { at: 0 };
  const fail = (): never => {
    stop.at = i;
    throw stop;
  };
  const space = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const number = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const string = () => {
    i++; // the opening quote
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail();
      if (c === 0x5c) {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 5;
        } else if (i < text.length && '"\\/bfnrt'.includes(text[i])) {
          i++;
        } else {
          fail();
        }
      } else {
        i++;
      }
    }
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      space();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (close === '}') {
          space();
          if (text[i] !== '"') fail();
          string();
          space();
          if (text[i] !== ':') fail();
          i++;
        }
        value();
        space();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === close) {
          i++;
          return;
        }
        fail();
      }
    }
    if (c === '"') return string();
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return;
      }
    }
    number.lastIndex = i;
    if (number.test(text)) {
      i = number.lastIndex;
      return;
    }
    fail();
  };
  try {
    value();
    space();
    if (i < text.length) fail();
  } catch (error) {
    if (error === stop) return Math.min(stop.at, text.length);
    return 0; // nesting too deep for this checker's recursion: report the start
  }
  return 0; // not reached for text that JSON.parse rejected
}

/** Every image file must exist and be a file; all failures are reported in one error. */
async function checkImageFiles(file: string, records: ReadonlyArray<{ where: string; images: readonly string[] }>): Promise<void> {
  const checks: Array<{ where: string; path: string }> = [];
  for (const { where, images } of records) for (const path of images) checks.push({ where, path });
  const problems: string[] = [];
  const reasons = new Array<string | null>(checks.length).fill(null);
  let next = 0;
  const worker = async () => {
    while (next < checks.length) {
      const k = next++;
      try {
        const info = await stat(checks[k].path);
        if (!info.isFile()) reasons[k] = 'not a file';
      } catch (error) {
        const code = (error as { code?: string })?.code;
        reasons[k] = code === 'ENOENT' ? '' : `cannot be read: ${code ?? String(error)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(STAT_CONCURRENCY, checks.length) }, worker));
  reasons.forEach((reason, k) => {
    if (reason !== null) problems.push(`${checks[k].where}: ${checks[k].path}${reason === '' ? '' : ` (${reason})`}`);
  });
  if (problems.length === 0) return;
  const listed = problems.slice(0, MISSING_LISTED).join('; ');
  const more = problems.length > MISSING_LISTED ? `; and ${problems.length - MISSING_LISTED} more` : '';
  throw fileError(file, `${problems.length} image file${problems.length === 1 ? ' is' : 's are'} missing or unreadable: ${listed}${more}`);
}
