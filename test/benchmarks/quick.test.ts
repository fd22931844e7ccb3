// The pipeline and vision benchmarks stay runnable: their quick mode (tiny sizes, figures
// meaningless) prints a row per layer and method with every phase, the modality table for each
// method and setting, and a row per vision tower and for preprocessing.
import t from 'tap';
import { join } from 'node:path';
import { repoRoot, runCli } from '../helpers/cli.js';

t.test('npm run bench -- --quick pipeline modality', async (t) => {
  const run = await runCli(['--quick', '--repeats', '1', 'pipeline', 'modality'], { entry: join(repoRoot, 'benchmarks', 'run.ts'), timeoutMs: 120_000 });
  t.equal(run.code, 0, run.stderr);
  for (const method of ['gptq', 'gptaq', 'vlmq']) {
    t.match(run.stdout, new RegExp(`^pipeline +${method} 3-bit act-order, layer 1 \\(128 tokens\\) +[\\d.]+ s: forward \\d+%, importance \\d+%, statistics \\d+%, cholesky \\d+%, sweep \\d+%, other \\d+%`, 'm'), method);
  }
  for (const setting of ['3-bit per channel', '2-bit g128']) {
    for (const method of ['rtn', 'gptq', 'gptaq']) t.match(run.stdout, new RegExp(`^modality +${setting}, ${method} +text [\\d.]+%, vision [\\d.]+%, all [\\d.]+% +VLMQ / this +text [\\d.]+×`, 'm'), `${setting} ${method}`);
    t.match(run.stdout, new RegExp(`^modality +${setting}, VLMQ factors +text/vision q [\\d.]+/[\\d.]+`, 'm'));
  }
});

t.test('npm run bench -- --quick vision', async (t) => {
  const run = await runCli(['--quick', '--repeats', '1', 'vision'], { entry: join(repoRoot, 'benchmarks', 'run.ts'), timeoutMs: 120_000 });
  t.equal(run.code, 0, run.stderr);
  for (const tower of ['Qwen2-VL-2B tower', 'Qwen2.5-VL-3B tower', 'SigLIP-so400m \\+ projector']) {
    t.match(run.stdout, new RegExp(`^vision +${tower}, .* +[\\d.]+ s, [\\d.]+ GFLOP/s +SGEMM \\d+×\\d+×\\d+: [\\d.]+ GFLOP/s +[\\d.]+× of SGEMM`, 'm'), tower);
  }
  t.match(run.stdout, /^vision +preprocess 160×120 PNG → \d+×\d+ .* +[\d.]+ s +sharp decode \+ cubic resize: [\d.]+ s +[\d.]+× its time/m);
});
