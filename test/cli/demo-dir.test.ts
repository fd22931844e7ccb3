// vlmq demo --dir: everything the demo makes is kept, and its export passes `vlmq verify`. (The
// run in a temporary directory is demo.test.ts; each file has the whole per-file time limit, as
// one demo takes minutes on a busy 2-core machine.)
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';

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
