// The built-in calibration set: byte-identical files for a seed, images that decode at their stated
// sizes, printable-ASCII texts whose facts are those of the data the picture was drawn from (and
// the SVG draws that data), balanced kinds, varied sizes, and an atomic write.
import t from 'tap';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  builtinRecords, generateBuiltinItems, writeBuiltinSet,
  type BarChartData, type BuiltinItem, type DocumentData, type LineChartData, type TableData,
} from '../../lib/demo/builtin-set.js';
import { readShareGPT4V } from '../../lib/data/calibration-set.js';

const ORDINAL = ['first', 'second', 'third', 'fourth', 'fifth', 'sixth', 'seventh', 'eighth', 'ninth', 'tenth'];
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const words = (s: string) => s.trim().split(/\s+/).length;
const argmax = (values: number[]) => values.indexOf(Math.max(...values));
const argmin = (values: number[]) => values.indexOf(Math.min(...values));

/** Every file under `dir` (relative path → bytes). */
async function files(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath ?? (entry as { path: string }).path, entry.name);
    out.set(path.slice(dir.length + 1), await readFile(path));
  }
  return out;
}

t.test('the same seed writes byte-identical JSON and PNGs; another seed writes different ones', async (t) => {
  const dir = t.testdir();
  const a = await writeBuiltinSet(join(dir, 'a'), { samples: 8, seed: 5 });
  await writeBuiltinSet(join(dir, 'b'), { samples: 8, seed: 5 });
  await writeBuiltinSet(join(dir, 'c'), { samples: 8, seed: 6 });
  t.same(a, { json: join(dir, 'a', 'calibration.json'), images: join(dir, 'a', 'images'), records: 8 });
  const [fa, fb, fc] = await Promise.all([files(join(dir, 'a')), files(join(dir, 'b')), files(join(dir, 'c'))]);
  t.same([...fa.keys()].sort(), ['calibration.json', ...Array.from({ length: 8 }, (_, i) => `images/000${i}.png`), 'vlmq-builtin.json']);
  for (const [name, bytes] of fa) t.ok(bytes.equals(fb.get(name)!), `${name} identical`);
  t.notOk(fa.get('calibration.json')!.equals(fc.get('calibration.json')!), 'another seed: other texts');
  const differing = [...fa.keys()].filter((name) => name.endsWith('.png') && !fa.get(name)!.equals(fc.get(name)!));
  t.ok(differing.length >= 6, `another seed: other pictures (${differing.length} of 8 differ)`);
  t.same(generateBuiltinItems({ samples: 8, seed: 5 }), generateBuiltinItems({ samples: 8, seed: 5 }), 'items are equal too');
});

t.test('every record has one image that exists and decodes as an RGB PNG of the size its item states', async (t) => {
  const dir = t.testdir();
  const options = { samples: 12, seed: 2 };
  const written = await writeBuiltinSet(join(dir, 'set'), options);
  const items = generateBuiltinItems(options);
  const records = await readShareGPT4V(written.json, { images: written.images });
  t.equal(records.length, 12);
  for (const [i, record] of records.entries()) {
    t.equal(record.id, items[i].id);
    t.same(record.images, [join(written.images, `${String(i).padStart(4, '0')}.png`)]);
    t.equal(record.prompt, items[i].prompt, 'prompt read back without the placeholder');
    t.equal(record.answer, items[i].answer);
    const meta = await sharp(record.images[0]).metadata();
    t.match(meta, { format: 'png', width: items[i].width, height: items[i].height, channels: 3 }, `${record.id} is ${items[i].width}x${items[i].height}`);
  }
});

t.test('sizes vary between 224 and 448 px, portrait and landscape, unless a size is given', async (t) => {
  const items = generateBuiltinItems({ samples: 48, seed: 0 });
  t.ok(items.every((item) => item.width >= 224 && item.width <= 448 && item.height >= 224 && item.height <= 448), 'within 224-448');
  t.ok(items.some((item) => item.width > item.height), 'some landscape');
  t.ok(items.some((item) => item.width < item.height), 'some portrait');
  t.ok(new Set(items.map((item) => `${item.width}x${item.height}`)).size >= 5, 'at least five sizes');
  const fixed = generateBuiltinItems({ samples: 8, seed: 0, width: 300, height: 200 });
  t.ok(fixed.every((item) => item.width === 300 && item.height === 200), 'fixed size');
  t.same(fixed.map((item) => item.data), generateBuiltinItems({ samples: 8, seed: 0 }).map((item) => item.data), 'a fixed size leaves the data as it was');
});

t.test('the default is 24 samples, every block of four holds each kind once, and a longer set extends a shorter one', async (t) => {
  const items = generateBuiltinItems();
  t.equal(items.length, 24);
  for (let b = 0; b < 24; b += 4) {
    t.same(items.slice(b, b + 4).map((item) => item.kind).sort(), ['bar-chart', 'document', 'line-chart', 'table'], `items ${b}-${b + 3}`);
  }
  t.same(generateBuiltinItems({ samples: 30, seed: 0 }).slice(0, 24), items);
  t.same(generateBuiltinItems({ samples: 5, seed: 0 }).map((item) => item.id), ['0000', '0001', '0002', '0003', '0004'].map((n) => `vlmq-builtin-${n}`));
});

t.test('every text is printable ASCII, every answer 20 to 80 words, and no picture uses <text>', async (t) => {
  const items = generateBuiltinItems({ samples: 400, seed: 11 });
  const bad: string[] = [];
  for (const item of items) {
    for (const text of [item.prompt, item.answer, item.caption]) {
      if (!/^[\x20-\x7e]+$/.test(text)) bad.push(`${item.id}: not printable ASCII: ${JSON.stringify(text)}`);
    }
    for (const text of [item.answer, item.caption]) if (words(text) < 20 || words(text) > 80) bad.push(`${item.id}: ${words(text)} words: ${text}`);
    if (/<text|<tspan|font/i.test(item.svg)) bad.push(`${item.id}: the SVG uses text`);
    if (!/^[\x20-\x7e\n]+$/.test(item.svg)) bad.push(`${item.id}: the SVG is not ASCII`);
  }
  t.same(bad, []);
  t.ok(new Set(items.map((item) => item.prompt)).size >= 12, 'prompts vary');
});

t.test('bar charts: the texts name the tallest and shortest bars of the data, and the SVG draws bars proportional to the values', async (t) => {
  const bars = generateBuiltinItems({ samples: 200, seed: 3 }).filter((item): item is BuiltinItem & { data: BarChartData } => item.kind === 'bar-chart');
  t.ok(bars.length >= 40);
  for (const item of bars) {
    const { values, orientation, colours, legend } = item.data;
    const vertical = orientation === 'vertical';
    t.ok(values.length >= 3 && values.length <= 8 && new Set(values).size === values.length && values.every((v) => Number.isInteger(v) && v >= 5 && v <= 100), `${item.id}: distinct values in [5, 100]`);
    const tallest = `The ${vertical ? 'tallest' : 'longest'} bar is the ${ORDINAL[argmax(values)]} one ${vertical ? 'from the left' : 'from the top'}, about ${Math.max(...values)} units ${vertical ? 'high' : 'long'}`;
    const shortest = `the shortest is the ${ORDINAL[argmin(values)]} one, about ${Math.min(...values)} units.`;
    t.ok(item.caption.startsWith(`A bar chart with ${values.length} ${orientation} bars`), `${item.id}: caption counts the bars`);
    t.ok(item.caption.includes(tallest) && item.caption.includes(shortest), `${item.id}: caption names the extremes`);
    t.ok(item.caption.includes(legend ? `a legend of ${values.length} coloured squares` : `All the bars are ${colours[0].name}.`), `${item.id}: colours`);
    if (/bar is the/i.test(item.answer)) t.ok(item.answer.includes(tallest.slice(4)) && item.answer.includes(shortest), `${item.id}: answer names the extremes`);
    const asked = /^What is the value of the (\w+) bar/.exec(item.prompt);
    if (asked) t.ok(item.answer.startsWith(`The ${asked[1]} bar ${vertical ? 'from the left' : 'from the top'} is about ${values[ORDINAL.indexOf(asked[1])]} units`), `${item.id}: the value asked for`);
    const counted = /^There are (\d+) bars/.exec(item.answer);
    if (counted) t.equal(Number(counted[1]), values.length, `${item.id}: the count`);

    // The bars are the first rects in a bar colour (the legend's squares come after them).
    const hexes = new Set(colours.map((c) => c.hex));
    const rects = [...item.svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="(#[0-9a-f]{6})"/g)]
      .filter((m) => hexes.has(m[5]))
      .slice(0, values.length);
    t.same(rects.map((m) => m[5]), colours.map((c) => c.hex), `${item.id}: one bar per value, in its colour`);
    const lengths = rects.map((m) => Number(vertical ? m[4] : m[3]));
    // lengths are rounded to 0.1 px: scaled from the longest bar, each is off by at most 0.05 + 0.05
    const longest = argmax(values);
    const scale = lengths[longest] / values[longest];
    t.ok(lengths.every((length, k) => Math.abs(length - values[k] * scale) <= 0.1 + 1e-9), `${item.id}: bar lengths proportional to the values`);
  }
});

t.test('line charts: the texts give each line its start, end and single peak, and the SVG draws one polyline per line', async (t) => {
  const charts = generateBuiltinItems({ samples: 200, seed: 4 }).filter((item): item is BuiltinItem & { data: LineChartData } => item.kind === 'line-chart');
  t.ok(charts.length >= 40);
  for (const item of charts) {
    const { points, series } = item.data;
    t.ok(series.length >= 1 && series.length <= 3 && points >= 5 && points <= 10, `${item.id}: sizes`);
    for (const { colour, values } of series) {
      const max = Math.max(...values);
      t.ok(values.length === points && values.filter((v) => v === max).length === 1, `${item.id}: ${colour.name} has one peak`);
      const fact = `The ${colour.name} line goes from about ${values[0]} to about ${values[points - 1]}, peaking at ${max} at point ${argmax(values) + 1}.`;
      t.ok(item.caption.includes(fact), `${item.id}: caption: ${fact}`);
      if (item.prompt === `Where does the ${colour.name} line reach its highest value?`) {
        t.ok(item.answer.startsWith(`The ${colour.name} line reaches its highest value, about ${max}, at point ${argmax(values) + 1} of ${points}.`), `${item.id}: the peak asked for`);
      }
    }
    t.equal(item.svg.split('<polyline').length - 1, series.length, `${item.id}: polylines`);
    t.equal(item.svg.split('<circle').length - 1, series.length * points, `${item.id}: one marker per point`);
  }
});

t.test('tables: exactly one darkest and one lightest cell, named by row and column in the texts', async (t) => {
  const tables = generateBuiltinItems({ samples: 200, seed: 5 }).filter((item): item is BuiltinItem & { data: TableData } => item.kind === 'table');
  t.ok(tables.length >= 40);
  for (const item of tables) {
    const { rows, columns, levels } = item.data;
    const flat = levels.flat();
    t.ok(levels.length === rows && levels.every((row) => row.length === columns), `${item.id}: ${rows}x${columns} levels`);
    t.ok(flat.filter((v) => v === 9).length === 1 && flat.filter((v) => v === 0).length === 1, `${item.id}: one 9 and one 0`);
    const at = (index: number) => `row ${Math.floor(index / columns) + 1}, column ${(index % columns) + 1}`;
    const fact = `The darkest cell is in ${at(flat.indexOf(9))}, and the lightest is in ${at(flat.indexOf(0))}.`;
    t.ok(item.caption.startsWith(`A table with ${rows} rows and ${columns} columns under a ${item.data.header.name} header row.`), `${item.id}: caption counts`);
    t.ok(item.caption.includes(fact), `${item.id}: caption: ${fact}`);
    t.ok(item.caption.includes(`${flat.filter((v) => v >= 5).length} of the ${rows * columns} cells are in the darker half`), `${item.id}: darker half`);
    if (item.answer.includes('darkest')) t.ok(item.answer.includes(fact), `${item.id}: answer extremes`);
    const counted = /The table has (\d+) (rows|columns) and (\d+) (rows|columns)/.exec(item.answer);
    if (counted) {
      const count = { [counted[2]]: Number(counted[1]), [counted[4]]: Number(counted[3]) };
      t.same(count, { rows, columns }, `${item.id}: answer counts`);
    }
    // header + rows x columns cells (+ the page background and the header labels)
    t.equal(item.svg.split('<rect').length - 1, 1 + 1 + columns + rows * columns + 1, `${item.id}: rects`);
  }
});

t.test('documents: paragraph and line counts and the figure in the texts are those of the data', async (t) => {
  const pages = generateBuiltinItems({ samples: 200, seed: 6 }).filter((item): item is BuiltinItem & { data: DocumentData } => item.kind === 'document');
  t.ok(pages.length >= 40);
  for (const item of pages) {
    const { paragraphs, figure, title } = item.data;
    t.ok(paragraphs.length >= 2 && paragraphs.length <= 4 && figure.after >= 1 && figure.after <= paragraphs.length, `${item.id}: layout`);
    const lines = paragraphs.length === 2 ? `${paragraphs[0]} and ${paragraphs[1]}` : `${paragraphs.slice(0, -1).join(', ')} and ${paragraphs[paragraphs.length - 1]}`;
    const shape = figure.shape === 'bars' ? `small ${figure.colour.name} bar chart` : `${figure.colour.name} ${figure.shape}`;
    t.ok(item.caption.includes(`${title.name} title bar and ${paragraphs.length} paragraphs of text, with ${lines} lines.`), `${item.id}: caption paragraphs`);
    t.match(item.caption, new RegExp(`showing an? ${escape(shape)} sits after the ${ORDINAL[figure.after - 1]} paragraph\\.`), `${item.id}: caption figure`);
    if (item.prompt === 'How many paragraphs does this page have?') t.ok(item.answer.startsWith(`The page has ${paragraphs.length} paragraphs, with ${lines} lines of text.`), `${item.id}: answer`);
    if (item.prompt === 'What is shown in the figure on this page?') t.match(item.answer, new RegExp(`^The figure shows an? ${escape(shape)} .* after the ${ORDINAL[figure.after - 1]} of the ${paragraphs.length} paragraphs`), `${item.id}: answer`);
    const text = item.svg.split('fill="#9a9a9a"').length - 1;
    t.equal(text, paragraphs.reduce((a, b) => a + b, 0) + 1, `${item.id}: one grey bar per text line, plus the figure caption`);
  }
});

t.test('the write is atomic: no temporary directory is left, and only empty dirs or earlier sets are replaced', async (t) => {
  const dir = t.testdir({ foreign: { 'notes.txt': 'mine' }, 'a-file': 'x', empty: {} });
  await writeBuiltinSet(join(dir, 'set'), { samples: 4, seed: 1 });
  await writeBuiltinSet(join(dir, 'set'), { samples: 6, seed: 2 });
  t.equal((await readdir(join(dir, 'set', 'images'))).length, 6, 'the second write replaced the first');
  t.same(JSON.parse(await readFile(join(dir, 'set', 'vlmq-builtin.json'), 'utf8')), { format: 'vlmq-builtin', version: 1, samples: 6, seed: 2, width: null, height: null });
  await writeBuiltinSet(join(dir, 'empty'), { samples: 1 });
  await writeBuiltinSet(join(dir, 'new', 'nested'), { samples: 1 });

  await t.rejects(writeBuiltinSet(join(dir, 'foreign'), { samples: 2 }), { code: 'ERR_VLMQ_BAD_FILE', message: /foreign: exists, is not empty and is not a built-in calibration set/ });
  t.same(await readdir(join(dir, 'foreign')), ['notes.txt'], 'a foreign directory is left alone');
  await t.rejects(writeBuiltinSet(join(dir, 'a-file'), { samples: 2 }), { code: 'ERR_VLMQ_BAD_FILE', message: /a-file: exists and is not a directory$/ });
  t.same((await readdir(dir)).sort(), ['a-file', 'empty', 'foreign', 'new', 'set'], 'no temporary or old directories left');
  t.same(await readdir(join(dir, 'new')), ['nested']);
});

t.test('bad options are rejected before anything is written', async (t) => {
  const dir = t.testdir();
  for (const [options, pattern] of [
    [{ samples: 0 }, /integer in \[1, 100000\] for samples but received 0/],
    [{ samples: 2.5 }, /for samples but received 2.5/],
    [{ seed: 0.5 }, /a safe integer for seed but received 0.5/],
    [{ width: 10 }, /integer in \[64, 2048\] \(or undefined for varied sizes\) for width but received 10/],
    [{ height: 4096 }, /for height but received 4096/],
  ] as const) {
    await t.rejects(writeBuiltinSet(join(dir, 'set'), options), { code: 'ERR_VLMQ_INVALID_ARG', message: pattern });
    t.throws(() => generateBuiltinItems(options), { code: 'ERR_VLMQ_INVALID_ARG' });
  }
  t.same(await readdir(dir), []);
});

t.test('builtinRecords writes the set when needed, reuses it for the same options and rewrites it for others', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const first = await builtinRecords(dir, { samples: 4, seed: 9 });
  t.equal(first.length, 4);
  t.same(first.map((r) => r.answer), generateBuiltinItems({ samples: 4, seed: 9 }).map((item) => item.answer));
  const written = (await stat(join(dir, 'calibration.json'))).mtimeMs;
  await new Promise((done) => setTimeout(done, 20));
  t.same(await builtinRecords(dir, { samples: 4, seed: 9 }), first, 'same records');
  t.equal((await stat(join(dir, 'calibration.json'))).mtimeMs, written, 'not written again');
  const other = await builtinRecords(dir, { samples: 3, seed: 10 });
  t.same(other.map((r) => r.answer), generateBuiltinItems({ samples: 3, seed: 10 }).map((item) => item.answer), 'other options: written again');

  await writeFile(join(dir, 'images', '0001.png'), 'damaged');
  await writeFile(join(dir, 'calibration.json'), '[');
  t.same(await builtinRecords(dir, { samples: 3, seed: 10 }), other, 'a damaged set is written again');
});
