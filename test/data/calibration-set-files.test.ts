// What the calibration-set readers accept as a file: a regular file of UTF-8. A FIFO is refused at
// once instead of waited on (opening one for reading blocks until a writer comes), a directory or a
// device by its kind; a byte that is not UTF-8 is an error naming its line and column; the JSONL
// reader splits lines as Node's readline does, also where a chunk of the stream ends inside a
// character or between CR and LF. Found by (and kept in step with) test/data/calibration-fuzz.test.ts.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { open, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readCalibrationJsonl, readCalibrationSet, readShareGPT4V } from '../../lib/data/calibration-set.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `promise`, or a rejection saying it did not settle within `ms` (a read blocked on a FIFO). */
function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** Lets a reader stuck opening `fifo` go (if the test fails), so the process can exit. */
async function unblock(fifo: string): Promise<void> {
  const handle = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => null);
  await handle?.close();
}

const record = (prompt: string) => JSON.stringify({ image: null, prompt, answer: 'An answer.' });

t.test('a FIFO given as a JSON or JSONL set is refused at once, naming it', async (t) => {
  const dir = t.testdir();
  for (const name of ['set.json', 'set.jsonl']) {
    const fifo = join(dir, name);
    execFileSync('mkfifo', [fifo]);
    t.teardown(() => unblock(fifo));
    const message = new RegExp(`^${escape(fifo)}: is a FIFO \\(named pipe\\), not a regular calibration file$`);
    await t.rejects(within(5000, readCalibrationSet(fifo, { images: dir })), { code: 'ERR_VLMQ_BAD_FILE', message }, name);
  }
  const fifo = join(dir, 'set.json');
  await t.rejects(within(5000, readShareGPT4V(fifo, { images: dir })), { message: /is a FIFO/ }, 'readShareGPT4V');
  await t.rejects(within(5000, readCalibrationJsonl(join(dir, 'set.jsonl'))), { message: /is a FIFO/ }, 'readCalibrationJsonl');
});

t.test('a character device or a directory given as a set is refused by its kind', async (t) => {
  const dir = t.testdir({ 'folder.jsonl': {} });
  const device = join(dir, 'zero.jsonl');
  await symlink('/dev/zero', device);
  await t.rejects(within(5000, readCalibrationJsonl(device)), { code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`^${escape(device)}: is a character device, not a regular calibration file$`) });
  const folder = join(dir, 'folder.jsonl');
  await t.rejects(readCalibrationJsonl(folder), { message: new RegExp(`^${escape(folder)}: is a directory, not a regular calibration file$`) });
});

t.test('a byte that is not UTF-8 is an error naming its line and column, not a U+FFFD in a prompt', async (t) => {
  const dir = t.testdir();
  const json = join(dir, 'set.json');
  const items = Buffer.from(`[\n  {"id": "a", "conversations": [{"from": "human", "value": "Caf\u00e9 X"}, {"from": "gpt", "value": "Yes."}]}\n]`);
  items[items.indexOf('X')] = 0xff;
  await writeFile(json, items);
  await t.rejects(readShareGPT4V(json, { images: dir }), { code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`^${escape(json)}: expected UTF-8 text but found byte 0xff at line 2, column 66$`) });

  const jsonl = join(dir, 'set.jsonl');
  const lines = Buffer.from(`${record('fine')}\n${record('\u00e9 then a cut \u00e9')}\n`);
  await writeFile(jsonl, lines.subarray(0, lines.lastIndexOf(0xa9))); // the last é loses its second byte, and so does the line end
  await t.rejects(readCalibrationJsonl(jsonl), { message: new RegExp(`^${escape(jsonl)}: line 2: expected UTF-8 text but found byte 0xc3 at column 38$`) });
  await writeFile(jsonl, Buffer.concat([Buffer.from(`${record('fine')}\n`), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('\n')])); // a surrogate, encoded
  await t.rejects(readCalibrationJsonl(jsonl), { message: /: line 2: expected UTF-8 text but found byte 0xed at column 1$/ });
});

t.test('JSONL lines are split like readline even where a stream chunk ends inside a character or between CR and LF', async (t) => {
  const dir = t.testdir();
  const jsonl = join(dir, 'set.jsonl');
  const chunk = 64 * 1024; // FileHandle.createReadStream's default highWaterMark
  const prefix = '{"image":null,"prompt":"';
  // 'é' (2 bytes) starts at the last byte of the first chunk.
  const prompt = `${'a'.repeat(chunk - 1 - prefix.length)}\u00e9 end`;
  await writeFile(jsonl, `${record(prompt)}\n`);
  const [one] = await readCalibrationJsonl(jsonl);
  t.equal(one.prompt, prompt, 'the character cut by the chunk boundary is whole');

  // The first line's CR is the last byte of the first chunk, its LF the first of the next: one line end, so the bad line is line 2.
  const first = record('x'.repeat(chunk - 1 - record('').length));
  await writeFile(jsonl, `${first}\r\n{"image":null,"prompt":"p","answer":"a","imgae":1}\n`);
  await t.rejects(readCalibrationJsonl(jsonl), { message: /: line 2: unknown key "imgae"/ });

  // A lone CR ends a line too (readline's rule), so these are lines 1 and 2.
  await writeFile(jsonl, `${record('one')}\r${record('two')}`);
  t.same((await readCalibrationJsonl(jsonl)).map((r) => [r.id, r.prompt]), [['line-1', 'one'], ['line-2', 'two']]);
});

t.test('a prompt whose placeholders overlap ("<<image>image>") is refused: removing them would leave another', async (t) => {
  const dir = t.testdir({ 'a.png': '' });
  const jsonl = join(dir, 'set.jsonl');
  await writeFile(jsonl, `${JSON.stringify({ image: 'a.png', prompt: 'Look: <<image>image> here', answer: 'A picture.' })}\n`);
  await t.rejects(readCalibrationJsonl(jsonl), {
    code: 'ERR_VLMQ_BAD_FILE',
    message: new RegExp(`^${escape(jsonl)}: line 1: prompt: expected <image> placeholders that stand apart, but removing the 1 found leaves another \\(as in "<<image>image>"\\)$`),
  });
  const json = join(dir, 'set.json');
  await writeFile(json, JSON.stringify([{ id: 'n', image: 'a.png', conversations: [{ from: 'human', value: '<<image>image>' }, { from: 'gpt', value: 'A picture.' }] }]));
  await t.rejects(readShareGPT4V(json, { images: dir }), { message: /record 0 \(id n\): conversations\[0\]\.value: expected <image> placeholders that stand apart/ });
});
