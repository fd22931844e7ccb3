// Reading and editing checkpoint directories in tests without going through the code under test:
// a minimal safetensors header parser (8-byte little-endian length + JSON, docs/formats.md §1.1),
// raw byte access to one tensor, in-place byte patches, the fixture's text dimensions read straight
// from config.json, and an independent GPTQ bit-stream unpacker (§2.3: value i of a packed run sits
// at bit i·b of a little-endian stream of 32-bit words).
import { open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeBf16, decodeF16, encodeBf16, encodeF16 } from './half.js';

export type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Bytes per element of the dtypes these tests meet. */
export const ELEMENT_BYTES: Readonly<Record<string, number>> = { BF16: 2, F16: 2, F32: 4, I32: 4, I16: 2, I8: 1, U8: 1, F64: 8, I64: 8 };

export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  /** Basename of the file that holds it. */
  file: string;
  /** Absolute offset of the first data byte in the file. */
  begin: number;
  byteLength: number;
}

export interface RawHeader {
  metadata: Record<string, string> | null;
  tensors: Map<string, RawTensor>;
}

export async function readJson(path: string): Promise<Json> {
  return JSON.parse(await readFile(path, 'utf8'));
}

export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
}

export async function editJson(path: string, edit: (value: Json) => void): Promise<void> {
  const value = await readJson(path);
  edit(value);
  await writeJson(path, value);
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** The header of one safetensors file, parsed by hand. */
export async function readRawHeader(path: string, file = path.split('/').pop()!): Promise<RawHeader> {
  const handle = await open(path, 'r');
  try {
    const prefix = Buffer.alloc(8);
    await handle.read(prefix, 0, 8, 0);
    const length = Number(prefix.readBigUInt64LE(0));
    const json = Buffer.alloc(length);
    await handle.read(json, 0, length, 8);
    const header = JSON.parse(json.toString('utf8')) as Record<string, Json>;
    const tensors = new Map<string, RawTensor>();
    for (const [name, entry] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const [start, end] = entry.data_offsets as [number, number];
      tensors.set(name, { name, dtype: entry.dtype, shape: entry.shape, file, begin: 8 + length + start, byteLength: end - start });
    }
    return { metadata: (header.__metadata__ as Record<string, string> | undefined) ?? null, tensors };
  } finally {
    await handle.close();
  }
}

/** The safetensors files of a checkpoint directory: the index's shards, or model.safetensors. */
export async function weightFiles(dir: string): Promise<string[]> {
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (await exists(indexPath)) return [...new Set(Object.values((await readJson(indexPath)).weight_map as Record<string, string>))].sort();
  return ['model.safetensors'];
}

/** Every tensor of a checkpoint directory (name → where its bytes are), from the headers. */
export async function readTensorTable(dir: string): Promise<Map<string, RawTensor>> {
  const table = new Map<string, RawTensor>();
  for (const file of await weightFiles(dir)) {
    for (const [name, info] of (await readRawHeader(join(dir, file), file)).tensors) {
      if (table.has(name)) throw new Error(`test helper: ${name} is stored twice (${table.get(name)!.file}, ${file})`);
      table.set(name, info);
    }
  }
  return table;
}

/** A tensor's raw bytes, in a fresh (aligned) buffer. */
export async function readRawBytes(dir: string, info: RawTensor): Promise<Uint8Array> {
  const handle = await open(join(dir, info.file), 'r');
  try {
    const bytes = new Uint8Array(new ArrayBuffer(info.byteLength));
    let done = 0;
    while (done < info.byteLength) {
      const { bytesRead } = await handle.read(bytes, done, info.byteLength - done, info.begin + done);
      if (bytesRead === 0) throw new Error(`test helper: ${info.name} ends past the end of ${info.file}`);
      done += bytesRead;
    }
    return bytes;
  } finally {
    await handle.close();
  }
}

/** Overwrites bytes of a file in place (no size change). */
export async function patchBytes(path: string, position: number, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.write(bytes, 0, bytes.length, position);
  } finally {
    await handle.close();
  }
}

export const u16 = (b: Uint8Array) => new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
export const i32 = (b: Uint8Array) => new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
export const f32 = (b: Uint8Array) => new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
export const bytesOf = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Index of the first differing byte, or -1 (a length difference counts at the shorter length). */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Float values of a BF16 / F16 / F32 tensor's raw bytes (float64, exact). */
export function decodeFloats(dtype: string, bytes: Uint8Array): Float64Array {
  if (dtype === 'F32') return Float64Array.from(f32(bytes));
  const decode = dtype === 'BF16' ? decodeBf16 : dtype === 'F16' ? decodeF16 : null;
  if (!decode) throw new Error(`test helper: ${dtype} is not a float dtype`);
  return Float64Array.from(u16(bytes), decode);
}

/** Values as bytes of `dtype`, rounding to nearest even with the test's own half encoders. */
export function encodeFloats(dtype: string, values: ArrayLike<number>): Uint8Array {
  if (dtype === 'F32') return bytesOf(Float32Array.from(values));
  const encode = dtype === 'BF16' ? encodeBf16 : dtype === 'F16' ? encodeF16 : null;
  if (!encode) throw new Error(`test helper: ${dtype} is not a float dtype`);
  return bytesOf(Uint16Array.from(values, encode));
}

/** Sorted regular files of a directory. */
export async function filesIn(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name).sort();
}

// --- config.json, read the way the docs describe it ------------------------------------------

export interface TextDims {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
}

/** The language model's dimensions: LLaVA-OV's text_config, Qwen's text_config or top level. */
export function textDims(config: Json, architecture: string): TextDims {
  const tc = architecture === 'llava_onevision' ? config.text_config : (config.text_config ?? config);
  return {
    hidden: tc.hidden_size,
    intermediate: tc.intermediate_size,
    layers: tc.num_hidden_layers,
    heads: tc.num_attention_heads,
    kvHeads: tc.num_key_value_heads,
    headDim: tc.hidden_size / tc.num_attention_heads,
    vocab: tc.vocab_size,
  };
}

// --- GPTQ ---------------------------------------------------------------------------------------

/**
 * Reads `count` b-bit fields from the words `words[offset + w·stride]`: field i starts at bit i·b
 * of the little-endian stream; a field crossing a word boundary takes its high bits from the next.
 */
export function unpackFields(words: Int32Array, offset: number, stride: number, count: number, bits: number): number[] {
  const out: number[] = [];
  const mask = 2 ** bits - 1;
  for (let i = 0; i < count; i++) {
    const bit = i * bits;
    const w = Math.floor(bit / 32), shift = bit % 32;
    let value = words[offset + w * stride] >>> shift;
    if (shift + bits > 32) value |= words[offset + (w + 1) * stride] << (32 - shift);
    out.push((value >>> 0) & mask);
  }
  return out;
}

/** Codes [N, K] (row-major) from qweight [K·b/32, N]: column n holds row n of W, packed down K. */
export function unpackQweight(qweight: Int32Array, N: number, K: number, bits: number): Uint8Array {
  const codes = new Uint8Array(N * K);
  for (let n = 0; n < N; n++) codes.set(unpackFields(qweight, n, N, K, bits), n * K);
  return codes;
}

/** Stored zeros [N, G] (row-major) from qzeros [G, N·b/32]: row g holds the N zeros of group g. */
export function unpackQzeros(qzeros: Int32Array, N: number, G: number, bits: number): Int32Array {
  const zeros = new Int32Array(N * G);
  const words = (N * bits) / 32;
  for (let g = 0; g < G; g++) unpackFields(qzeros, g * words, 1, N, bits).forEach((z, n) => { zeros[n * G + g] = z; });
  return zeros;
}

/** The GPTQ tensor shapes of a linear W [N, K] (docs/formats.md §2.1), by hand. */
export function gptqShapesByHand(N: number, K: number, bits: number, groupSize: number) {
  const G = groupSize === -1 ? 1 : Math.ceil(K / groupSize);
  return { G, qweight: [(K * bits) / 32, N], qzeros: [G, (N * bits) / 32], scales: [G, N], gIdx: [K], bias: [N] };
}
