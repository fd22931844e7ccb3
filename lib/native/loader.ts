// Finds and loads the native addon: $VLMQ_NATIVE_PATH when set, else what node-gyp-build resolves
// (build/Release from a local cmake-js or node-gyp build, else the prebuild of
// prebuilds/<platform>-<arch>/ that matches this runtime). Every failure is reported in one error
// with the fixes, the way sharp's loader does it.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { VlmqError } from '../errors.js';
import { packageRoot } from '../version.js';
import type { BindingModule } from './binding.js';

const require = createRequire(import.meta.url);

export interface LoadedBinding {
  binding: BindingModule;
  path: string;
}

interface NodeGypBuild {
  /** The build node-gyp-build would load: build/Release, build/Debug, or the best prebuild. */
  path(dir: string): string;
}

/** Files to try, and why none was found where that is already known. An explicit path is the only candidate. */
function candidates(failures: string[]): string[] {
  if (process.env.VLMQ_NATIVE_PATH) return [resolve(process.env.VLMQ_NATIVE_PATH)];
  try {
    return [(require('node-gyp-build') as NodeGypBuild).path(packageRoot)];
  } catch (error) {
    failures.push(`node-gyp-build: ${(error as Error).message.split('\n')[0]}`);
    return [];
  }
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
  for (const path of candidates(failures)) {
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
