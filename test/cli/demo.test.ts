// vlmq demo: the whole system on its built-in default, as a user runs it. One run in a temporary
// directory (removed afterwards), one with --dir (kept, and its export passes `vlmq verify`).
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jsonLines, jsonResult, runCli } from '../helpers/cli.js';

const METHODS = ['rtn', 'gptq', 'gptaq', 'vlmq'];
type Errors = { text: number; image: number; all: number }[];

t.test('vlmq demo --json: every method, per-layer and logit errors by modality, the calibrated methods far below RTN, a verified export; the temp dir is removed', async (t) => {
  const tmp = t.testdir();
  const run = await runCli(['demo', '--json'], { env: { TMPDIR: tmp }, timeoutMs: 300_000 });
  t.equal(run.code, 0, run.stderr);
  const result = jsonResult(run.stdout) as Record<string, any>;
  t.match(result, { command: 'demo', dir: null, calibration: { samples: 32, dropped: [] }, heldOut: { samples: 8 }, export: { format: 'gptq_v2' }, verify: { problems: [] } });
  t.ok(result.calibration.imageTokens > 0 && result.calibration.imageTokens < result.calibration.tokens, 'the calibration set has image and text tokens');
  for (const method of METHODS) {
    const errors = result.errors[method] as Errors;
    t.equal(errors.length, 4, `${method}: an error after each of the 4 layers`);
    t.ok(errors.every((e) => e.text > 0 && e.image > 0 && e.all > 0 && Number.isFinite(e.all)), `${method}: text, image and all errors are positive`);
    t.ok(errors.every((e) => Math.min(e.text, e.image) <= e.all && e.all <= Math.max(e.text, e.image)), `${method}: the error over all tokens lies between text and image`);
  }
  const final = (m: string) => (result.errors[m] as Errors).at(-1)!.all;
  for (const method of ['gptq', 'gptaq', 'vlmq']) t.ok(final(method) < final('rtn') / 2, `${method} (${final(method)}) is well below RTN (${final('rtn')})`);
  for (const method of METHODS) {
    const o = result.output[method] as { text: number; image: number; all: number; top1Text: number };
    t.ok(o.text > 0 && o.image > 0 && o.top1Text > 0 && o.top1Text <= 1, `${method}: logit errors and next-token agreement`);
  }
  for (const method of ['gptq', 'gptaq', 'vlmq']) {
    t.ok(result.output[method].all < result.output.rtn.all / 2 && result.output[method].top1Text > result.output.rtn.top1Text, `${method}: logits closer to full precision than RTN's, more next tokens agree`);
  }
  const steps = jsonLines(run.stdout).filter((e) => e.type === 'method').map((e) => e.method);
  t.same(steps, METHODS, 'a method event for each method, in order');
  t.same(readdirSync(tmp).filter((name) => name.startsWith('vlmq')), [], 'no vlmq directory is left in the temp directory (tsx keeps its cache there)');
});

t.test('vlmq demo --dir keeps everything; the export passes vlmq verify; a non-empty --dir is a usage error', async (t) => {
  const dir = join(t.testdir(), 'demo');
  const run = await runCli(['demo', '--dir', dir], { timeoutMs: 300_000 });
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^method +layer 0 +layer 1 +layer 2 +layer 3 +logits text +logits image +top-1 text +seconds$/m, 'the table header');
  t.match(run.stdout, /^vlmq +(\d+\.\d\d% +){7}\d+\.\d$/m, 'a VLMQ row');
  for (const path of ['model/config.json', 'vlmq-gptq/config.json', 'vlmq-fake-quant/config.json', 'calibration.safetensors', 'builtin-set/calibration.json']) t.ok(existsSync(join(dir, path)), path);
  const verify = await runCli(['verify', join(dir, 'vlmq-gptq'), '--against', join(dir, 'vlmq-fake-quant')]);
  t.equal(verify.code, 0, verify.stderr);

  const busy = join(t.testdir(), 'busy');
  await mkdir(busy);
  await writeFile(join(busy, 'notes.txt'), 'mine');
  const refused = await runCli(['demo', '--dir', busy]);
  t.equal(refused.code, 2);
  t.match(refused.stderr, /--dir: .*busy exists and is not an empty directory/);
  t.same(readdirSync(busy), ['notes.txt'], 'the directory is left as it was');
});
