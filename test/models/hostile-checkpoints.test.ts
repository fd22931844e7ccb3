// Checkpoints built to mislead: tensors the config does not account for, NaN and infinities in a
// weight, nonsense config values, a config that names no architecture, directories, FIFOs and
// symbolic-link loops where files belong, and arguments that are not paths. Each one is refused
// when the model is loaded or the tensor read, by a VlmqError whose message names the file and
// the tensor or field. Expected names, counts and positions come from the fixture's own tensor
// table, the test's header parser and the bytes the test wrote, never from the code under test.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VlmqError } from '../../lib/errors.js';
import { inspectCheckpoint } from '../../lib/export/inspect.js';
import { loadSafetensors } from '../../lib/io/safetensors-reader.js';
import { writeSafetensors, type WritableTensor } from '../../lib/io/safetensors-writer.js';
import { loadModel } from '../../lib/models/model.js';
import { quantize } from '../../lib/pipeline/quantize.js';
import { writeTinyCheckpoint, type Architecture, type Layout, type TinyCheckpoint } from '../fixtures/checkpoints.js';
import { bytesOf, editJson, patchBytes, readTensorTable } from '../helpers/checkpoint-files.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const PAIRS: [Architecture, Layout][] = [
  ['qwen2_vl', 'original'], ['qwen2_vl', 'transformers-4.52'], ['qwen2_5_vl', 'original'],
  ['llava_onevision', 'original'], ['llava_onevision', 'transformers-4.52'],
];

/** The error `promise` rejects with (the test fails when it resolves). */
async function rejection(t: Test, promise: Promise<unknown>): Promise<VlmqError & { code: string }> {
  const error = await promise.then(() => null, (e: unknown) => e);
  t.ok(error instanceof VlmqError, `a VlmqError (got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)})`);
  return error as VlmqError & { code: string };
}

/** The text config as the fixture wrote it: LLaVA-OV's text_config, Qwen's top level (flat style). */
function textConfigOf(config: Record<string, unknown>, architecture: Architecture): Record<string, unknown> {
  return (architecture === 'llava_onevision' ? config.text_config : config) as Record<string, unknown>;
}

/** Adds tensors to a single-file checkpoint (the test's own rewrite through the safetensors writer). */
async function addTensors(dir: string, extra: WritableTensor[]): Promise<void> {
  const path = join(dir, 'model.safetensors');
  const { tensors } = await loadSafetensors(path);
  const kept = [...tensors].map(([name, x]) => ({ name, dtype: x.dtype, shape: [...x.shape], data: x.data as ArrayBufferView }));
  await writeSafetensors(path, [...kept, ...extra]);
}

// --- tensors the architecture does not account for -------------------------------------------------

for (const [architecture, layout] of PAIRS) {
  t.test(`${architecture} ${layout}: num_hidden_layers 1 on a 2-layer checkpoint is refused naming the extra layer's tensors and file; unknownTensors 'keep' loads it and lists them`, async (t) => {
    const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture, layout, layers: 2, nestedTextConfig: architecture === 'llava_onevision' ? undefined : 'flat' });
    const layer1 = [...tiny.tensors.keys()].filter((name) => name.startsWith(`${tiny.prefixes.text}layers.1.`));
    const files = [...new Set(layer1.map((name) => tiny.tensors.get(name)!.file))];
    t.equal(layer1.length, 12, 'fixture: layer 1 has 2 norms, 7 weights and 3 biases');
    await editJson(join(tiny.dir, 'config.json'), (c) => { textConfigOf(c, architecture).num_hidden_layers = 1; });

    const error = await rejection(t, loadModel(tiny.dir));
    t.equal(error.code, 'ERR_VLMQ_BAD_FILE');
    t.match(error.message, new RegExp(`^${escape(tiny.dir)}: 12 tensor\\(s\\) in ${escape(files.join(', '))} that the architecture and config\\.json do not account for: `));
    t.ok(layer1.filter((name) => error.message.includes(name)).length === 5, 'the first five are named');
    t.match(error.message, /, and 7 more/, 'and the rest counted');
    t.match(error.message, new RegExp(`num_hidden_layers is 1, but the checkpoint holds decoder layers up to ${escape(tiny.prefixes.text)}layers\\.1`));
    t.match(error.message, /--keep-unknown-tensors/, 'says how to carry them over');

    const model = await loadModel(tiny.dir, { unknownTensors: 'keep' });
    t.teardown(() => model.close());
    t.strictSame([...model.unknownTensors].sort(), layer1.sort(), 'model.unknownTensors: exactly the tensors of layer 1');
    t.equal(model.config.text.numLayers, 1);
    t.equal(model.linears().length, 7, 'only layer 0 is quantized');
  });
}

t.test('tensors with names no architecture uses are refused by name and file, without a layer hint; the list is cut after five', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_5_vl' });
  const extra = Array.from({ length: 7 }, (_, i) => ({ name: `extra.tensor_${i}`, dtype: 'F32' as const, shape: [2], data: new Float32Array(2) }));
  await addTensors(tiny.dir, extra);
  const error = await rejection(t, loadModel(tiny.dir));
  t.match(error.message, new RegExp(`^${escape(tiny.dir)}: 7 tensor\\(s\\) in model\\.safetensors that the architecture and config\\.json do not account for: extra\\.tensor_\\d, `));
  t.equal(extra.filter((x) => error.message.includes(x.name)).length, 5);
  t.match(error.message, /and 2 more/);
  t.notMatch(error.message, /num_hidden_layers/, 'no decoder layer is involved');
  const kept = await loadModel(tiny.dir, { unknownTensors: 'keep' });
  t.strictSame([...kept.unknownTensors].sort(), extra.map((x) => x.name).sort());
  await kept.close();
});

t.test('a clean checkpoint has no unknown tensors, and unknownTensors accepts only error or keep', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'llava_onevision' });
  const model = await loadModel(tiny.dir, { unknownTensors: 'keep' });
  t.strictSame(model.unknownTensors, []);
  await model.close();
  const error = await rejection(t, loadModel(tiny.dir, { unknownTensors: 'copy' as never }));
  t.equal(error.code, 'ERR_VLMQ_INVALID_ARG');
  t.match(error.message, /^Expected 'error' or 'keep' for unknownTensors but received "copy"$/);
});

// --- every problem at once ---------------------------------------------------------------------------

t.test('loadModel lists every tensor problem in one error, as inspectCheckpoint reports them', async (t) => {
  const layers = 3;
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_vl', layers, nestedTextConfig: 'flat' });
  await editJson(join(tiny.dir, 'config.json'), (c) => { c.intermediate_size = 2 * (c.intermediate_size as number); });
  const shaped = [...tiny.tensors.keys()].filter((name) => /\.mlp\.(gate|up|down)_proj\.weight$/.test(name) && name.startsWith(tiny.prefixes.text));
  t.equal(shaped.length, 3 * layers, 'fixture: gate, up and down of every layer are shaped by intermediate_size');
  const error = await rejection(t, loadModel(tiny.dir));
  t.match(error.message, new RegExp(`^${escape(tiny.dir)}: ${shaped.length} problems with the tensors:\\n`));
  for (const name of shaped) t.match(error.message, new RegExp(`\\n  - ${escape(name)} \\(model\\.safetensors\\): expected \\[`), name);
  const report = await inspectCheckpoint(tiny.dir);
  t.strictSame(report.problems.map((p) => p.tensors[0]).sort(), shaped.sort(), 'inspect reports the same tensors');
  t.ok(report.problems.every((p) => p.kind === 'shape' && p.files[0] === 'model.safetensors'));
});

// --- NaN and infinities in a weight ------------------------------------------------------------------

const NON_FINITE: Record<string, { nan: Uint8Array; inf: Uint8Array; size: number }> = {
  BF16: { nan: bytesOf(new Uint16Array([0x7fc0])), inf: bytesOf(new Uint16Array([0xff80])), size: 2 },
  F16: { nan: bytesOf(new Uint16Array([0x7e00])), inf: bytesOf(new Uint16Array([0x7c00])), size: 2 },
  F32: { nan: bytesOf(new Float32Array([NaN])), inf: bytesOf(new Float32Array([-Infinity])), size: 4 },
};

for (const dtype of ['BF16', 'F16', 'F32'] as const) {
  t.test(`${dtype}: NaN and an infinity in a weight make readLinear fail naming the tensor, its file, the count and the first position`, async (t) => {
    const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_vl', dtype, shards: 2 });
    const raw = await readTensorTable(tiny.dir);
    const model = await loadModel(tiny.dir);
    t.teardown(() => model.close());
    const linear = model.linears().find((l) => l.module === 'k_proj' && l.layer === 1)!;
    const info = raw.get(`${linear.prefix}.weight`)!;
    const [rows, cols] = info.shape;
    const { nan, inf, size } = NON_FINITE[dtype];
    const first = 2 * cols + 5, second = (rows - 1) * cols;  // row 2, column 5; the last row
    await patchBytes(join(tiny.dir, info.file), info.begin + second * size, inf);
    await patchBytes(join(tiny.dir, info.file), info.begin + first * size, nan);
    const error = await rejection(t, model.readLinear(linear));
    t.equal(error.code, 'ERR_VLMQ_BAD_FILE');
    t.equal(error.message, `${join(tiny.dir, info.file)}: tensor '${info.name}' holds 2 NaN or infinite value(s), the first at [2, 5]; a checkpoint's weights must be finite`);
    const other = model.linears().find((l) => l.module === 'q_proj' && l.layer === 1)!;
    await t.resolves(model.readLinear(other), 'other linears still read');
  });
}

t.test('an RTN run over a checkpoint with a NaN weight fails when the weight is read, naming the tensor and file (not the quantizer\'s "weight holds 1 NaN")', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'llava_onevision' });
  const raw = await readTensorTable(tiny.dir);
  const name = `${tiny.prefixes.text}layers.0.mlp.up_proj.weight`;
  const info = raw.get(name)!;
  await patchBytes(join(tiny.dir, info.file), info.begin, NON_FINITE.BF16.nan);
  const model = await loadModel(tiny.dir);
  t.teardown(() => model.close());
  const run = await quantize(model, null, { method: 'rtn', bits: 4 });
  const error = await rejection(t, run.save(join(t.testdir(), 'out')));
  t.equal(error.code, 'ERR_VLMQ_BAD_FILE');
  t.match(error.message, `${join(tiny.dir, 'model.safetensors')}: tensor '${name}' holds 1 NaN or infinite value(s), the first at [0, 0]`);
});

// --- nonsense in config.json -------------------------------------------------------------------------

interface ConfigCase {
  title: string;
  architecture: Architecture;
  /** Where the field lives: the top level, text_config or vision_config. */
  where: '' | 'text_config' | 'vision_config';
  field: string;
  value: unknown;
  expected: RegExp;
}

const CONFIG_CASES: ConfigCase[] = [
  { title: 'a negative rms_norm_eps', architecture: 'qwen2_vl', where: '', field: 'rms_norm_eps', value: -1, expected: /expected a finite number > 0 \(within float32 range\), found -1$/ },
  { title: 'rope_theta 0', architecture: 'qwen2_vl', where: '', field: 'rope_theta', value: 0, expected: /expected a finite number > 0 \(within float32 range\), found 0$/ },
  { title: 'rms_norm_eps that rounds to 0 in float32', architecture: 'qwen2_5_vl', where: 'text_config', field: 'rms_norm_eps', value: 1e-50, expected: /found 1e-50$/ },
  { title: 'a nested rms_norm_eps of -1 (LLaVA-OV)', architecture: 'llava_onevision', where: 'text_config', field: 'rms_norm_eps', value: -1, expected: /expected a finite number > 0/ },
  { title: 'a nested rope_theta of 0 (LLaVA-OV)', architecture: 'llava_onevision', where: 'text_config', field: 'rope_theta', value: 0, expected: /expected a finite number > 0/ },
  { title: 'a negative hidden_size', architecture: 'qwen2_vl', where: '', field: 'hidden_size', value: -64, expected: /expected an integer ≥ 1 \(required\), found -64$/ },
  { title: 'intermediate_size 0', architecture: 'llava_onevision', where: 'text_config', field: 'intermediate_size', value: 0, expected: /expected an integer ≥ 1 \(required\), found 0$/ },
  { title: 'a head count that does not divide hidden_size', architecture: 'qwen2_vl', where: '', field: 'num_attention_heads', value: 5, expected: /expected a divisor of hidden_size \(64\), found 5$/ },
  { title: 'key/value heads that do not divide the heads', architecture: 'qwen2_5_vl', where: 'text_config', field: 'num_key_value_heads', value: 3, expected: /expected a divisor of num_attention_heads \(4\), found 3$/ },
  { title: 'mlp_ratio 0 (Qwen2-VL vision)', architecture: 'qwen2_vl', where: 'vision_config', field: 'mlp_ratio', value: 0, expected: /expected a finite number > 0/ },
  { title: 'an mlp_ratio that gives a fractional MLP width', architecture: 'qwen2_vl', where: 'vision_config', field: 'mlp_ratio', value: 0.3, expected: /an integer, found 0\.3$/ },
  { title: 'a vision head count whose head dim is not a multiple of 4', architecture: 'qwen2_5_vl', where: 'vision_config', field: 'num_heads', value: 16, expected: /a multiple of 4 \(the 2-D rotary embedding\), not 2, found 16$/ },
  { title: 'temporal_patch_size 100', architecture: 'qwen2_vl', where: 'vision_config', field: 'temporal_patch_size', value: 100, expected: /expected an integer in \[1, 64\], found 100$/ },
  { title: 'a window smaller than a merged patch', architecture: 'qwen2_5_vl', where: 'vision_config', field: 'window_size', value: 20, expected: /expected an integer ≥ 28, found 20$/ },
  { title: 'a negative SigLIP layer_norm_eps', architecture: 'llava_onevision', where: 'vision_config', field: 'layer_norm_eps', value: -1e-6, expected: /expected a finite number > 0/ },
  { title: 'a SigLIP image_size of a million pixels', architecture: 'llava_onevision', where: 'vision_config', field: 'image_size', value: 1e6, expected: /expected an integer in \[\d+, 65536\], found 1000000$/ },
];

for (const c of CONFIG_CASES) {
  const path = c.where ? `${c.where}.${c.field}` : c.field;
  t.test(`config.json with ${c.title} is refused when the model is loaded, naming config.json and ${path}`, async (t) => {
    const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: c.architecture, nestedTextConfig: c.architecture === 'llava_onevision' ? undefined : c.where === 'text_config' ? 'nested' : 'flat' });
    await editJson(join(tiny.dir, 'config.json'), (config) => { (c.where ? config[c.where] : config)[c.field] = c.value; });
    const error = await rejection(t, loadModel(tiny.dir));
    t.equal(error.code, 'ERR_VLMQ_BAD_FILE');
    t.match(error.message, new RegExp(`^${escape(join(tiny.dir, 'config.json'))}: ${escape(path)}: expected `));
    t.match(error.message, c.expected);
  });
}

t.test('1e999 in config.json (Infinity to JSON.parse) is refused as not finite, naming the field', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'llava_onevision' });
  await editJson(join(tiny.dir, 'config.json'), (config) => { config.text_config.rope_theta = 'PLACEHOLDER'; });
  const text = await readFile(join(tiny.dir, 'config.json'), 'utf8');
  await writeFile(join(tiny.dir, 'config.json'), text.replace('"PLACEHOLDER"', '1e999'));
  const error = await rejection(t, loadModel(tiny.dir));
  t.match(error.message, new RegExp(`^${escape(join(tiny.dir, 'config.json'))}: text_config\\.rope_theta: expected a finite number > 0 \\(within float32 range\\), found Infinity$`));
});

t.test('config.json = {} says that no architecture is named and lists the supported ones', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_vl', extraFiles: false });
  await writeFile(join(tiny.dir, 'config.json'), '{}');
  const error = await rejection(t, loadModel(tiny.dir));
  t.equal(error.code, 'ERR_VLMQ_UNSUPPORTED_MODEL');
  t.match(error.message, new RegExp(`^${escape(join(tiny.dir, 'config.json'))}: names no architecture \\(neither \`architectures\` nor \`model_type\` is set\\); vlmq supports `));
  for (const supported of ['Qwen2VLForConditionalGeneration', 'Qwen2_5_VLForConditionalGeneration', 'LlavaOnevisionForConditionalGeneration']) t.match(error.message, supported);
  t.notMatch(error.message, /undefined/);
});

// --- what stands where a file or directory belongs ----------------------------------------------------

t.test('a directory named model.safetensors, or in place of a shard, is refused naming its path and that it is a directory', async (t) => {
  const dir = t.testdir();
  const single = await writeTinyCheckpoint(join(dir, 'single'), { architecture: 'qwen2_vl', extraFiles: false });
  await rm(join(single.dir, 'model.safetensors'));
  await mkdir(join(single.dir, 'model.safetensors'));
  const a = await rejection(t, loadModel(single.dir));
  t.equal(a.code, 'ERR_VLMQ_BAD_FILE');
  t.equal(a.message, `${join(single.dir, 'model.safetensors')}: is a directory, not a regular safetensors file`);

  const sharded = await writeTinyCheckpoint(join(dir, 'sharded'), { architecture: 'qwen2_vl', shards: 2, extraFiles: false });
  const shard = sharded.shardFiles[1];
  await rm(join(sharded.dir, shard));
  await mkdir(join(sharded.dir, shard));
  const b = await rejection(t, loadModel(sharded.dir));
  t.equal(b.message, `${join(sharded.dir, shard)}: is a directory, not a regular safetensors file`);

  const config = await writeTinyCheckpoint(join(dir, 'config-dir'), { architecture: 'qwen2_vl', extraFiles: false });
  await rm(join(config.dir, 'config.json'));
  await mkdir(join(config.dir, 'config.json'));
  const c = await rejection(t, loadModel(config.dir));
  t.equal(c.message, `${join(config.dir, 'config.json')}: is a directory, not a regular JSON file`);
});

t.test('a symbolic-link loop as the checkpoint directory, config.json, model.safetensors or a shard is an error in words naming the path', async (t) => {
  const dir = t.testdir();
  const loop = async (path: string) => {
    await symlink(`${path}.other`, path);
    await symlink(path, `${path}.other`);
  };
  const words = /: too many levels of symbolic links \(a link loop\?\)$/;

  await loop(join(dir, 'looped-dir'));
  const a = await rejection(t, loadModel(join(dir, 'looped-dir')));
  t.match(a.message, new RegExp(`^${escape(join(dir, 'looped-dir'))}${words.source}`));

  const cases: [string, (ck: TinyCheckpoint) => string][] = [
    ['config.json', (ck) => join(ck.dir, 'config.json')],
    ['model.safetensors', (ck) => join(ck.dir, 'model.safetensors')],
    ['a shard', (ck) => join(ck.dir, ck.shardFiles[0])],
  ];
  for (const [label, pathOf] of cases) {
    const ck = await writeTinyCheckpoint(join(dir, label.replace(/\W/g, '-')), { architecture: 'qwen2_5_vl', shards: label === 'a shard' ? 2 : 1, extraFiles: false });
    const path = pathOf(ck);
    await rm(path);
    await loop(path);
    const error = await rejection(t, loadModel(ck.dir));
    t.equal(error.code, 'ERR_VLMQ_BAD_FILE', label);
    t.match(error.message, new RegExp(`^${escape(path)}: `), `${label}: names the path`);
    t.match(error.message, /too many levels of symbolic links/, `${label}: in words`);
    t.notMatch(error.message, /ELOOP/, `${label}: no bare error code`);
  }
});

t.test('a FIFO as config.json is refused by kind at once, not waited on', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_vl', extraFiles: false });
  await rm(join(tiny.dir, 'config.json'));
  try {
    execFileSync('mkfifo', [join(tiny.dir, 'config.json')]);
  } catch {
    t.comment('mkfifo is not available here: nothing to check');
    return;
  }
  const error = await rejection(t, loadModel(tiny.dir));
  t.equal(error.message, `${join(tiny.dir, 'config.json')}: is a FIFO (named pipe), not a regular JSON file`);
});

// --- arguments that are not a directory path -----------------------------------------------------------

t.test('loadModel (and inspectCheckpoint) of undefined, null, "", a number or an object is an invalid-argument error naming dir', async (t) => {
  for (const dir of [undefined, null, '', 42, { path: '/' }]) {
    const error = await rejection(t, loadModel(dir as never));
    t.equal(error.code, 'ERR_VLMQ_INVALID_ARG');
    t.match(error.message, /^Expected the path of a checkpoint directory \(a non-empty string\) for dir but received /, String(dir));
  }
  const inspected = await rejection(t, inspectCheckpoint(undefined as never));
  t.match(inspected.message, /for dir but received undefined$/, 'inspectCheckpoint too');
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_vl', extraFiles: false });
  const error = await rejection(t, loadModel(tiny.dir, null as never));
  t.match(error.message, /for options but received null/);
});
