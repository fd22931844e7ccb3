// Every rejection of docs/formats.md §1.4 (plus the stricter ones: duplicate keys, extra fields),
// each on a file built by hand as bytes. Each asserts that the message names the file and, where
// there is one, the offending tensor.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile } from '../../lib/io/safetensors-reader.js';

/** u64 LE header length (the header's own length unless `declaredLength` says otherwise), header, data. */
function handBuilt(header: string | Uint8Array, data: ArrayLike<number> = [], declaredLength?: bigint): Buffer {
  const headerBytes = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(declaredLength ?? BigInt(headerBytes.length));
  return Buffer.concat([prefix, headerBytes, Buffer.from(data as number[])]);
}

/** A well-formed entry, to be broken one field at a time. */
function entry(dtype: unknown, shape: unknown, offsets: unknown): string {
  return JSON.stringify({ dtype, shape, data_offsets: offsets });
}

type Asserts = Pick<typeof t, 'ok' | 'equal' | 'match' | 'fail' | 'testdir'>;

/** Opens `bytes` as a file and checks the rejection's code and message. */
async function expectRejected(t: Asserts, bytes: Buffer, message: RegExp, tensor?: string): Promise<void> {
  const path = join(t.testdir(), 'bad.safetensors');
  await writeFile(path, bytes);
  const error = await SafetensorsFile.open(path).then(
    () => undefined,
    (e: unknown) => e as Error & { code?: string },
  );
  if (error === undefined) return void t.fail('the file was accepted');
  t.equal(error.code, 'ERR_VLMQ_BAD_FILE');
  t.ok(error.message.startsWith(`${path}: `), `message names the file: ${error.message}`);
  t.match(error.message, message);
  if (tensor !== undefined) t.ok(error.message.includes(`'${tensor}'`), `message names tensor '${tensor}'`);
}

t.test('an empty file is rejected as too small', async (t) => {
  await expectRejected(t, Buffer.alloc(0), /file of 0 bytes is too small/);
});

t.test('a file shorter than 8 bytes is rejected as too small', async (t) => {
  await expectRejected(t, Buffer.from([2, 0, 0, 0, 0]), /file of 5 bytes is too small/);
});

t.test('a header length over 100,000,000 is rejected', async (t) => {
  await expectRejected(t, handBuilt('{}', [], 100_000_001n), /header length 100000001 exceeds the limit of 100000000/);
});

t.test('a header length of 2^64 - 1 is rejected as too large', async (t) => {
  await expectRejected(t, handBuilt('{}', [], 2n ** 64n - 1n), /header length 18446744073709551615 exceeds the limit/);
});

t.test('a header length beyond the end of the file is rejected', async (t) => {
  await expectRejected(t, handBuilt('{}', [], 100n), /header length 100 runs past the end of the file \(8 \+ 100 > 10 bytes\)/);
});

t.test('a header that is not valid UTF-8 is rejected', async (t) => {
  await expectRejected(t, handBuilt(Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), /header is not valid UTF-8/);
});

t.test('a header that starts with a byte-order mark is rejected', async (t) => {
  await expectRejected(t, handBuilt('\uFEFF{}'), /header is not valid JSON/);
});

t.test('a header that is not JSON is rejected', async (t) => {
  await expectRejected(t, handBuilt('{"a":'), /header is not valid JSON/);
});

t.test('a JSON array header is rejected as not an object', async (t) => {
  await expectRejected(t, handBuilt('[]'), /header must be a JSON object, found \[\]/);
});

t.test('a JSON null header is rejected as not an object', async (t) => {
  await expectRejected(t, handBuilt('null'), /header must be a JSON object, found null/);
});

t.test('a duplicate tensor name is rejected', async (t) => {
  const header = `{"w":${entry('U8', [1], [0, 1])},"w":${entry('U8', [1], [1, 2])}}`;
  await expectRejected(t, handBuilt(header, [1, 2]), /duplicate tensor 'w' in the header/, 'w');
});

t.test('a duplicate field inside a tensor entry is rejected', async (t) => {
  const header = '{"w":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,1]}}';
  await expectRejected(t, handBuilt(header, [1]), /tensor 'w': duplicate key "dtype"/, 'w');
});

t.test('a duplicate metadata key is rejected', async (t) => {
  await expectRejected(t, handBuilt('{"__metadata__":{"format":"pt","format":"tf"}}'), /duplicate key "format" in __metadata__/);
});

t.test('escaped quotes in keys do not confuse duplicate detection', async (t) => {
  // "a\"" and "a\\" differ; a naive scan that ends strings at the first quote would misread them.
  const header = `{"a\\"":${entry('U8', [1], [0, 1])},"a\\\\":${entry('U8', [1], [1, 2])},"a\\"":${entry('U8', [1], [2, 3])}}`;
  await expectRejected(t, handBuilt(header, [1, 2, 3]), /duplicate tensor 'a"' in the header/);
});

t.test('an unknown dtype is rejected, naming it and the tensor', async (t) => {
  await expectRejected(t, handBuilt(`{"scale":${entry('E8M0', [1], [0, 1])}}`, [1]), /tensor 'scale': unknown dtype "E8M0" \(known: BOOL, .*U64\)/, 'scale');
});

t.test('a negative dimension is rejected', async (t) => {
  await expectRejected(t, handBuilt(`{"w":${entry('U8', [-1], [0, 0])}}`), /tensor 'w': shape must be an array of non-negative integers, found \[-1\]/, 'w');
});

t.test('a fractional dimension is rejected', async (t) => {
  await expectRejected(t, handBuilt(`{"w":${entry('U8', [1.5], [0, 1])}}`, [1]), /tensor 'w': shape must be an array of non-negative integers, found \[1.5\]/, 'w');
});

t.test('a dimension written as 2.0 is rejected like the reference usize parser does', async (t) => {
  await expectRejected(t, handBuilt('{"w":{"dtype":"U8","shape":[2.0],"data_offsets":[0,2]}}', [1, 2]), /tensor 'w': shape and data_offsets must be plain non-negative integers, found 2.0/, 'w');
});

t.test('a dimension written as -0 is rejected like the reference usize parser does', async (t) => {
  await expectRejected(t, handBuilt('{"w":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}'), /tensor 'w': shape and data_offsets must be plain non-negative integers, found -0/, 'w');
});

t.test('an offset written as 1e0 is rejected like the reference usize parser does', async (t) => {
  await expectRejected(t, handBuilt('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1e0]}}', [1]), /tensor 'w': shape and data_offsets must be plain non-negative integers, found 1e0/, 'w');
});

t.test('a shape that is not an array is rejected', async (t) => {
  await expectRejected(t, handBuilt(`{"w":${entry('U8', 3, [0, 3])}}`, [1, 2, 3]), /tensor 'w': shape must be an array/, 'w');
});

t.test('metadata with a non-string value is rejected', async (t) => {
  await expectRejected(t, handBuilt('{"__metadata__":{"format":"pt","step":3}}'), /__metadata__ value of "step" must be a string, found 3/);
});

t.test('metadata that is not an object is rejected', async (t) => {
  await expectRejected(t, handBuilt('{"__metadata__":"pt"}'), /__metadata__ must be an object of strings/);
});

t.test('a tensor entry without data_offsets is rejected', async (t) => {
  await expectRejected(t, handBuilt('{"w":{"dtype":"U8","shape":[1]}}', [1]), /tensor 'w': missing field "data_offsets"/, 'w');
});

t.test('a tensor entry that is not an object is rejected', async (t) => {
  await expectRejected(t, handBuilt('{"w":[0,1]}', [1]), /tensor 'w': expected an object/, 'w');
});

t.test('an extra field in a tensor entry is rejected', async (t) => {
  const header = '{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"stride":[1]}}';
  await expectRejected(t, handBuilt(header, [1]), /tensor 'w': unexpected field "stride"/, 'w');
});

t.test('data_offsets that are not two integers are rejected', async (t) => {
  await expectRejected(t, handBuilt(`{"w":${entry('U8', [1], [0])}}`, [1]), /tensor 'w': data_offsets must be \[begin, end\]/, 'w');
});

t.test('overlapping tensors are rejected as an overlap naming both', async (t) => {
  const header = `{"a":${entry('U8', [4], [0, 4])},"b":${entry('U8', [4], [2, 6])}}`;
  await expectRejected(t, handBuilt(header, new Array(6).fill(0)), /tensors 'a' and 'b' overlap: 'a' ends at byte 4 of the data buffer but 'b' begins at byte 2/);
});

t.test('two tensors sharing the same bytes are rejected as an overlap', async (t) => {
  const header = `{"tied.a":${entry('U8', [2], [0, 2])},"tied.b":${entry('U8', [2], [0, 2])}}`;
  await expectRejected(t, handBuilt(header, [1, 2]), /tensors 'tied\.a' and 'tied\.b' overlap/);
});

t.test('a gap between tensors is rejected as a gap naming both', async (t) => {
  const header = `{"a":${entry('U8', [2], [0, 2])},"b":${entry('U8', [2], [5, 7])}}`;
  await expectRejected(t, handBuilt(header, new Array(7).fill(0)), /gap of 3 bytes between tensors 'a' \(ends at byte 2 of the data buffer\) and 'b' \(begins at byte 5\)/);
});

t.test('a first tensor that does not start at byte 0 is rejected', async (t) => {
  const header = `{"a":${entry('U8', [2], [4, 6])}}`;
  await expectRejected(t, handBuilt(header, new Array(6).fill(0)), /first tensor 'a' begins at byte 4 of the data buffer instead of 0/, 'a');
});

t.test('data_offsets that end before they begin are rejected', async (t) => {
  // 'z' begins exactly where 'a' ends, so the tiling rules pass and the end-before-begin rule decides.
  const header = `{"a":${entry('U8', [2], [0, 2])},"z":${entry('U8', [0], [2, 1])}}`;
  await expectRejected(t, handBuilt(header, [1, 2]), /tensor 'z': data_offsets \[2, 1\] end before they begin/, 'z');
});

t.test('a size that does not match dtype × shape is rejected', async (t) => {
  const header = `{"w":${entry('F32', [2, 2], [0, 12])}}`;
  await expectRejected(t, handBuilt(header, new Array(12).fill(0)), /tensor 'w': F32 \[2, 2\] needs 16 bytes but data_offsets \[0, 12\] span 12/, 'w');
});

t.test('a sub-byte tensor that does not fill whole bytes is rejected', async (t) => {
  const header = `{"w":${entry('F4', [3], [0, 2])}}`;
  await expectRejected(t, handBuilt(header, [0, 0]), /tensor 'w': 3 F4 elements make 12 bits, which do not fill whole bytes/, 'w');
});

t.test('a shape with an overflowing element count is rejected', async (t) => {
  const header = `{"w":${entry('U64', [2 ** 30, 2 ** 30, 2 ** 30], [0, 8])}}`;
  await expectRejected(t, handBuilt(header, new Array(8).fill(0)), /tensor 'w': shape .* has too many elements/, 'w');
});

t.test('truncated data is rejected with the number of missing bytes', async (t) => {
  const header = `{"a":${entry('U8', [2], [0, 2])},"b":${entry('F32', [4], [2, 18])}}`;
  await expectRejected(t, handBuilt(header, new Array(15).fill(0)), /truncated: 3 bytes missing \(the last tensor 'b' ends at byte/, 'b');
});

t.test('trailing bytes after the last tensor are rejected', async (t) => {
  const header = `{"a":${entry('U8', [2], [0, 2])}}`;
  await expectRejected(t, handBuilt(header, [1, 2, 3, 4, 5]), /3 trailing bytes after the last tensor 'a'/, 'a');
});

t.test('trailing bytes after a header without tensors are rejected', async (t) => {
  await expectRejected(t, handBuilt('{}', [0]), /1 trailing byte after the header/);
});

t.test('a shape or data_offsets nested 100,000 levels deep is rejected naming the tensor, not a stack overflow', async (t) => {
  const deep = `${'['.repeat(100_000)}0${']'.repeat(100_000)}`;
  await expectRejected(t, handBuilt(`{"w":{"dtype":"U8","shape":${deep},"data_offsets":[0,0]}}`), /tensor 'w': shape must be an array of non-negative integers, found array of length 1 nested more than 16 levels deep/, 'w');
  await expectRejected(t, handBuilt(`{"w":{"dtype":"U8","shape":[0],"data_offsets":${deep}}}`), /tensor 'w': data_offsets must be \[begin, end\] of non-negative integers, found array of length 1 nested/, 'w');
});
