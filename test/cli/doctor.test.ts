// vlmq doctor: the facts of nativeInfo() in aligned lines, the CUDA status always with its reason,
// and the loader's full report (exit 1) when the addon cannot be loaded.
import t from 'tap';
import { existsSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { jsonLines, jsonResult, repoRoot, runCli } from '../helpers/cli.js';

t.test('prints aligned "key: value" lines with the CUDA status and its reason, exit 0', async (t) => {
  const run = await runCli(['doctor']);
  t.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trimEnd().split('\n');
  const keys = lines.map((line) => /^([a-z -]+):/.exec(line)?.[1]);
  for (const key of ['vlmq', 'addon', 'build', 'backends', 'blas', 'blas threads', 'cpu threads', 'node', 'platform', 'cuda', 'cuda reason']) {
    t.ok(keys.includes(key), `has a "${key}" line`);
  }
  const columns = new Set(lines.map((line) => /^[a-z -]+:\s+/.exec(line)?.[0].length));
  t.equal(columns.size, 1, 'values start in one column');
  t.match(run.stdout, /^cuda: +(usable|compiled in, not usable|not compiled in)$/m);
  t.match(run.stdout, /^cuda reason: +\S/m);
  t.match(run.stdout, new RegExp(`^node: +${process.version.replace(/\./g, '\\.')} `, 'm'));
});

t.test('--json prints one object with the addon path, BLAS and cuda.reason', async (t) => {
  const run = await runCli(['doctor', '--json']);
  t.equal(run.code, 0, run.stderr);
  t.equal(jsonLines(run.stdout).length, 1, 'a single JSON line');
  const info = jsonResult(run.stdout);
  t.match(info, {
    packageVersion: String,
    version: String,
    path: String,
    buildSystem: String,
    backends: Array,
    cpu: { blas: String, blasThreads: Number, threads: Number },
    cuda: { compiled: Boolean, usable: Boolean, reason: String, deviceCount: Number },
    node: { version: process.version },
    platform: { os: process.platform, arch: process.arch },
  });
  t.ok(existsSync(info.path as string), 'the addon path exists');
  t.ok((info.backends as string[]).includes('cpu'), 'the CPU backend is compiled in');
});

t.test('without a loadable addon: the loader report on stderr, exit 1', async (t) => {
  // A copy of the sources with no build/ or prebuilds/ beside it.
  const root = t.testdir({ 'package.json': JSON.stringify({ name: 'vlmq', version: '0.0.0-copy', type: 'module' }) });
  await cp(join(repoRoot, 'lib'), join(root, 'lib'), { recursive: true });
  const entry = join(root, 'lib', 'cli', 'main.ts');
  const env = { VLMQ_NATIVE_PATH: join(root, 'nowhere', 'vlmq.node') };
  const run = await runCli(['doctor'], { entry, env });
  t.equal(run.code, 1);
  t.equal(run.stdout, '');
  t.match(run.stderr, /^vlmq: Could not load the vlmq native addon\. Tried:$/m);
  t.match(run.stderr, `${join(root, 'nowhere', 'vlmq.node')}: not found`);
  t.notMatch(run.stderr, /node-gyp-build/, 'an explicit VLMQ_NATIVE_PATH is the only candidate');
  t.match(run.stderr, /Possible fixes:/);
  const searched = await runCli(['doctor'], { entry });
  t.equal(searched.code, 1);
  t.match(searched.stderr, /node-gyp-build: No native build was found for platform=/, 'without it, node-gyp-build searches build/ and prebuilds/');
  const json = await runCli(['doctor', '--json'], { entry, env });
  t.equal(json.code, 1);
  t.match(jsonLines(json.stdout)[0], { type: 'error', exitCode: 1, code: 'ERR_VLMQ_NO_BINARY', message: /Could not load/ });
});

t.test('doctor takes no arguments', async (t) => {
  const run = await runCli(['doctor', '--verbose']);
  t.equal(run.code, 2);
  t.match(run.stderr, /^vlmq: unknown option --verbose for 'doctor'/);
});
