// vlmq demo: the whole system on its embedded default (lib/demo/run.ts) — a tiny Qwen2-VL checkpoint,
// the built-in image-text calibration set, RTN/GPTQ/GPTAQ/VLMQ at 3 bits, a table of errors
// against full precision on held-out samples, and a verified GPTQ export. Works in a temporary
// directory that is removed afterwards, unless --dir names one to keep.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEMO, DEMO_METHODS, type DemoEvent, type DemoResult, runDemo } from '../demo/run.js';
import { type FlagTable, UsageError, formatHelp, helpHint, parseFlags, stringFlag } from './args.js';
import { type Command, type CommandContext, packageVersion } from './command.js';
import { type Output, formatSeconds } from './output.js';
import { DEVICE_FLAG, deviceFromFlag, logDevice } from './device.js';

const NAME = 'demo';

const FLAGS: FlagTable = {
  dir: { type: 'string', value: 'DIR', description: 'keep everything the demo makes (checkpoint, images, bundles, exports) in DIR, which must be empty or absent', group: 'Files' },
  device: DEVICE_FLAG,
  json: { type: 'boolean', description: 'print JSON lines on stdout: the steps, then one result object', group: 'Other' },
};

export const demoCommand: Command = {
  name: NAME,
  summary: 'quantize a built-in tiny Qwen2-VL on built-in image-text data with every method',
  help: () => formatHelp({
    usage: [`vlmq ${NAME} [--dir DIR] [--device D] [--json]`],
    description: [
      `Writes a tiny Qwen2-VL checkpoint (${DEMO.model.layers} layers, hidden ${DEMO.model.hidden}, seeded weights, a real tokenizer) and the built-in`,
      `calibration set (rendered documents, charts and tables with texts about them), builds calibration bundles with`,
      `vlmq's own image preprocessing, chat template and vision tower (${DEMO.calibration} samples, ${DEMO.heldOut} held out), quantizes with`,
      `${DEMO_METHODS.join(', ')} at ${DEMO.bits} bits, prints the error against full precision after every layer on the held-out`,
      'samples (text and image tokens apart), and exports the VLMQ result as a GPTQ checkpoint that it verifies.',
    ].join('\n'),
    flags: FLAGS,
    examples: [`vlmq ${NAME}`, `vlmq ${NAME} --dir demo-run && vlmq inspect demo-run/vlmq-gptq`],
  }),
  run,
};

async function run(argv: readonly string[], { out, signal }: CommandContext): Promise<void> {
  const started = performance.now();
  const { values } = parseFlags(NAME, FLAGS, argv, { names: [], required: 0 });
  const kept = stringFlag(NAME, values, 'dir');
  const device = deviceFromFlag(NAME, values);
  if (kept !== undefined) await checkEmptyDirectory(kept);
  logDevice(out, device);
  const dir = kept === undefined ? await mkdtemp(join(tmpdir(), 'vlmq-demo-')) : resolve(kept);
  try {
    const result = await runDemo(dir, { signal, device: device.device, onEvent: (e) => report(out, e) });
    const seconds = (performance.now() - started) / 1000;
    out.result({ command: NAME, ...result, dir: kept === undefined ? null : dir, totalSeconds: seconds, vlmqVersion: packageVersion() }, table(result, seconds, kept === undefined ? null : dir));
    if (result.verify.problems.length > 0) throw new Error(`the exported GPTQ checkpoint did not verify: ${result.verify.problems[0]}`);
  } finally {
    if (kept === undefined) await rm(dir, { recursive: true, force: true });
  }
}

async function checkEmptyDirectory(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => null);
  if (info === null) return;
  if (!info.isDirectory() || (await readdir(dir)).length > 0) throw new UsageError(`--dir: ${dir} exists and is not an empty directory`, helpHint(NAME));
}

function report(out: Output, e: DemoEvent): void {
  if (e.type === 'step') {
    out.event('step', { step: e.step });
    out.log(e.step);
  } else if (e.type === 'calibration') {
    const r = e.report;
    out.event('calibration', { set: e.set, ...r });
    out.log(`${e.set}: ${r.samples} samples, ${r.tokens} tokens (${r.imageTokens} image tokens)${r.dropped.length ? `, ${r.dropped.length} dropped` : ''}${r.truncated ? `, ${r.truncated} truncated` : ''}`);
  } else if (e.type === 'method') {
    out.event('method', { method: e.method, seconds: e.seconds, errors: e.errors, output: e.output });
    out.log(`${e.method}: done in ${formatSeconds(e.seconds)}`);
  }
}

const percent = (x: number) => `${(100 * x).toFixed(2)}%`;

/** Per method: the errors after every layer (all tokens), the logits' errors on text and image tokens, the next-token agreement. */
function table(r: DemoResult, seconds: number, dir: string | null): string {
  const layers = r.errors.rtn.length;
  const headers = ['method', ...Array.from({ length: layers }, (_, l) => `layer ${l}`), 'logits text', 'logits image', 'top-1 text', 'seconds'];
  const rows = DEMO_METHODS.map((m) => {
    const o = r.output[m];
    return [m, ...r.errors[m].map((x) => percent(x.all)), percent(o.text), percent(o.image), percent(o.top1Text), m === 'rtn' ? '-' : r.seconds[m].toFixed(1)];
  });
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const ratios = DEMO_METHODS.filter((m) => m !== 'vlmq').map((m) => `${m} ${(r.output.vlmq.all / r.output[m].all).toFixed(2)}×`).join(', ');
  return [
    `Relative squared error against full precision on ${r.heldOut.samples} held-out samples (${r.heldOut.tokens} tokens, ${r.heldOut.imageTokens} of them image tokens), ${DEMO.bits}-bit:`,
    'hidden states after each layer (all tokens), then the logits (text and image tokens), and how often the most likely next token',
    'of a text position is the full-precision one.',
    '',
    line(headers),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
    `VLMQ's logit error relative to: ${ratios}. (RTN needs no calibration: its codes are computed as they are used.)`,
    `Calibrated on ${r.calibration.samples} samples (${r.calibration.tokens} tokens). VLMQ exported as ${r.export.format} and verified: ${r.verify.problems.length === 0 ? 'ok' : `${r.verify.problems.length} problem(s)`}.`,
    dir ? `Everything is in ${dir} (try: vlmq inspect ${join(dir, 'vlmq-gptq')}).` : 'Done in a temporary directory, now removed (--dir DIR keeps it).',
    `Total ${formatSeconds(seconds)}.`,
  ].join('\n');
}
