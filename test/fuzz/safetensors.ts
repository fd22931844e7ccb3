// Fuzz properties of the safetensors reader (lib/io/safetensors-reader.ts: SafetensorsFile.open, read,
// readRows, loadSafetensors). Files come from writeSafetensors with arbitrary tensors and metadata,
// then are edited structurally (header fields, keys, offsets, literals, nesting) and as bytes.
import fc from 'fast-check';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile, loadSafetensors } from '../../lib/io/safetensors-reader.js';
import { writeSafetensors } from '../../lib/io/safetensors-writer.js';
import { DTYPES, DTYPE_BITS, type DType } from '../../lib/tensor.js';
import { bytesOf, defineProperty, expect, expectSameBytes, readOrReject, type FuzzProperty, type Verdict } from './harness.js';
import {
  applyByteEdit, applyHeaderEdit, byteEdit, headerBytes, headerBytesEdit, headerEdit, headerText, jsonLiteral, joinFile, literalText,
  splitFile, statedFile, type ByteEdit, type HeaderBytesEdit, type HeaderEdit, type Literal,
} from './safetensors-bytes.js';
import { makeSpecial, specialKind } from './special-files.js';

// --- generators -------------------------------------------------------------------------------------

/** Tensor names: any Unicode text (no lone surrogates, which UTF-8 cannot carry), and names that are keys of Object.prototype or integer-like. */
const tensorName = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }),
  fc.constantFrom('model.layers.0.self_attn.q_proj.weight', '__proto__', 'constructor', 'toString', '0', '1', '10', ' ', '"', '\\', '\u0000', 'é', '\u{1F600}', 'format'),
).filter((name) => name !== '__metadata__');

export interface TensorCase {
  name: string;
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

/** A tensor of any dtype whose elements fill whole bytes, at most `maxBytes` of arbitrary data. */
export function tensorCase(maxBytes: number): fc.Arbitrary<TensorCase> {
  return fc
    .record({ name: tensorName, dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 4 }) })
    .filter(({ dtype, shape }) => {
      const bits = shape.reduce((a, b) => a * b, 1) * DTYPE_BITS[dtype];
      return bits % 8 === 0 && bits / 8 <= maxBytes;
    })
    .chain((spec) => {
      const size = (spec.shape.reduce((a, b) => a * b, 1) * DTYPE_BITS[spec.dtype]) / 8;
      return fc.uint8Array({ minLength: size, maxLength: size }).map((data) => ({ ...spec, data }));
    });
}

const metadataText = fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.constantFrom('__proto__', 'format', 'constructor', ''));

/** User metadata for writeSafetensors, or none. */
export const metadataCase = fc.option(fc.dictionary(metadataText, fc.string({ unit: 'binary', maxLength: 16 }), { maxKeys: 4 }), { nil: undefined });

export const tensorsCase = (minCount: number, maxCount: number, maxBytes: number) =>
  fc.uniqueArray(tensorCase(maxBytes), { selector: (t) => t.name, minLength: minCount, maxLength: maxCount });

/** Writes the tensors with writeSafetensors (the writer under its normal contract) and returns the file's bytes. */
async function writeWithWriter(path: string, tensors: readonly TensorCase[], metadata: Record<string, string> | undefined): Promise<Uint8Array> {
  await writeSafetensors(path, tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: t.data })), metadata === undefined ? {} : { metadata });
  return new Uint8Array(await readFile(path));
}

/** `{ format: "pt", ...metadata }` as the writer stores it (docs/formats.md §1.2); null for an empty file without metadata. */
function storedMetadata(metadata: Record<string, string> | undefined, tensorCount: number): Record<string, string> | null {
  if (metadata === undefined && tensorCount === 0) return null;
  return { format: 'pt', ...metadata };
}

function sameEntries(a: Record<string, string> | null, b: Record<string, string> | null): boolean {
  const show = (m: Record<string, string> | null) => (m === null ? 'null' : JSON.stringify(Object.entries(m).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))));
  return show(a) === show(b);
}

// --- the accepted-file oracle ---------------------------------------------------------------------------

/**
 * For a file the reader accepted: the header obeys every rule of docs/formats.md §1.4 as read
 * independently, the reader lists exactly the stated tensors and metadata, and every tensor reads
 * back as the bytes at the offsets its header states, with its dtype and shape.
 */
async function checkAccepted(path: string, bytes: Uint8Array, file: SafetensorsFile): Promise<void> {
  const { file: stated, problem } = statedFile(bytes);
  expect(stated !== null, () => `accepted a file that breaks the format: ${problem}`);
  expect(file.headerSize === stated.headerSize && file.fileSize === bytes.length, () => `header size ${file.headerSize} / file size ${file.fileSize}, stated ${stated.headerSize} / ${bytes.length}`);
  expect(sameEntries(file.metadata, stated.metadata), () => `metadata ${JSON.stringify(file.metadata)}, stated ${JSON.stringify(stated.metadata)}`);
  const names = file.names();
  expect(names.length === stated.tensors.size && names.every((n) => stated.tensors.has(n)), () => `tensors ${JSON.stringify(names)}, stated ${JSON.stringify([...stated.tensors.keys()])}`);
  for (const [name, want] of stated.tensors) {
    const got = await readOrReject(path, () => file.read(name));
    expect(got.accepted, () => `tensor '${name}' of an accepted file failed to read: ${(got as { error: Error }).error.message}`);
    const tensor = got.value;
    expect(tensor.dtype === want.dtype && tensor.shape.join() === want.shape.join(), () => `tensor '${name}': ${tensor.dtype} [${tensor.shape}], stated ${want.dtype} [${want.shape}]`);
    expectSameBytes(bytesOf(tensor.data), bytes.subarray(want.begin, want.end), `tensor '${name}'`);
  }
}

// --- properties ----------------------------------------------------------------------------------------

const roundTrip = defineProperty({
  name: 'safetensors.roundtrip',
  reader: 'safetensors',
  title: 'a file writeSafetensors wrote from arbitrary tensors and metadata reads back byte-identical (loadSafetensors, read, readRows)',
  testRuns: 300,
  weight: 2,
  arbitrary: fc.record({
    tensors: tensorsCase(0, 6, 256),
    metadata: metadataCase,
    rows: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 }),
  }),
  async check({ tensors, metadata, rows }, dir): Promise<Verdict> {
    const path = join(dir, 'model.safetensors');
    await writeWithWriter(path, tensors, metadata);
    const loaded = await readOrReject(path, () => loadSafetensors(path));
    expect(loaded.accepted, () => `rejected a file writeSafetensors wrote: ${(loaded as { error: Error }).error.message}`);
    const { metadata: readMetadata, tensors: read } = loaded.value;
    expect(sameEntries(readMetadata, storedMetadata(metadata, tensors.length)), () => `metadata ${JSON.stringify(readMetadata)}, wrote ${JSON.stringify(metadata)}`);
    expect(read.size === tensors.length, () => `${read.size} tensors read, ${tensors.length} written`);
    for (const t of tensors) {
      const got = read.get(t.name);
      expect(got !== undefined, () => `tensor '${t.name}' is missing`);
      expect(got.dtype === t.dtype && got.shape.join() === t.shape.join(), () => `tensor '${t.name}': ${got.dtype} [${got.shape}], wrote ${t.dtype} [${t.shape}]`);
      expectSameBytes(bytesOf(got.data), t.data, `tensor '${t.name}'`);
    }
    // Row slices read exactly the rows' bytes.
    const file = await SafetensorsFile.open(path);
    try {
      const sliceable = tensors.filter((t) => t.shape.length > 0 && (t.shape.slice(1).reduce((a, b) => a * b, 1) * DTYPE_BITS[t.dtype]) % 8 === 0);
      for (const [k, [start, count]] of rows.entries()) {
        if (sliceable.length === 0) break;
        const t = sliceable[k % sliceable.length];
        const rowStart = start % (t.shape[0] + 1);
        const rowCount = count % (t.shape[0] - rowStart + 1);
        const rowBytes = (t.shape.slice(1).reduce((a, b) => a * b, 1) * DTYPE_BITS[t.dtype]) / 8;
        const slice = await file.readRows(t.name, rowStart, rowCount);
        expectSameBytes(bytesOf(slice.data), t.data.subarray(rowStart * rowBytes, (rowStart + rowCount) * rowBytes), `rows [${rowStart}, ${rowStart + rowCount}) of '${t.name}'`);
      }
      const unknown = await readOrReject(path, () => file.read('\u0000no such tensor'));
      expect(!unknown.accepted, () => 'read() of a name the file does not hold succeeded');
    } finally {
      await file.close();
    }
    return 'accepted';
  },
});

interface MutatedCase {
  tensors: TensorCase[];
  metadata: Record<string, string> | undefined;
  headerEdits: HeaderEdit[];
  headerBytesEdit: HeaderBytesEdit | undefined;
  byteEdits: ByteEdit[];
  entry: 'open' | 'load';
}

const mutated = defineProperty({
  name: 'safetensors.mutated',
  reader: 'safetensors',
  title: 'an edited file (header fields, keys, offsets, literals, nesting, bytes, length) is rejected with a VlmqError naming it, or reads back the bytes its header states',
  testRuns: 600,
  weight: 6,
  arbitrary: fc.record({
    tensors: tensorsCase(1, 4, 64),
    metadata: metadataCase,
    headerEdits: fc.array(headerEdit, { maxLength: 3 }),
    headerBytesEdit: fc.option(headerBytesEdit, { nil: undefined, freq: 2 }),
    // Most cases keep the bytes as the header edits left them, so that some are still accepted.
    byteEdits: fc.oneof({ arbitrary: fc.constant([]), weight: 2 }, { arbitrary: fc.array(byteEdit, { minLength: 1, maxLength: 2 }), weight: 1 }),
    entry: fc.constantFrom('open' as const, 'load' as const),
  }),
  async check(c: MutatedCase, dir): Promise<Verdict> {
    const path = join(dir, 'edited.safetensors');
    const model = splitFile(await writeWithWriter(path, c.tensors, c.metadata));
    const members = c.headerEdits.reduce(applyHeaderEdit, model.members);
    let bytes = joinFile(headerBytes(headerText(members), c.headerBytesEdit), model.data);
    bytes = c.byteEdits.reduce(applyByteEdit, bytes);
    await writeFile(path, bytes);

    const outcome = await readOrReject(path, () => SafetensorsFile.open(path));
    const untouched = c.headerEdits.length === 0 && c.byteEdits.length === 0 && (c.headerBytesEdit === undefined || (c.headerBytesEdit.kind === 'pad' && c.headerBytesEdit.with !== 'nul'));
    if (!outcome.accepted) {
      expect(!untouched, () => `rejected a well-formed file: ${outcome.error.message}`);
      return 'rejected';
    }
    const file = outcome.value;
    try {
      // JSON.parse hides duplicate keys; when the header text is exactly the members', count them.
      if (c.headerBytesEdit?.kind !== 'splice' && c.byteEdits.length === 0) {
        expect(new Set(members.map((m) => m.key)).size === members.length, () => `accepted a header with a duplicate key: ${JSON.stringify(members.map((m) => m.key))}`);
      }
      await checkAccepted(path, bytes, file);
    } finally {
      await file.close();
    }
    if (c.entry === 'load') {
      const loaded = await readOrReject(path, () => loadSafetensors(path));
      expect(loaded.accepted, () => `SafetensorsFile.open accepted the file but loadSafetensors did not: ${(loaded as { error: Error }).error.message}`);
    }
    return 'accepted';
  },
});

/** A header built from scratch: any JSON value, an object of arbitrary literals, or plausible entries with arbitrary offsets. */
type HandmadeHeader =
  | { json: fc.JsonValue }
  | { members: Array<[string, Literal]> }
  | { entries: Array<[DType, number[], number, number]> }
  | { tiled: Array<[DType, number[]]> };

function handmadeText(header: HandmadeHeader): string {
  if ('json' in header) return JSON.stringify(header.json) ?? 'null';
  if ('members' in header) return `{${header.members.map(([k, v]) => `${JSON.stringify(k)}:${literalText(v)}`).join(',')}}`;
  if ('tiled' in header) {
    // Offsets in the listed order, not the reference writer's (wide dtypes first): tensors may be unaligned.
    let at = 0;
    return `{${header.tiled.map(([dtype, shape], i) => {
      const size = Math.ceil((shape.reduce((a, b) => a * b, 1) * DTYPE_BITS[dtype]) / 8);
      at += size;
      return `"t${i}":{"dtype":"${dtype}","shape":[${shape}],"data_offsets":[${at - size},${at}]}`;
    }).join(',')}}`;
  }
  return `{${header.entries.map(([dtype, shape, b, e], i) => `"t${i}":{"dtype":"${dtype}","shape":[${shape}],"data_offsets":[${b},${e}]}`).join(',')}}`;
}

/** `data` cut or cycled to the length the header's largest end offset implies (when it has any). */
function fitData(text: string, data: Uint8Array): Uint8Array {
  const ends = [...text.matchAll(/"data_offsets":\[\d+,(\d+)\]/g)].map((m) => Number(m[1]));
  const length = ends.length === 0 ? 0 : Math.max(...ends);
  return Uint8Array.from({ length }, (_, k) => (data.length === 0 ? k : data[k % data.length]));
}

const handmade = defineProperty({
  name: 'safetensors.handmade',
  reader: 'safetensors',
  title: 'a file with an arbitrary JSON header and arbitrary data is rejected with a VlmqError naming it, or reads back the bytes its header states',
  testRuns: 200,
  weight: 2,
  arbitrary: fc.record({
    header: fc.oneof(
      fc.record({ json: fc.jsonValue({ maxDepth: 3 }) }),
      fc.record({ members: fc.array(fc.tuple(fc.string({ maxLength: 6 }), jsonLiteral), { maxLength: 4 }) }),
      fc.record({ entries: fc.array(fc.tuple(fc.constantFrom(...DTYPES), fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }), fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: 16 })), { maxLength: 3 }) }),
      fc.record({ tiled: fc.array(fc.tuple(fc.constantFrom(...DTYPES), fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 })), { maxLength: 4 }) }),
    ),
    // The data buffer: its length decides acceptance, so it is often the length the header implies.
    data: fc.uint8Array({ maxLength: 48 }),
    fit: fc.boolean(),
    headerBytesEdit: fc.option(headerBytesEdit, { nil: undefined }),
  }),
  async check({ header, data, fit, headerBytesEdit: edit }: { header: HandmadeHeader; data: Uint8Array; fit: boolean; headerBytesEdit: HeaderBytesEdit | undefined }, dir): Promise<Verdict> {
    const path = join(dir, 'handmade.safetensors');
    const text = handmadeText(header);
    const bytes = joinFile(headerBytes(text, edit), fit ? fitData(text, data) : data);
    await writeFile(path, bytes);
    const outcome = await readOrReject(path, () => SafetensorsFile.open(path));
    if (!outcome.accepted) return 'rejected';
    try {
      await checkAccepted(path, bytes, outcome.value);
    } finally {
      await outcome.value.close();
    }
    return 'accepted';
  },
});

const special = defineProperty({
  name: 'safetensors.special-files',
  reader: 'safetensors',
  title: 'a FIFO, directory, link loop, dangling link, device or missing path is refused at once with a VlmqError naming it',
  testRuns: 30,
  weight: 0.2,
  arbitrary: fc.record({ kind: specialKind, entry: fc.constantFrom('open' as const, 'load' as const) }),
  async check({ kind, entry }, dir): Promise<Verdict> {
    const path = join(dir, 'special.safetensors');
    await makeSpecial(path, kind);
    const outcome = await readOrReject<unknown>(path, () => (entry === 'open' ? SafetensorsFile.open(path) : loadSafetensors(path)));
    expect(!outcome.accepted, () => `accepted a ${kind}`);
    return 'rejected';
  },
});

export const SAFETENSORS_PROPERTIES: readonly FuzzProperty[] = [roundTrip, mutated, handmade, special] as FuzzProperty[];
