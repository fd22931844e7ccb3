// vlmq's own version, as package.json states it (recorded in exported checkpoints), and where the
// package is installed (the native loader looks for the addon there).
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: this file is lib/version.ts in sources and dist/version.js when compiled, one level down in both. */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

let version: string | undefined;

/** The version in vlmq's package.json. */
export function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}
