// Safetensors files as the fuzzers see them (docs/formats.md §1): raw bytes; an editable model of
// the header that keeps every value as raw JSON text, so that edits can write literals
// JSON.stringify never would (1e3, -0, 2.0, 2^64, duplicate keys, deep nesting); the edits
// themselves as small printable descriptors; and an independent reading of what a header states,
// the oracle for files the reader accepts. Shared by the safetensors and the bundle fuzzers.
import fc from 'fast-check';
import { DTYPES } from '../../lib/tensor.js';

// --- the header model ---------------------------------------------------------------------------

/** A tensor entry: its fields in order, each value raw JSON text. */
export interface EntryText {
  fields: Array<[field: string, literal: string]>;
}

/** One top-level member of the header; a value is an entry or raw JSON text (e.g. __metadata__). */
export interface Member {
  key: string;
  value: EntryText | string;
}

/** A file split into its header members and its data buffer (everything after the header). */
export interface FileModel {
  members: Member[];
  data: Uint8Array;
}

/** Splits a well-formed file (one written by writeSafetensors) into its model. */
export function splitFile(bytes: Uint8Array): FileModel {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerSize = Number(view.getBigUint64(0, true));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerSize)).toString('utf8')) as Record<string, unknown>;
  const members: Member[] = Object.entries(header).map(([key, value]) => {
    if (key === '__metadata__') return { key, value: JSON.stringify(value) };
    return { key, value: { fields: Object.entries(value as object).map(([field, v]) => [field, JSON.stringify(v)]) } };
  });
  return { members, data: bytes.slice(8 + headerSize) };
}

/** Header JSON text of a model: members in order, entries' fields in order. */
export function headerText(members: readonly Member[]): string {
  const value = (v: Member['value']) => (typeof v === 'string' ? v : `{${v.fields.map(([f, l]) => `${JSON.stringify(f)}:${l}`).join(',')}}`);
  return `{${members.map((m) => `${JSON.stringify(m.key)}:${value(m.value)}`).join(',')}}`;
}

/** Length prefix + header bytes + data: the inverse of splitFile. */
export function joinFile(header: Uint8Array, data: Uint8Array, declaredLength = BigInt(header.length)): Uint8Array {
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declaredLength, true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

// --- literals an edit may write -------------------------------------------------------------------

/** Numbers a usize parser refuses or a careless one misreads: fractions, exponents, -0, 2^53 + 1, 2^64, overflow to Infinity. */
const numberLiteral = fc.constantFrom(
  '0', '1', '2', '3', '7', '8', '-1', '-0', '1.0', '2.0', '0.5', '1e0', '1e3', '1E+2', '1e-3',
  '2147483648', '4294967296', '9007199254740991', '9007199254740992', '9007199254740993',
  '18446744073709551615', '18446744073709551616', '1e308', '1e400', '-1e400', '100000000',
);

/**
 * Raw JSON text an edit writes, or `[[[…0…]]]` / `{"a":{"a":…}}` nested `depth` times — what
 * recursive code overflows the stack on — kept as a descriptor so that a failure prints it short.
 */
export type Literal = string | { nested: 'array' | 'object'; depth: number };

export function literalText(literal: Literal): string {
  if (typeof literal === 'string') return literal;
  const { nested, depth } = literal;
  return nested === 'array' ? `${'['.repeat(depth)}0${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}0${'}'.repeat(depth)}`;
}

const deepLiteral: fc.Arbitrary<Literal> = fc.record({
  nested: fc.constantFrom('array' as const, 'object' as const),
  depth: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1_000, max: 200_000 }), fc.constant(100_000)),
});

/** Any raw JSON value an edit may put where the reader expects a dtype, a shape, offsets or metadata. */
export const jsonLiteral: fc.Arbitrary<Literal> = fc.oneof(
  { arbitrary: numberLiteral, weight: 3 },
  { arbitrary: fc.array(numberLiteral, { maxLength: 4 }).map((xs) => `[${xs.join(',')}]`), weight: 4 },
  { arbitrary: fc.constantFrom(...DTYPES, 'f32', 'F128', 'E8M0', '').map((d) => JSON.stringify(d)), weight: 2 },
  { arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? 'null'), weight: 3 },
  { arbitrary: deepLiteral, weight: 2 },
);

// --- edits of the header model --------------------------------------------------------------------

/** A structural edit; `member`/`field` indices are taken modulo the current counts. */
export type HeaderEdit =
  | { kind: 'set-field'; member: number; field: string; literal: Literal }
  | { kind: 'drop-field'; member: number; field: number }
  | { kind: 'set-value'; member: number; literal: Literal }
  | { kind: 'rename'; member: number; key: string }
  | { kind: 'duplicate'; member: number }
  | { kind: 'drop'; member: number }
  | { kind: 'swap-offsets'; a: number; b: number }
  | { kind: 'shift-offsets'; member: number; begin: number; end: number }
  | { kind: 'add-tensor'; key: string; literal: Literal }
  | { kind: 'metadata'; literal: Literal }
  | { kind: 'reorder'; seed: number }
  | { kind: 'retype'; member: number; dtype: string };

/** Tensor names an edit may introduce: plausible, odd, reserved. */
export const keyName = fc.oneof(
  fc.constantFrom('w', 'a', '__metadata__', '__proto__', 'constructor', '0', '1', '', ' ', '"', '\\', '\u0000', '\u{1F600}', 'samples.0.embeddings', 'samples.1.positions', 'samples.0.modality', 'samples.01.embeddings', 'samples.9007199254740993.modality'),
  fc.string({ unit: 'binary', maxLength: 8 }),
);

export const headerEdit: fc.Arbitrary<HeaderEdit> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('set-field' as const), member: fc.nat(), field: fc.constantFrom('dtype', 'shape', 'data_offsets', 'stride'), literal: jsonLiteral }), weight: 5 },
  fc.record({ kind: fc.constant('drop-field' as const), member: fc.nat(), field: fc.nat() }),
  fc.record({ kind: fc.constant('set-value' as const), member: fc.nat(), literal: jsonLiteral }),
  fc.record({ kind: fc.constant('rename' as const), member: fc.nat(), key: keyName }),
  fc.record({ kind: fc.constant('duplicate' as const), member: fc.nat() }),
  fc.record({ kind: fc.constant('drop' as const), member: fc.nat() }),
  fc.record({ kind: fc.constant('swap-offsets' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant('shift-offsets' as const), member: fc.nat(), begin: fc.integer({ min: -9, max: 9 }), end: fc.integer({ min: -9, max: 9 }) }),
  fc.record({ kind: fc.constant('add-tensor' as const), key: keyName, literal: jsonLiteral }),
  fc.record({ kind: fc.constant('metadata' as const), literal: jsonLiteral }),
  // Edits that keep a file valid, so that the accepted-file oracle gets work: a new member order,
  // another dtype (of the same width, where the size still matches), tensors trading places.
  { arbitrary: fc.record({ kind: fc.constant('reorder' as const), seed: fc.nat() }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('retype' as const), member: fc.nat(), dtype: fc.constantFrom(...DTYPES) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('swap-offsets' as const), a: fc.nat(), b: fc.nat() }), weight: 2 },
);

/** Applies `edit` to a copy of `members`. */
export function applyHeaderEdit(members: readonly Member[], edit: HeaderEdit): Member[] {
  const out = members.map((m) => ({ key: m.key, value: typeof m.value === 'string' ? m.value : { fields: m.value.fields.map(([f, l]) => [f, l] as [string, string]) } }));
  const pick = (i: number) => (out.length === 0 ? undefined : out[i % out.length]);
  const entries = out.filter((m): m is Member & { value: EntryText } => typeof m.value !== 'string');
  const pickEntry = (i: number) => (entries.length === 0 ? undefined : entries[i % entries.length]);
  switch (edit.kind) {
    case 'set-field': {
      const entry = pickEntry(edit.member);
      if (!entry) break;
      const field = entry.value.fields.find(([f]) => f === edit.field);
      if (field) field[1] = literalText(edit.literal);
      else entry.value.fields.push([edit.field, literalText(edit.literal)]);
      break;
    }
    case 'drop-field': {
      const entry = pickEntry(edit.member);
      if (entry && entry.value.fields.length > 0) entry.value.fields.splice(edit.field % entry.value.fields.length, 1);
      break;
    }
    case 'set-value': {
      const member = pick(edit.member);
      if (member) member.value = literalText(edit.literal);
      break;
    }
    case 'rename': {
      const member = pick(edit.member);
      if (member) member.key = edit.key;
      break;
    }
    case 'duplicate': {
      const member = pick(edit.member);
      if (member) out.push({ key: member.key, value: member.value });
      break;
    }
    case 'drop':
      if (out.length > 0) out.splice(edit.member % out.length, 1);
      break;
    case 'swap-offsets': {
      const a = pickEntry(edit.a);
      const b = pickEntry(edit.b);
      const fa = a?.value.fields.find(([f]) => f === 'data_offsets');
      const fb = b?.value.fields.find(([f]) => f === 'data_offsets');
      if (fa && fb) [fa[1], fb[1]] = [fb[1], fa[1]];
      break;
    }
    case 'shift-offsets': {
      const field = pickEntry(edit.member)?.value.fields.find(([f]) => f === 'data_offsets');
      const offsets = field ? (JSON.parse(field[1]) as unknown) : null;
      if (field && Array.isArray(offsets) && offsets.length === 2) field[1] = JSON.stringify([offsets[0] + edit.begin, offsets[1] + edit.end]);
      break;
    }
    case 'add-tensor':
      out.push({ key: edit.key, value: literalText(edit.literal) });
      break;
    case 'metadata': {
      const member = out.find((m) => m.key === '__metadata__');
      if (member) member.value = literalText(edit.literal);
      else out.unshift({ key: '__metadata__', value: literalText(edit.literal) });
      break;
    }
    case 'reorder': {
      // a seeded Fisher–Yates shuffle: the order of members never matters to the format
      let state = edit.seed;
      for (let i = out.length - 1; i > 0; i--) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        const j = state % (i + 1);
        [out[i], out[j]] = [out[j], out[i]];
      }
      break;
    }
    case 'retype': {
      const field = pickEntry(edit.member)?.value.fields.find(([f]) => f === 'dtype');
      if (field) field[1] = JSON.stringify(edit.dtype);
      break;
    }
  }
  return out;
}

// --- edits of the bytes -----------------------------------------------------------------------------

/**
 * How the header text becomes bytes: the writer's space padding to a multiple of 8, other JSON
 * whitespace, NULs (not JSON whitespace), a byte-order mark, or bytes that are not UTF-8 spliced in.
 */
export type HeaderBytesEdit =
  | { kind: 'pad'; with: 'spaces' | 'none' | 'tabs-newlines' | 'nul' }
  | { kind: 'bom' }
  | { kind: 'splice'; at: number; bytes: number[] };

export const headerBytesEdit: fc.Arbitrary<HeaderBytesEdit> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('pad' as const), with: fc.constantFrom('spaces' as const, 'none' as const, 'tabs-newlines' as const, 'nul' as const) }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('bom' as const) }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant('splice' as const),
      at: fc.nat(),
      // lone continuation bytes, overlong encodings, surrogates encoded in UTF-8, 0xff, a quote, a backslash
      bytes: fc.array(fc.oneof(fc.constantFrom(0x80, 0xbf, 0xc0, 0xc1, 0xe0, 0xed, 0xa0, 0xf4, 0x90, 0xf5, 0xff, 0x22, 0x5c, 0x00), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    }),
    weight: 2,
  },
);

/** Header bytes from its text under `edit` (none: the writer's padding). */
export function headerBytes(text: string, edit?: HeaderBytesEdit): Uint8Array {
  const json = Buffer.from(text, 'utf8');
  const padTo8 = (fill: number[]) => {
    const pad = (8 - (json.length % 8)) % 8;
    return Buffer.concat([json, Buffer.from(Array.from({ length: pad }, (_, i) => fill[i % fill.length]))]);
  };
  if (edit === undefined) return padTo8([0x20]);
  switch (edit.kind) {
    case 'pad':
      return edit.with === 'none' ? json : padTo8(edit.with === 'spaces' ? [0x20] : edit.with === 'nul' ? [0x00] : [0x09, 0x0a, 0x0d]);
    case 'bom':
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), padTo8([0x20])]);
    case 'splice': {
      const at = edit.at % (json.length + 1);
      return Buffer.concat([json.subarray(0, at), Buffer.from(edit.bytes), json.subarray(at)]);
    }
  }
}

/** An edit of the whole file that ignores its structure: positions are taken modulo the length. */
export type ByteEdit =
  | { kind: 'flip'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: number[] }
  | { kind: 'length-prefix'; value: bigint };

export const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 16 }) }),
  fc.record({
    kind: fc.constant('length-prefix' as const),
    value: fc.oneof(fc.bigInt({ min: 0n, max: 256n }), fc.constantFrom(100_000_000n, 100_000_001n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n)),
  }),
);

export function applyByteEdit(bytes: Uint8Array, edit: ByteEdit): Uint8Array {
  switch (edit.kind) {
    case 'flip': {
      if (bytes.length === 0) return bytes;
      const out = bytes.slice();
      out[edit.at % out.length] = edit.value;
      return out;
    }
    case 'truncate':
      return bytes.slice(0, edit.at % (bytes.length + 1));
    case 'append':
      return Buffer.concat([bytes, Buffer.from(edit.bytes)]);
    case 'length-prefix': {
      if (bytes.length < 8) return bytes;
      const out = bytes.slice();
      new DataView(out.buffer).setBigUint64(0, edit.value, true);
      return out;
    }
  }
}

// --- the oracle: what an accepted file's header states ------------------------------------------------

/** A tensor as the header states it, offsets absolute in the file. */
export interface StatedTensor {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface StatedFile {
  headerSize: number;
  metadata: Record<string, string> | null;
  tensors: Map<string, StatedTensor>;
}

/** Bits per element, written out from docs/formats.md §1.3 (not taken from lib/tensor.ts). */
const BITS: Record<string, number> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
};

/**
 * Reads what a header states, independently of lib/io/safetensors-reader.ts, and returns the first rule
 * of §1.4 the file breaks, if any. For a file the reader accepted, `problem` must be null and the
 * tensors' bytes must be `bytes[begin, end)`.
 */
export function statedFile(bytes: Uint8Array): { file: StatedFile | null; problem: string | null } {
  if (bytes.length < 8) return { file: null, problem: 'shorter than the 8-byte length prefix' };
  const headerSize = new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true);
  if (headerSize > 100_000_000n || 8n + headerSize > BigInt(bytes.length)) return { file: null, problem: `header length ${headerSize} out of range` };
  const n = Number(headerSize);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    return { file: null, problem: 'header is not UTF-8' };
  }
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch {
    return { file: null, problem: 'header is not JSON' };
  }
  if (root === null || typeof root !== 'object' || Array.isArray(root)) return { file: null, problem: 'header is not an object' };
  let metadata: Record<string, string> | null = null;
  const tensors = new Map<string, StatedTensor>();
  for (const [name, value] of Object.entries(root)) {
    if (name === '__metadata__') {
      if (value === null) continue;
      if (typeof value !== 'object' || Array.isArray(value) || !Object.values(value).every((v) => typeof v === 'string')) return { file: null, problem: '__metadata__ is not an object of strings' };
      metadata = value as Record<string, string>;
      continue;
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return { file: null, problem: `'${name}' is not an object` };
    const { dtype, shape, data_offsets: offsets } = entry;
    const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
    // (no String(dtype): a deeply nested array would overflow the stack in its toString)
    if (typeof dtype !== 'string' || !Object.hasOwn(BITS, dtype)) return { file: null, problem: `'${name}' has dtype ${typeof dtype === 'string' ? JSON.stringify(dtype) : `of type ${typeof dtype}`}` };
    if (!Array.isArray(shape) || !shape.every(isCount)) return { file: null, problem: `'${name}' has a bad shape` };
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) return { file: null, problem: `'${name}' has bad data_offsets` };
    tensors.set(name, { name, dtype, shape, begin: 8 + n + offsets[0], end: 8 + n + offsets[1] });
  }
  // Tiling (rules 5 and 6): sorted by offset, each tensor starts where the previous ends, sizes match, the last ends the file.
  let at = 8 + n;
  for (const t of [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end)) {
    const bits = t.shape.reduce((a, b) => a * b, 1) * BITS[t.dtype];
    if (t.begin !== at) return { file: null, problem: `'${t.name}' begins at ${t.begin}, not ${at}` };
    if (!Number.isSafeInteger(bits) || bits % 8 !== 0 || t.end - t.begin !== bits / 8) return { file: null, problem: `'${t.name}' spans ${t.end - t.begin} bytes for ${t.dtype} [${t.shape}]` };
    at = t.end;
  }
  if (at !== bytes.length) return { file: null, problem: `data ends at ${at} in a ${bytes.length}-byte file` };
  return { file: { headerSize: n, metadata, tensors }, problem: null };
}
