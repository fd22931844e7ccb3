#!/usr/bin/env node
// `npm install` hook: make sure a native addon that loads is present, trying in order
//   1. a prebuilt binary from prebuilds/<platform>-<arch>/ (published packages carry one),
//   2. a cmake-js build (CPU backend, plus CUDA when nvcc is on PATH),
//   3. a node-gyp build (CPU backend only) for machines without CMake.
// Every failure is collected, and if nothing works one message lists them all with the fixes.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const failures = [];

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env: process.env });
  if (result.error) return `${command}: ${result.error.message}`;
  return result.status === 0 ? null : `${command} ${args.join(' ')} exited with ${result.status}`;
}

function loads(file) {
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { encoding: 'utf8' });
  return probe.status === 0 ? null : (probe.stderr.trim().split('\n').pop() ?? 'failed to load');
}

function tryPrebuild() {
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!existsSync(dir)) return false;
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.node'))) {
    const error = loads(join(dir, name));
    if (!error) {
      console.log(`vlmq: using prebuilt ${join('prebuilds', `${process.platform}-${process.arch}`, name)}`);
      return true;
    }
    failures.push(`prebuild ${name}: ${error}`);
  }
  return false;
}

function hasCommand(name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

function tryCmakeJs() {
  if (!hasCommand('cmake')) {
    failures.push('cmake-js: cmake is not on PATH');
    return false;
  }
  const error = run(process.execPath, [require.resolve('cmake-js/bin/cmake-js'), 'compile']);
  if (error) failures.push(`cmake-js: ${error}`);
  return !error;
}

function tryNodeGyp() {
  // npm exposes its bundled node-gyp to lifecycle scripts through npm_config_node_gyp.
  const gyp = process.env.npm_config_node_gyp;
  const error = gyp ? run(process.execPath, [gyp, 'rebuild']) : run('node-gyp', ['rebuild']);
  if (error) failures.push(`node-gyp: ${error}`);
  return !error;
}

if (process.env.VLMQ_SKIP_BUILD === '1') process.exit(0);
if (tryPrebuild() || tryCmakeJs() || tryNodeGyp()) process.exit(0);

console.error(
  [
    'vlmq: could not obtain a native addon. Attempts:',
    ...failures.map((f) => `  - ${f}`),
    'Fixes:',
    '  - Debian/Ubuntu: apt-get install -y cmake g++ libopenblas-dev liblapacke-dev, then npm rebuild vlmq',
    '  - set VLMQ_NATIVE_PATH to a vlmq.node built elsewhere (and VLMQ_SKIP_BUILD=1 to skip this step)',
  ].join('\n'),
);
process.exit(1);
