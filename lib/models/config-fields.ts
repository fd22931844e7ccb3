// Reading config.json fields with errors that name the file and the field.
import { describeValue, fileError } from '../errors.js';

export type Json = Record<string, unknown>;

/**
 * The most layers or vision blocks a config may declare. Published models have at most a few
 * hundred; the loader lists every tensor a config implies, so a count of millions would take the
 * process's memory before any tensor is compared.
 */
export const MAX_LAYERS = 4096;

export class ConfigReader {
  constructor(readonly file: string, readonly where: string, private readonly object: Json) {}

  /** A reader for a nested object (e.g. vision_config), empty when absent. */
  child(key: string): ConfigReader {
    const value = this.object[key];
    if (value === undefined || value === null) return new ConfigReader(this.file, `${this.path(key)}`, {});
    if (typeof value !== 'object' || Array.isArray(value)) throw this.error(key, 'an object', value);
    return new ConfigReader(this.file, this.path(key), value as Json);
  }

  has(key: string): boolean {
    return this.object[key] !== undefined && this.object[key] !== null;
  }

  get(key: string): unknown {
    return this.object[key];
  }

  integer(key: string, fallback?: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.object[key] ?? fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer in [${min}, ${max}]`;
      throw this.error(key, `${range}${fallback === undefined ? ' (required)' : ''}`, value);
    }
    return value;
  }

  number(key: string, fallback?: number): number {
    const value = this.object[key] ?? fallback;
    // JSON.parse reads 1e999 as Infinity: a finite number is asked for, not just a number.
    if (typeof value !== 'number' || !Number.isFinite(value)) throw this.error(key, 'a finite number', value);
    return value;
  }

  /** A finite number > 0 (an epsilon, a RoPE base, a ratio), as the float32 the native side computes with. */
  positive(key: string, fallback?: number): number {
    const value = this.object[key] ?? fallback;
    if (typeof value !== 'number' || !(Math.fround(value) > 0) || !Number.isFinite(Math.fround(value))) {
      throw this.error(key, 'a finite number > 0 (within float32 range)', value);
    }
    return value;
  }

  boolean(key: string, fallback?: boolean): boolean {
    const value = this.object[key] ?? fallback;
    if (typeof value !== 'boolean') throw this.error(key, 'a boolean', value);
    return value;
  }

  string(key: string, fallback?: string): string {
    const value = this.object[key] ?? fallback;
    if (typeof value !== 'string') throw this.error(key, 'a string', value);
    return value;
  }

  integers(key: string, fallback?: number[]): number[] {
    const value = this.object[key] ?? fallback;
    if (!Array.isArray(value) || !value.every((v) => Number.isSafeInteger(v) && v >= 0)) {
      throw this.error(key, 'an array of non-negative integers', value);
    }
    return value as number[];
  }

  error(key: string, expected: string, found: unknown) {
    return fileError(this.file, `${this.path(key)}: expected ${expected}, found ${describeValue(found)}`);
  }

  private path(key: string): string {
    return this.where ? `${this.where}.${key}` : key;
  }
}

/** The special-token ids a config names, those that are integers. */
export function tokenIds(reader: ConfigReader, keys: readonly string[]): Record<string, number> {
  const ids: Record<string, number> = {};
  for (const key of keys) {
    const value = reader.get(key);
    if (Number.isSafeInteger(value)) ids[key] = value as number;
  }
  return ids;
}
