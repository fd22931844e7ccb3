// vlmq demo: the whole system on its built-in default, as a user runs it, in a temporary directory
// that is removed afterwards (demo-dir.test.ts runs it with --dir).
import t from 'tap';
import { readdirSync } from 'node:fs';
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
