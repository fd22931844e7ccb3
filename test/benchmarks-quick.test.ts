// The pipeline benchmarks stay runnable: their quick mode (tiny sizes, figures meaningless) prints
// a row per layer and method with every phase, and the modality table for each method and setting.
import t from 'tap';
import { join } from 'node:path';
import { repoRoot, runCli } from './helpers/cli.js';

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
