// Finds and loads the native addon. Candidates, in order: $VLMQ_NATIVE_PATH, build/Release
// (a local cmake-js or node-gyp build), prebuilds/<platform>-<arch>/. Every failure is collected
// and reported in one error with the fixes, the way sharp's loader does it.
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VlmqError } from '../errors.js';
import type { BindingModule } from './binding.js';

const require = createRequire(import.meta.url);
/** The package root: lib/native/ in sources, dist/native/ when compiled; both are two levels down. */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface LoadedBinding {
  binding: BindingModule;
  path: string;
}

function candidates(): string[] {
  const list: string[] = [];
  if (process.env.VLMQ_NATIVE_PATH) list.push(resolve(process.env.VLMQ_NATIVE_PATH));
  list.push(join(packageRoot, 'build', 'Release', 'vlmq.node'));
  const prebuilds = join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`);
  if (existsSync(prebuilds)) {
    for (const name of readdirSync(prebuilds).filter((f) => f.endsWith('.node')).sort()) list.push(join(prebuilds, name));
  }
  return list;
}

let loaded: LoadedBinding | undefined;

/**
 * OpenBLAS's worker threads spin (sched_yield) for about 2^28 cycles after each call. Between
 * the sweep's BLAS calls our own kernels run on every core, and the spinning threads steal about
 * a third of their time; a short timeout puts them to sleep at once. OpenBLAS reads the variable
 * when it is loaded, i.e. when the addon is; a value the user set is kept.
 */
function tuneOpenBlas(): void {
  process.env.OPENBLAS_THREAD_TIMEOUT ??= '4';
}

export function loadBinding(): LoadedBinding {
  if (loaded) return loaded;
  tuneOpenBlas();
  const failures: string[] = [];
  for (const path of candidates()) {
    if (!existsSync(path)) {
      failures.push(`${path}: not found`);
      continue;
    }
    try {
      loaded = { binding: require(path) as BindingModule, path };
      return loaded;
    } catch (error) {
      failures.push(`${path}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new VlmqError('ERR_VLMQ_NO_BINARY', [
    'Could not load the vlmq native addon. Tried:',
    ...failures.map((f) => `  - ${f}`),
    'Possible fixes:',
    '  - build it: npm rebuild vlmq (needs cmake, a C++17 compiler, and on Debian/Ubuntu',
    '    apt-get install -y libopenblas-dev liblapacke-dev)',
    '  - if OpenBLAS or LAPACKE is missing at run time ("cannot open shared object file"), install them as above',
    '  - point VLMQ_NATIVE_PATH at a vlmq.node built for this platform',
  ].join('\n'));
}

/** The raw module; lib/quant and the CLI use this. */
export function binding(): BindingModule {
  return loadBinding().binding;
}
