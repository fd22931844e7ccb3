#!/usr/bin/env node
// `npm run prebuild`: binaries for the published package, in prebuildify's layout
// (prebuilds/<platform>-<arch>/), which lib/native/loader.ts and scripts/install.mjs search.
//   node.napi.node       prebuildify + node-gyp: the CPU backend (binding.gyp), stripped
//   node.napi.cuda.node  cmake-js: CPU backend plus the CUDA side, when nvcc is on PATH
// The loader tries them in name order, so the CUDA-capable build is preferred; both load on
// machines without a GPU.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
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
const headers = existsSync('/usr/include/node/node_api.h') ? { npm_config_nodedir: '/usr' } : {};
run(process.execPath, [require.resolve('prebuildify/bin.js'), '--napi', '--strip', '--target', process.versions.node], headers);

if (has('cmake') && has('nvcc')) {
  run(process.execPath, [require.resolve('cmake-js/bin/cmake-js'), 'compile']);
  mkdirSync(out, { recursive: true });
  copyFileSync(join(root, 'build', 'Release', 'vlmq.node'), join(out, 'node.napi.cuda.node'));
  console.log(`prebuild: wrote ${join('prebuilds', `${process.platform}-${process.arch}`, 'node.napi.cuda.node')}`);
} else {
  console.log('prebuild: no cmake/nvcc here, so no CUDA-capable prebuild');
}
