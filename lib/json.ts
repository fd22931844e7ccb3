// Comparing JSON values as data: object key order does not count (tools re-save configs with
// sorted keys). Parsing a checkpoint's JSON objects with errors that name the file (io/checkpoint.ts
// reads them).
import { describeValue, fileError } from './errors.js';

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
