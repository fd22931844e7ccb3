// Calibration sets on disk: ShareGPT4V JSON and JSONL round trips, the <image> placeholder rules,
// every validation error (each names the file, the record or line, and what was expected), missing
// image files listed together, dispatch by extension, and the seeded choice of records.
import t, { type Test } from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { readCalibrationJsonl, readCalibrationSet, readShareGPT4V, sampleRecords } from '../../lib/data/calibration-set.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A tiny PNG at `path`. */
async function png(path: string, colour = '#336699'): Promise<void> {
  await sharp({ create: { width: 4, height: 3, channels: 3, background: colour } }).png().toFile(path);
}

/** A directory with `images/a.png`, `images/b.png`, `images/sub/c.png`. */
async function imageDir(t: Test) {
  const dir = t.testdir({ images: { sub: {} } });
  const images = join(dir, 'images');
  await png(join(images, 'a.png'), '#ff0000');
  await png(join(images, 'b.png'), '#00ff00');
  await png(join(images, 'sub', 'c.png'), '#0000ff');
  return { dir, images };
}

type Turn = { from: string; value: string };
const turns = (human: string, gpt: string): Turn[] => [{ from: 'human', value: human }, { from: 'gpt', value: gpt }];

t.test('a ShareGPT4V file round-trips: ids, absolute image paths in order, prompts without placeholders, answers', async (t) => {
  const { dir, images } = await imageDir(t);
  const json = join(dir, 'captions.json');
  await writeFile(json, JSON.stringify([
    { id: '000000391895', image: 'a.png', conversations: turns('<image>\nDescribe this image in detail.', 'A red square.') },
    { id: 7, image: ['sub/c.png', 'b.png'], conversations: turns('<image>\n<image>\nCompare the two pictures.', 'Blue, then green.') },
    { id: 'text-only', conversations: turns('What is two plus two?', 'Four.') },
    {
      id: 'multi-turn',
      image: 'b.png',
      conversations: [...turns('<image>\nWhat colour is it?', '  Green.  '), { from: 'human', value: 'Sure?' }, { from: 'gpt', value: 'Yes.' }],
    },
  ]));
  const records = await readShareGPT4V(json, { images });
  t.same(records, [
    { id: '000000391895', images: [join(images, 'a.png')], prompt: 'Describe this image in detail.', answer: 'A red square.' },
    { id: '7', images: [join(images, 'sub', 'c.png'), join(images, 'b.png')], prompt: 'Compare the two pictures.', answer: 'Blue, then green.' },
    { id: 'text-only', images: [], prompt: 'What is two plus two?', answer: 'Four.' },
    { id: 'multi-turn', images: [join(images, 'b.png')], prompt: 'What colour is it?', answer: 'Green.' },
  ]);
});

t.test('placeholders go with one adjacent newline or space; none means the images go before the text', async (t) => {
  const { dir, images } = await imageDir(t);
  const cases: Array<{ human: string; image: string | string[] | undefined; prompt: string }> = [
    { human: '<image>\nDescribe.', image: 'a.png', prompt: 'Describe.' },
    { human: 'Describe.\n<image>', image: 'a.png', prompt: 'Describe.' },
    { human: 'First line.\n<image>\nSecond line.', image: 'a.png', prompt: 'First line.\nSecond line.' },
    { human: '<image>\r\nWindows line ends.', image: 'a.png', prompt: 'Windows line ends.' },
    { human: '<image>\n<image>\nCompare them.', image: ['a.png', 'b.png'], prompt: 'Compare them.' },
    { human: 'Compare <image> with <image>.', image: ['a.png', 'b.png'], prompt: 'Compare with.' },
    { human: '<image>', image: 'a.png', prompt: '' },
    { human: '  Describe both.  ', image: ['a.png', 'b.png'], prompt: 'Describe both.' },
    { human: 'No picture here.', image: undefined, prompt: 'No picture here.' },
  ];
  const json = join(dir, 'set.json');
  await writeFile(json, JSON.stringify(cases.map((c, i) => ({ id: `c${i}`, image: c.image, conversations: turns(c.human, 'An answer.') }))));
  const records = await readShareGPT4V(json, { images });
  cases.forEach((c, i) => {
    t.equal(records[i].prompt, c.prompt, JSON.stringify(c.human));
    const expected = c.image === undefined ? [] : (Array.isArray(c.image) ? c.image : [c.image]).map((name) => join(images, name));
    t.same(records[i].images, expected, `images of ${JSON.stringify(c.human)}`);
  });
});

t.test('every malformed ShareGPT4V record is an error naming the file, the record index and id, and what was expected', async (t) => {
  const { dir, images } = await imageDir(t);
  const json = join(dir, 'captions.json');
  const check = async (content: unknown, message: RegExp, name: string) => {
    await writeFile(json, typeof content === 'string' ? content : JSON.stringify(content));
    await t.rejects(readShareGPT4V(json, { images }), { code: 'ERR_VLMQ_BAD_FILE', message }, name);
  };
  const file = escape(json);
  const good = { id: 'g', image: 'a.png', conversations: turns('<image>\nDescribe.', 'A square.') };

  await check({ records: [] }, new RegExp(`^${file}: expected a JSON array of records but received an object of type Object$`), 'not an array');
  await check([], new RegExp(`^${file}: expected at least one record but the array is empty$`), 'empty array');
  await check([good, 5], new RegExp(`^${file}: record 1: record: expected an object \\{ id, image, conversations \\} but received 5$`), 'record not an object');
  await check([{ ...good, id: undefined }], new RegExp(`^${file}: record 0: id: expected a non-empty string \\(or an integer\\) but received undefined$`), 'missing id');
  await check([good, good, { id: 'x', image: 'a.png' }], new RegExp(`^${file}: record 2 \\(id x\\): conversations: expected an array of \\{ from, value \\} turns but received undefined$`), 'missing conversations');
  await check(
    [...Array(12).fill(good), { id: '000000391895', image: 'a.png', conversations: [{ from: 'human', value: '<image>\nHi' }, { from: 'human', value: 'Hi again' }] }],
    new RegExp(`^${file}: record 12 \\(id 000000391895\\): conversations\\[1\\]\\.from: expected "gpt" but received "human"$`),
    'a human turn where the gpt turn belongs',
  );
  await check([{ ...good, conversations: [{ from: 'system', value: 'Be brief.' }, ...good.conversations] }], /record 0 \(id g\): conversations\[0\]\.from: expected "human" or "gpt" but received "system"$/, 'unknown from');
  await check([{ ...good, conversations: [{ from: 'human', value: 5 }] }], /record 0 \(id g\): conversations\[0\]\.value: expected a string but received 5$/, 'value not a string');
  await check([{ ...good, conversations: ['hello'] }], /record 0 \(id g\): conversations\[0\]: expected an object \{ from, value \} but received "hello"$/, 'turn not an object');
  await check(
    [{ ...good, conversations: [{ from: 'human', value: '<image>\nDescribe.' }] }],
    /record 0 \(id g\): conversations: expected a "gpt" turn after conversations\[0\] \(the first "human" turn\) but the conversation ends there$/,
    'no gpt turn',
  );
  await check([{ ...good, conversations: [] }], /record 0 \(id g\): conversations: expected a turn from "human" but the array is empty$/, 'no turns');
  await check([{ ...good, conversations: [{ from: 'gpt', value: 'Hello.' }] }], /record 0 \(id g\): conversations: expected a turn from "human" but every turn is from "gpt"$/, 'no human turn');
  await check([{ ...good, conversations: turns('<image>\nDescribe.', '   ') }], /record 0 \(id g\): conversations\[1\]\.value: expected a non-empty answer but received "   "$/, 'empty answer');
  await check(
    [{ ...good, image: ['a.png'], conversations: turns('<image>\n<image>\nCompare.', 'Same.') }],
    /record 0 \(id g\): conversations\[0\]\.value: expected 1 <image> placeholder \(one per image\) or none but found 2$/,
    'more placeholders than images',
  );
  await check(
    [{ ...good, image: ['a.png', 'b.png', 'sub/c.png'], conversations: turns('<image>\nCompare.', 'Same.') }],
    /record 0 \(id g\): conversations\[0\]\.value: expected 3 <image> placeholders \(one per image\) or none but found 1$/,
    'fewer placeholders than images',
  );
  await check(
    [{ id: 'g', conversations: turns('<image>\nDescribe.', 'A square.') }],
    /record 0 \(id g\): conversations\[0\]\.value: expected 0 <image> placeholders \(one per image; the record has no image\) or none but found 1$/,
    'a placeholder without an image',
  );
  await check([{ ...good, conversations: turns('<image>\nDescribe.', 'See <image>.') }], /record 0 \(id g\): conversations\[1\]\.value: expected no <image> placeholder in the answer but found 1$/, 'placeholder in the answer');
  await check([{ ...good, image: 5 }], /record 0 \(id g\): image: expected a path, a list of paths or null but received 5$/, 'image not a path');
  await check([{ ...good, image: ['a.png', ''] }], /record 0 \(id g\): image: expected a non-empty path at image\[1\] but received ""$/, 'empty path in a list');
});

t.test('missing image files are listed in one error: record, id and absolute path of the first five, and a count', async (t) => {
  const { dir, images } = await imageDir(t);
  const json = join(dir, 'captions.json');
  const records = [
    { id: 'ok', image: 'a.png', conversations: turns('<image>\nDescribe.', 'Red.') },
    ...Array.from({ length: 7 }, (_, k) => ({ id: `m${k}`, image: ['b.png', `missing-${k}.jpg`], conversations: turns('Describe.', 'Gone.') })),
  ];
  await writeFile(json, JSON.stringify(records));
  const error = await readShareGPT4V(json, { images }).then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(error?.code, 'ERR_VLMQ_BAD_FILE');
  const listed = Array.from({ length: 5 }, (_, k) => `record ${k + 1} \\(id m${k}\\): ${escape(join(images, `missing-${k}.jpg`))}`).join('; ');
  t.match(error?.message, new RegExp(`^${escape(json)}: 7 image files are missing or unreadable: ${listed}; and 2 more$`));

  await writeFile(json, JSON.stringify([{ id: 'dir', image: 'sub', conversations: turns('Describe.', 'A folder.') }]));
  await t.rejects(readShareGPT4V(json, { images }), { message: new RegExp(`1 image file is missing or unreadable: record 0 \\(id dir\\): ${escape(join(images, 'sub'))} \\(not a file\\)$`) }, 'a directory is not an image file');
});

t.test('invalid JSON is reported with its line and column', async (t) => {
  const { dir, images } = await imageDir(t);
  const json = join(dir, 'broken.json');
  await writeFile(json, '[\n  {"id": "a",}\n]');
  await t.rejects(readShareGPT4V(json, { images }), { code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`^${escape(json)}: expected valid JSON but found "\\}" at line 2, column 14$`) });
  await writeFile(json, '[{"id": "a"');
  await t.rejects(readShareGPT4V(json, { images }), { message: /expected valid JSON but found the end of the text at line 1, column 12$/ }, 'truncated');
  await writeFile(json, '[1, 2]\n\nx');
  await t.rejects(readShareGPT4V(json, { images }), { message: /found "x" at line 3, column 1$/ }, 'trailing garbage');
  await writeFile(json, '["tab\there"]');
  await t.rejects(readShareGPT4V(json, { images }), { message: /found "\\t" at line 1, column 6$/ }, 'control character in a string');
});

t.test('a missing file and a missing images option are errors', async (t) => {
  const { dir, images } = await imageDir(t);
  const json = join(dir, 'nope.json');
  await t.rejects(readShareGPT4V(json, { images }), { code: 'ERR_VLMQ_BAD_FILE', message: `${json}: no such file` });
  await t.rejects(readCalibrationJsonl(join(dir, 'nope.jsonl')), { code: 'ERR_VLMQ_BAD_FILE', message: /no such file$/ });
  await t.rejects(readShareGPT4V(json, {} as { images: string }), { code: 'ERR_VLMQ_INVALID_ARG', message: /for images but received undefined$/ });
  const directory = new RegExp(`^${escape(images)}: is a directory, not a regular calibration file$`);
  await t.rejects(readShareGPT4V(images, { images }), { code: 'ERR_VLMQ_BAD_FILE', message: directory }, 'a directory');
  await t.rejects(readCalibrationJsonl(images), { code: 'ERR_VLMQ_BAD_FILE', message: directory }, 'a directory (JSONL)');
});

t.test('JSONL: one record per line, blank lines skipped, null image, relative paths against the file or the images option', async (t) => {
  const { dir, images } = await imageDir(t);
  const jsonl = join(images, 'set.jsonl');
  await writeFile(jsonl, [
    JSON.stringify({ image: 'a.png', prompt: 'Describe.', answer: 'Red.', id: 'first' }),
    '',
    '   ',
    JSON.stringify({ image: ['sub/c.png', 'b.png'], prompt: '<image>\n<image>\nCompare.', answer: 'Blue and green.' }),
    JSON.stringify({ image: null, prompt: 'Say hi.', answer: 'Hi.' }),
    JSON.stringify({ image: join(images, 'b.png'), prompt: 'Absolute.', answer: 'Kept.', id: 12 }),
    '',
  ].join('\n'));
  t.same(await readCalibrationJsonl(jsonl), [
    { id: 'first', images: [join(images, 'a.png')], prompt: 'Describe.', answer: 'Red.' },
    { id: 'line-4', images: [join(images, 'sub', 'c.png'), join(images, 'b.png')], prompt: 'Compare.', answer: 'Blue and green.' },
    { id: 'line-5', images: [], prompt: 'Say hi.', answer: 'Hi.' },
    { id: '12', images: [join(images, 'b.png')], prompt: 'Absolute.', answer: 'Kept.' },
  ]);

  const elsewhere = join(dir, 'elsewhere.jsonl');
  await writeFile(elsewhere, `${JSON.stringify({ image: 'c.png', prompt: 'P', answer: 'A' })}\r\n`);
  t.same((await readCalibrationJsonl(elsewhere, { images: join(images, 'sub') }))[0].images, [join(images, 'sub', 'c.png')], 'the images option wins over the file directory');
});

t.test('every JSONL error names the file and the line number', async (t) => {
  const { images } = await imageDir(t);
  const jsonl = join(images, 'set.jsonl');
  const ok = JSON.stringify({ image: 'a.png', prompt: 'P', answer: 'A' });
  const check = async (lines: string[], message: RegExp, name: string) => {
    await writeFile(jsonl, lines.join('\n'));
    await t.rejects(readCalibrationJsonl(jsonl), { code: 'ERR_VLMQ_BAD_FILE', message }, name);
  };
  const file = escape(jsonl);
  await check([ok, '', '{"image": "a.png", "prompt": }'], new RegExp(`^${file}: line 3: expected valid JSON but found "\\}" at column 30$`), 'bad JSON');
  await check([ok, '[1, 2]'], new RegExp(`^${file}: line 2: record: expected an object \\{ image, prompt, answer, id\\? \\} but received \\[1, 2\\]$`), 'not an object');
  await check([ok, JSON.stringify({ images: 'a.png', prompt: 'P', answer: 'A' })], /line 2: unknown key "images" \(expected image, prompt, answer and optionally id\)$/, 'unknown key');
  await check([ok, JSON.stringify({ prompt: 'P', answer: 'A' })], /line 2: image: expected a path, a list of paths or null but received undefined$/, 'no image key');
  await check([JSON.stringify({ image: null, answer: 'A' })], /line 1: prompt: expected a string but received undefined$/, 'no prompt');
  await check([JSON.stringify({ image: null, prompt: 'P', answer: '' })], /line 1: answer: expected a non-empty string but received ""$/, 'empty answer');
  await check([JSON.stringify({ image: null, prompt: 'P', answer: 'A', id: '' })], /line 1: id: expected a non-empty string or an integer \(or no id\) but received ""$/, 'empty id');
  await check([JSON.stringify({ image: 'a.png', prompt: '<image> <image> P', answer: 'A' })], /line 1: prompt: expected 1 <image> placeholder \(one per image\) or none but found 2$/, 'placeholder count');
  await check(['', '  '], new RegExp(`^${file}: expected at least one record but the file has no non-blank lines$`), 'no records');
  await check(
    [ok, JSON.stringify({ image: 'gone.png', prompt: 'P', answer: 'A', id: 'x' })],
    new RegExp(`^${file}: 1 image file is missing or unreadable: line 2 \\(id x\\): ${escape(join(images, 'gone.png'))}$`),
    'missing image file',
  );
});

t.test('readCalibrationSet chooses the reader by extension and rejects other files', async (t) => {
  const { images } = await imageDir(t);
  const json = join(images, 'set.JSON');
  await writeFile(json, JSON.stringify([{ id: 'a', image: 'a.png', conversations: turns('<image>\nDescribe.', 'Red.') }]));
  t.same(await readCalibrationSet(json), [{ id: 'a', images: [join(images, 'a.png')], prompt: 'Describe.', answer: 'Red.' }], '.json: images default to the file directory');
  await mkdir(join(images, 'sub', 'deeper'));
  await writeFile(join(images, 'sub', 'deeper', 'set.json'), JSON.stringify([{ id: 'c', image: 'c.png', conversations: turns('Describe.', 'Blue.') }]));
  t.same((await readCalibrationSet(join(images, 'sub', 'deeper', 'set.json'), { images: join(images, 'sub') }))[0].images, [join(images, 'sub', 'c.png')], '.json with images');
  const jsonl = join(images, 'set.jsonl');
  await writeFile(jsonl, JSON.stringify({ image: 'b.png', prompt: 'P', answer: 'Green.' }));
  t.same(await readCalibrationSet(jsonl), [{ id: 'line-1', images: [join(images, 'b.png')], prompt: 'P', answer: 'Green.' }], '.jsonl');
  await t.rejects(readCalibrationSet(join(images, 'set.csv')), {
    code: 'ERR_VLMQ_BAD_FILE',
    message: `${join(images, 'set.csv')}: expected a .json file (ShareGPT4V array) or a .jsonl file (one { image, prompt, answer } per line) but the extension is ".csv"`,
  });
  await t.rejects(readCalibrationSet(join(images, 'README')), { code: 'ERR_VLMQ_BAD_FILE', message: /but the extension is missing$/ });
});

t.test('sampleRecords: the same seed gives the same records, in the same order, on every run', async (t) => {
  const records = Array.from({ length: 100 }, (_, i) => `r${i}`);
  t.same(sampleRecords(records, 10, 42), sampleRecords(records, 10, 42));
  // Pinned: a change of generator or of shuffle would change every seeded calibration run.
  t.same(sampleRecords(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], 8, 42), PINNED_SEED_42);
});

t.test('sampleRecords: different seeds choose differently', async (t) => {
  const records = Array.from({ length: 100 }, (_, i) => i);
  const seen = new Set([0, 1, 2, 3, 4].map((seed) => sampleRecords(records, 10, seed).join(',')));
  t.equal(seen.size, 5);
});

t.test('sampleRecords: no record twice, only records of the input, and a longer sample extends a shorter one', async (t) => {
  const records = Array.from({ length: 50 }, (_, i) => ({ i }));
  for (const seed of [0, 1, -7, 2 ** 40]) {
    const sample = sampleRecords(records, 20, seed);
    t.equal(sample.length, 20);
    t.equal(new Set(sample).size, 20, 'distinct');
    t.ok(sample.every((r) => records.includes(r)), 'from the input');
    t.same(sampleRecords(records, 21, seed).slice(0, 20), sample, 'prefix');
  }
});

t.test('sampleRecords: count ≥ length returns every record, shuffled', async (t) => {
  const records = Array.from({ length: 30 }, (_, i) => i);
  for (const count of [30, 31, 1000]) {
    const sample = sampleRecords(records, count, 3);
    t.same([...sample].sort((a, b) => a - b), records, `count ${count}`);
  }
  t.not(sampleRecords(records, 30, 3).join(','), records.join(','), 'not the input order');
  t.same(sampleRecords([], 5, 0), []);
});

t.test('sampleRecords: every record is equally likely to come first', async (t) => {
  const counts = [0, 0, 0, 0, 0];
  for (let seed = 0; seed < 5000; seed++) counts[sampleRecords([0, 1, 2, 3, 4], 1, seed)[0]]++;
  // 1000 expected each; the binomial standard deviation is √(5000·0.2·0.8) ≈ 28
  for (const count of counts) t.ok(Math.abs(count - 1000) < 150, `${count} of 5000`);
});

t.test('sampleRecords rejects a count that is not a positive integer, a bad seed and a non-array', async (t) => {
  for (const count of [0, -1, 1.5, Number.NaN, Infinity]) {
    t.throws(() => sampleRecords([1, 2, 3], count, 0), { code: 'ERR_VLMQ_INVALID_ARG', message: /for count/ }, `count ${count}`);
  }
  t.throws(() => sampleRecords([1, 2, 3], 2, 0.5), { code: 'ERR_VLMQ_INVALID_ARG', message: /a safe integer for seed/ });
  t.throws(() => sampleRecords('abc' as unknown as string[], 2, 0), { code: 'ERR_VLMQ_INVALID_ARG', message: /an array for records/ });
});

const PINNED_SEED_42 = ['f', 'd', 'g', 'h', 'b', 'c', 'a', 'e'];
