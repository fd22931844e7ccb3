// Fuzz properties of the calibration-set readers (lib/data/calibration-set.ts: readShareGPT4V,
// readCalibrationJsonl, readCalibrationSet). Inputs are ShareGPT4V JSON arrays and JSONL files of
// generated records — valid ones with known expected records, and ones whose fields are anything —
// serialized in several styles and then edited as bytes (flips, cuts, bytes that are not UTF-8,
// byte-order marks, deep nesting, literals such as 1e400 or 2^53 + 1).
import fc from 'fast-check';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readCalibrationJsonl, readCalibrationSet, readShareGPT4V, type CalibrationRecord } from '../../lib/data/calibration-set.js';
import { FuzzFailure, defineProperty, expect, readOrReject, type FuzzProperty, type Verdict } from './harness.js';
import { applyTextEdit, rawLiteral, serialize, textEdit, type TextEdit } from './json-text.js';
import { makeSpecial, specialKind } from './special-files.js';

// --- the images every case may point at ---------------------------------------------------------------

/** Files under the shared images directory (only their existence is checked), and names that are not files there. */
const IMAGE_FILES = ['a.png', 'b.png', 'sub/c.png', 'with space.png', 'ünï.png'];
const NOT_IMAGE_FILES = ['missing.png', 'sub', '../outside.png'];

interface Shared {
  images: string;
}

async function setup(dir: string): Promise<Shared> {
  const images = join(dir, 'images');
  await mkdir(join(images, 'sub'), { recursive: true });
  for (const name of IMAGE_FILES) await writeFile(join(images, name), '');
  return { images };
}

// --- valid records, with the record the reader must return ---------------------------------------------

/** Text for prompts and answers: any Unicode, the placeholder's lookalikes, but no placeholder. */
const text = fc
  .oneof(
    fc.string({ unit: 'binary', maxLength: 16 }),
    fc.constantFrom('Describe this image.', '<image', 'image>', '< image>', '<IMAGE>', '  padded  ', '\n\nlines\n', 'tab\tand\r\nCRLF', '\u00a0nbsp\u00a0', '\ufeffbom'),
  )
  .filter((s) => !s.includes('<image>'));

const nonBlank = text.filter((s) => s.trim() !== '');

const recordId = fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }), fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }));

/** How a valid human turn marks its k images: not at all, each before the text, after it, or inline. */
type Placement = 'none' | 'before' | 'after' | 'spaced';

function humanTurn(prompt: string, k: number, placement: Placement): string {
  switch (placement) {
    case 'none': return prompt;
    case 'before': return `${'<image>\n'.repeat(k)}${prompt}`;
    case 'after': return `${prompt}${'\n<image>'.repeat(k)}`;
    case 'spaced': return `${'<image> '.repeat(k)}${prompt}`;
  }
}

interface ValidRecord {
  id: string | number;
  images: string[];
  /** image as a string (one image), a list, null or absent (none) */
  form: 'string' | 'list' | 'null' | 'absent';
  prompt: string;
  placement: Placement;
  answer: string;
  /** gpt turns before the first human turn and turns after the answer: allowed, unused */
  before: number;
  after: number;
}

const validRecord: fc.Arbitrary<ValidRecord> = fc.record({
  id: recordId,
  images: fc.array(fc.constantFrom(...IMAGE_FILES), { maxLength: 3 }),
  form: fc.constantFrom('string' as const, 'list' as const, 'null' as const, 'absent' as const),
  prompt: text,
  placement: fc.constantFrom('none' as const, 'before' as const, 'after' as const, 'spaced' as const),
  answer: nonBlank,
  before: fc.integer({ min: 0, max: 1 }),
  after: fc.integer({ min: 0, max: 2 }),
});

/** The `image` field of a valid record; the form is adjusted to what its image count allows. */
function imageField(r: ValidRecord): unknown {
  if (r.images.length === 0) return r.form === 'list' ? [] : r.form === 'null' ? null : undefined;
  if (r.images.length === 1 && r.form === 'string') return r.images[0];
  return r.images;
}

function expectedRecord(r: ValidRecord, id: string, imageRoot: string): CalibrationRecord {
  return { id, images: r.images.map((name) => resolve(imageRoot, name)), prompt: r.prompt.trim(), answer: r.answer.trim() };
}

function shareGPT4VItem(r: ValidRecord): Record<string, unknown> {
  const turns = [
    ...Array.from({ length: r.before }, () => ({ from: 'gpt', value: 'earlier' })),
    { from: 'human', value: humanTurn(r.prompt, r.images.length, r.placement) },
    { from: 'gpt', value: r.answer },
    ...Array.from({ length: r.after }, (_, k) => ({ from: k % 2 === 0 ? 'human' : 'gpt', value: `later <image> ${k}` })),
  ];
  return { id: r.id, image: imageField(r), conversations: turns };
}

function jsonlItem(r: ValidRecord, withId: boolean): Record<string, unknown> {
  const image = imageField(r);
  return { ...(withId ? { id: r.id } : {}), image: image === undefined ? null : image, prompt: humanTurn(r.prompt, r.images.length, r.placement), answer: r.answer };
}

/** Runs one reader entry point on `path`: the format's own function or readCalibrationSet. */
function read(path: string, format: 'json' | 'jsonl', entry: 'direct' | 'by-extension', images: string): Promise<CalibrationRecord[]> {
  if (entry === 'by-extension') return readCalibrationSet(path, { images });
  return format === 'json' ? readShareGPT4V(path, { images }) : readCalibrationJsonl(path, { images });
}

function sameRecords(got: readonly CalibrationRecord[], want: readonly CalibrationRecord[]): string | null {
  if (got.length !== want.length) return `${got.length} records, expected ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const [g, w] = [got[i], want[i]];
    for (const key of ['id', 'prompt', 'answer'] as const) if (g[key] !== w[key]) return `record ${i}: ${key} ${JSON.stringify(g[key])}, expected ${JSON.stringify(w[key])}`;
    if (g.images.join('\n') !== w.images.join('\n')) return `record ${i}: images ${JSON.stringify(g.images)}, expected ${JSON.stringify(w.images)}`;
    const extra = Object.keys(g).filter((k) => !['id', 'images', 'prompt', 'answer'].includes(k));
    if (extra.length > 0) return `record ${i}: unexpected fields ${extra.join(', ')}`;
  }
  return null;
}

// --- properties: valid files -----------------------------------------------------------------------------

const validJson = defineProperty({
  name: 'calibration.json-valid',
  reader: 'calibration',
  title: 'a ShareGPT4V JSON file of arbitrary valid records reads back as exactly those records (ids, absolute image paths, prompts without placeholders, trimmed answers)',
  testRuns: 200,
  weight: 1,
  arbitrary: fc.record({
    records: fc.array(validRecord, { minLength: 1, maxLength: 5 }),
    indent: fc.constantFrom(0 as const, 2 as const, '\t' as const),
    eol: fc.constantFrom('\n' as const, '\r\n' as const),
    bom: fc.boolean(),
    entry: fc.constantFrom('direct' as const, 'by-extension' as const),
  }),
  setup,
  async check({ records, indent, eol, bom, entry }, dir, { images }): Promise<Verdict> {
    const path = join(dir, 'set.json');
    await writeFile(path, `${bom ? '\ufeff' : ''}${serialize(records.map(shareGPT4VItem), indent, eol)}`);
    const outcome = await readOrReject(path, () => read(path, 'json', entry, images));
    expect(outcome.accepted, () => `rejected valid records: ${(outcome as { error: Error }).error.message}`);
    const difference = sameRecords(outcome.value, records.map((r) => expectedRecord(r, String(r.id), images)));
    expect(difference === null, () => difference!);
    return 'accepted';
  },
});

const validJsonl = defineProperty({
  name: 'calibration.jsonl-valid',
  reader: 'calibration',
  title: 'a JSONL file of arbitrary valid records (blank lines, CRLF, a byte-order mark, ids given or not) reads back as exactly those records, numbered by line',
  testRuns: 200,
  weight: 1,
  arbitrary: fc.record({
    lines: fc.array(fc.record({ record: validRecord, withId: fc.boolean(), blankBefore: fc.constantFrom('', '\n', '  \t\n', '\r\n\r\n') }), { minLength: 1, maxLength: 5 }),
    eol: fc.constantFrom('\n' as const, '\r\n' as const),
    finalEol: fc.boolean(),
    bom: fc.boolean(),
    entry: fc.constantFrom('direct' as const, 'by-extension' as const),
  }),
  setup,
  async check({ lines, eol, finalEol, bom, entry }, dir, { images }): Promise<Verdict> {
    const path = join(dir, 'set.jsonl');
    let content = bom ? '\ufeff' : '';
    let lineNumber = 0;
    const expected: CalibrationRecord[] = [];
    for (const [k, { record, withId, blankBefore }] of lines.entries()) {
      content += blankBefore;
      lineNumber += blankBefore.split(/\r\n|\n/).length - 1;
      content += serialize(jsonlItem(record, withId), 0, eol);
      lineNumber++;
      expected.push(expectedRecord(record, withId ? String(record.id) : `line-${lineNumber}`, images));
      if (k < lines.length - 1 || finalEol) content += eol;
    }
    await writeFile(path, content);
    const outcome = await readOrReject(path, () => read(path, 'jsonl', entry, images));
    expect(outcome.accepted, () => `rejected valid records: ${(outcome as { error: Error }).error.message}`);
    const difference = sameRecords(outcome.value, expected);
    expect(difference === null, () => difference!);
    return 'accepted';
  },
});

// --- properties: anything --------------------------------------------------------------------------------------

/** A field value that may be right, wrong in type, or an edge: any JSON, a raw literal, placeholder tricks. */
const anyValue = fc.oneof(
  { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 3 },
  { arbitrary: rawLiteral(), weight: 2 },
  { arbitrary: fc.constantFrom('<image>', '<<image>image>', '<image><image>', 'a<image>\n<image>b', ' ', '', 'human', 'gpt'), weight: 2 },
  { arbitrary: fc.constantFrom(...IMAGE_FILES, ...NOT_IMAGE_FILES), weight: 2 },
);

/** An edit of one generated record before serialization: a field set to anything, or removed. */
interface FieldEdit {
  record: number;
  path: Array<string | number>;
  value: unknown;
  remove: boolean;
}

const fieldEdit: fc.Arbitrary<FieldEdit> = fc.record({
  record: fc.nat(),
  path: fc.oneof(
    fc.constantFrom<Array<string | number>>(['id'], ['image'], ['image', 0], ['image', 1], ['prompt'], ['answer'], ['conversations'], ['extra'], ['images']),
    fc.tuple(fc.constant('conversations'), fc.integer({ min: 0, max: 3 }), fc.constantFrom('from', 'value', 'extra')).map((p): Array<string | number> => p),
    fc.tuple(fc.constant('conversations'), fc.integer({ min: 0, max: 3 })).map((p): Array<string | number> => p),
  ),
  value: anyValue,
  remove: fc.boolean(),
});

function applyFieldEdit(items: unknown[], edit: FieldEdit): void {
  if (items.length === 0) return;
  let target = items[edit.record % items.length] as Record<string | number, unknown> | undefined;
  for (const key of edit.path.slice(0, -1)) {
    const next = target?.[key];
    if (next === null || typeof next !== 'object') return;
    target = next as Record<string | number, unknown>;
  }
  const last = edit.path[edit.path.length - 1];
  if (target === undefined) return;
  if (edit.remove) delete target[last];
  else target[last] = edit.value;
}

/**
 * A prompt pieced together from placeholders and their fragments ("<", "image>", newlines, spaces),
 * so that placeholders meet in every way: "<<image>image>", "<image><image>", "<image>\n\n<image>".
 */
const promptPieces = fc.array(fc.constantFrom('<image>', '<image>', '<', '>', 'image>', '<image', '<<image>image>', '\n', '\r\n', ' ', 'x'), { maxLength: 6 }).map((pieces) => pieces.join(''));

/** Puts `prompt` as the human text of record `index` (JSONL `prompt`, or the first human turn). */
function setPrompt(items: Array<Record<string, unknown>>, index: number, prompt: string): void {
  if (items.length === 0) return;
  const item = items[index % items.length];
  if ('prompt' in item) item.prompt = prompt;
  const turn = (item.conversations as Array<Record<string, unknown>> | undefined)?.find((t) => t.from === 'human');
  if (turn) turn.value = prompt;
}

// --- the oracle for accepted files ----------------------------------------------------------------------------

type Json = Record<string, unknown>;

/** Strict UTF-8, or null. */
function utf8(bytes: Uint8Array): string | null {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** `value` with every placeholder and all whitespace removed: what the prompt must keep of the input. */
function essence(value: string): string {
  let text = value;
  while (text.includes('<image>')) text = text.replaceAll('<image>', '');
  return text.replace(/\s+/gu, '');
}

/** The `image` field as the absolute paths an accepted record must list. */
function expectedImages(value: unknown, root: string): string[] | null {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? [value] : value;
  return Array.isArray(list) && list.every((p) => typeof p === 'string') ? list.map((p: string) => resolve(root, p)) : null;
}

/** What an accepted record must be, from the input item the reader took it from; null if fine. */
async function recordProblem(got: CalibrationRecord, id: string, image: unknown, prompt: unknown, answer: unknown, root: string): Promise<string | null> {
  if (got.id !== id) return `id ${JSON.stringify(got.id)}, input ${JSON.stringify(id)}`;
  const images = expectedImages(image, root);
  if (images === null || images.join('\n') !== got.images.join('\n')) return `images ${JSON.stringify(got.images)}, input ${JSON.stringify(image)}`;
  for (const path of images) {
    const info = await stat(path).catch(() => null);
    if (!info?.isFile()) return `image ${path} is not a file`;
  }
  if (typeof answer !== 'string' || got.answer !== answer.trim() || got.answer === '' || got.answer.includes('<image>')) return `answer ${JSON.stringify(got.answer)}, input ${JSON.stringify(answer)}`;
  if (typeof prompt !== 'string') return `prompt from ${JSON.stringify(prompt)}`;
  if (got.prompt.includes('<image>')) return `prompt ${JSON.stringify(got.prompt)} still holds a placeholder (input ${JSON.stringify(prompt)})`;
  if (got.prompt !== got.prompt.trim() || essence(got.prompt) !== essence(prompt)) return `prompt ${JSON.stringify(got.prompt)} is not the input ${JSON.stringify(prompt)} without placeholders`;
  return null;
}

/** Checks the records a reader accepted from `bytes` against an independent reading of them. */
async function checkAcceptedJson(bytes: Uint8Array, got: CalibrationRecord[], root: string): Promise<void> {
  const decoded = utf8(bytes);
  expect(decoded !== null, () => 'accepted a file that is not UTF-8');
  let items: unknown;
  try {
    items = JSON.parse(decoded.replace(/^\ufeff/, ''));
  } catch (error) {
    throw new FuzzFailure(`accepted a file that is not JSON: ${(error as Error).message}`);
  }
  expect(Array.isArray(items) && items.length === got.length, () => `${got.length} records accepted from ${Array.isArray(items) ? items.length : 'no'} items`);
  for (const [i, item] of (items as Json[]).entries()) {
    const turns = item.conversations as Json[];
    const human = turns.findIndex((t) => t.from === 'human');
    const problem = await recordProblem(got[i], typeof item.id === 'string' ? item.id : String(item.id), item.image, turns[human]?.value, turns[human + 1]?.value, root);
    expect(problem === null, () => `record ${i}: ${problem}`);
  }
}

async function checkAcceptedJsonl(bytes: Uint8Array, got: CalibrationRecord[], root: string): Promise<void> {
  const decoded = utf8(bytes);
  expect(decoded !== null, () => 'accepted a file that is not UTF-8');
  // Line ends as Node's readline splits: CRLF, LF or a lone CR; blank lines skipped; a BOM on line 1 dropped.
  const lines = decoded.replace(/^\ufeff/, '').split(/\r\n|\n|\r/);
  let k = 0;
  for (const [index, line] of lines.entries()) {
    if (line.trim() === '') continue;
    let item: Json;
    try {
      item = JSON.parse(line) as Json;
    } catch (error) {
      throw new FuzzFailure(`accepted line ${index + 1}, which is not JSON: ${(error as Error).message}`);
    }
    expect(k < got.length, () => `line ${index + 1} holds a record that was not returned`);
    const extra = Object.keys(item).filter((key) => !['id', 'image', 'prompt', 'answer'].includes(key));
    expect(extra.length === 0, () => `accepted line ${index + 1} with keys ${extra.join(', ')}`);
    const id = item.id === undefined ? `line-${index + 1}` : typeof item.id === 'string' ? item.id : String(item.id);
    const problem = await recordProblem(got[k], id, item.image, item.prompt, item.answer, root);
    expect(problem === null, () => `line ${index + 1}: ${problem}`);
    k++;
  }
  expect(k === got.length, () => `${got.length} records returned from ${k} non-blank lines`);
}

interface AnyCase {
  format: 'json' | 'jsonl';
  records: ValidRecord[];
  withIds: boolean[];
  prompt: [number, string] | undefined;
  fieldEdits: FieldEdit[];
  textEdits: TextEdit[];
  indent: 0 | 2 | '\t';
  eol: '\n' | '\r\n';
  entry: 'direct' | 'by-extension';
}

const anyFile = defineProperty({
  name: 'calibration.mutated',
  reader: 'calibration',
  title: 'a JSON or JSONL calibration file with fields set to anything and edited bytes is rejected with a VlmqError naming it, or its records have the fields of the input',
  testRuns: 600,
  weight: 5,
  arbitrary: fc.record({
    format: fc.constantFrom('json' as const, 'jsonl' as const),
    records: fc.array(validRecord, { maxLength: 4 }),
    withIds: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    prompt: fc.option(fc.tuple(fc.nat(), promptPieces), { nil: undefined }),
    fieldEdits: fc.array(fieldEdit, { maxLength: 3 }),
    // Most cases keep the bytes as serialized, so that field edits meet the record checks, not the parser.
    textEdits: fc.oneof({ arbitrary: fc.constant([]), weight: 2 }, { arbitrary: fc.array(textEdit, { minLength: 1, maxLength: 2 }), weight: 1 }),
    indent: fc.constantFrom(0 as const, 2 as const, '\t' as const),
    eol: fc.constantFrom('\n' as const, '\r\n' as const),
    entry: fc.constantFrom('direct' as const, 'by-extension' as const),
  }),
  setup,
  async check(c: AnyCase, dir, { images }): Promise<Verdict> {
    const path = join(dir, `set.${c.format}`);
    const items = c.records.map((r, i) => (c.format === 'json' ? shareGPT4VItem(r) : jsonlItem(r, c.withIds[i])));
    if (c.prompt) setPrompt(items, ...c.prompt);
    for (const edit of c.fieldEdits) applyFieldEdit(items, edit);
    const text = c.format === 'json' ? serialize(items, c.indent, c.eol) : items.map((item) => serialize(item, 0, c.eol)).join(c.eol);
    const bytes = c.textEdits.reduce(applyTextEdit, new Uint8Array(Buffer.from(text, 'utf8')));
    await writeFile(path, bytes);
    const outcome = await readOrReject(path, () => read(path, c.format, c.entry, images));
    if (!outcome.accepted) return 'rejected';
    if (c.format === 'json') await checkAcceptedJson(bytes, outcome.value, images);
    else await checkAcceptedJsonl(bytes, outcome.value, images);
    return 'accepted';
  },
});

const special = defineProperty({
  name: 'calibration.special-files',
  reader: 'calibration',
  title: 'a FIFO, directory, link loop, dangling link, device or missing path given as a JSON or JSONL set is refused at once with a VlmqError naming it',
  testRuns: 30,
  weight: 0.2,
  arbitrary: fc.record({ kind: specialKind, format: fc.constantFrom('json' as const, 'jsonl' as const), entry: fc.constantFrom('direct' as const, 'by-extension' as const) }),
  setup,
  async check({ kind, format, entry }, dir, { images }): Promise<Verdict> {
    const path = join(dir, `set.${format}`);
    await makeSpecial(path, kind);
    const outcome = await readOrReject(path, () => read(path, format, entry, images));
    expect(!outcome.accepted, () => `accepted a ${kind}`);
    return 'rejected';
  },
});

export const CALIBRATION_SET_PROPERTIES: readonly FuzzProperty[] = [validJson, validJsonl, anyFile, special] as FuzzProperty[];
