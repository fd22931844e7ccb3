// Fuzz properties of the calibration bundle reader (lib/data/bundle.ts: CalibrationBundle.open,
// tokens, read). Bundles come from writeCalibrationBundle with arbitrary samples and metadata,
// then are edited: the bundle's own metadata, tensor names, dtypes and shapes, modality bytes,
// and every edit the safetensors fuzzer makes.
import fc from 'fast-check';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CalibrationBundle, writeCalibrationBundle, type BundleSample } from '../../lib/data/bundle.js';
import { DTYPES, type DType } from '../../lib/tensor.js';
import { decodeBf16, decodeF16 } from '../helpers/half.js';
import { bytesOf, defineProperty, expect, expectSameBytes, readOrReject, type FuzzProperty, type Verdict } from './harness.js';
import {
  applyByteEdit, applyHeaderEdit, byteEdit, headerBytes, headerEdit, headerText, joinFile, splitFile, statedFile,
  type ByteEdit, type FileModel, type HeaderEdit, type StatedTensor,
} from './safetensors-bytes.js';
import { makeSpecial, specialKind } from './special-files.js';

type EmbeddingDType = 'F32' | 'F16' | 'BF16';

/** One sample's raw contents: embedding bits, positions, modality codes. */
interface SampleCase {
  embeddings: Uint8Array;
  positions: Int32Array;
  modality: Uint8Array;
}

interface BundleCase {
  hidden: number;
  dtype: EmbeddingDType;
  rows: 1 | 3;
  samples: SampleCase[];
  metadata: Record<string, string> | undefined;
}

const RESERVED = new Set(['vlmq_bundle', 'samples', 'hidden', 'position_rows']);

function sampleCase(tokens: number, hidden: number, dtype: EmbeddingDType, rows: 1 | 3): fc.Arbitrary<SampleCase> {
  const embeddingBytes = tokens * hidden * (dtype === 'F32' ? 4 : 2);
  return fc.record({
    embeddings: fc.uint8Array({ minLength: embeddingBytes, maxLength: embeddingBytes }),
    positions: fc.int32Array({ minLength: rows * tokens, maxLength: rows * tokens }),
    modality: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: tokens, maxLength: tokens }).map((m) => Uint8Array.from(m)),
  });
}

/** A valid bundle: 1–4 samples of 1–5 tokens, hidden 1–4, any embedding dtype and position layout, arbitrary bits. */
const bundleCase: fc.Arbitrary<BundleCase> = fc
  .record({
    hidden: fc.integer({ min: 1, max: 4 }),
    dtype: fc.constantFrom('F32' as const, 'F16' as const, 'BF16' as const),
    rows: fc.constantFrom(1 as const, 3 as const),
    tokens: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }),
    metadata: fc.option(fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }).filter((k) => !RESERVED.has(k)), fc.string({ unit: 'binary', maxLength: 12 }), { maxKeys: 3 }), { nil: undefined }),
  })
  .chain(({ hidden, dtype, rows, tokens, metadata }) =>
    fc.tuple(...tokens.map((T) => sampleCase(T, hidden, dtype, rows))).map((samples) => ({ hidden, dtype, rows, samples, metadata })));

function toBundleSample(c: BundleCase, s: SampleCase): BundleSample {
  const tokens = s.modality.length;
  const buffer = s.embeddings.slice().buffer;
  const data = c.dtype === 'F32' ? new Float32Array(buffer) : new Uint16Array(buffer);
  return { embeddings: { dtype: c.dtype, shape: [tokens, c.hidden], data }, positions: s.positions, modality: s.modality };
}

/** F32 values of embedding bytes of `dtype`, decoded by the test's own half-precision code. */
function decodeEmbeddings(dtype: string, bytes: Uint8Array): Float32Array {
  const copy = bytes.slice();
  if (dtype === 'F32') return new Float32Array(copy.buffer);
  const bits = new Uint16Array(copy.buffer);
  return Float32Array.from(bits, dtype === 'BF16' ? decodeBf16 : decodeF16);
}

/** Same F32 bit patterns, except that any NaN equals any NaN (decoding may pick another payload). */
function sameFloats(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((x, k) => Object.is(x, b[k]) || (Number.isNaN(x) && Number.isNaN(b[k])));
}

async function writeBundle(path: string, c: BundleCase): Promise<Uint8Array> {
  await writeCalibrationBundle(path, c.samples.map((s) => toBundleSample(c, s)), c.metadata === undefined ? {} : { metadata: c.metadata });
  return new Uint8Array(await readFile(path));
}

// --- round trip -------------------------------------------------------------------------------------

const roundTrip = defineProperty({
  name: 'bundle.roundtrip',
  reader: 'calibration',
  title: 'a bundle writeCalibrationBundle wrote from arbitrary samples reads back identically (header fields, tokens, every sample)',
  testRuns: 150,
  weight: 1,
  arbitrary: bundleCase,
  async check(c, dir): Promise<Verdict> {
    const path = join(dir, 'bundle.safetensors');
    await writeBundle(path, c);
    const opened = await readOrReject(path, () => CalibrationBundle.open(path));
    expect(opened.accepted, () => `rejected a bundle writeCalibrationBundle wrote: ${(opened as { error: Error }).error.message}`);
    const bundle = opened.value;
    try {
      const tokens = c.samples.map((s) => s.modality.length);
      expect(bundle.samples === c.samples.length && bundle.hidden === c.hidden && bundle.positionRows === c.rows && bundle.embeddingsDType === c.dtype,
        () => `header: ${bundle.samples} samples, hidden ${bundle.hidden}, ${bundle.positionRows} rows, ${bundle.embeddingsDType}; wrote ${c.samples.length}, ${c.hidden}, ${c.rows}, ${c.dtype}`);
      expect(bundle.totalTokens === tokens.reduce((a, b) => a + b, 0) && tokens.every((T, i) => bundle.tokens(i) === T), () => `token counts differ from ${tokens}`);
      for (const [key, value] of Object.entries(c.metadata ?? {})) expect(bundle.metadata[key] === value, () => `metadata "${key}" reads ${JSON.stringify(bundle.metadata[key])}, wrote ${JSON.stringify(value)}`);
      for (const [i, s] of c.samples.entries()) {
        const read = await readOrReject(path, () => bundle.read(i));
        expect(read.accepted, () => `sample ${i} failed to read: ${(read as { error: Error }).error.message}`);
        expect(read.value.tokens === tokens[i], () => `sample ${i}: ${read.value.tokens} tokens, wrote ${tokens[i]}`);
        expect(sameFloats(read.value.embeddings, decodeEmbeddings(c.dtype, s.embeddings)), () => `sample ${i}: embeddings differ`);
        expectSameBytes(bytesOf(read.value.positions), bytesOf(s.positions), `sample ${i} positions`);
        expectSameBytes(read.value.modality, s.modality, `sample ${i} modality`);
      }
      const outside = await readOrReject(path, () => bundle.read(c.samples.length));
      expect(!outside.accepted, () => `read(${c.samples.length}) of a ${c.samples.length}-sample bundle succeeded`);
    } finally {
      await bundle.close();
    }
    return 'accepted';
  },
});

// --- edited bundles -------------------------------------------------------------------------------------

/** An edit that knows the bundle's layout; tensor indices are taken modulo the tensor count. */
type BundleEdit =
  | { kind: 'metadata'; key: string; value: string | null }
  | { kind: 'dtype'; tensor: number; dtype: DType }
  | { kind: 'shape'; tensor: number; shape: number[] }
  | { kind: 'rename'; tensor: number; sample: string; part: string }
  | { kind: 'modality-byte'; tensor: number; at: number; value: number }
  | { kind: 'swap-samples'; a: number; b: number };

const bundleEdit: fc.Arbitrary<BundleEdit> = fc.oneof(
  fc.record({
    kind: fc.constant('metadata' as const),
    key: fc.constantFrom('vlmq_bundle', 'samples', 'hidden', 'position_rows', 'format'),
    value: fc.option(fc.oneof(fc.constantFrom('0', '1', '2', '3', '4', '01', '-1', '1.0', ' 1', '1e3', '9007199254740993', '99999999999', '', 'x'), fc.string({ maxLength: 4 })), { nil: null }),
  }),
  fc.record({ kind: fc.constant('dtype' as const), tensor: fc.nat(), dtype: fc.oneof(fc.constantFrom('F32' as const, 'F16' as const, 'BF16' as const, 'I32' as const, 'U8' as const, 'I8' as const), fc.constantFrom(...DTYPES)) }),
  fc.record({ kind: fc.constant('shape' as const), tensor: fc.nat(), shape: fc.array(fc.integer({ min: 0, max: 12 }), { maxLength: 3 }) }),
  fc.record({ kind: fc.constant('rename' as const), tensor: fc.nat(), sample: fc.constantFrom('0', '1', '2', '4', '01', '9007199254740993', '-1', 'x'), part: fc.constantFrom('embeddings', 'positions', 'modality', 'other') }),
  fc.record({ kind: fc.constant('modality-byte' as const), tensor: fc.nat(), at: fc.nat(), value: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 })) }),
  // Valid edits: samples trading names (their three tensors together), a user metadata key.
  { arbitrary: fc.record({ kind: fc.constant('swap-samples' as const), a: fc.nat(), b: fc.nat() }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('metadata' as const), key: fc.string({ maxLength: 6 }), value: fc.option(fc.string({ maxLength: 6 }), { nil: null }) }), weight: 2 },
);

function applyBundleEdit(model: FileModel, edit: BundleEdit): FileModel {
  const members = model.members.map((m) => ({ ...m, value: typeof m.value === 'string' ? m.value : { fields: m.value.fields.map(([f, l]) => [f, l] as [string, string]) } }));
  const data = model.data.slice();
  const tensors = members.filter((m) => typeof m.value !== 'string' && m.key !== '__metadata__');
  const tensor = (i: number) => (tensors.length === 0 ? undefined : tensors[i % tensors.length]);
  const setField = (member: (typeof members)[number] | undefined, field: string, literal: string) => {
    if (!member || typeof member.value === 'string') return;
    const found = member.value.fields.find(([f]) => f === field);
    if (found) found[1] = literal;
  };
  switch (edit.kind) {
    case 'metadata': {
      const member = members.find((m) => m.key === '__metadata__');
      if (!member || typeof member.value !== 'string') break;
      const metadata = JSON.parse(member.value) as Record<string, string>;
      if (edit.value === null) delete metadata[edit.key];
      else metadata[edit.key] = edit.value;
      member.value = JSON.stringify(metadata);
      break;
    }
    case 'dtype':
      setField(tensor(edit.tensor), 'dtype', JSON.stringify(edit.dtype));
      break;
    case 'shape':
      setField(tensor(edit.tensor), 'shape', JSON.stringify(edit.shape));
      break;
    case 'rename': {
      const member = tensor(edit.tensor);
      if (member) member.key = `samples.${edit.sample}.${edit.part}`;
      break;
    }
    case 'swap-samples': {
      const count = members.filter((m) => m.key.endsWith('.modality')).length;
      if (count === 0) break;
      const [a, b] = [edit.a % count, edit.b % count];
      for (const m of members) {
        const match = /^samples\.(\d+)\.(.*)$/.exec(m.key);
        if (match && Number(match[1]) === a) m.key = `samples.${b}.${match[2]}`;
        else if (match && Number(match[1]) === b) m.key = `samples.${a}.${match[2]}`;
      }
      break;
    }
    case 'modality-byte': {
      const modality = members.filter((m) => m.key.endsWith('.modality') && typeof m.value !== 'string');
      const member = modality.length === 0 ? undefined : modality[edit.tensor % modality.length];
      const offsets = member && typeof member.value !== 'string' ? (JSON.parse(member.value.fields.find(([f]) => f === 'data_offsets')?.[1] ?? 'null') as number[] | null) : null;
      if (offsets && offsets[1] > offsets[0]) data[offsets[0] + (edit.at % (offsets[1] - offsets[0]))] = edit.value;
      break;
    }
  }
  return { members, data };
}

/**
 * For a bundle the reader accepted: the file obeys the safetensors rules (independent oracle), the
 * header says what the bundle reports, and each sample reads back as its stated bytes, decoded
 * (or is refused, naming the file, for a modality value outside {0, 1, 2}).
 */
async function checkAcceptedBundle(path: string, bytes: Uint8Array, bundle: CalibrationBundle): Promise<void> {
  const { file: stated, problem } = statedFile(bytes);
  expect(stated !== null, () => `accepted a file that breaks the safetensors format: ${problem}`);
  expect(stated.metadata?.vlmq_bundle === '1' && stated.metadata.samples === String(bundle.samples), () => `accepted metadata ${JSON.stringify(stated.metadata)} as a ${bundle.samples}-sample bundle`);
  expect(stated.tensors.size === 3 * bundle.samples, () => `accepted ${stated.tensors.size} tensors for ${bundle.samples} samples`);
  const part = (i: number, kind: string): StatedTensor => {
    const t = stated.tensors.get(`samples.${i}.${kind}`);
    expect(t !== undefined, () => `accepted a bundle without samples.${i}.${kind}`);
    return t;
  };
  for (let i = 0; i < bundle.samples; i++) {
    const embeddings = part(i, 'embeddings');
    const positions = part(i, 'positions');
    const modality = part(i, 'modality');
    const tokens = embeddings.shape[0];
    expect(embeddings.shape.length === 2 && embeddings.shape[1] === bundle.hidden && tokens >= 1 && bundle.tokens(i) === tokens, () => `sample ${i}: embeddings [${embeddings.shape}] accepted as ${bundle.tokens(i)} × ${bundle.hidden}`);
    expect(embeddings.dtype === bundle.embeddingsDType, () => `sample ${i}: embeddings ${embeddings.dtype} accepted as ${bundle.embeddingsDType}`);
    expect(positions.dtype === 'I32' && positions.shape.join() === (bundle.positionRows === 3 ? `3,${tokens}` : `${tokens}`), () => `sample ${i}: positions ${positions.dtype} [${positions.shape}] accepted`);
    expect(modality.dtype === 'U8' && modality.shape.join() === `${tokens}`, () => `sample ${i}: modality ${modality.dtype} [${modality.shape}] accepted`);
    const codes = bytes.subarray(modality.begin, modality.end);
    const read = await readOrReject(path, () => bundle.read(i));
    if (!read.accepted) {
      expect(codes.some((v) => v > 2), () => `sample ${i} of an accepted bundle failed to read: ${read.error.message}`);
      continue;
    }
    expect(codes.every((v) => v <= 2), () => `sample ${i}: modality values ${Array.from(codes)} were accepted`);
    expect(sameFloats(read.value.embeddings, decodeEmbeddings(embeddings.dtype, bytes.subarray(embeddings.begin, embeddings.end))), () => `sample ${i}: embeddings differ from the stated bytes`);
    expectSameBytes(bytesOf(read.value.positions), bytes.subarray(positions.begin, positions.end), `sample ${i} positions`);
    expectSameBytes(read.value.modality, codes, `sample ${i} modality`);
  }
}

interface EditedBundleCase {
  bundle: BundleCase;
  bundleEdits: BundleEdit[];
  headerEdits: HeaderEdit[];
  byteEdits: ByteEdit[];
}

const edited = defineProperty({
  name: 'bundle.mutated',
  reader: 'calibration',
  title: 'an edited bundle (its metadata, names, dtypes, shapes, modality bytes, any safetensors edit) is rejected with a VlmqError naming it, or reads back the bytes its header states',
  testRuns: 400,
  weight: 3,
  arbitrary: fc.record({
    bundle: bundleCase,
    bundleEdits: fc.array(bundleEdit, { minLength: 1, maxLength: 3 }),
    // The bundle's own edits first; the generic ones only now and then, or little would be accepted.
    headerEdits: fc.oneof({ arbitrary: fc.constant([]), weight: 3 }, { arbitrary: fc.array(headerEdit, { minLength: 1, maxLength: 1 }), weight: 1 }),
    byteEdits: fc.oneof({ arbitrary: fc.constant([]), weight: 3 }, { arbitrary: fc.array(byteEdit, { minLength: 1, maxLength: 1 }), weight: 1 }),
  }),
  async check(c: EditedBundleCase, dir): Promise<Verdict> {
    const path = join(dir, 'bundle.safetensors');
    let model = splitFile(await writeBundle(path, c.bundle));
    model = c.bundleEdits.reduce(applyBundleEdit, model);
    const members = c.headerEdits.reduce(applyHeaderEdit, model.members);
    const bytes = c.byteEdits.reduce(applyByteEdit, joinFile(headerBytes(headerText(members)), model.data));
    await writeFile(path, bytes);
    const opened = await readOrReject(path, () => CalibrationBundle.open(path));
    if (!opened.accepted) return 'rejected';
    try {
      await checkAcceptedBundle(path, bytes, opened.value);
    } finally {
      await opened.value.close();
    }
    return 'accepted';
  },
});

const special = defineProperty({
  name: 'bundle.special-files',
  reader: 'calibration',
  title: 'a FIFO, directory, link loop, dangling link, device or missing path given as a bundle is refused at once with a VlmqError naming it',
  testRuns: 20,
  weight: 0.1,
  arbitrary: specialKind,
  async check(kind, dir): Promise<Verdict> {
    const path = join(dir, 'bundle.safetensors');
    await makeSpecial(path, kind);
    const outcome = await readOrReject(path, () => CalibrationBundle.open(path));
    expect(!outcome.accepted, () => `accepted a ${kind}`);
    return 'rejected';
  },
});

export const BUNDLE_PROPERTIES: readonly FuzzProperty[] = [roundTrip, edited, special] as FuzzProperty[];
