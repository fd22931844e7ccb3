// Comparing JSON values as data: object key order does not count (tools re-save configs with
// sorted keys). Reading a checkpoint's optional JSON files with errors that name them.
import { VlmqError } from './errors.js';
import { readRegularFile, regularFileSize } from './io/files.js';

/** JSON with object keys sorted at every level. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function sameJson(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/**
 * A JSON object file of a checkpoint: null when it does not exist, an error naming the file when
 * it cannot be read or parsed (a directory, FIFO or device in its place is refused by kind).
 */
export async function readOptionalJson(path: string): Promise<Record<string, unknown> | null> {
  if ((await regularFileSize(path, 'JSON file')) === null) return null;
  const text = await readRegularFile(path, 'JSON file', 'utf8');
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new VlmqError('ERR_VLMQ_BAD_FILE', `${path}: not valid JSON (${(error as Error).message})`, { cause: error });
  }
}
