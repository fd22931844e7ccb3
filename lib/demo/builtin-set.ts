// The built-in default calibration set: document-, chart- and table-like pictures that vlmq draws
// itself (no download, no license), each with an English text derived from the same data the picture
// shows, written in the ShareGPT4V shape (docs/formats.md §5.2) so it goes through the same reader
// as a user's set.
//
// Kinds (every block of four consecutive items holds each kind once, in seeded order):
//  - bar chart: 3–8 bars (vertical or horizontal) with distinct values in [5, 100] on a 0–100
//    scale with grid lines; one colour, or one colour per bar plus a legend of coloured squares;
//  - line chart: 1–3 lines over 5–10 points, each with a single highest point; a legend when there
//    is more than one line;
//  - table: a coloured header row over 3–7 rows × 2–6 columns of cells shaded by a level 0–9,
//    exactly one cell at the darkest level and one at the lightest;
//  - document: a coloured title bar, 2–4 paragraphs of 2–5 lines, and a framed figure (a circle,
//    a triangle or a small bar chart) after one of the paragraphs.
// Words are drawn as grey bars and everything is a shape: SVG <text> would depend on the fonts of
// the machine (and CI may have none), while shapes render the same everywhere, so the same seed
// gives byte-identical PNGs. Coordinates are rounded to 0.1 px before they reach the SVG.
//
// The text pairs a prompt (a request for a description, or a question the data answers) with an
// answer of a few sentences (20–80 words), printable ASCII only (the tiny test tokenizer has no
// other letters). Sizes vary between 224 and 448 px and between portrait and landscape, because
// the image processors must see more than one shape.

import { mkdir, readFile, rm, stat, readdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { readShareGPT4V, type CalibrationRecord } from '../data/calibration-set.js';
import { fileError, invalidParameterError, VlmqError } from '../errors.js';
import { markPartial, moveIntoPlace, temporarySibling } from '../io/move-into-place.js';
import { Random } from '../random.js';

export interface BuiltinSetOptions {
  /** Number of image–text pairs (integer in [1, 100000]; default 24). */
  samples?: number;
  /** Any safe integer (default 0); equal options give identical JSON and PNG bytes. */
  seed?: number;
  /** Width of every image in px (integer in [64, 2048]); default: varied, 224–448. */
  width?: number;
  /** Height of every image in px (integer in [64, 2048]); default: varied, 224–448. */
  height?: number;
}

export const BUILTIN_DEFAULTS = { samples: 24, seed: 0 } as const;

/** Bumped whenever the same options would give different pictures or texts. */
export const BUILTIN_VERSION = 1;

/** Sizes [width, height] drawn from when no size is given: landscape, portrait and square. */
export const BUILTIN_SIZES: ReadonlyArray<readonly [number, number]> = [
  [336, 224], [224, 336], [448, 280], [280, 448], [224, 224], [336, 336], [448, 336], [336, 448], [320, 240], [448, 448],
];

export type BuiltinKind = 'bar-chart' | 'line-chart' | 'table' | 'document';
export const BUILTIN_KINDS: readonly BuiltinKind[] = ['bar-chart', 'line-chart', 'table', 'document'];

/** A colour with the English name the texts use for it. */
export interface NamedColour {
  name: string;
  hex: string;
}

export interface BarChartData {
  orientation: 'vertical' | 'horizontal';
  /** Bar values (distinct integers in [5, 100]), left to right or top to bottom. */
  values: number[];
  /** Colour of each bar. */
  colours: NamedColour[];
  /** True when every bar has its own colour and a legend of coloured squares is drawn. */
  legend: boolean;
}

export interface LineChartData {
  /** Number of points along the x axis (every line has one value per point). */
  points: number;
  /** Values are integers in [5, 95]; each line's maximum occurs once. */
  series: Array<{ colour: NamedColour; values: number[] }>;
  legend: boolean;
}

export interface TableData {
  rows: number;
  columns: number;
  /** Shade level of each cell, [row][column], integers 0 (lightest) … 9 (darkest); one 9 and one 0. */
  levels: number[][];
  header: NamedColour;
}

export type FigureShape = 'circle' | 'triangle' | 'bars';

export interface DocumentData {
  title: NamedColour;
  /** Number of text lines of each paragraph, top to bottom. */
  paragraphs: number[];
  figure: { shape: FigureShape; colour: NamedColour; /** 1-based: the figure follows this paragraph */ after: number };
}

interface BuiltinItemBase {
  /** "vlmq-builtin-NNNN" (NNNN is the index, also the image's file name). */
  id: string;
  width: number;
  height: number;
  /** The picture, shapes only. */
  svg: string;
  /** A description of the whole picture (the answer to the "describe" prompts). */
  caption: string;
  /** The user's turn, without an image placeholder. */
  prompt: string;
  /** The assistant's turn. */
  answer: string;
}

export type BuiltinItem = BuiltinItemBase &
  (
    | { kind: 'bar-chart'; data: BarChartData }
    | { kind: 'line-chart'; data: LineChartData }
    | { kind: 'table'; data: TableData }
    | { kind: 'document'; data: DocumentData }
  );

/** The file holding the options a directory was written with (written last, read to reuse it). */
export const BUILTIN_STAMP = 'vlmq-builtin.json';

/**
 * The items of the built-in set, before rendering: the data each picture shows, its SVG and its
 * texts. Item i does not depend on `samples` (a longer set extends a shorter one).
 */
export function generateBuiltinItems(options: BuiltinSetOptions = {}): BuiltinItem[] {
  const o = checkOptions(options);
  const rng = new Random(o.seed);
  const items: BuiltinItem[] = [];
  let block: BuiltinKind[] = [];
  for (let i = 0; i < o.samples; i++) {
    if (block.length === 0) block = shuffle(rng, BUILTIN_KINDS.slice());
    const kind = block.shift()!;
    const size = pick(rng, BUILTIN_SIZES);
    const width = o.width ?? size[0];
    const height = o.height ?? size[1];
    const background = pick(rng, BACKGROUNDS);
    const id = `vlmq-builtin-${imageName(i).slice(0, -4)}`;
    const base = { id, width, height, background };
    if (kind === 'bar-chart') items.push(barChart(rng, base));
    else if (kind === 'line-chart') items.push(lineChart(rng, base));
    else if (kind === 'table') items.push(table(rng, base));
    else items.push(documentPage(rng, base));
  }
  return items;
}

/**
 * Writes the built-in set: `dir/calibration.json` (ShareGPT4V; `image` relative to `dir/images`),
 * `dir/images/NNNN.png` and `dir/vlmq-builtin.json` (the options). Everything is written into a
 * temporary sibling directory that is renamed to `dir` only when complete. An existing `dir` is
 * replaced only when it is empty or an earlier built-in set (it has the stamp file).
 */
export async function writeBuiltinSet(dir: string, options: BuiltinSetOptions = {}): Promise<{ json: string; images: string; records: number }> {
  if (typeof dir !== 'string' || dir === '') throw invalidParameterError('dir', 'a non-empty directory path', dir);
  const o = checkOptions(options);
  const destination = resolve(dir);
  await checkDestination(destination);
  const items = generateBuiltinItems(o);

  await mkdir(dirname(destination), { recursive: true });
  const temporary = temporarySibling(destination);
  await mkdir(temporary);
  try {
    await markPartial(temporary);
    await mkdir(join(temporary, 'images'));
    await renderAll(items, join(temporary, 'images'));
    const records = items.map((item, i) => ({
      id: item.id,
      image: imageName(i),
      conversations: [
        { from: 'human', value: `<image>\n${item.prompt}` },
        { from: 'gpt', value: item.answer },
      ],
    }));
    await writeFile(join(temporary, 'calibration.json'), `${JSON.stringify(records, null, 1)}\n`);
    await writeFile(join(temporary, BUILTIN_STAMP), `${JSON.stringify(stamp(o), null, 2)}\n`);
    await moveIntoPlace(temporary, destination);
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw error;
  }
  return { json: join(destination, 'calibration.json'), images: join(destination, 'images'), records: items.length };
}

/**
 * The built-in set as calibration records: reuses `dir` when it holds a set written with the same
 * options (and generator version), else writes it; then reads it back through readShareGPT4V.
 */
export async function builtinRecords(dir: string, options: BuiltinSetOptions = {}): Promise<CalibrationRecord[]> {
  if (typeof dir !== 'string' || dir === '') throw invalidParameterError('dir', 'a non-empty directory path', dir);
  const o = checkOptions(options);
  const destination = resolve(dir);
  const paths = { json: join(destination, 'calibration.json'), images: join(destination, 'images') };
  if (await hasStamp(destination, o)) {
    try {
      return await readShareGPT4V(paths.json, { images: paths.images });
    } catch (error) {
      if (!(error instanceof VlmqError)) throw error;
      // a damaged earlier set: written again below
    }
  }
  const written = await writeBuiltinSet(destination, o);
  return readShareGPT4V(written.json, { images: written.images });
}

// --- options and files -----------------------------------------------------------------------

interface CheckedOptions {
  samples: number;
  seed: number;
  width: number | undefined;
  height: number | undefined;
}

function checkOptions(options: BuiltinSetOptions): CheckedOptions {
  if (typeof options !== 'object' || options === null) throw invalidParameterError('options', 'an object', options);
  const samples = options.samples ?? BUILTIN_DEFAULTS.samples;
  if (!Number.isSafeInteger(samples) || samples < 1 || samples > 100000) throw invalidParameterError('samples', 'an integer in [1, 100000]', samples);
  const seed = options.seed ?? BUILTIN_DEFAULTS.seed;
  if (!Number.isSafeInteger(seed)) throw invalidParameterError('seed', 'a safe integer', seed);
  const side = (name: 'width' | 'height', value: unknown) => {
    if (value !== undefined && (!Number.isSafeInteger(value) || (value as number) < 64 || (value as number) > 2048)) {
      throw invalidParameterError(name, 'an integer in [64, 2048] (or undefined for varied sizes)', value);
    }
    return value as number | undefined;
  };
  return { samples, seed, width: side('width', options.width), height: side('height', options.height) };
}

function stamp(o: CheckedOptions) {
  return { format: 'vlmq-builtin', version: BUILTIN_VERSION, samples: o.samples, seed: o.seed, width: o.width ?? null, height: o.height ?? null };
}

async function hasStamp(destination: string, o: CheckedOptions): Promise<boolean> {
  const text = await readFile(join(destination, BUILTIN_STAMP), 'utf8').catch(() => null);
  if (text === null) return false;
  try {
    return JSON.stringify(JSON.parse(text)) === JSON.stringify(stamp(o));
  } catch {
    return false;
  }
}

/** `destination` may be absent, an empty directory or an earlier built-in set; nothing else is replaced. */
async function checkDestination(destination: string): Promise<void> {
  const existing = await stat(destination).catch(() => null);
  if (!existing) return;
  if (!existing.isDirectory()) throw fileError(destination, 'exists and is not a directory');
  const entries = await readdir(destination);
  if (entries.length > 0 && !entries.includes(BUILTIN_STAMP)) {
    throw fileError(destination, `exists, is not empty and is not a built-in calibration set (no ${BUILTIN_STAMP}); refusing to replace it`);
  }
}


function imageName(index: number): string {
  return `${String(index).padStart(4, '0')}.png`;
}

/** Renders every SVG to an opaque RGB PNG, a few at a time (libvips uses threads inside each). */
async function renderAll(items: readonly BuiltinItem[], directory: string): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await sharp(Buffer.from(items[i].svg)).flatten({ background: '#ffffff' }).png().toFile(join(directory, imageName(i)));
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, items.length) }, worker));
}

// --- random choices --------------------------------------------------------------------------

/** Integer in [lo, hi]. */
function int(rng: Random, lo: number, hi: number): number {
  return lo + Math.floor(rng.uniform() * (hi - lo + 1));
}

function pick<T>(rng: Random, list: readonly T[]): T {
  return list[Math.floor(rng.uniform() * list.length)];
}

function shuffle<T>(rng: Random, list: T[]): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}

/** `count` distinct integers in [lo, hi], in random order. */
function distinct(rng: Random, count: number, lo: number, hi: number): number[] {
  const all = Array.from({ length: hi - lo + 1 }, (_, k) => lo + k);
  return shuffle(rng, all).slice(0, count);
}

// --- drawing ---------------------------------------------------------------------------------

const PALETTE: readonly NamedColour[] = [
  { name: 'blue', hex: '#1f77b4' }, { name: 'orange', hex: '#ff7f0e' }, { name: 'green', hex: '#2ca02c' },
  { name: 'red', hex: '#d62728' }, { name: 'purple', hex: '#9467bd' }, { name: 'brown', hex: '#8c564b' },
  { name: 'pink', hex: '#e377c2' }, { name: 'olive', hex: '#bcbd22' }, { name: 'teal', hex: '#17becf' },
];
const HEADERS: readonly NamedColour[] = [
  { name: 'dark blue', hex: '#1f3a5f' }, { name: 'dark green', hex: '#1e5631' }, { name: 'dark red', hex: '#7a1f1f' }, { name: 'dark grey', hex: '#3c3c3c' },
];
const BACKGROUNDS = ['#ffffff', '#fbfaf6', '#f7f9fc'] as const;
const INK = '#222222';
const GRID = '#dddddd';
const WORD = '#9a9a9a';

/** A number for the SVG: rounded to 0.1 so that the text is the same on every platform. */
function n(x: number): string {
  return String(Math.round(x * 10) / 10);
}

function rect(x: number, y: number, w: number, h: number, fill: string, extra = ''): string {
  return `<rect x="${n(x)}" y="${n(y)}" width="${n(w)}" height="${n(h)}" fill="${fill}"${extra}/>`;
}

function line(x1: number, y1: number, x2: number, y2: number, stroke: string, width: number): string {
  return `<line x1="${n(x1)}" y1="${n(y1)}" x2="${n(x2)}" y2="${n(y2)}" stroke="${stroke}" stroke-width="${n(width)}"/>`;
}

function svgDocument(width: number, height: number, background: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    rect(0, 0, width, height, background),
    ...body,
    '</svg>',
  ].join('\n');
}

/** A legend: one coloured square per entry, each followed by a grey "word". */
function legend(rng: Random, colours: readonly NamedColour[], x: number, y: number, width: number, height: number): string[] {
  const row = Math.min(height / colours.length, 22);
  const square = Math.max(6, Math.min(row * 0.6, 14));
  return colours.flatMap((colour, k) => {
    const cy = y + row * k;
    return [rect(x, cy, square, square, colour.hex), rect(x + square * 1.6, cy + square * 0.3, (width - square * 1.6) * (0.5 + 0.5 * rng.uniform()), square * 0.4, WORD)];
  });
}

/** Plot frame: grid lines every 20 units of a 0–100 scale, tick marks, grey tick "labels", axes. */
function valueAxis(box: Box, vertical: boolean): string[] {
  const out: string[] = [];
  for (let v = 0; v <= 100; v += 20) {
    if (vertical) {
      const y = box.y1 - (v / 100) * (box.y1 - box.y0);
      if (v > 0) out.push(line(box.x0, y, box.x1, y, GRID, 1));
      out.push(line(box.x0 - 4, y, box.x0, y, INK, 1), rect(box.x0 - 8 - box.label, y - 1.5, box.label, 3, WORD));
    } else {
      const x = box.x0 + (v / 100) * (box.x1 - box.x0);
      if (v > 0) out.push(line(x, box.y0, x, box.y1, GRID, 1));
      out.push(line(x, box.y1, x, box.y1 + 4, INK, 1), rect(x - box.label / 2, box.y1 + 7, box.label, 3, WORD));
    }
  }
  return out;
}

interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** length of a grey tick label */
  label: number;
}

interface ItemBase {
  id: string;
  width: number;
  height: number;
  background: string;
}

function barChart(rng: Random, base: ItemBase): BuiltinItem {
  const { width: W, height: H } = base;
  const count = int(rng, 3, 8);
  const orientation = rng.uniform() < 0.6 ? 'vertical' : 'horizontal';
  const values = distinct(rng, count, 5, 100);
  const hasLegend = rng.uniform() < 0.5;
  const colours = hasLegend ? shuffle(rng, PALETTE.slice()).slice(0, count) : Array<NamedColour>(count).fill(pick(rng, PALETTE));
  const data: BarChartData = { orientation, values, colours, legend: hasLegend };

  const right = hasLegend ? W * 0.74 : W * 0.95;
  const box: Box = { x0: W * 0.14, y0: H * 0.08, x1: right, y1: H * 0.86, label: W * 0.05 };
  const body = valueAxis(box, orientation === 'vertical');
  const slot = (orientation === 'vertical' ? box.x1 - box.x0 : box.y1 - box.y0) / count;
  values.forEach((v, k) => {
    if (orientation === 'vertical') {
      const h = (v / 100) * (box.y1 - box.y0);
      const x = box.x0 + slot * (k + 0.2);
      body.push(rect(x, box.y1 - h, slot * 0.6, h, colours[k].hex), rect(x + slot * 0.1, box.y1 + 7, slot * 0.4, 3, WORD));
    } else {
      const w = (v / 100) * (box.x1 - box.x0);
      const y = box.y0 + slot * (k + 0.2);
      body.push(rect(box.x0, y, w, slot * 0.6, colours[k].hex), rect(box.x0 - 8 - box.label, y + slot * 0.3 - 1.5, box.label, 3, WORD));
    }
  });
  body.push(line(box.x0, box.y0, box.x0, box.y1, INK, 2), line(box.x0, box.y1, box.x1, box.y1, INK, 2));
  if (hasLegend) body.push(...legend(rng, colours, W * 0.79, H * 0.1, W * 0.18, H * 0.8));

  const t = barTexts(data);
  const prompts: Array<[string, string]> = [
    ['Describe this image in detail.', t.caption],
    ['What does this chart show?', t.caption],
    [`Which bar is the ${t.tallest} in this chart?`, `${t.extremes} The chart has ${count} bars on a scale from 0 to 100.`],
    ['How many bars are there in this chart?', `There are ${count} bars in this chart. ${t.extremes} ${t.colours}`],
  ];
  const k = int(rng, 0, count - 1);
  prompts.push([
    `What is the value of the ${ordinal(k)} bar ${t.from}?`,
    `The ${ordinal(k)} bar ${t.from} is about ${values[k]} units ${t.high}. For comparison, ${lowerFirst(t.extremes)}`,
  ]);
  const [prompt, answer] = pick(rng, prompts);
  return { ...itemBase(base, body), kind: 'bar-chart', data, caption: t.caption, prompt, answer };
}

function barTexts(data: BarChartData) {
  const { values, orientation } = data;
  const vertical = orientation === 'vertical';
  const tallest = vertical ? 'tallest' : 'longest';
  const from = vertical ? 'from the left' : 'from the top';
  const high = vertical ? 'high' : 'long';
  const max = Math.max(...values);
  const min = Math.min(...values);
  const extremes =
    `The ${tallest} bar is the ${ordinal(values.indexOf(max))} one ${from}, about ${max} units ${high}; ` +
    `the shortest is the ${ordinal(values.indexOf(min))} one, about ${min} units.`;
  const colours = data.legend
    ? `Each bar has its own colour, and a legend of ${values.length} coloured squares sits on the right.`
    : `All the bars are ${data.colours[0].name}.`;
  const along = vertical ? 'from left to right' : 'from top to bottom';
  const rising = values.every((v, k) => k === 0 || v > values[k - 1]);
  const falling = values.every((v, k) => k === 0 || v < values[k - 1]);
  const trend = rising
    ? `The values rise steadily ${along}.`
    : falling
      ? `The values fall steadily ${along}.`
      : `Together the values add up to ${values.reduce((a, b) => a + b, 0)} units.`;
  const caption = `A bar chart with ${values.length} ${orientation} bars on a scale from 0 to 100. ${extremes} ${colours} ${trend}`;
  return { tallest, from, high, extremes, colours, caption };
}

function lineChart(rng: Random, base: ItemBase): BuiltinItem {
  const { width: W, height: H } = base;
  const points = int(rng, 5, 10);
  const lines = int(rng, 1, 3);
  const colours = shuffle(rng, PALETTE.slice()).slice(0, lines);
  const series = colours.map((colour) => {
    // a random walk in [5, 94]; then the first maximum is raised by one so it occurs once
    const values = [int(rng, 10, 90)];
    while (values.length < points) {
      const step = int(rng, -18, 18);
      values.push(Math.max(5, Math.min(94, values[values.length - 1] + step)));
    }
    const max = Math.max(...values);
    if (values.indexOf(max) !== values.lastIndexOf(max)) values[values.indexOf(max)] = max + 1;
    return { colour, values };
  });
  const hasLegend = lines > 1;
  const data: LineChartData = { points, series, legend: hasLegend };

  const box: Box = { x0: W * 0.14, y0: H * 0.08, x1: hasLegend ? W * 0.74 : W * 0.95, y1: H * 0.86, label: W * 0.05 };
  const body = valueAxis(box, true);
  const x = (p: number) => box.x0 + (box.x1 - box.x0) * (0.05 + (0.9 * p) / (points - 1));
  const y = (v: number) => box.y1 - (v / 100) * (box.y1 - box.y0);
  for (let p = 0; p < points; p++) body.push(line(x(p), box.y1, x(p), box.y1 + 4, INK, 1));
  for (const { colour, values } of series) {
    const path = values.map((v, p) => `${n(x(p))},${n(y(v))}`).join(' ');
    body.push(`<polyline points="${path}" fill="none" stroke="${colour.hex}" stroke-width="2.5" stroke-linejoin="round"/>`);
    values.forEach((v, p) => body.push(`<circle cx="${n(x(p))}" cy="${n(y(v))}" r="3" fill="${colour.hex}"/>`));
  }
  body.push(line(box.x0, box.y0, box.x0, box.y1, INK, 2), line(box.x0, box.y1, box.x1, box.y1, INK, 2));
  if (hasLegend) body.push(...legend(rng, colours, W * 0.79, H * 0.1, W * 0.18, H * 0.8));

  const describe = (s: LineChartData['series'][number]) => {
    const max = Math.max(...s.values);
    return `The ${s.colour.name} line goes from about ${s.values[0]} to about ${s.values[points - 1]}, peaking at ${max} at point ${s.values.indexOf(max) + 1}.`;
  };
  const trend = (values: number[]) => {
    const change = values[points - 1] - values[0];
    return change > 5 ? 'rises' : change < -5 ? 'falls' : 'ends close to where it starts';
  };
  const lineCount = lines === 1 ? 'one line' : `${lines} lines`;
  const caption = [
    `A line chart with ${lineCount} across ${points} points on a scale from 0 to 100.`,
    ...series.map(describe),
    hasLegend ? `A legend of ${lines} coloured squares names the lines.` : `Overall the line ${trend(series[0].values)}.`,
  ].join(' ');
  const s = pick(rng, series);
  const max = Math.max(...s.values);
  const prompts: Array<[string, string]> = [
    ['Describe this image in detail.', caption],
    ['What does this chart show?', caption],
    [
      `Where does the ${s.colour.name} line reach its highest value?`,
      `The ${s.colour.name} line reaches its highest value, about ${max}, at point ${s.values.indexOf(max) + 1} of ${points}. ` +
        `It starts at about ${s.values[0]} and ends at about ${s.values[points - 1]}, so overall it ${trend(s.values)}.`,
    ],
    [
      'How many lines does this chart have?',
      [`The chart has ${lineCount}, coloured ${englishList(colours.map((c) => c.name))}.`, ...series.map(describe)].join(' '),
    ],
  ];
  const [prompt, answer] = pick(rng, prompts);
  return { ...itemBase(base, body), kind: 'line-chart', data, caption, prompt, answer };
}

/** Shade of level 0 (near white) … 9 (dark blue). */
function shade(level: number): string {
  const light = [247, 251, 255];
  const dark = [8, 48, 107];
  return `#${light.map((l, c) => Math.round(l + ((dark[c] - l) * level) / 9).toString(16).padStart(2, '0')).join('')}`;
}

function table(rng: Random, base: ItemBase): BuiltinItem {
  const { width: W, height: H } = base;
  const rows = int(rng, 3, 7);
  const columns = int(rng, 2, 6);
  const levels = Array.from({ length: rows }, () => Array.from({ length: columns }, () => int(rng, 1, 8)));
  const [darkest, lightest] = distinct(rng, 2, 0, rows * columns - 1);
  levels[Math.floor(darkest / columns)][darkest % columns] = 9;
  levels[Math.floor(lightest / columns)][lightest % columns] = 0;
  const header = pick(rng, HEADERS);
  const data: TableData = { rows, columns, levels, header };

  const x0 = W * 0.06;
  const y0 = H * 0.06;
  const cw = (W * 0.88) / columns;
  const ch = (H * 0.88) / (rows + 1);
  const body: string[] = [rect(x0, y0, cw * columns, ch, header.hex)];
  for (let c = 0; c < columns; c++) {
    body.push(rect(x0 + cw * (c + 0.15), y0 + ch * 0.42, cw * (0.35 + 0.4 * rng.uniform()), Math.max(2, ch * 0.16), '#ffffff'));
  }
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) body.push(rect(x0 + cw * c, y0 + ch * (r + 1), cw, ch, shade(levels[r][c])));
  }
  for (let r = 1; r <= rows; r++) body.push(line(x0, y0 + ch * r, x0 + cw * columns, y0 + ch * r, '#888888', 1));
  for (let c = 1; c < columns; c++) body.push(line(x0 + cw * c, y0, x0 + cw * c, y0 + ch * (rows + 1), '#888888', 1));
  body.push(rect(x0, y0, cw * columns, ch * (rows + 1), 'none', ` stroke="#444444" stroke-width="1.5"`));

  const cell = (index: number) => `row ${Math.floor(index / columns) + 1}, column ${(index % columns) + 1}`;
  const dark = levels.flat().filter((level) => level >= 5).length;
  const extremes = `The darkest cell is in ${cell(darkest)}, and the lightest is in ${cell(lightest)}.`;
  const caption =
    `A table with ${rows} rows and ${columns} columns under a ${header.name} header row. ` +
    `Each cell is shaded by its value, from light to dark blue. ${extremes} ` +
    `${dark} of the ${rows * columns} cells are in the darker half of the scale.`;
  const prompts: Array<[string, string]> = [
    ['Describe this image in detail.', caption],
    ['What is shown in this image?', caption],
    ['How many rows does the table have?', `The table has ${rows} rows and ${columns} columns, plus a ${header.name} header row at the top. ${extremes}`],
    ['Which cell of the table is the darkest?', `${extremes} The table has ${rows} rows and ${columns} columns below its ${header.name} header.`],
    [
      'How many columns does the table have?',
      `The table has ${columns} columns and ${rows} rows below a ${header.name} header row. ` +
        `Its cells are shaded from light to dark blue by value, and ${dark} of the ${rows * columns} cells are in the darker half.`,
    ],
  ];
  const [prompt, answer] = pick(rng, prompts);
  return { ...itemBase(base, body), kind: 'table', data, caption, prompt, answer };
}

function documentPage(rng: Random, base: ItemBase): BuiltinItem {
  const { width: W, height: H } = base;
  const title = pick(rng, PALETTE);
  const paragraphs = Array.from({ length: int(rng, 2, 4) }, () => int(rng, 2, 5));
  const figure = { shape: pick(rng, ['circle', 'triangle', 'bars'] as const), colour: pick(rng, PALETTE), after: int(rng, 1, paragraphs.length) };
  const data: DocumentData = { title, paragraphs, figure };

  // Heights in units u: title 1.8, gap 0.8, a text line 1, between paragraphs 0.7, figure 5 + caption 1.
  const lineCount = paragraphs.reduce((a, b) => a + b, 0);
  const units = 1.8 + 0.8 + lineCount + 0.7 * (paragraphs.length - 1) + 0.7 + 5 + 1 + 0.7;
  const mx = W * 0.08;
  const my = H * 0.06;
  const u = (H - 2 * my) / units;
  const inner = W - 2 * mx;
  const body: string[] = [
    rect(mx * 0.5, my * 0.5, W - mx, H - my, '#ffffff', ' stroke="#cccccc" stroke-width="1"'),
    rect(mx, my, inner, 1.8 * u, title.hex),
    rect(mx + inner * 0.05, my + 0.65 * u, inner * (0.35 + 0.3 * rng.uniform()), 0.5 * u, '#ffffff'),
  ];
  let y = my + 2.6 * u;
  paragraphs.forEach((count, p) => {
    if (p > 0) y += 0.7 * u;
    for (let k = 0; k < count; k++) {
      const length = k === count - 1 ? 0.3 + 0.5 * rng.uniform() : 0.92 + 0.08 * rng.uniform();
      body.push(rect(mx, y + 0.25 * u, inner * length, 0.45 * u, WORD));
      y += u;
    }
    if (p + 1 === figure.after) {
      y += 0.7 * u;
      const fw = inner * 0.6;
      const fx = mx + (inner - fw) / 2;
      const fh = 5 * u;
      body.push(rect(fx, y, fw, fh, '#f2f2f2', ' stroke="#666666" stroke-width="1"'));
      const cx = fx + fw / 2;
      const cy = y + fh / 2;
      const r = fh * 0.35;
      if (figure.shape === 'circle') {
        body.push(`<circle cx="${n(cx)}" cy="${n(cy)}" r="${n(r)}" fill="${figure.colour.hex}"/>`);
      } else if (figure.shape === 'triangle') {
        body.push(`<polygon points="${n(cx)},${n(cy - r)} ${n(cx + r * 1.15)},${n(cy + r)} ${n(cx - r * 1.15)},${n(cy + r)}" fill="${figure.colour.hex}"/>`);
      } else {
        const bw = fw * 0.1;
        [0.5, 0.9, 0.7].forEach((h, k) => body.push(rect(cx + (k - 1.5) * bw * 1.5 + bw * 0.25, cy + r - 2 * r * h, bw, 2 * r * h, figure.colour.hex)));
        body.push(line(cx - bw * 2.5, cy + r, cx + bw * 2.5, cy + r, INK, 1));
      }
      y += fh;
      body.push(rect(fx + fw * 0.2, y + 0.35 * u, fw * 0.6, 0.35 * u, WORD));
      y += u;
    }
  });

  const shape = { circle: `${figure.colour.name} circle`, triangle: `${figure.colour.name} triangle`, bars: `small ${figure.colour.name} bar chart` }[figure.shape];
  const lines = englishList(paragraphs.map(String));
  const where = `after the ${ordinal(figure.after - 1)} paragraph`;
  const caption =
    `A document page with ${article(title.name)} ${title.name} title bar and ${paragraphs.length} paragraphs of text, with ${lines} lines. ` +
    `A figure box showing ${article(shape)} ${shape} sits ${where}. The text is drawn as grey lines.`;
  const prompts: Array<[string, string]> = [
    ['Describe this image in detail.', caption],
    ['What is shown in this image?', caption],
    [
      'How many paragraphs does this page have?',
      `The page has ${paragraphs.length} paragraphs, with ${lines} lines of text. ` +
        `There is also ${article(title.name)} ${title.name} title bar at the top and a figure of ${article(shape)} ${shape} ${where}.`,
    ],
    [
      'What is shown in the figure on this page?',
      `The figure shows ${article(shape)} ${shape} inside a framed box. ` +
        `It sits after the ${ordinal(figure.after - 1)} of the ${paragraphs.length} paragraphs, below ${article(title.name)} ${title.name} title bar at the top of the page.`,
    ],
  ];
  const [prompt, answer] = pick(rng, prompts);
  return { ...itemBase(base, body), kind: 'document', data, caption, prompt, answer };
}

function itemBase(base: ItemBase, body: string[]) {
  return { id: base.id, width: base.width, height: base.height, svg: svgDocument(base.width, base.height, base.background, body) };
}

// --- words -----------------------------------------------------------------------------------

const ORDINALS = ['first', 'second', 'third', 'fourth', 'fifth', 'sixth', 'seventh', 'eighth', 'ninth', 'tenth'];

/** "first" for index 0 … "tenth" for index 9. */
function ordinal(index: number): string {
  return ORDINALS[index];
}

/** "a", "a and b", "a, b and c". */
function englishList(words: readonly string[]): string {
  return words.length <= 1 ? words.join('') : `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
}

function article(word: string): string {
  return /^[aeiou]/i.test(word) ? 'an' : 'a';
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
