#!/usr/bin/env node
// `npm run prebuild`: the binary of the published package, prebuilds/<platform>-<arch>/vlmq.node
// in prebuildify's layout and naming, which node-gyp-build (lib/native/loader.ts) and scripts/install.mjs find.
// prebuildify builds it with node-gyp (the CPU backend, binding.gyp, stripped); where cmake and
// nvcc are available the cmake-js build replaces it, since that one holds the CUDA side as well
// and still loads on machines without a GPU.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const out = join(root, 'prebuilds', `${process.platform}-${process.arch}`);

function run(command, args, env = {}) {
  console.log(`> ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (result.status !== 0) {
    console.error(`prebuild: ${command} failed (${result.error?.message ?? `exit ${result.status}`})`);
    process.exit(1);
  }
}

const has = (name) => spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;

// node-gyp would download the headers of the target Node; use the installed ones when present.
rmSync(out, { recursive: true, force: true });
const headers = existsSync('/usr/include/node/node_api.h') ? { npm_config_nodedir: '/usr' } : {};
run(process.execPath, [require.resolve('prebuildify/bin.js'), '--napi', '--strip', '--target', process.versions.node], headers);

if (has('cmake') && has('nvcc')) {
  run(process.execPath, [require.resolve('cmake-js/bin/cmake-js'), 'compile']);
  mkdirSync(out, { recursive: true });
  copyFileSync(join(root, 'build', 'Release', 'vlmq.node'), join(out, 'vlmq.node'));
  console.log(`prebuild: ${join('prebuilds', `${process.platform}-${process.arch}`, 'vlmq.node')} is the cmake-js build (CPU + CUDA side)`);
} else {
  console.log('prebuild: no cmake/nvcc here, so the prebuild is the CPU-only node-gyp build');
}
