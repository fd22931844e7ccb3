// A Hugging Face checkpoint directory: config.json plus one `model.safetensors` or shards listed
// in `model.safetensors.index.json` (docs/formats.md §1.6). Only headers are read when it is
// opened; tensors are read one at a time, so memory stays near what the caller holds.
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describeValue, fileError, invalidParameterError } from '../errors.js';
import { parseJsonObject } from '../json.js';
import type { DType, Tensor } from '../tensor.js';
import { describeKind, fsError, readRegularFile, regularFileSize } from './files.js';
import { SafetensorsFile } from './safetensors-reader.js';

export const CONFIG_FILE = 'config.json';
export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export interface CheckpointTensor {
  name: string;
  dtype: DType;
  shape: readonly number[];
  /** The shard (basename) that holds it. */
  file: string;
}

export class Checkpoint {
  readonly tensors: ReadonlyMap<string, CheckpointTensor>;

  private constructor(
    readonly dir: string,
    readonly config: Record<string, unknown>,
    private readonly shards: ReadonlyMap<string, SafetensorsFile>,
    tensors: Map<string, CheckpointTensor>,
  ) {
    this.tensors = tensors;
  }

  /** Opens `dir`: config.json, the index if any, and every shard's header. */
  static async open(dir: string): Promise<Checkpoint> {
    if (typeof dir !== 'string' || dir === '') throw invalidParameterError('dir', 'the path of a checkpoint directory (a non-empty string)', dir);
    await requireDirectory(dir);
    const config = await readJsonObject(join(dir, CONFIG_FILE));
    const files = await shardFiles(dir);
    const shards = new Map<string, SafetensorsFile>();
    try {
      for (const file of new Set(files.values())) shards.set(file, await SafetensorsFile.open(join(dir, file)));
      return new Checkpoint(dir, config, shards, tensorTable(dir, files, shards));
    } catch (error) {
      await Promise.all([...shards.values()].map((s) => s.close()));
      throw error;
    }
  }

  /** Shard basenames in name order. */
  get files(): string[] {
    return [...this.shards.keys()].sort();
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): CheckpointTensor {
    const tensor = this.tensors.get(name);
    if (!tensor) throw fileError(this.dir, `no tensor named '${name}'`);
    return tensor;
  }

  async read(name: string): Promise<Tensor> {
    return this.shardOf(name).read(name);
  }

  /** Total size of the tensor data in bytes (as the index's metadata.total_size counts it). */
  get totalBytes(): number {
    let total = 0;
    for (const shard of this.shards.values()) for (const t of shard.tensors.values()) total += t.byteLength;
    return total;
  }

  async close(): Promise<void> {
    await Promise.all([...this.shards.values()].map((s) => s.close()));
  }

  private shardOf(name: string): SafetensorsFile {
    return this.shards.get(this.info(name).file)!;
  }
}

/** `dir` is an existing directory; anything else is an error in words naming it (no bare ELOOP). */
async function requireDirectory(dir: string): Promise<void> {
  const info = await stat(dir).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'ENOENT' ? fileError(dir, 'no such directory', { cause: error }) : fsError(dir, error);
  });
  if (info.isFile()) throw fileError(dir, 'expected a checkpoint directory, found a file');
  if (!info.isDirectory()) throw fileError(dir, `expected a checkpoint directory, found ${describeKind(info)}`);
}

/**
 * A JSON object file (config.json, the index): "missing" when absent; a directory, FIFO or
 * device in its place is refused by kind without blocking on it.
 */
export async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  const json = await readOptionalJson(path);
  if (json === null) throw fileError(path, 'missing');
  return json;
}

/**
 * A JSON object file of a checkpoint: null when it does not exist, an error naming the file when
 * it cannot be read or parsed (a directory, FIFO or device in its place is refused by kind).
 */
export async function readOptionalJson(path: string): Promise<Record<string, unknown> | null> {
  if ((await regularFileSize(path, 'JSON file')) === null) return null;
  return parseJsonObject(path, await readRegularFile(path, 'JSON file', 'utf8'));
}

/** Whether a weight file is there: a regular file, or absent; anything else in its place is an error naming it. */
async function weightFileExists(path: string): Promise<boolean> {
  return (await regularFileSize(path, 'safetensors file')) !== null;
}

/** tensor name → shard basename, from the index, or every tensor of model.safetensors (null). */
async function shardFiles(dir: string): Promise<Map<string, string> | Map<null, string>> {
  const indexPath = join(dir, INDEX_FILE);
  const hasIndex = (await regularFileSize(indexPath, 'JSON file')) !== null;
  if (!hasIndex) {
    if (!(await weightFileExists(join(dir, SINGLE_FILE)))) throw fileError(dir, `neither ${SINGLE_FILE} nor ${INDEX_FILE} is present`);
    return new Map([[null, SINGLE_FILE]]);
  }
  const index = await readJsonObject(indexPath);
  const weightMap = index.weight_map;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) throw fileError(indexPath, `weight_map: expected an object, found ${describeValue(weightMap)}`);
  const files = new Map<string, string>();
  for (const [name, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string' || file !== basename(file) || !file.endsWith('.safetensors')) {
      throw fileError(indexPath, `weight_map['${name}']: expected a .safetensors file name in this directory, found ${describeValue(file)}`);
    }
    files.set(name, file);
  }
  if (files.size === 0) throw fileError(indexPath, 'weight_map is empty');
  for (const file of new Set(files.values())) {
    if (!(await weightFileExists(join(dir, file)))) throw fileError(indexPath, `names shard ${file}, which is missing from ${dir}`);
  }
  return files;
}

/** Every tensor with its shard; the index and the shards must agree. */
function tensorTable(dir: string, files: Map<string | null, string>, shards: Map<string, SafetensorsFile>): Map<string, CheckpointTensor> {
  const table = new Map<string, CheckpointTensor>();
  const indexed = !files.has(null);
  for (const [file, shard] of shards) {
    for (const info of shard.tensors.values()) {
      if (table.has(info.name)) throw fileError(dir, `tensor '${info.name}' is in both ${table.get(info.name)!.file} and ${file}`);
      if (indexed && files.get(info.name) !== file) {
        throw fileError(join(dir, INDEX_FILE), `tensor '${info.name}' is in ${file} but the index ${files.has(info.name) ? `says ${files.get(info.name)}` : 'does not list it'}`);
      }
      table.set(info.name, { name: info.name, dtype: info.dtype, shape: info.shape, file });
    }
  }
  if (indexed) {
    for (const [name, file] of files) {
      if (!table.has(name!)) throw fileError(join(dir, INDEX_FILE), `lists tensor '${name}' in ${file}, which does not hold it`);
    }
  }
  return table;
}
