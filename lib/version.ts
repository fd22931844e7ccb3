// vlmq's own version, as package.json states it (recorded in exported checkpoints).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './native/loader.js';

let version: string | undefined;

/** The version in vlmq's package.json (two levels above lib/native, in lib/ and in dist/ alike). */
export function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}
