// Writing a quantized model: a GPTQ checkpoint that serving stacks load (docs/formats.md §2), or
// a fake-quant checkpoint (the dequantized weights in the original layout and dtype). Tensors are
// produced one at a time while they are written; the whole directory is assembled under a
// temporary name next to the destination and renamed into place only when complete.
import type { Stats } from 'node:fs';
import { copyFile, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { VlmqError, fileError, invalidParameterError } from '../errors.js';
import type { Model } from '../models/model.js';
import type { LinearSpec } from '../models/types.js';
import { type DType, byteSize, f32ToBf16, f32ToF16, toFloat32 } from '../tensor.js';
import { packageVersion } from '../version.js';
import { CONFIG_FILE, INDEX_FILE, SINGLE_FILE } from '../io/checkpoint.js';
import { describeKind, placement, writeError } from '../io/files.js';
import { type StaleSibling, markPartial, moveIntoPlace, removeStaleSiblings, temporarySibling } from '../io/move-into-place.js';
import { writeSafetensors } from '../io/safetensors-writer.js';
import { type LoaderSupport, gptqCompatibility } from './compat.js';
import { type GptqBits, type GptqFormat, type GptqPackedLinear, gptqShapes, packGptqLinear } from './gptq-pack.js';

export type ExportFormat = GptqFormat | 'fake-quant';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['gptq', 'gptq_v2', 'fake-quant'];

/** Largest shard of tensor data unless told otherwise: 5 GB, as Hugging Face writes. */
export const DEFAULT_MAX_SHARD_BYTES = 5e9;

/** What the exporter needs of one quantized linear (a subset of LinearQuantization). */
export interface QuantizedLinearData {
  codes: Uint8Array;
  scales: Float32Array;
  zeros: Int32Array;
  gIdx: Int32Array;
  groups: number;
  dequantized: Float32Array;
}

/** Where the quantized linears come from (computed on demand, or read back from a run's files). */
export interface QuantizedSource {
  get(linear: LinearSpec): Promise<QuantizedLinearData>;
}

/** The settings of the run, recorded in quantization_config. */
export interface QuantizationSettings {
  method: string;
  bits: GptqBits;
  groupSize: number;
  sym: boolean;
  actOrder: boolean;
  staticGroups: boolean;
  percdamp: number;
  trueSequential: boolean;
}

export interface ExportOptions {
  format: ExportFormat;
  settings: QuantizationSettings;
  /** Largest shard in bytes of tensor data (default DEFAULT_MAX_SHARD_BYTES, 5 GB, as Hugging Face writes). */
  maxShardBytes?: number;
  /** Replace an existing directory at the destination. */
  overwrite?: boolean;
  /** Fake-quant only: dtype of the dequantized weights (default: the original's). */
  fakeQuantDtype?: 'original' | 'BF16' | 'F16' | 'F32';
  /** Called after each tensor is written. */
  onProgress?: (done: number, total: number) => void;
  /** Stops the export before the next tensor (and before the rename); rejects with its reason. */
  signal?: AbortSignal;
}

export interface ExportReport {
  dir: string;
  format: ExportFormat;
  files: string[];
  tensorBytes: number;
  /** Tokenizer, processor, chat-template and generation files copied from the model. */
  copied: string[];
  /** GPTQ formats: which loaders accept the checkpoint. */
  compatibility: LoaderSupport[] | null;
  /** Leftovers of killed exports to the same destination, removed before this one. */
  removedStale: StaleSibling[];
}

/** Auxiliary files of a model directory that belong with the weights. */
export const AUXILIARY_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'vocab.json',
  'merges.txt', 'tokenizer.model', 'chat_template.json', 'chat_template.jinja', 'preprocessor_config.json',
  'processor_config.json', 'video_preprocessor_config.json', 'generation_config.json',
];

interface PlannedTensor {
  name: string;
  dtype: DType;
  shape: number[];
  bytes: number;
  data: () => Promise<ArrayBufferView>;
}

/**
 * The format of an export: `format` when given, else `gptq` for symmetric settings and `gptq_v2`
 * for asymmetric ones (v1 stores zero points minus one, so it cannot hold a zero point of 0).
 */
export function exportFormat(settings: Pick<QuantizationSettings, 'sym'>, format?: ExportFormat): ExportFormat {
  return checkFormat(format ?? (settings.sym ? 'gptq' : 'gptq_v2'));
}

function checkFormat(format: ExportFormat): ExportFormat {
  if (!EXPORT_FORMATS.includes(format)) throw invalidParameterError('format', `one of ${EXPORT_FORMATS.join(', ')}`, format);
  return format;
}

export async function exportModel(model: Model, source: QuantizedSource, outDir: string, options: ExportOptions): Promise<ExportReport> {
  const { settings } = options;
  options.signal?.throwIfAborted();
  const format = checkFormat(options.format);
  const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(maxShardBytes > 0)) throw invalidParameterError('maxShardBytes', 'a positive number', maxShardBytes);
  const destination = resolve(outDir);
  await checkDestination(destination, options.overwrite ?? false, model.dir);

  const planned = format === 'fake-quant'
    ? planFakeQuant(model, source, options.fakeQuantDtype ?? 'original')
    : planGptq(model, source, settings, format);
  const config = format === 'fake-quant' ? fakeQuantConfig(model, options.fakeQuantDtype ?? 'original') : gptqConfig(model, settings, format);

  const removedStale = await removeStaleSiblings(destination);
  const temporary = temporarySibling(destination);
  await mkdir(temporary);
  try {
    await markPartial(temporary);
    const files = await writeShards(temporary, shardsOf(planned, maxShardBytes), format, settings, options);
    await writeJson(join(temporary, CONFIG_FILE), config);
    if (format !== 'fake-quant') await writeJson(join(temporary, 'quantize_config.json'), config.quantization_config);
    const copied = await copyAuxiliary(model.dir, temporary);
    options.signal?.throwIfAborted();
    await moveIntoPlace(temporary, destination);
    return {
      dir: destination,
      format,
      files,
      tensorBytes: planned.reduce((sum, t) => sum + t.bytes, 0),
      copied,
      removedStale,
      compatibility: format === 'fake-quant' ? null : gptqCompatibility({ ...settings, format, inFeatures: model.linears().map((l) => l.inFeatures) }),
    };
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw error;
  }
}

// --- what goes into the files ---------------------------------------------------------------

function groupsOf(linear: LinearSpec, groupSize: number): number {
  return groupSize < 0 ? 1 : Math.ceil(linear.inFeatures / groupSize);
}

/** Fetches each linear once even though four tensors are made from it (the writer keeps order). */
function memoized<T>(make: (linear: LinearSpec) => Promise<T>): (linear: LinearSpec) => Promise<T> {
  let last: { linear: LinearSpec; value: Promise<T> } | null = null;
  return (linear) => {
    if (last?.linear !== linear) last = { linear, value: make(linear) };
    return last.value;
  };
}

function checkQuantized(linear: LinearSpec, q: QuantizedLinearData, groups: number): QuantizedLinearData {
  const n = linear.outFeatures * linear.inFeatures;
  if (q.codes.length !== n || q.dequantized.length !== n || q.groups !== groups || q.scales.length !== linear.outFeatures * groups) {
    throw new VlmqError('ERR_VLMQ_INTERNAL', `${linear.prefix}: the quantized data does not match [${linear.outFeatures}, ${linear.inFeatures}] with ${groups} groups`);
  }
  return q;
}

function planGptq(model: Model, source: QuantizedSource, settings: QuantizationSettings, format: GptqFormat): PlannedTensor[] {
  const { weights, biases } = quantizedTensorNames(model);
  const packed = memoized(async (linear): Promise<GptqPackedLinear> => {
    const groups = groupsOf(linear, settings.groupSize);
    const q = checkQuantized(linear, await source.get(linear), groups);
    return naming(linear, () => packGptqLinear({ ...q, rows: linear.outFeatures, cols: linear.inFeatures, bits: settings.bits }, format));
  });
  const planned: PlannedTensor[] = [];
  for (const info of model.checkpoint.tensors.values()) {
    if (biases.has(info.name)) continue;  // written right after its weight
    const linear = weights.get(info.name);
    if (!linear) {
      planned.push(copyAsF16(model, info.name, info.dtype, [...info.shape]));
      continue;
    }
    const shapes = naming(linear, () => gptqShapes(linear.outFeatures, linear.inFeatures, groupsOf(linear, settings.groupSize), settings.bits));
    // I32 tensors first, then F16: every tensor stays aligned to its element size.
    planned.push(
      plannedTensor(`${linear.prefix}.qweight`, 'I32', shapes.qweight, async () => (await packed(linear)).qweight),
      plannedTensor(`${linear.prefix}.qzeros`, 'I32', shapes.qzeros, async () => (await packed(linear)).qzeros),
      plannedTensor(`${linear.prefix}.g_idx`, 'I32', shapes.gIdx, async () => (await packed(linear)).gIdx),
      plannedTensor(`${linear.prefix}.scales`, 'F16', shapes.scales, async () => (await packed(linear)).scales),
    );
    // Only layers that had a bias get one: loaders reject unused biases (§2.1).
    if (linear.bias) planned.push(copyAsF16(model, `${linear.prefix}.bias`, model.checkpoint.info(`${linear.prefix}.bias`).dtype, [linear.outFeatures]));
  }
  return planned;
}

function planFakeQuant(model: Model, source: QuantizedSource, dtype: ExportOptions['fakeQuantDtype']): PlannedTensor[] {
  const { weights } = quantizedTensorNames(model);
  return [...model.checkpoint.tensors.values()].map((info) => {
    const linear = weights.get(info.name);
    if (!linear) return plannedTensor(info.name, info.dtype, [...info.shape], async () => (await model.readTensor(info.name)).data);
    const target = dtype === 'original' ? info.dtype : dtype!;
    return plannedTensor(info.name, target, [...info.shape], async () => {
      const q = await source.get(linear);
      return encodeFloats(q.dequantized, target, info.name);
    });
  });
}

/** Runs `work`, prefixing any error it throws with the linear it was about. */
function naming<T>(linear: LinearSpec, work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof VlmqError) throw new VlmqError(error.code, `${linear.prefix}: ${error.message}`, { cause: error });
    throw error;
  }
}

function quantizedTensorNames(model: Model) {
  const linears = model.linears();
  return {
    weights: new Map(linears.map((l) => [`${l.prefix}.weight`, l])),
    biases: new Set(linears.filter((l) => l.bias).map((l) => `${l.prefix}.bias`)),
  };
}

function plannedTensor(name: string, dtype: DType, shape: number[], data: () => Promise<ArrayBufferView>): PlannedTensor {
  return { name, dtype, shape, bytes: byteSize(dtype, shape), data };
}

/** Floating tensors become F16 (what GPTQ kernels compute in); others are copied as they are. */
function copyAsF16(model: Model, name: string, dtype: DType, shape: number[]): PlannedTensor {
  if (dtype !== 'BF16' && dtype !== 'F32' && dtype !== 'F16') {
    return plannedTensor(name, dtype, shape, async () => (await model.readTensor(name)).data);
  }
  return plannedTensor(name, 'F16', shape, async () => {
    const tensor = await model.readTensor(name);
    return tensor.dtype === 'F16' ? tensor.data : encodeFloats(toFloat32(tensor), 'F16', name);
  });
}

/** f32 values in `dtype`, rounding to nearest even; F16 overflow is an error naming the tensor. */
export function encodeFloats(values: Float32Array, dtype: DType, name: string): ArrayBufferView {
  if (dtype === 'F32') return values;
  const out = new Uint16Array(values.length);
  if (dtype === 'BF16') {
    for (let i = 0; i < values.length; i++) out[i] = f32ToBf16(values[i]);
    return out;
  }
  if (dtype !== 'F16') throw invalidParameterError('dtype', 'F32, F16 or BF16', dtype);
  for (let i = 0; i < values.length; i++) {
    const h = f32ToF16(values[i]);
    if ((h & 0x7c00) === 0x7c00) {
      throw new VlmqError('ERR_VLMQ_F16_OVERFLOW', `${name}: element ${i} = ${values[i]} does not fit in float16 (|x| ≤ 65504), which GPTQ checkpoints store non-quantized tensors in`);
    }
    out[i] = h;
  }
  return out;
}

// --- configs --------------------------------------------------------------------------------

function gptqConfig(model: Model, settings: QuantizationSettings, format: GptqFormat): Record<string, unknown> {
  const quantization = {
    bits: settings.bits,
    group_size: settings.groupSize,
    desc_act: settings.actOrder,
    sym: settings.sym,
    static_groups: settings.staticGroups,
    true_sequential: settings.trueSequential,
    damp_percent: settings.percdamp,
    lm_head: false,
    quant_method: 'gptq',
    checkpoint_format: format,
    format,
    pack_dtype: 'int32',
    block_name_to_quantize: model.architecture.blockNameToQuantize(model.layout),
    meta: { quantizer: [`vlmq:${packageVersion()}`], vlmq_method: settings.method },
  };
  const config = withDtype(structuredClone(model.config.raw), 'float16');
  config.quantization_config = quantization;
  return config;
}

function fakeQuantConfig(model: Model, dtype: ExportOptions['fakeQuantDtype']): Record<string, unknown> {
  const names: Record<string, string> = { BF16: 'bfloat16', F16: 'float16', F32: 'float32' };
  const config = structuredClone(model.config.raw);
  return dtype === 'original' || dtype === undefined ? config : withDtype(config, names[dtype]);
}

function withDtype(config: Record<string, unknown>, dtype: string): Record<string, unknown> {
  config.torch_dtype = dtype;
  const text = config.text_config as Record<string, unknown> | undefined;
  if (text && typeof text === 'object' && 'torch_dtype' in text) text.torch_dtype = dtype;
  return config;
}

// --- files ------------------------------------------------------------------------------------

function shardsOf(planned: PlannedTensor[], maxBytes: number): PlannedTensor[][] {
  const shards: PlannedTensor[][] = [[]];
  let size = 0;
  for (const tensor of planned) {
    if (size > 0 && size + tensor.bytes > maxBytes) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(tensor);
    size += tensor.bytes;
  }
  return shards;
}

/** Shard file names as Hugging Face writes them (docs/formats.md §1.6). */
export function shardName(index: number, count: number): string {
  if (count === 1) return SINGLE_FILE;
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

async function writeShards(
  dir: string,
  shards: PlannedTensor[][],
  format: ExportFormat,
  settings: QuantizationSettings,
  { onProgress, signal }: Pick<ExportOptions, 'onProgress' | 'signal'>,
): Promise<string[]> {
  const total = shards.reduce((n, s) => n + s.length, 0);
  const metadata = { vlmq_version: packageVersion(), vlmq_format: format, vlmq_method: settings.method };
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  let done = 0;
  for (const [index, shard] of shards.entries()) {
    const file = shardName(index, shards.length);
    const tensors = shard.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      data: async () => {
        signal?.throwIfAborted();
        const data = await t.data();
        onProgress?.(++done, total);
        return data;
      },
    }));
    await writeSafetensors(join(dir, file), tensors, { metadata, order: 'given' });
    for (const t of shard) weightMap[t.name] = file;
    files.push(file);
  }
  if (shards.length > 1) {
    const totalSize = shards.flat().reduce((sum, t) => sum + t.bytes, 0);
    await writeJson(join(dir, INDEX_FILE), { metadata: { total_size: totalSize }, weight_map: weightMap });
    files.push(INDEX_FILE);
  }
  return files;
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`).catch((error: unknown) => {
    throw writeError(path, error);
  });
}

async function copyAuxiliary(from: string, to: string): Promise<string[]> {
  const present = new Set(await readdir(from));
  const copied = AUXILIARY_FILES.filter((name) => present.has(name));
  for (const name of copied) {
    await copyFile(join(from, name), join(to, name)).catch((error: unknown) => {
      throw writeError(join(to, name), error);
    });
  }
  return copied;
}

/** Why an export may not go to a destination (see exportDestinationProblem), for each caller to word. */
export type DestinationProblem =
  | { problem: 'model' }
  | { problem: 'no-parent'; parent: string }
  | { problem: 'not-directory'; found: Stats }
  | { problem: 'not-empty' }
  | { problem: 'not-checkpoint'; entries: string[] };

/**
 * Where an export may go: not the model directory nor one that contains it; a new directory in an
 * existing parent, an empty one, or with `overwrite` a checkpoint directory (one with a
 * config.json), since replacing it deletes what it holds. Null when `destination` (absolute) is
 * such a place.
 */
export async function exportDestinationProblem(destination: string, overwrite: boolean, modelDir: string): Promise<DestinationProblem | null> {
  if (['same', 'contains'].includes(await placement(destination, modelDir))) return { problem: 'model' };
  const existing = await stat(destination).catch(() => null);
  if (!existing) {
    const parent = await stat(dirname(destination)).catch(() => null);
    return parent?.isDirectory() ? null : { problem: 'no-parent', parent: dirname(destination) };
  }
  if (!existing.isDirectory()) return { problem: 'not-directory', found: existing };
  const entries = await readdir(destination);
  if (entries.length === 0) return null;
  if (!overwrite) return { problem: 'not-empty' };
  return entries.includes(CONFIG_FILE) ? null : { problem: 'not-checkpoint', entries };
}

/** "a.json, b.txt, …": the first entries of a directory, for a message. */
export function describeEntries(entries: readonly string[]): string {
  return `${entries.slice(0, 5).join(', ')}${entries.length > 5 ? ', …' : ''}`;
}

async function checkDestination(destination: string, overwrite: boolean, modelDir: string): Promise<void> {
  const found = await exportDestinationProblem(destination, overwrite, modelDir);
  if (found === null) return;
  switch (found.problem) {
    case 'model':
      throw invalidParameterError('out', 'a directory other than the model directory, and not one that contains it', destination);
    case 'no-parent':
      throw fileError(found.parent, 'the parent directory of the output does not exist');
    case 'not-directory':
      throw fileError(destination, `exists and is ${describeKind(found.found)}, not a directory`);
    case 'not-empty':
      throw fileError(destination, 'exists and is not empty (pass overwrite to replace it)');
    case 'not-checkpoint':
      throw fileError(destination, `is not a checkpoint directory (no ${CONFIG_FILE}; it holds ${describeEntries(found.entries)}); overwrite replaces only a checkpoint, since the old directory is deleted`);
  }
}
