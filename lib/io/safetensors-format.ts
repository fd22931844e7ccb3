// Facts of the safetensors format (docs/formats.md §1) that its reader (safetensors-reader.ts)
// and its writer (safetensors-writer.ts) share.

/** Bytes of the little-endian u64 that precedes the header. */
export const LENGTH_PREFIX_BYTES = 8;

/** The reference reader's and writer's limit on the header length (docs/formats.md §1.4 rule 2). */
export const MAX_HEADER_SIZE = 100_000_000;

/** The reserved top-level key that holds string→string metadata (docs/formats.md §1.2). */
export const METADATA_KEY = '__metadata__';

/** Largest single read or write: fs rejects lengths ≥ 2 GiB in one call. */
export const IO_CHUNK_BYTES = 1 << 30;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

export function isNonNegativeSafeInteger(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
