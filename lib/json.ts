// Comparing JSON values as data: object key order does not count (tools re-save configs with
// sorted keys). Reading a checkpoint's optional JSON files with errors that name them.
import { describeValue, fileError } from './errors.js';
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
  return parseJsonObject(path, await readRegularFile(path, 'JSON file', 'utf8'));
}

/**
 * How deep arrays and objects may nest in a checkpoint's JSON: configs nest a few levels, and a
 * value nested thousands deep would overflow the stack of whatever recursive code meets it next.
 */
export const MAX_JSON_DEPTH = 64;

/** The JSON object in `text`, read from `path`: valid JSON, an object, nested at most MAX_JSON_DEPTH levels. */
export function parseJsonObject(path: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw fileError(path, `not valid JSON (${(error as Error).message})`, { cause: error });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw fileError(path, `expected a JSON object, found ${describeValue(value)}`);
  if (nestedDeeperThan(value, MAX_JSON_DEPTH)) throw fileError(path, `nested more than ${MAX_JSON_DEPTH} levels deep, which no config needs`);
  return value as Record<string, unknown>;
}

/** Whether arrays/objects nest deeper than `limit` in `value`; iterative, so any depth is safe to ask about. */
export function nestedDeeperThan(value: unknown, limit: number): boolean {
  const pending: Array<[unknown, number]> = [[value, 0]];
  while (pending.length > 0) {
    const [item, depth] = pending.pop()!;
    if (item === null || typeof item !== 'object') continue;
    if (depth >= limit) return true;
    for (const child of Object.values(item)) pending.push([child, depth + 1]);
  }
  return false;
}
