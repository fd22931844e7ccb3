// The calibration bundle: round trips (F32/F16/BF16 embeddings, 1-D and M-RoPE positions, varying
// T), lazy per-sample reads, every validation error of the writer and of open(), the fingerprint,
// and the planned writer that computes samples one at a time.
import t from 'tap';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { CalibrationBundle, writeCalibrationBundle, writePlannedCalibrationBundle, type BundleSample } from '../../lib/data/bundle.js';
import { mropePositions, sequentialPositions } from '../../lib/data/positions.js';
import { SafetensorsFile } from '../../lib/io/safetensors-reader.js';
import { writeSafetensors, type WritableTensor } from '../../lib/io/safetensors-writer.js';
import { f32ToBf16, f32ToF16, type DType, type Tensor } from '../../lib/tensor.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A small deterministic generator so the test data is reproducible. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296 - 0.5;
  };
}

/** A sample of T tokens: a text run, a 1×k image in the middle when T ≥ 3, text again. */
function makeSample(T: number, H: number, dtype: 'F32' | 'F16' | 'BF16', rows: 1 | 3, seed: number): BundleSample {
  const rand = lcg(seed);
  const values = Array.from({ length: T * H }, () => 4 * rand());
  let data: Float32Array | Uint16Array;
  if (dtype === 'F32') data = Float32Array.from(values);
  else data = Uint16Array.from(values, dtype === 'BF16' ? f32ToBf16 : f32ToF16);
  const image = T >= 3 ? T - 2 : 0;
  const modality = new Uint8Array(T);
  modality.fill(1, 1, 1 + image);
  const positions = rows === 1
    ? sequentialPositions(T)
    : mropePositions(image > 0
      ? [{ kind: 'text', length: 1 }, { kind: 'image', gridH: 1, gridW: image }, { kind: 'text', length: 1 }]
      : [{ kind: 'text', length: T }]).positions;
  return { embeddings: { dtype, shape: [T, H], data }, positions, modality };
}

/** My own decoding of half-precision bits, independent of lib/tensor.ts. */
function decodeBf16(bits: Uint16Array): Float32Array {
  return new Float32Array(Uint32Array.from(bits, (b) => b << 16).buffer);
}
function decodeF16(bits: Uint16Array): Float32Array {
  return Float32Array.from(bits, (b) => {
    const sign = b & 0x8000 ? -1 : 1;
    const e = (b >> 10) & 0x1f;
    const m = b & 0x3ff;
    return e === 0 ? sign * m * 2 ** -24 : sign * (1 + m / 1024) * 2 ** (e - 15);
  });
}
function expectedF32(embeddings: Tensor): Float32Array {
  if (embeddings.dtype === 'BF16') return decodeBf16(embeddings.data as Uint16Array);
  if (embeddings.dtype === 'F16') return decodeF16(embeddings.data as Uint16Array);
  return embeddings.data as Float32Array;
}

const CASES = [
  { dtype: 'F32', rows: 1 },
  { dtype: 'F32', rows: 3 },
  { dtype: 'BF16', rows: 1 },
  { dtype: 'BF16', rows: 3 },
  { dtype: 'F16', rows: 3 },
] as const;

for (const { dtype, rows } of CASES) {
  t.test(`round trip: ${dtype} embeddings, ${rows === 3 ? 'M-RoPE' : '1-D'} positions, T = 1, 5, 9, 2`, async (t) => {
    const path = join(t.testdir(), 'bundle.safetensors');
    const H = 8;
    const samples = [1, 5, 9, 2].map((T, i) => makeSample(T, H, dtype, rows, 100 + i));
    const summary = await writeCalibrationBundle(path, samples, { metadata: { source: 'unit test', architecture: 'qwen2_vl' } });
    t.same(summary, { samples: 4, hidden: H, positionRows: rows, embeddingsDType: dtype, totalTokens: 17 });
    t.same(await readdir(t.testdirName), ['bundle.safetensors'], 'no temporary file left');

    await using bundle = await CalibrationBundle.open(path);
    t.equal(bundle.path, path);
    t.equal(bundle.samples, 4);
    t.equal(bundle.hidden, H);
    t.equal(bundle.positionRows, rows);
    t.equal(bundle.embeddingsDType, dtype);
    t.equal(bundle.totalTokens, 17);
    t.same([0, 1, 2, 3].map((i) => bundle.tokens(i)), [1, 5, 9, 2]);
    t.match(bundle.metadata, { vlmq_bundle: '1', samples: '4', hidden: '8', position_rows: String(rows), source: 'unit test', architecture: 'qwen2_vl' });
    for (let i = 0; i < samples.length; i++) {
      const read = await bundle.read(i);
      t.equal(read.tokens, samples[i].modality.length);
      t.ok(read.embeddings instanceof Float32Array);
      t.same(read.embeddings, expectedF32(samples[i].embeddings), `sample ${i} embeddings`);
      t.same(read.positions, samples[i].positions, `sample ${i} positions`);
      t.same(read.modality, samples[i].modality, `sample ${i} modality`);
    }
  });
}

t.test('writer accepts an async iterable (a generator producing samples one by one)', async (t) => {
  const path = join(t.testdir(), 'bundle.safetensors');
  async function* produce() {
    for (let i = 0; i < 3; i++) yield makeSample(4 + i, 6, 'F32', 3, i);
  }
  await writeCalibrationBundle(path, produce());
  await using bundle = await CalibrationBundle.open(path);
  t.equal(bundle.samples, 3);
  t.same((await bundle.read(2)).embeddings, makeSample(6, 6, 'F32', 3, 2).embeddings.data);
});

t.test('writer accepts embeddings that are views into a larger buffer', async (t) => {
  const path = join(t.testdir(), 'bundle.safetensors');
  const big = new Float32Array(100).map((_, k) => k);
  const sample: BundleSample = { embeddings: { dtype: 'F32', shape: [3, 4], data: big.subarray(10, 22) }, positions: sequentialPositions(3), modality: new Uint8Array(3) };
  await writeCalibrationBundle(path, [sample]);
  await using bundle = await CalibrationBundle.open(path);
  t.same(Array.from((await bundle.read(0)).embeddings), Array.from({ length: 12 }, (_, k) => 10 + k));
});

t.test('read(i) reads only sample i: a corrupted other sample does not matter', async (t) => {
  const path = join(t.testdir(), 'bundle.safetensors');
  const samples = [5, 6, 7].map((T, i) => makeSample(T, 4, 'F32', 3, i));
  await writeCalibrationBundle(path, samples);
  // Corrupt sample 1: modality values 7 and NaN embeddings.
  const file = await SafetensorsFile.open(path);
  const modality = file.info('samples.1.modality');
  const embeddings = file.info('samples.1.embeddings');
  await file.close();
  const handle = await open(path, 'r+');
  await handle.write(new Uint8Array(modality.byteLength).fill(7), 0, modality.byteLength, modality.begin);
  await handle.write(new Uint8Array(embeddings.byteLength).fill(0xff), 0, embeddings.byteLength, embeddings.begin);
  await handle.close();

  await using bundle = await CalibrationBundle.open(path);
  const requested: string[] = [];
  const originalRead = SafetensorsFile.prototype.read;
  SafetensorsFile.prototype.read = function (this: SafetensorsFile, name: string) {
    requested.push(name);
    return originalRead.call(this, name);
  };
  t.teardown(() => {
    SafetensorsFile.prototype.read = originalRead;
  });
  const first = await bundle.read(0);
  t.same(first.embeddings, samples[0].embeddings.data);
  t.same(first.modality, samples[0].modality);
  t.same(requested.sort(), ['samples.0.embeddings', 'samples.0.modality', 'samples.0.positions'], 'only sample 0 was read');
  t.same((await bundle.read(2)).positions, samples[2].positions);
  await t.rejects(bundle.read(1), { message: new RegExp(`^${escape(path)}: sample 1: tensor 'samples.1.modality' holds value 7 at token 0`) });
});

t.test('sample index checks and reading after close', async (t) => {
  const path = join(t.testdir(), 'bundle.safetensors');
  await writeCalibrationBundle(path, [makeSample(2, 3, 'F32', 1, 0)]);
  const bundle = await CalibrationBundle.open(path);
  t.throws(() => bundle.tokens(1), { message: /for sample index but received 1/ });
  t.throws(() => bundle.tokens(-1), { message: /for sample index/ });
  await t.rejects(bundle.read(0.5), { message: /for sample index but received 0\.5/ });
  await bundle.close();
  await t.rejects(bundle.read(0), { message: /closed/ });
});

// --- writer validation ----------------------------------------------------------------------

t.test('writer validation: each error names the sample and the field, and no file is created', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'bundle.safetensors');
  const good = () => makeSample(4, 6, 'F32', 3, 1);
  const withChange = (i: number, change: (s: BundleSample) => BundleSample) => [good(), good(), good()].map((s, k) => (k === i ? change(s) : s));
  const cases: [string, BundleSample[], RegExp][] = [
    ['T = 0', withChange(1, (s) => ({ ...s, embeddings: { dtype: 'F32', shape: [0, 6], data: new Float32Array(0) }, positions: new Int32Array(0), modality: new Uint8Array(0) })),
      /shape of embeddings of sample 1 but received \[0, 6\]/],
    ['inconsistent H', withChange(2, (s) => ({ ...s, embeddings: { dtype: 'F32', shape: [4, 5], data: new Float32Array(20) } })),
      /Expected \[T, 6\] \(sample 0 has hidden size 6\) for shape of embeddings of sample 2 but received \[4, 5\]/],
    ['wrong positions length', withChange(1, (s) => ({ ...s, positions: new Int32Array(5) })),
      /for positions of sample 1 but received Int32Array of length 5/],
    ['1-D positions after M-RoPE ones', withChange(1, (s) => ({ ...s, positions: new Int32Array(4) })),
      /Expected 3·T = 12 values \(M-RoPE, like sample 0\) for positions of sample 1/],
    ['modality value 3', withChange(2, (s) => ({ ...s, modality: Uint8Array.of(0, 1, 3, 0) })),
      /for modality of sample 2 at token 2 but received 3/],
    ['modality length', withChange(0, (s) => ({ ...s, modality: new Uint8Array(3) })),
      /for modality of sample 0 but received Uint8Array of length 3/],
    ['modality not a Uint8Array', withChange(0, (s) => ({ ...s, modality: [0, 0, 0, 0] as unknown as Uint8Array })),
      /for modality of sample 0/],
    ['positions not Int32Array', withChange(1, (s) => ({ ...s, positions: new Float32Array(12) as unknown as Int32Array })),
      /Expected an Int32Array for positions of sample 1/],
    ['embedding data length', withChange(1, (s) => ({ ...s, embeddings: { dtype: 'F32', shape: [4, 6], data: new Float32Array(23) } })),
      /for data of embeddings of sample 1 but received Float32Array of length 23/],
    ['BF16 data as Float32Array', withChange(0, (s) => ({ ...s, embeddings: { dtype: 'BF16', shape: [4, 6], data: new Float32Array(24) } })),
      /Expected a Uint16Array .* for data of embeddings of sample 0/],
    ['unsupported dtype', withChange(0, (s) => ({ ...s, embeddings: { dtype: 'F64' as DType, shape: [4, 6], data: new Float64Array(24) } })),
      /Expected one of F32, F16, BF16 for dtype of embeddings of sample 0 but received "F64"/],
    ['mixed dtypes', withChange(1, (s) => ({ ...s, embeddings: { dtype: 'BF16', shape: [4, 6], data: new Uint16Array(24) } })),
      /for dtype of embeddings of sample 1 but received "BF16"/],
    ['1-D shape', withChange(1, (s) => ({ ...s, embeddings: { dtype: 'F32', shape: [24], data: new Float32Array(24) } })),
      /shape of embeddings of sample 1 but received \[24\]/],
    ['not an object', withChange(1, () => null as unknown as BundleSample), /for sample 1 but received null/],
  ];
  for (const [label, samples, message] of cases) {
    await t.rejects(writeCalibrationBundle(path, samples), { code: 'ERR_VLMQ_INVALID_ARG', message }, label);
  }
  await t.rejects(writeCalibrationBundle(path, []), { message: /Expected at least one sample for samples/ });
  await t.rejects(writeCalibrationBundle(path, [good()], { metadata: { hidden: '6' } }), { message: /metadata\["hidden"\]/ });
  await t.rejects(writeCalibrationBundle(path, [good()], { metadata: { note: 5 as unknown as string } }), { message: /Expected a string for metadata\["note"\]/ });
  await t.rejects(writeCalibrationBundle(path, 5 as unknown as BundleSample[]), { message: /for samples/ });
  await t.rejects(writeCalibrationBundle('', [good()]), { message: /for path/ });
  t.same(await readdir(dir), [], 'nothing was written');
});

// --- open() validation ----------------------------------------------------------------------

/** The tensors and metadata a correct bundle of `tokens` samples would have, for tampering. */
function rawBundle(tokens: number[], H = 4, rows: 1 | 3 = 3): { tensors: WritableTensor[]; metadata: Record<string, string> } {
  const tensors: WritableTensor[] = [];
  tokens.forEach((T, i) => {
    const sample = makeSample(T, H, 'F32', rows, i);
    tensors.push({ name: `samples.${i}.embeddings`, dtype: 'F32', shape: [T, H], data: sample.embeddings.data });
    tensors.push({ name: `samples.${i}.positions`, dtype: 'I32', shape: rows === 3 ? [3, T] : [T], data: sample.positions });
    tensors.push({ name: `samples.${i}.modality`, dtype: 'U8', shape: [T], data: sample.modality });
  });
  return { tensors, metadata: { vlmq_bundle: '1', samples: String(tokens.length), hidden: String(H), position_rows: String(rows) } };
}

const replace = (tensors: WritableTensor[], name: string, tensor: WritableTensor | null) =>
  tensors.flatMap((x) => (x.name === name ? (tensor === null ? [] : [tensor]) : [x]));

t.test('open() rejects malformed bundles; each error names the file and the sample or tensor', async (t) => {
  const dir = t.testdir();
  let n = 0;
  const check = async (label: string, build: { tensors: WritableTensor[]; metadata: Record<string, string> | undefined }, message: RegExp) => {
    const path = join(dir, `bad-${n++}.safetensors`);
    await writeSafetensors(path, build.tensors, build.metadata === undefined ? {} : { metadata: build.metadata });
    await t.rejects(CalibrationBundle.open(path), { code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`^${escape(path)}: ${message.source}`) }, label);
  };
  const base = () => rawBundle([3, 5, 4]);

  {
    const { tensors, metadata } = base();
    await check('missing tensor', { tensors: replace(tensors, 'samples.1.positions', null), metadata },
      /sample 1: missing tensor 'samples\.1\.positions' \(__metadata__ declares 3 samples, numbered 0\.\.2 without gaps\)/);
  }
  {
    const { tensors, metadata } = base();
    await check('inconsistent H', { tensors: replace(tensors, 'samples.2.embeddings', { name: 'samples.2.embeddings', dtype: 'F32', shape: [4, 5], data: new Float32Array(20) }), metadata },
      /sample 2: tensor 'samples\.2\.embeddings' has shape \[4, 5\] but __metadata__ hidden is 4/);
  }
  {
    const { tensors, metadata } = base();
    await check('wrong positions length', { tensors: replace(tensors, 'samples.1.positions', { name: 'samples.1.positions', dtype: 'I32', shape: [3, 6], data: new Int32Array(18) }), metadata },
      /sample 1: tensor 'samples\.1\.positions' has shape \[3, 6\]; expected \[3, 5\]/);
  }
  {
    const { tensors, metadata } = base();
    await check('1-D positions in an M-RoPE bundle', { tensors: replace(tensors, 'samples.0.positions', { name: 'samples.0.positions', dtype: 'I32', shape: [3], data: new Int32Array(3) }), metadata },
      /sample 0: tensor 'samples\.0\.positions' has shape \[3\]; expected \[3, 3\]/);
  }
  {
    const { tensors, metadata } = base();
    await check('positions dtype', { tensors: replace(tensors, 'samples.0.positions', { name: 'samples.0.positions', dtype: 'I64', shape: [3, 3], data: new BigInt64Array(9) }), metadata },
      /sample 0: tensor 'samples\.0\.positions' has dtype I64; positions must be I32/);
  }
  {
    const { tensors, metadata } = base();
    await check('modality length', { tensors: replace(tensors, 'samples.2.modality', { name: 'samples.2.modality', dtype: 'U8', shape: [5], data: new Uint8Array(5) }), metadata },
      /sample 2: tensor 'samples\.2\.modality' has shape \[5\]; expected \[4\]/);
  }
  {
    const { tensors, metadata } = base();
    await check('modality dtype', { tensors: replace(tensors, 'samples.2.modality', { name: 'samples.2.modality', dtype: 'I8', shape: [4], data: new Int8Array(4) }), metadata },
      /sample 2: tensor 'samples\.2\.modality' has dtype I8; modality must be U8/);
  }
  {
    const { tensors, metadata } = base();
    await check('mixed embedding dtypes', { tensors: replace(tensors, 'samples.1.embeddings', { name: 'samples.1.embeddings', dtype: 'BF16', shape: [5, 4], data: new Uint16Array(20) }), metadata },
      /sample 1: tensor 'samples\.1\.embeddings' has dtype BF16 but sample 0's embeddings are F32/);
  }
  {
    const { tensors, metadata } = base();
    await check('embeddings dtype', { tensors: replace(tensors, 'samples.0.embeddings', { name: 'samples.0.embeddings', dtype: 'F64', shape: [3, 4], data: new Float64Array(12) }), metadata },
      /sample 0: tensor 'samples\.0\.embeddings' has dtype F64; embeddings must be F32, F16, BF16/);
  }
  {
    const { tensors, metadata } = base();
    await check('T = 0', {
      tensors: replace(replace(replace(tensors, 'samples.1.embeddings', { name: 'samples.1.embeddings', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }),
        'samples.1.positions', { name: 'samples.1.positions', dtype: 'I32', shape: [3, 0], data: new Int32Array(0) }),
      'samples.1.modality', { name: 'samples.1.modality', dtype: 'U8', shape: [0], data: new Uint8Array(0) }),
      metadata,
    }, /sample 1: tensor 'samples\.1\.embeddings' has shape \[0, 4\]; a sample needs at least one token/);
  }
  {
    // Gap in the indices: samples 0 and 2, declared as 3 or as 2.
    const { tensors } = base();
    const gap = tensors.filter((x) => !x.name.startsWith('samples.1.'));
    await check('gap (declared 3)', { tensors: gap, metadata: { ...base().metadata, samples: '3' } }, /sample 1: missing tensor 'samples\.1\.embeddings'/);
    await check('gap (declared 2)', { tensors: gap, metadata: { ...base().metadata, samples: '2' } },
      /tensor 'samples\.2\.\w+' belongs to sample 2, but __metadata__ declares 2 samples \(indices 0\.\.1\)/);
  }
  {
    const { tensors, metadata } = base();
    await check('metadata samples too small', { tensors, metadata: { ...metadata, samples: '2' } }, /tensor 'samples\.2\.\w+' belongs to sample 2, but __metadata__ declares 2 samples/);
    await check('metadata samples too large', { tensors, metadata: { ...metadata, samples: '4' } }, /sample 3: missing tensor 'samples\.3\.embeddings'/);
    await check('metadata hidden mismatch', { tensors, metadata: { ...metadata, hidden: '16' } }, /sample 0: tensor 'samples\.0\.embeddings' has shape \[3, 4\] but __metadata__ hidden is 16/);
    await check('metadata position_rows mismatch', { tensors, metadata: { ...metadata, position_rows: '1' } }, /sample 0: tensor 'samples\.0\.positions' has shape \[3, 3\]; expected \[3\]/);
    await check('metadata position_rows invalid', { tensors, metadata: { ...metadata, position_rows: '2' } }, /__metadata__ position_rows must be "1" or "3", found "2"/);
    await check('metadata samples not an integer', { tensors, metadata: { ...metadata, samples: '03' } }, /__metadata__ samples must be a positive integer, found "03"/);
    await check('metadata samples zero', { tensors: [], metadata: { ...metadata, samples: '0' } }, /__metadata__ samples must be a positive integer, found "0"/);
    const { hidden: _hidden, ...noHidden } = metadata;
    await check('metadata hidden missing', { tensors, metadata: noHidden }, /__metadata__ has no "hidden" key/);
    await check('metadata version', { tensors, metadata: { ...metadata, vlmq_bundle: '2' } }, /__metadata__ vlmq_bundle is "2"; this version of vlmq reads bundle version "1"/);
    const { vlmq_bundle: _version, ...noVersion } = metadata;
    await check('not a bundle', { tensors, metadata: noVersion }, /not a calibration bundle: __metadata__ has no "vlmq_bundle" key/);
    await check('no metadata at all', { tensors, metadata: undefined }, /not a calibration bundle: __metadata__ has no "vlmq_bundle" key/);
  }
  {
    const { tensors, metadata } = base();
    await check('extra tensor', { tensors: [...tensors, { name: 'lm_head.weight', dtype: 'F32', shape: [2], data: new Float32Array(2) }], metadata },
      /unexpected tensor 'lm_head\.weight' \(a bundle holds only samples\.\{i\}\.embeddings/);
    await check('extra tensor kind', { tensors: [...tensors, { name: 'samples.0.attention_mask', dtype: 'U8', shape: [3], data: new Uint8Array(3) }], metadata },
      /unexpected tensor 'samples\.0\.attention_mask'/);
    await check('non-canonical index', { tensors: [...tensors, { name: 'samples.01.modality', dtype: 'U8', shape: [3], data: new Uint8Array(3) }], metadata },
      /unexpected tensor 'samples\.01\.modality'/);
  }
});

t.test('open() passes on the safetensors reader\'s own errors, naming the file', async (t) => {
  const path = join(t.testdir(), 'not-safetensors.bin');
  await writeFile(path, 'hello, world');
  await t.rejects(CalibrationBundle.open(path), { message: new RegExp(`^${escape(path)}: `) });
});

// --- fingerprint ----------------------------------------------------------------------------

t.test('fingerprint: stable across reopening and identical rewrites, different after a change', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'bundle.safetensors');
  const samples = [3, 4].map((T, i) => makeSample(T, 4, 'BF16', 3, i));
  await writeCalibrationBundle(path, samples, { metadata: { source: 'a' } });
  const fingerprintOf = async () => {
    await using bundle = await CalibrationBundle.open(path);
    return bundle.fingerprint();
  };
  const first = await fingerprintOf();
  t.match(first, /^[0-9a-f]{64}$/);
  t.equal(await fingerprintOf(), first, 'reopen');
  await writeCalibrationBundle(path, samples, { metadata: { source: 'a' } });
  t.equal(await fingerprintOf(), first, 'identical rewrite');

  await writeCalibrationBundle(path, samples, { metadata: { source: 'b' } });
  const metadataChanged = await fingerprintOf();
  t.not(metadataChanged, first, 'metadata change');
  await writeCalibrationBundle(path, [samples[0], makeSample(5, 4, 'BF16', 3, 1)], { metadata: { source: 'a' } });
  const tokensChanged = await fingerprintOf();
  t.not(tokensChanged, first, 'a sample with another token count');
  t.not(tokensChanged, metadataChanged);
  await writeCalibrationBundle(path, [...samples, makeSample(2, 4, 'BF16', 3, 9)], { metadata: { source: 'a' } });
  t.not(await fingerprintOf(), first, 'one more sample');
  t.ok((await stat(path)).size > 0);
});

t.test('writePlannedCalibrationBundle: the same file as writeCalibrationBundle, each sample loaded when written', async (t) => {
  const dir = t.testdir();
  for (const dtype of ['F32', 'BF16'] as const) {
    const samples = [5, 1, 9, 3, 7, 2, 4, 6, 8, 10, 11, 3].map((T, i) => makeSample(T, 6, dtype, 3, 40 + i));
    const eager = join(dir, `eager-${dtype}.safetensors`), planned = join(dir, `planned-${dtype}.safetensors`);
    await writeCalibrationBundle(eager, samples, { metadata: { source: 'test' } });
    const loads = samples.map(() => 0);
    let alive = 0, mostAlive = 0;
    const summary = await writePlannedCalibrationBundle(planned, {
      hidden: 6, positionRows: 3, embeddingsDType: dtype,
      samples: samples.map((s, i) => ({
        tokens: s.modality.length,
        load: async () => {
          loads[i]++;
          mostAlive = Math.max(mostAlive, ++alive);
          await new Promise((resolve) => setImmediate(resolve));
          alive--;
          return { ...s, embeddings: { ...s.embeddings, data: s.embeddings.data.slice() } };
        },
      })),
    }, { metadata: { source: 'test' } });
    t.match(summary, { samples: 12, hidden: 6, positionRows: 3, embeddingsDType: dtype, totalTokens: samples.reduce((n, s) => n + s.modality.length, 0) });
    t.ok((await readFile(planned)).equals(await readFile(eager)), `${dtype}: byte-identical to the eager writer's file`);
    t.same(loads, samples.map(() => (dtype === 'F32' ? 1 : 2)), `${dtype}: each sample loaded ${dtype === 'F32' ? 'once' : 'twice (positions come first)'}`);
    t.equal(mostAlive, 1, `${dtype}: one sample at a time`);
  }
});

t.test('writePlannedCalibrationBundle: a sample that does not match its plan is an error naming it, and no file is left', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'bad.safetensors');
  const samples = [makeSample(4, 6, 'F32', 1, 1), makeSample(5, 6, 'F32', 1, 2)];
  const plan = (tokens: number[]) => ({ hidden: 6, positionRows: 1 as const, embeddingsDType: 'F32' as const, samples: samples.map((s, i) => ({ tokens: tokens[i], load: async () => s })) });
  await t.rejects(writePlannedCalibrationBundle(path, plan([4, 6])), { code: 'ERR_VLMQ_INVALID_ARG', message: /^sample 1 has 5 tokens of width 6 \(F32, 1 position row\(s\)\), but the plan said 6 tokens of width 6/ });
  await t.rejects(writePlannedCalibrationBundle(path, { ...plan([4, 5]), hidden: 8 }), { message: /^sample 0 has 4 tokens of width 6 .*, but the plan said 4 tokens of width 8/ });
  await t.rejects(writePlannedCalibrationBundle(path, { ...plan([4, 5]), samples: [] }), { message: /plan\.samples/ });
  t.same(await readdir(dir), [], 'nothing written, no temporary file left');
});
