// Fuzz properties of the checkpoint reader (lib/io/checkpoint.ts: Checkpoint.open, read) and of
// loadModel over a directory (lib/models/model.ts). Directories come from the tiny-checkpoint
// generator (every architecture and layout, 1–3 shards, each dtype, tied or not, flat or nested
// text config), then are edited: config.json fields set to anything, JSON bytes broken, index
// entries pointed elsewhere, shards edited like the safetensors fuzzer's files, deleted,
// duplicated or swapped. lib/io/checkpoint.ts and lib/models/* are not this fuzzer's to fix: a
// property that fails today because of them carries `knownFailure`, which says what is wrong.
import fc from 'fast-check';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Checkpoint } from '../../lib/io/checkpoint.js';
import { loadModel } from '../../lib/models/model.js';
import { writeTinyCheckpoint, type Architecture, type Layout, type TextConfigStyle, type WeightDType } from '../../lib/demo/tiny-checkpoint.js';
import { bytesOf, defineProperty, expect, expectSameBytes, readOrReject, type FuzzProperty, type Verdict } from './harness.js';
import { applyTextEdit, deepLiteral, rawLiteral, serialize, textEdit, type TextEdit } from './json-text.js';
import {
  applyByteEdit, applyHeaderEdit, byteEdit, headerBytes, headerEdit, headerText, joinFile, splitFile, statedFile,
  type ByteEdit, type HeaderEdit, type StatedFile,
} from './safetensors-bytes.js';
import { makeSpecial, specialKind } from './special-files.js';

const CONFIG = 'config.json';
const INDEX = 'model.safetensors.index.json';

// --- base checkpoints --------------------------------------------------------------------------------

/** Which tiny checkpoint a case starts from. */
interface Base {
  architecture: Architecture;
  layout: Layout;
  shards: 1 | 2 | 3;
  dtype: WeightDType;
  tie: boolean;
  text: TextConfigStyle;
}

const base: fc.Arbitrary<Base> = fc.record({
  architecture: fc.constantFrom<Architecture>('qwen2_vl', 'qwen2_5_vl', 'llava_onevision'),
  layout: fc.constantFrom<Layout>('original', 'transformers-4.52'),
  shards: fc.constantFrom(1 as const, 2 as const, 3 as const),
  dtype: fc.constantFrom<WeightDType>('BF16', 'F16', 'F32'),
  tie: fc.boolean(),
  text: fc.constantFrom<TextConfigStyle>('flat', 'nested', 'both'),
});

/** The smallest dimensions the generator allows, so that a case writes a few kilobytes. */
const TINY = {
  layers: 1, hidden: 24, heads: 2, kvHeads: 1, intermediate: 8, vocab: 160, extraFiles: false,
  vision: { depth: 1, width: 8, heads: 2, intermediate: 8, mlpRatio: 1, patchSize: 2, imageSize: 4, temporalPatchSize: 1, spatialMergeSize: 1 },
} as const;

/** Every file of a base checkpoint, by name. */
type Files = Map<string, Uint8Array>;

interface Shared {
  dir: string;
  /** Base checkpoints written so far, by options (a few dozen in all; each is written once). */
  bases: Map<string, Promise<Files>>;
}

async function setup(dir: string): Promise<Shared> {
  return { dir, bases: new Map() };
}

function baseFiles(shared: Shared, b: Base): Promise<Files> {
  // LLaVA-OneVision has one text-config style (nested); Qwen's follows the option.
  const options = { ...TINY, architecture: b.architecture, layout: b.layout, shards: b.shards, dtype: b.dtype, tieWordEmbeddings: b.tie, ...(b.architecture === 'llava_onevision' ? {} : { nestedTextConfig: b.text }) };
  const key = JSON.stringify(options);
  let files = shared.bases.get(key);
  if (files === undefined) {
    files = (async () => {
      const dir = join(shared.dir, `base-${shared.bases.size}`);
      await writeTinyCheckpoint(dir, options);
      const out: Files = new Map();
      for (const name of await readdir(dir)) out.set(name, new Uint8Array(await readFile(join(dir, name))));
      return out;
    })();
    shared.bases.set(key, files);
  }
  return files;
}

function shardNames(files: Files): string[] {
  return [...files.keys()].filter((name) => name.endsWith('.safetensors')).sort();
}

// --- edits of a checkpoint directory -------------------------------------------------------------------

/** Keys of config.json that vlmq reads (top level, text_config, vision_config), and some it does not. */
const CONFIG_KEYS = [
  'architectures', 'model_type', 'hidden_size', 'num_hidden_layers', 'intermediate_size', 'num_attention_heads',
  'num_key_value_heads', 'head_dim', 'vocab_size', 'tie_word_embeddings', 'rope_scaling', 'max_position_embeddings',
  'text_config', 'vision_config', 'torch_dtype', 'embed_dim', 'depth', 'num_heads', 'mlp_ratio', 'patch_size',
  'spatial_merge_size', 'temporal_patch_size', 'in_chans', 'in_channels', 'window_size', 'out_hidden_size',
  'fullatt_block_indexes', 'image_size', 'num_channels', '__proto__', 'constructor',
];

/**
 * Counts (layers, heads, sizes) larger than this make the reader list millions of expected
 * tensors, which takes seconds to minutes of synchronous work: they go to their own property.
 */
const MODEST = 4096;

/**
 * Nesting deeper than this in a config value makes loadModel overflow the stack today (see
 * checkpoint.config-deep-values): the main property stays below it.
 */
const MODEST_DEPTH = 64;

/** A config value: small numbers, wrong types, raw literals (1e400, -0, 1.0, 2^53 + 1, nesting), any JSON with modest numbers. */
const configValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.integer({ min: -2, max: 130 }), weight: 4 },
  { arbitrary: fc.constantFrom(0.5, 1.5, -0, true, false, null, '', '64', [], {}, [1, 2, 3], [8, 12, 12], { type: 'mrope', mrope_section: [1, 2, 3] }), weight: 2 },
  { arbitrary: fc.constantFrom('Qwen2VLForConditionalGeneration', 'Qwen2_5_VLForConditionalGeneration', 'LlavaOnevisionForConditionalGeneration', 'qwen2_vl', 'llava_onevision', 'mllama'), weight: 1 },
  { arbitrary: fc.constantFrom(['Qwen2VLForConditionalGeneration'], ['LlavaOnevisionForConditionalGeneration'], ['MllamaForConditionalGeneration']), weight: 1 },
  { arbitrary: rawLiteral(MODEST_DEPTH), weight: 2 },
  { arbitrary: fc.jsonValue({ maxDepth: 2 }).map(modestNumbers), weight: 2 },
);

/** `value` with every number of magnitude over MODEST folded into range. */
function modestNumbers(value: unknown): unknown {
  if (typeof value === 'number') return Number.isFinite(value) && Math.abs(value) > MODEST ? value % MODEST : value;
  if (Array.isArray(value)) return value.map(modestNumbers);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, modestNumbers(v)]));
  return value;
}

/** Index entries may name: another shard, the single file, nothing there, a path, not a string. */
const indexTarget = fc.oneof(
  fc.nat().map((k) => ({ shard: k })),
  fc.constantFrom<unknown>('model.safetensors', 'missing.safetensors', '../model.safetensors', 'sub/model.safetensors', 'config.json', 'model.safetensors.index.json', '.safetensors', '', 5, null, ['model.safetensors'], { file: 'x' }),
);

type CheckpointEdit =
  | { kind: 'config-field'; where: 'top' | 'text_config' | 'vision_config' | 'rope_scaling'; key: string; value: unknown; remove: boolean }
  | { kind: 'config-text'; edit: TextEdit }
  | { kind: 'index-entry'; tensor: number; target: unknown; remove: boolean }
  | { kind: 'index-add'; name: string; target: unknown }
  | { kind: 'index-field'; key: 'weight_map' | 'metadata'; value: unknown }
  | { kind: 'index-text'; edit: TextEdit }
  | { kind: 'index-toggle' }
  | { kind: 'shard-header'; shard: number; edit: HeaderEdit }
  | { kind: 'shard-bytes'; shard: number; edit: ByteEdit }
  | { kind: 'shard-delete'; shard: number }
  | { kind: 'shard-copy'; from: number; to: number }
  | { kind: 'shard-swap'; a: number; b: number };

const checkpointEdit: fc.Arbitrary<CheckpointEdit> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('config-field' as const),
      where: fc.constantFrom('top' as const, 'text_config' as const, 'vision_config' as const, 'rope_scaling' as const),
      key: fc.oneof({ arbitrary: fc.constantFrom(...CONFIG_KEYS), weight: 4 }, { arbitrary: fc.constantFrom('mrope_section', 'type', 'rope_type'), weight: 1 }, { arbitrary: fc.string({ maxLength: 6 }), weight: 1 }),
      value: configValue,
      remove: fc.boolean(),
    }),
    weight: 6,
  },
  { arbitrary: fc.record({ kind: fc.constant('config-text' as const), edit: textEdit }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('index-entry' as const), tensor: fc.nat(), target: indexTarget, remove: fc.boolean() }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('index-add' as const), name: fc.string({ maxLength: 8 }), target: indexTarget }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('index-field' as const), key: fc.constantFrom('weight_map' as const, 'metadata' as const), value: configValue }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('index-text' as const), edit: textEdit }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('index-toggle' as const) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('shard-header' as const), shard: fc.nat(), edit: headerEdit }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('shard-bytes' as const), shard: fc.nat(), edit: byteEdit }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('shard-delete' as const), shard: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('shard-copy' as const), from: fc.nat(), to: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('shard-swap' as const), a: fc.nat(), b: fc.nat() }), weight: 1 },
);

type Json = Record<string, unknown>;

/** Parses a JSON file of the case (as last written), or returns null when an earlier edit broke it. */
function parsed(files: Files, name: string): Json | null {
  const bytes = files.get(name);
  if (bytes === undefined) return null;
  try {
    const value = JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : null;
  } catch {
    return null;
  }
}

function putJson(files: Files, name: string, value: unknown): void {
  files.set(name, new Uint8Array(Buffer.from(serialize(value, 2))));
}

/**
 * The shard's header members, or null when an earlier edit nested a value too deep for this
 * harness to serialise again (JSON.stringify recurses): the shard then keeps that edit alone.
 */
function splitModelOrNull(bytes: Uint8Array): ReturnType<typeof splitFile> | null {
  try {
    return splitFile(bytes);
  } catch (error) {
    if (error instanceof RangeError) return null;
    throw error;
  }
}

/** Applies one edit to the files in memory. */
function applyCheckpointEdit(files: Files, edit: CheckpointEdit): void {
  const shards = shardNames(files);
  const shard = (k: number) => (shards.length === 0 ? undefined : shards[k % shards.length]);
  const target = (t: unknown) => (t !== null && typeof t === 'object' && 'shard' in t ? shard((t as { shard: number }).shard) ?? 'model.safetensors' : t);
  switch (edit.kind) {
    case 'config-field': {
      const config = parsed(files, CONFIG);
      if (config === null) return;
      let holder: Json | undefined = config;
      if (edit.where === 'rope_scaling') holder = (config.rope_scaling ?? (config.text_config as Json | undefined)?.rope_scaling) as Json | undefined;
      else if (edit.where !== 'top') holder = config[edit.where] as Json | undefined;
      if (holder === null || typeof holder !== 'object') return;
      if (edit.remove) delete holder[edit.key];
      else Object.defineProperty(holder, edit.key, { value: edit.value, enumerable: true, writable: true, configurable: true }); // also for "__proto__"
      putJson(files, CONFIG, config);
      return;
    }
    case 'config-text': {
      const bytes = files.get(CONFIG);
      if (bytes) files.set(CONFIG, applyTextEdit(bytes, edit.edit));
      return;
    }
    case 'index-entry': {
      const index = parsed(files, INDEX);
      const map = index?.weight_map as Json | undefined;
      if (!index || map === null || typeof map !== 'object') return;
      const names = Object.keys(map);
      if (names.length === 0) return;
      const name = names[edit.tensor % names.length];
      if (edit.remove) delete map[name];
      else map[name] = target(edit.target);
      putJson(files, INDEX, index);
      return;
    }
    case 'index-add': {
      const index = parsed(files, INDEX);
      const map = index?.weight_map as Json | undefined;
      if (!index || map === null || typeof map !== 'object') return;
      Object.defineProperty(map, edit.name, { value: target(edit.target), enumerable: true, writable: true, configurable: true });
      putJson(files, INDEX, index);
      return;
    }
    case 'index-field': {
      const index = parsed(files, INDEX);
      if (!index) return;
      index[edit.key] = edit.value;
      putJson(files, INDEX, index);
      return;
    }
    case 'index-text': {
      const bytes = files.get(INDEX);
      if (bytes) files.set(INDEX, applyTextEdit(bytes, edit.edit));
      return;
    }
    case 'index-toggle': {
      if (files.has(INDEX)) {
        files.delete(INDEX);
        return;
      }
      // An index for a single-file checkpoint: every tensor in model.safetensors.
      const single = files.get('model.safetensors');
      const header = single && statedFile(single).file;
      if (header) putJson(files, INDEX, { metadata: { total_size: 0 }, weight_map: Object.fromEntries([...header.tensors.keys()].map((name) => [name, 'model.safetensors'])) });
      return;
    }
    case 'shard-header': {
      const name = shard(edit.shard);
      const bytes = name && files.get(name);
      if (!name || !bytes || statedFile(bytes).file === null) return;
      const model = splitModelOrNull(bytes);
      if (model) files.set(name, joinFile(headerBytes(headerText(applyHeaderEdit(model.members, edit.edit))), model.data));
      return;
    }
    case 'shard-bytes': {
      const name = shard(edit.shard);
      const bytes = name && files.get(name);
      if (name && bytes) files.set(name, applyByteEdit(bytes, edit.edit));
      return;
    }
    case 'shard-delete': {
      const name = shard(edit.shard);
      if (name) files.delete(name);
      return;
    }
    case 'shard-copy': {
      const [from, to] = [shard(edit.from), shard(edit.to)];
      if (from && to) files.set(to, files.get(from)!);
      return;
    }
    case 'shard-swap': {
      const [a, b] = [shard(edit.a), shard(edit.b)];
      if (a && b) [files.get(a), files.get(b)].reverse().forEach((bytes, k) => files.set(k === 0 ? a : b, bytes!));
      return;
    }
  }
}

async function writeFiles(dir: string, files: Files): Promise<void> {
  await mkdir(dir, { recursive: true });
  await Promise.all([...files].map(([name, bytes]) => writeFile(join(dir, name), bytes)));
}

// --- the oracle for accepted directories -----------------------------------------------------------------------

/**
 * For a checkpoint the reader accepted: the shards it uses (the index's, else model.safetensors)
 * are valid safetensors files as read independently, no tensor is in two of them, the index (if
 * any) maps each tensor to the shard that holds it, and every tensor reads back as the bytes its
 * shard's header states.
 */
async function checkAcceptedCheckpoint(dir: string, files: Files, checkpoint: Checkpoint): Promise<void> {
  const index = parsed(files, INDEX);
  const weightMap = (index?.weight_map ?? null) as Record<string, string> | null;
  expect(!files.has(INDEX) || weightMap !== null, () => 'accepted a checkpoint whose index has no weight_map object');
  const used = weightMap ? [...new Set(Object.values(weightMap))] : ['model.safetensors'];
  const stated = new Map<string, { file: string; header: StatedFile }>();
  for (const file of used) {
    const bytes = files.get(file);
    expect(bytes !== undefined, () => `accepted a checkpoint whose shard ${file} is missing`);
    const { file: header, problem } = statedFile(bytes);
    expect(header !== null, () => `accepted shard ${file}, which breaks the format: ${problem}`);
    for (const name of header.tensors.keys()) {
      expect(!stated.has(name), () => `accepted tensor '${name}' in both ${stated.get(name)?.file} and ${file}`);
      expect(weightMap === null || weightMap[name] === file, () => `accepted tensor '${name}' in ${file}, which the index maps to ${weightMap?.[name]}`);
      stated.set(name, { file, header });
    }
  }
  if (weightMap) for (const name of Object.keys(weightMap)) expect(stated.has(name), () => `accepted an index entry for '${name}', which no shard holds`);
  expect(checkpoint.tensors.size === stated.size, () => `${checkpoint.tensors.size} tensors listed, ${stated.size} stated`);
  for (const [name, { file, header }] of stated) {
    const info = checkpoint.tensors.get(name);
    const want = header.tensors.get(name)!;
    expect(info !== undefined && info.file === file, () => `tensor '${name}' listed in ${info?.file}, stated in ${file}`);
    const read = await readOrReject(dir, () => checkpoint.read(name));
    expect(read.accepted, () => `tensor '${name}' of an accepted checkpoint failed to read: ${(read as { error: Error }).error.message}`);
    expect(read.value.dtype === want.dtype && read.value.shape.join() === want.shape.join(), () => `tensor '${name}': ${read.value.dtype} [${read.value.shape}], stated ${want.dtype} [${want.shape}]`);
    expectSameBytes(bytesOf(read.value.data), files.get(file)!.subarray(want.begin, want.end), `tensor '${name}' (${file})`);
  }
}

// --- properties -------------------------------------------------------------------------------------------

/** Opens `dir` the way `entry` says; the result's checkpoint is checked and closed by the caller. */
async function openDirectory(dir: string, entry: 'checkpoint' | 'model'): Promise<Checkpoint> {
  if (entry === 'checkpoint') return Checkpoint.open(dir);
  const model = await loadModel(dir);
  return model.checkpoint;
}

interface EditedCase {
  base: Base;
  edits: CheckpointEdit[];
  entry: 'checkpoint' | 'model';
}

const edited = defineProperty({
  name: 'checkpoint.mutated',
  reader: 'checkpoint',
  title: 'a tiny checkpoint with config fields, JSON bytes, index entries and shards edited is rejected with a VlmqError naming the directory, or reads back every tensor its shards state (unedited: loads)',
  testRuns: 400,
  weight: 8,
  arbitrary: fc.record({
    base,
    // Few edits, often none: most cases then fail on one thing, and unedited ones must load.
    edits: fc.oneof({ arbitrary: fc.constant([]), weight: 1 }, { arbitrary: fc.array(checkpointEdit, { minLength: 1, maxLength: 3 }), weight: 6 }),
    entry: fc.constantFrom('checkpoint' as const, 'model' as const),
  }),
  setup,
  async check(c: EditedCase, dir, shared): Promise<Verdict> {
    const files = new Map(await baseFiles(shared, c.base));
    for (const edit of c.edits) applyCheckpointEdit(files, edit);
    const model = join(dir, 'model');
    await writeFiles(model, files);
    const outcome = await readOrReject(model, () => openDirectory(model, c.entry));
    if (!outcome.accepted) {
      expect(c.edits.length > 0, () => `rejected an unedited tiny checkpoint: ${outcome.error.message}`);
      return 'rejected';
    }
    try {
      await checkAcceptedCheckpoint(model, files, outcome.value);
    } finally {
      await outcome.value.close();
    }
    return 'accepted';
  },
});

/** Config keys that count layers, blocks or heads: each multiplies the tensors the reader expects. */
const COUNT_KEYS: ReadonlyArray<['top' | 'text_config' | 'vision_config', string]> = [
  ['top', 'num_hidden_layers'], ['text_config', 'num_hidden_layers'], ['vision_config', 'depth'], ['vision_config', 'num_hidden_layers'],
  ['top', 'num_attention_heads'], ['top', 'num_key_value_heads'], ['vision_config', 'num_heads'],
];

const hugeCounts = defineProperty({
  name: 'checkpoint.huge-counts',
  reader: 'checkpoint',
  title: 'a config.json whose layer, block or head count is huge (2^17 … 2^53 − 1) is refused or checked without listing millions of tensors (each case within the time bound)',
  testRuns: 20,
  weight: 0.5,
  arbitrary: fc.record({
    base,
    at: fc.constantFrom(...COUNT_KEYS),
    value: fc.oneof(fc.integer({ min: 2 ** 17, max: 2 ** 31 }), fc.constantFrom(1e6, 1e9, 2 ** 32, 2 ** 53 - 1)),
  }),
  setup,
  async check({ base: b, at: [where, key], value }, dir, shared): Promise<Verdict> {
    const files = new Map(await baseFiles(shared, b));
    applyCheckpointEdit(files, { kind: 'config-field', where, key, value, remove: false });
    const model = join(dir, 'model');
    await writeFiles(model, files);
    const outcome = await readOrReject(model, () => loadModel(model));
    if (outcome.accepted) await outcome.value.close();
    return outcome.accepted ? 'accepted' : 'rejected';
  },
});

/** Text fields that may sit both at the top of config.json and under text_config (both must then agree). */
const TEXT_KEYS = ['hidden_size', 'num_hidden_layers', 'rope_scaling', 'tie_word_embeddings', 'vocab_size', 'rms_norm_eps'];

const deepValues = defineProperty({
  name: 'checkpoint.config-deep-values',
  reader: 'checkpoint',
  title: 'a config.json value nested thousands of levels deep (at the top, under text_config, or both) is rejected with a VlmqError naming the file, not a stack overflow',
  testRuns: 40,
  weight: 0.5,
  arbitrary: fc.record({
    base: base.map((b) => ({ ...b, text: 'both' as const, architecture: b.architecture === 'llava_onevision' ? ('qwen2_vl' as const) : b.architecture })),
    key: fc.constantFrom(...TEXT_KEYS, 'unused_field'),
    where: fc.constantFrom('top' as const, 'text_config' as const, 'both' as const),
    value: deepLiteral(1_000, 50_000),
  }),
  setup,
  async check({ base: b, key, where, value }, dir, shared): Promise<Verdict> {
    const files = new Map(await baseFiles(shared, b));
    // One serialisation for both places: the deep value is written as raw text, never parsed back here.
    const config = parsed(files, CONFIG)!;
    for (const at of where === 'both' ? (['top', 'text_config'] as const) : [where]) {
      const holder = at === 'top' ? config : (config.text_config as Json);
      Object.defineProperty(holder, key, { value, enumerable: true, writable: true, configurable: true });
    }
    putJson(files, CONFIG, config);
    const model = join(dir, 'model');
    await writeFiles(model, files);
    const outcome = await readOrReject(model, () => loadModel(model));
    if (outcome.accepted) await outcome.value.close();
    return outcome.accepted ? 'accepted' : 'rejected';
  },
});

const special = defineProperty({
  name: 'checkpoint.special-files',
  reader: 'checkpoint',
  title: 'a FIFO, directory, link loop, dangling link, device or nothing in place of config.json, the index or a shard is refused at once with a VlmqError naming it',
  testRuns: 30,
  weight: 0.2,
  arbitrary: fc.record({ base, file: fc.constantFrom('config', 'index', 'shard'), kind: specialKind, entry: fc.constantFrom('checkpoint' as const, 'model' as const) }),
  setup,
  async check({ base: b, file, kind, entry }, dir, shared): Promise<Verdict> {
    const files = new Map(await baseFiles(shared, b));
    const name = file === 'config' ? CONFIG : file === 'index' ? INDEX : shardNames(files)[0];
    files.delete(name);
    const model = join(dir, 'model');
    await writeFiles(model, files);
    await makeSpecial(join(model, name), kind);
    const outcome = await readOrReject(model, () => openDirectory(model, entry));
    if (outcome.accepted) {
      await outcome.value.close();
      // A single-file checkpoint needs no index: one that is absent (or a link to nothing, which
      // Hugging Face's os.path.isfile also takes for absent) is no error.
      expect(file === 'index' && (kind === 'missing' || kind === 'dangling-link'), () => `accepted a ${kind} as ${name}`);
      return 'accepted';
    }
    return 'rejected';
  },
});

export const CHECKPOINT_PROPERTIES: readonly FuzzProperty[] = [edited, deepValues, hugeCounts, special] as FuzzProperty[];
