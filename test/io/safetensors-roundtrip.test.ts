// Round trips through writeSafetensors → SafetensorsFile, and reading files built by hand
// (including layouts our writer never produces, such as unaligned tensors).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile, loadSafetensors, readSafetensorsHeader } from '../../lib/io/safetensors-reader.js';
import { writeSafetensors, type WritableTensor } from '../../lib/io/safetensors-writer.js';
import { DTYPES, DTYPE_ARRAY, DTYPE_BITS, byteSize, type DType, type TypedArray } from '../../lib/tensor.js';

/** A safetensors file assembled byte by byte: u64 LE header length, header text, data. */
function handBuilt(header: string, data: ArrayLike<number> = []): Buffer {
  const text = Buffer.from(header, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([prefix, text, Buffer.from(data as number[])]);
}

function bytesOf(data: TypedArray): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Random bytes for a tensor of this dtype and shape. */
function randomTensor(name: string, dtype: DType, shape: number[]): WritableTensor {
  return { name, dtype, shape, data: new Uint8Array(randomBytes(byteSize(dtype, shape))) };
}

/** A small shape whose elements fill whole bytes for every dtype (4- and 6-bit ones included). */
function shapeFor(dtype: DType): number[] {
  return DTYPE_BITS[dtype] % 8 === 0 ? [2, 3] : [2, 4];
}

/** The assertions a subtest offers (typed from the root test, which has the same ones). */
type Asserts = Pick<typeof t, 'equal' | 'same' | 'ok'>;

async function expectRoundTrip(t: Asserts, path: string, written: WritableTensor[]): Promise<void> {
  const file = await SafetensorsFile.open(path);
  try {
    for (const tensor of written) {
      const read = await file.read(tensor.name);
      t.equal(read.dtype, tensor.dtype, `${tensor.name} dtype`);
      t.same(read.shape, tensor.shape, `${tensor.name} shape`);
      t.ok(read.data instanceof DTYPE_ARRAY[tensor.dtype], `${tensor.name} is a ${DTYPE_ARRAY[tensor.dtype].name}`);
      t.ok(bytesOf(read.data).equals(Buffer.from(tensor.data as Uint8Array)), `${tensor.name} bytes`);
    }
  } finally {
    await file.close();
  }
}

t.test('every dtype round-trips with its bytes, shape and TypedArray class', async (t) => {
  const path = join(t.testdir(), 'all.safetensors');
  const written = DTYPES.map((dtype) => randomTensor(`t.${dtype}`, dtype, shapeFor(dtype)));
  await writeSafetensors(path, written);
  await expectRoundTrip(t, path, written);
});

t.test('scalars (shape []) of every whole-byte dtype round-trip', async (t) => {
  const path = join(t.testdir(), 'scalars.safetensors');
  const written = DTYPES.filter((d) => DTYPE_BITS[d] % 8 === 0).map((dtype) => randomTensor(`s.${dtype}`, dtype, []));
  await writeSafetensors(path, written);
  await expectRoundTrip(t, path, written);
  const file = await SafetensorsFile.open(path);
  t.same(file.info('s.F64').shape, []);
  t.equal(file.info('s.F64').byteLength, 8);
  await file.close();
});

t.test('zero-sized tensors round-trip with empty data', async (t) => {
  const path = join(t.testdir(), 'zero.safetensors');
  const written = [
    randomTensor('empty.f32', 'F32', [0]),
    randomTensor('empty.bf16', 'BF16', [3, 0]),
    randomTensor('empty.f4', 'F4', [0, 5]),
    randomTensor('full.u8', 'U8', [3]),
  ];
  await writeSafetensors(path, written);
  await expectRoundTrip(t, path, written);
  const read = await loadSafetensors(path);
  t.equal(read.tensors.get('empty.bf16')!.data.length, 0);
});

t.test('an empty tensor dict is written exactly as the reference: N = 8, "{}" and six spaces', async (t) => {
  const path = join(t.testdir(), 'empty.safetensors');
  await writeSafetensors(path, []);
  const expected = Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20]);
  t.same([...(await readFile(path))], [...expected]);
  const file = await SafetensorsFile.open(path);
  t.equal(file.headerSize, 8);
  t.equal(file.fileSize, 16);
  t.equal(file.metadata, null);
  t.same(file.names(), []);
  await file.close();
});

t.test('metadata round-trips and gains format "pt"', async (t) => {
  const path = join(t.testdir(), 'meta.safetensors');
  await writeSafetensors(path, [randomTensor('w', 'F16', [2])], { metadata: { quant_method: 'gptq', note: 'ünïcødé ✓ "quoted"' } });
  const { metadata } = await readSafetensorsHeader(path);
  t.same(metadata, { format: 'pt', quant_method: 'gptq', note: 'ünïcødé ✓ "quoted"' });
});

t.test('an explicit metadata format is kept', async (t) => {
  const path = join(t.testdir(), 'meta.safetensors');
  await writeSafetensors(path, [randomTensor('w', 'F16', [2])], { metadata: { format: 'mlx' } });
  t.same((await readSafetensorsHeader(path)).metadata, { format: 'mlx' });
});

t.test('readSafetensorsHeader reports sizes and absolute offsets without reading data', async (t) => {
  const path = join(t.testdir(), 'h.safetensors');
  await writeSafetensors(path, [randomTensor('w', 'F32', [4])]);
  const header = await readSafetensorsHeader(path);
  const info = header.tensors.get('w')!;
  t.equal(info.begin, 8 + header.headerSize);
  t.equal(info.byteLength, 16);
  t.equal(header.fileSize, 8 + header.headerSize + 16);
  t.equal(header.path, path);
});

t.test('loadSafetensors reads every tensor, keyed in header order', async (t) => {
  const path = join(t.testdir(), 'load.safetensors');
  const written = [randomTensor('x', 'I32', [2]), randomTensor('y', 'U8', [5])];
  await writeSafetensors(path, written);
  const loaded = await loadSafetensors(path);
  t.same([...loaded.tensors.keys()], ['x', 'y']);
  t.ok(bytesOf(loaded.tensors.get('y')!.data).equals(Buffer.from(written[1].data as Uint8Array)));
  t.same(loaded.metadata, { format: 'pt' });
});

t.test('read returns a zero-copy view over a fresh buffer of exactly the tensor', async (t) => {
  const path = join(t.testdir(), 'z.safetensors');
  await writeSafetensors(path, [randomTensor('odd', 'U8', [3]), { name: 'f', dtype: 'F64', shape: [2], data: new Float64Array([1.5, -3]) }]);
  const file = await SafetensorsFile.open(path);
  const { data } = await file.read('f');
  t.same([...data], [1.5, -3]);
  t.equal(data.byteOffset, 0);
  t.equal(data.buffer.byteLength, 16);
  await file.close();
});

t.test('readRows returns the requested rows of the first dimension', async (t) => {
  const path = join(t.testdir(), 'rows.safetensors');
  const values = Float32Array.from({ length: 5 * 3 }, (_, i) => i);
  await writeSafetensors(path, [{ name: 'emb', dtype: 'F32', shape: [5, 3], data: values }]);
  const file = await SafetensorsFile.open(path);
  const slice = await file.readRows('emb', 1, 2);
  t.same(slice.shape, [2, 3]);
  t.same([...slice.data], [3, 4, 5, 6, 7, 8]);
  const last = await file.readRows('emb', 4, 1);
  t.same([...last.data], [12, 13, 14]);
  const none = await file.readRows('emb', 5, 0);
  t.same(none.shape, [0, 3]);
  t.equal(none.data.length, 0);
  await file.close();
});

t.test('readRows of a 1-D tensor returns single elements', async (t) => {
  const path = join(t.testdir(), 'rows1d.safetensors');
  await writeSafetensors(path, [{ name: 'v', dtype: 'I64', shape: [4], data: new BigInt64Array([1n, -2n, 3n, -4n]) }]);
  const file = await SafetensorsFile.open(path);
  const slice = await file.readRows('v', 1, 2);
  t.same(slice.shape, [2]);
  t.same([...slice.data], [-2n, 3n]);
  await file.close();
});

t.test('readRows of a sub-byte dtype works when a row fills whole bytes and refuses otherwise', async (t) => {
  const path = join(t.testdir(), 'rows4.safetensors');
  await writeSafetensors(path, [
    { name: 'even', dtype: 'F4', shape: [3, 4], data: new Uint8Array([0x10, 0x32, 0x54, 0x76, 0x98, 0xba]) },
    { name: 'odd', dtype: 'F4', shape: [2, 3], data: new Uint8Array([1, 2, 3]) },
  ]);
  const file = await SafetensorsFile.open(path);
  t.same([...(await file.readRows('even', 1, 2)).data], [0x54, 0x76, 0x98, 0xba]);
  await t.rejects(file.readRows('odd', 0, 1), /odd.*whole bytes/);
  await file.close();
});

t.test('readRows rejects rows outside the tensor and scalars', async (t) => {
  const path = join(t.testdir(), 'rowsbad.safetensors');
  await writeSafetensors(path, [randomTensor('m', 'U8', [4, 2]), randomTensor('s', 'F32', [])]);
  const file = await SafetensorsFile.open(path);
  await t.rejects(file.readRows('m', 3, 2), /rowCount of tensor 'm'/);
  await t.rejects(file.readRows('m', 5, 0), /rowStart of tensor 'm'/);
  await t.rejects(file.readRows('m', -1, 1), /rowStart/);
  await t.rejects(file.readRows('m', 0.5, 1), /rowStart/);
  await t.rejects(file.readRows('s', 0, 1), /'s' is a scalar/);
  await file.close();
});

t.test('unaligned tensors in a hand-built file read back correctly', async (t) => {
  const path = join(t.testdir(), 'unaligned.safetensors');
  // A U8 of odd length first pushes every following tensor off its natural alignment,
  // and the 219-byte header makes the data buffer itself start at an odd offset (227).
  const header =
    '{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},' +
    '"c":{"dtype":"F64","shape":[1],"data_offsets":[11,19]},"d":{"dtype":"I16","shape":[2,1],"data_offsets":[19,23]}}';
  const data = Buffer.alloc(23);
  data.set([7, 8, 9], 0);
  data.writeFloatLE(1.5, 3);
  data.writeFloatLE(-2, 7);
  data.writeDoubleLE(Math.PI, 11);
  data.writeInt16LE(-300, 19);
  data.writeInt16LE(1234, 21);
  await writeFile(path, handBuilt(header, data));
  const file = await SafetensorsFile.open(path);
  t.equal(file.info('b').begin % 4, (8 + Buffer.byteLength(header) + 3) % 4);
  t.same([...(await file.read('a')).data], [7, 8, 9]);
  t.same([...(await file.read('b')).data], [1.5, -2]);
  t.same([...(await file.read('c')).data], [Math.PI]);
  t.same([...(await file.read('d')).data], [-300, 1234]);
  t.same([...(await file.readRows('b', 1, 1)).data], [-2]);
  t.same([...(await file.readRows('d', 1, 1)).data], [1234]);
  await file.close();
});

t.test('names() keeps header order, even for integer-like names', async (t) => {
  const path = join(t.testdir(), 'order.safetensors');
  // JSON.parse would list "10" and "2" first; the file lists them otherwise.
  const header =
    '{"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"10":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},' +
    '"__metadata__":{"format":"pt"},"2":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}';
  await writeFile(path, handBuilt(header, [1, 2, 3]));
  const file = await SafetensorsFile.open(path);
  t.same(file.names(), ['b', '10', '2']);
  t.same([...(await file.read('10')).data], [2]);
  await file.close();
});

t.test('JSON whitespace before and after the header object is accepted', async (t) => {
  const path = join(t.testdir(), 'ws.safetensors');
  await writeFile(path, handBuilt(' \t\r\n{"x":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}\n\t  ', [0xff, 1]));
  const file = await SafetensorsFile.open(path);
  t.same([...(await file.read('x')).data], [-1, 1]);
  await file.close();
});

t.test('a null __metadata__ means no metadata', async (t) => {
  const path = join(t.testdir(), 'nullmeta.safetensors');
  await writeFile(path, handBuilt('{"__metadata__":null}'));
  const file = await SafetensorsFile.open(path);
  t.equal(file.metadata, null);
  t.same(file.names(), []);
  await file.close();
});

t.test('info of a missing tensor names the file and some available tensors', async (t) => {
  const path = join(t.testdir(), 'info.safetensors');
  await writeSafetensors(path, Array.from({ length: 7 }, (_, i) => randomTensor(`layer.${i}`, 'U8', [1])));
  const file = await SafetensorsFile.open(path);
  t.throws(() => file.info('nope'), { message: /info\.safetensors: no tensor named 'nope' \(available: 'layer\.0', .* and 2 more\)/ });
  await t.rejects(file.read('nope'), /no tensor named 'nope'/);
  await file.close();
});

t.test('a read after close throws a clear error naming the file and tensor', async (t) => {
  const path = join(t.testdir(), 'closed.safetensors');
  await writeSafetensors(path, [randomTensor('w', 'U8', [2])]);
  const file = await SafetensorsFile.open(path);
  await file.close();
  await file.close(); // closing twice is harmless
  await t.rejects(file.read('w'), { message: /closed\.safetensors: cannot read tensor 'w': the file was closed/ });
  await t.rejects(file.readRows('w', 0, 1), /the file was closed/);
  t.same(file.names(), ['w'], 'the header stays available');
});

t.test('Symbol.asyncDispose closes the file', async (t) => {
  const path = join(t.testdir(), 'dispose.safetensors');
  await writeSafetensors(path, [randomTensor('w', 'U8', [2])]);
  const file = await SafetensorsFile.open(path);
  await file[Symbol.asyncDispose]();
  await t.rejects(file.read('w'), /the file was closed/);
});

t.test('opening a missing file rejects with an error naming it', async (t) => {
  const path = join(t.testdir(), 'absent.safetensors');
  await t.rejects(SafetensorsFile.open(path), { code: 'ERR_VLMQ_BAD_FILE', message: `${path}: cannot open this safetensors file: no such file or directory` });
});
