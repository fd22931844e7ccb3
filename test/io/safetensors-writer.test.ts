// The writer: byte-exact output against a file assembled by hand from docs/formats.md §1.1/§1.5,
// the reference layout (order, alignment, padding), validation before anything is written, and
// atomicity (no partial file, no temporary file left behind, an existing file untouched on failure).
import t from 'tap';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_HEADER_SIZE } from '../../lib/io/safetensors-format.js';
import { SafetensorsFile } from '../../lib/io/safetensors-reader.js';
import { writeSafetensors, type WritableTensor } from '../../lib/io/safetensors-writer.js';
import { DTYPES, DTYPE_ARRAY, byteSize, type DType } from '../../lib/tensor.js';

function zeros(name: string, dtype: DType, shape: number[]): WritableTensor {
  return { name, dtype, shape, data: new Uint8Array(byteSize(dtype, shape)) };
}

/** Absolute offsets and names as the file lays them out, smallest offset first. */
async function layoutOf(path: string): Promise<{ name: string; dtype: DType; begin: number }[]> {
  const file = await SafetensorsFile.open(path);
  await file.close();
  return [...file.tensors.values()].sort((a, b) => a.begin - b.begin).map(({ name, dtype, begin }) => ({ name, dtype, begin }));
}

type Asserts = Pick<typeof t, 'testdir' | 'rejects' | 'same'>;

/** Writing rejects with a message matching `message` and leaves the directory as it was. */
async function expectWriteRefused(
  t: Asserts,
  tensors: Iterable<WritableTensor> | AsyncIterable<WritableTensor>,
  message: RegExp,
  options?: { metadata?: Record<string, string> },
): Promise<void> {
  const dir = t.testdir();
  await t.rejects(writeSafetensors(join(dir, 'out.safetensors'), tensors, options), { message });
  t.same(await readdir(dir), [], 'no file and no temporary file left behind');
}

t.test('a tiny file is byte-identical to one assembled by hand from the spec', async (t) => {
  const path = join(t.testdir(), 'tiny.safetensors');
  await writeSafetensors(path, [
    { name: 'a', dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
    { name: 'b', dtype: 'F32', shape: [2], data: new Float32Array([1, -2]) },
  ]);
  // F32 (later in the enum) is laid out before U8; __metadata__ comes first; 138 bytes of JSON
  // are padded with 6 spaces to N = 144 so that 8 + N is a multiple of 8.
  const json =
    '{"__metadata__":{"format":"pt"},' +
    '"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"a":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}';
  t.equal(json.length, 138);
  const expected = Buffer.concat([
    Buffer.from([144, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from(json + '      ', 'latin1'),
    Buffer.from([0x00, 0x00, 0x80, 0x3f]), // 1.0f, little-endian
    Buffer.from([0x00, 0x00, 0x00, 0xc0]), // -2.0f
    Buffer.from([1, 2, 3]),
  ]);
  t.same([...(await readFile(path))], [...expected]);
});

t.test('tensors are laid out by dtype descending in enum order, then by name ascending', async (t) => {
  const path = join(t.testdir(), 'order.safetensors');
  await writeSafetensors(path, [
    zeros('b.u8', 'U8', [3]),
    zeros('a.bool', 'BOOL', [1]),
    zeros('z.f32', 'F32', [2]),
    zeros('a.f32', 'F32', [2]),
    zeros('m.i64', 'I64', [1]),
    zeros('a.u8', 'U8', [1]),
    zeros('c.bf16', 'BF16', [3]),
    zeros('x.u64', 'U64', [1]),
  ]);
  t.same((await layoutOf(path)).map((e) => e.name), ['x.u64', 'm.i64', 'a.f32', 'z.f32', 'c.bf16', 'a.u8', 'b.u8', 'a.bool']);
});

t.test('names are ordered by UTF-8 bytes, as the reference orders Rust strings', async (t) => {
  const path = join(t.testdir(), 'utf8.safetensors');
  // U+FF5E sorts before U+1F600 in UTF-8 but after it in UTF-16 code units.
  await writeSafetensors(path, [zeros('\u{1F600}', 'U8', [1]), zeros('\uFF5E', 'U8', [1]), zeros('Z', 'U8', [1])]);
  t.same((await layoutOf(path)).map((e) => e.name), ['Z', '\uFF5E', '\u{1F600}']);
});

t.test('every tensor starts at an absolute offset aligned to its element size', async (t) => {
  const path = join(t.testdir(), 'aligned.safetensors');
  // Odd byte counts (3 elements) of every whole-byte dtype, 4 elements of the sub-byte ones,
  // given in a shuffled order: the layout, not the caller, must provide the alignment.
  const tensors = DTYPES.map((dtype) => zeros(`w.${dtype}`, dtype, dtype.startsWith('F4') || dtype.startsWith('F6') ? [4] : [3]));
  const shuffled = tensors.map((_, i) => tensors[(i * 7) % tensors.length]);
  await writeSafetensors(path, shuffled);
  for (const { name, dtype, begin } of await layoutOf(path)) {
    const size = DTYPE_ARRAY[dtype].BYTES_PER_ELEMENT;
    t.equal(begin % size, 0, `${name} at ${begin} is aligned to ${size}`);
  }
  const file = await SafetensorsFile.open(path);
  t.equal((8 + file.headerSize) % 8, 0, 'the data buffer starts 8-aligned');
  const f64 = await file.read('w.F64');
  t.equal(f64.data.byteOffset, 0);
  await file.close();
});

t.test('the header is padded with trailing spaces so that 8 + N is a multiple of 8', async (t) => {
  const dir = t.testdir();
  // Names of length 1..8 move the JSON length through every remainder modulo 8.
  for (let length = 1; length <= 8; length++) {
    const path = join(dir, `pad${length}.safetensors`);
    await writeSafetensors(path, [zeros('w'.repeat(length), 'F32', [1])]);
    const bytes = await readFile(path);
    const headerSize = Number(bytes.readBigUInt64LE(0));
    const header = bytes.subarray(8, 8 + headerSize).toString('latin1');
    t.equal((8 + headerSize) % 8, 0, `name length ${length}: N = ${headerSize}`);
    const json = header.trimEnd();
    t.ok(json.endsWith('}') && header.slice(json.length).split('').every((c) => c === ' '), 'padding is spaces only');
    t.ok(header.length - json.length < 8, 'less than 8 bytes of padding');
    t.ok(header.startsWith('{"__metadata__":{"format":"pt"}'), '__metadata__ comes first');
  }
});

t.test('data is taken from the view window, not its whole buffer', async (t) => {
  const path = join(t.testdir(), 'window.safetensors');
  const backing = new Float32Array([9, 9, 1, 2, 3, 9]);
  await writeSafetensors(path, [{ name: 'w', dtype: 'F32', shape: [3], data: backing.subarray(2, 5) }]);
  const file = await SafetensorsFile.open(path);
  t.same([...(await file.read('w')).data], [1, 2, 3]);
  await file.close();
});

t.test('any ArrayBufferView of the right byte length is accepted (a DataView for BF16)', async (t) => {
  const path = join(t.testdir(), 'dataview.safetensors');
  const view = new DataView(new ArrayBuffer(4));
  view.setUint16(0, 0x3f80, true);
  view.setUint16(2, 0xc000, true);
  await writeSafetensors(path, [{ name: 'w', dtype: 'BF16', shape: [2], data: view }]);
  const file = await SafetensorsFile.open(path);
  t.same([...(await file.read('w')).data], [0x3f80, 0xc000]);
  await file.close();
});

t.test('thunks are called one at a time, in layout order', async (t) => {
  const path = join(t.testdir(), 'thunks.safetensors');
  const events: string[] = [];
  let pending = 0;
  const lazy = (name: string, dtype: DType, shape: number[]): WritableTensor => ({
    name,
    dtype,
    shape,
    data: async () => {
      events.push(`start ${name} (pending ${pending})`);
      pending++;
      await new Promise((resolve) => setTimeout(resolve, 5));
      pending--;
      return new Uint8Array(byteSize(dtype, shape)).fill(name.charCodeAt(0));
    },
  });
  await writeSafetensors(path, [lazy('c', 'U8', [2]), lazy('a', 'F32', [1]), lazy('b', 'U8', [1])]);
  t.same(events, ['start a (pending 0)', 'start b (pending 0)', 'start c (pending 0)']);
  const file = await SafetensorsFile.open(path);
  t.same([...(await file.read('c')).data], [99, 99]);
  await file.close();
});

t.test('an async iterable of tensors is accepted', async (t) => {
  const path = join(t.testdir(), 'async.safetensors');
  async function* generate(): AsyncGenerator<WritableTensor> {
    yield zeros('x', 'I32', [2]);
    yield zeros('y', 'I8', [1]);
  }
  await writeSafetensors(path, generate());
  const file = await SafetensorsFile.open(path);
  t.same(file.names(), ['x', 'y']);
  await file.close();
});

t.test('a successful write replaces an existing file', async (t) => {
  const dir = t.testdir({ 'out.safetensors': 'old contents' });
  const path = join(dir, 'out.safetensors');
  await writeSafetensors(path, [zeros('w', 'U8', [1])]);
  const file = await SafetensorsFile.open(path);
  t.same(file.names(), ['w']);
  await file.close();
  t.same(await readdir(dir), ['out.safetensors']);
});

t.test('duplicate names are refused before anything is written', async (t) => {
  await expectWriteRefused(t, [zeros('w', 'U8', [1]), zeros('w', 'F32', [1])], /Expected a unique tensor name for name of tensors\[1\] but received "w"/);
});

t.test('a data size that does not match dtype × shape is refused', async (t) => {
  await expectWriteRefused(t, [{ name: 'w', dtype: 'F32', shape: [2, 2], data: new Float32Array(3) }], /Expected a view of 16 bytes \(F32 \[2, 2\]\) for data of tensor 'w' but received Float32Array of length 3/);
});

t.test('an unknown dtype is refused', async (t) => {
  await expectWriteRefused(t, [{ ...zeros('w', 'U8', [1]), dtype: 'E8M0' as DType }], /Expected one of BOOL, .* for dtype of tensor 'w' but received "E8M0"/);
});

t.test('an empty name is refused', async (t) => {
  await expectWriteRefused(t, [zeros('', 'U8', [1])], /name of tensors\[0\]/);
});

t.test('the name __metadata__ is refused', async (t) => {
  await expectWriteRefused(t, [zeros('__metadata__', 'U8', [1])], /name of tensors\[0\].*"__metadata__"/);
});

t.test('a negative or fractional dimension is refused', async (t) => {
  await expectWriteRefused(t, [{ name: 'w', dtype: 'U8', shape: [-1], data: new Uint8Array(0) }], /shape of tensor 'w'/);
  await expectWriteRefused(t, [{ name: 'w', dtype: 'U8', shape: [1.5], data: new Uint8Array(1) }], /shape of tensor 'w'/);
});

t.test('a sub-byte tensor that does not fill whole bytes is refused', async (t) => {
  await expectWriteRefused(t, [{ name: 'w', dtype: 'F4', shape: [3], data: new Uint8Array(2) }], /Expected a shape whose F4 elements fill whole bytes for shape of tensor 'w' but received "\[3\]"/);
});

t.test('data that is neither a view nor a function is refused', async (t) => {
  await expectWriteRefused(t, [{ name: 'w', dtype: 'U8', shape: [2], data: [1, 2] as unknown as Uint8Array }], /data of tensor 'w'/);
});

t.test('tensors given as a plain object instead of an iterable are refused', async (t) => {
  const asRecord = { w: zeros('w', 'U8', [1]) } as unknown as WritableTensor[];
  await expectWriteRefused(t, asRecord, /Expected an iterable of \{ name, dtype, shape, data \} for tensors/);
});

t.test('a Map of tensors is refused, pointing at the first entry', async (t) => {
  const asMap = new Map([['w', zeros('w', 'U8', [1])]]) as unknown as WritableTensor[];
  await expectWriteRefused(t, asMap, /Expected an object { name, dtype, shape, data } for tensors\[0\] but received array of length 2/);
});

t.test('a non-string metadata value is refused', async (t) => {
  await expectWriteRefused(t, [zeros('w', 'U8', [1])], /metadata\["step"\]/, { metadata: { step: 3 as unknown as string } });
});

t.test('a header over 100,000,000 bytes is refused', async (t) => {
  await expectWriteRefused(t, [zeros('w', 'U8', [1])], /header of \d+ bytes exceeds the limit of 100000000/, { metadata: { big: 'x'.repeat(MAX_HEADER_SIZE) } });
});

t.test('a thunk resolving to the wrong size leaves no file and no temporary file', async (t) => {
  await expectWriteRefused(t, [zeros('a', 'F32', [4]), { name: 'b', dtype: 'U8', shape: [4], data: async () => new Uint8Array(5) }], /Expected a view of 4 bytes \(U8 \[4\]\) for data of tensor 'b' but received Uint8Array of length 5/);
});

t.test('an interrupted write (a thunk that rejects midway) leaves no file and no temporary file', async (t) => {
  let firstWritten = false;
  const tensors: WritableTensor[] = [
    { name: 'first', dtype: 'F64', shape: [1024], data: async () => ((firstWritten = true), new Float64Array(1024)) },
    { name: 'second', dtype: 'F32', shape: [4], data: async () => Promise.reject(new Error('disk of the exporter on fire')) },
  ];
  await expectWriteRefused(t, tensors, /disk of the exporter on fire/);
  t.ok(firstWritten, 'the failure came after data had been written');
});

t.test('a failed write leaves an existing file at the path untouched', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'model.safetensors');
  await writeSafetensors(path, [zeros('old', 'U8', [2])]);
  const before = await readFile(path);
  const failing: WritableTensor = { name: 'new', dtype: 'U8', shape: [1], data: async () => { throw new Error('interrupted'); } };
  await t.rejects(writeSafetensors(path, [zeros('other', 'F32', [8]), failing]), /interrupted/);
  t.ok((await readFile(path)).equals(before), 'the old file is byte-identical');
  t.same(await readdir(dir), ['model.safetensors'], 'no temporary file left behind');
});

t.test('an iterable that throws midway leaves nothing behind', async (t) => {
  function* broken(): Generator<WritableTensor> {
    yield zeros('a', 'U8', [1]);
    throw new Error('source failed');
  }
  await expectWriteRefused(t, broken(), /source failed/);
});

t.test('a path in a missing directory rejects without leaving anything', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'missing', 'x.safetensors');
  await t.rejects(writeSafetensors(path, [zeros('w', 'U8', [1])]), { code: 'ERR_VLMQ_WRITE_FAILED', message: `${path}: cannot write: no such file or directory`, cause: { code: 'ENOENT' } });
  t.same(await readdir(dir), []);
});

t.test('writing over a path that is a directory fails and removes the temporary file', async (t) => {
  const dir = t.testdir({ 'target.safetensors': {} });
  await t.rejects(writeSafetensors(join(dir, 'target.safetensors'), [zeros('w', 'U8', [1])]));
  t.same(await readdir(dir), ['target.safetensors']);
});

t.test("order 'given' lays tensors out, and calls their thunks, in the caller's order", async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'given.safetensors');
  const calls: string[] = [];
  const thunk = (name: string, data: ArrayBufferView) => async () => {
    calls.push(name);
    return data;
  };
  await writeSafetensors(path, [
    { name: 'z', dtype: 'U8', shape: [4], data: thunk('z', new Uint8Array([1, 2, 3, 4])) },
    { name: 'a', dtype: 'F32', shape: [2], data: thunk('a', new Float32Array([5, 6])) },
  ], { order: 'given' });
  t.same(calls, ['z', 'a']);
  const file = await SafetensorsFile.open(path);
  t.same(file.names(), ['z', 'a']);
  t.equal(file.info('a').begin - file.info('z').begin, 4, 'a follows z directly');
  t.same(Array.from((await file.read('a')).data as Float32Array), [5, 6]);
  await file.close();
  await t.rejects(writeSafetensors(join(dir, 'bad.safetensors'), [], { order: 'sorted' as never }), { message: /order/ });
});
