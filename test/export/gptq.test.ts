// GPTQ export of RTN-quantized tiny checkpoints (docs/formats.md §2): for each architecture and
// layout, 2/3/4/8 bits, per-channel and g32, sym and asym, formats gptq (v1) and gptq_v2. The
// tensor set, shapes and dtypes are derived by hand from the fixture's tensor table and §2.1; the
// packed words are unpacked with the test's own bit-stream reader and compared with a direct
// quantizeLinear call on the fixture's weight; non-quantized tensors are converted to F16 with the
// test's own half-precision encoder; configs are compared field by field with §2.6.
import t, { type Test } from 'tap';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel, type Model } from '../../lib/models/model.js';
import { quantize } from '../../lib/pipeline/quantize.js';
import { quantizeLinear, type LinearQuantization } from '../../lib/quant/quantize-linear.js';
import { writeTinyCheckpoint, type Architecture, type Layout, type TinyCheckpoint, type WeightDType } from '../fixtures/checkpoints.js';
import {
  decodeFloats, encodeFloats, exists, filesIn, firstDifference, gptqShapesByHand, i32, patchBytes, readJson, readRawBytes,
  readTensorTable, u16, unpackQweight, unpackQzeros, type Json, type RawTensor,
} from '../helpers/checkpoint-files.js';
import { decodeF16, encodeBf16, encodeF16 } from '../helpers/half.js';

type Bits = 2 | 3 | 4 | 8;
type Format = 'gptq' | 'gptq_v2';
const BITS: Bits[] = [2, 3, 4, 8];
const GROUPS = [-1, 32];
const FORMATS: Format[] = ['gptq', 'gptq_v2'];
const VERSION: string = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')).version;
const WEIGHT_FILES = /^(model\.safetensors|model-\d{5}-of-\d{5}\.safetensors|model\.safetensors\.index\.json)$/;

const root = t.testdir();

interface Fixture {
  tiny: TinyCheckpoint;
  model: Model;
  /** fixture tensor bytes, by name */
  bytes: Map<string, Uint8Array>;
  raw: Map<string, RawTensor>;
}

const fixtures = new Map<string, Promise<Fixture>>();
t.teardown(async () => {
  for (const f of fixtures.values()) await (await f).model.close();
});

/** A fixture written once per file and shared by the subtests (each export goes to its own dir). */
function fixture(architecture: Architecture, layout: Layout, dtype: WeightDType = 'BF16'): Promise<Fixture> {
  const key = `${architecture}-${layout}-${dtype}`;
  if (!fixtures.has(key)) {
    fixtures.set(key, (async () => {
      const tiny = await writeTinyCheckpoint(join(root, key), { architecture, layout, dtype, seed: 11 });
      const raw = await readTensorTable(tiny.dir);
      const bytes = new Map<string, Uint8Array>();
      for (const [name, info] of raw) bytes.set(name, await readRawBytes(tiny.dir, info));
      return { tiny, raw, bytes, model: await loadModel(tiny.dir) };
    })());
  }
  return fixtures.get(key)!;
}

/** RTN of one fixture weight through quantizeLinear directly (not through the export path). */
async function directRtn(f: Fixture, prefix: string, bits: Bits, groupSize: number, sym: boolean): Promise<LinearQuantization> {
  const info = f.raw.get(`${prefix}.weight`)!;
  const bytes = f.bytes.get(`${prefix}.weight`)!;
  const data = info.dtype === 'F32' ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) : u16(bytes);
  return quantizeLinear({ dtype: info.dtype as WeightDType, shape: info.shape, data }, null, { method: 'rtn', bits, groupSize, sym });
}

const isBiasOfQkv = (name: string) => /\.self_attn\.[qkv]_proj\.bias$/.test(name);

/** name → [dtype, shape] of the GPTQ export of this fixture, by hand from its tensor table and §2.1. */
function expectedTensorSet(f: Fixture, bits: Bits, groupSize: number): Map<string, [string, number[]]> {
  const quantized = new Set(f.tiny.quantizable);
  const want = new Map<string, [string, number[]]>();
  for (const [name, info] of f.tiny.tensors) {
    const prefix = name.replace(/\.(weight|bias)$/, '');
    if (quantized.has(prefix) && name.endsWith('.weight')) {
      const [N, K] = info.shape;
      const s = gptqShapesByHand(N, K, bits, groupSize);
      want.set(`${prefix}.qweight`, ['I32', s.qweight]);
      want.set(`${prefix}.qzeros`, ['I32', s.qzeros]);
      want.set(`${prefix}.scales`, ['F16', s.scales]);
      want.set(`${prefix}.g_idx`, ['I32', s.gIdx]);
    } else {
      want.set(name, ['F16', [...info.shape]]);
    }
  }
  return want;
}

function expectedQuantizationConfig(f: Fixture, bits: Bits, groupSize: number, sym: boolean, format: Format) {
  return {
    bits, group_size: groupSize, desc_act: false, sym, static_groups: false, true_sequential: true, damp_percent: 0.01,
    lm_head: false, quant_method: 'gptq', checkpoint_format: format, format, pack_dtype: 'int32',
    block_name_to_quantize: `${f.tiny.prefixes.text}layers`,
    meta: { quantizer: [`vlmq:${VERSION}`], vlmq_method: 'rtn' },
  };
}

/** Everything checked about one export; failures are collected so that one case is one line per kind of check. */
async function checkExport(t: Test, f: Fixture, out: string, direct: Map<string, LinearQuantization>, bits: Bits, groupSize: number, sym: boolean, format: Format): Promise<void> {
  const auxiliary = f.tiny.files.filter((name) => name !== 'config.json' && !WEIGHT_FILES.test(name));
  t.strictSame(await filesIn(out), ['config.json', 'model.safetensors', 'quantize_config.json', ...auxiliary].sort(), 'files: weights, both configs, auxiliary files');

  const table = await readTensorTable(out);
  const want = expectedTensorSet(f, bits, groupSize);
  t.strictSame([...table.keys()].sort(), [...want.keys()].sort(), 'tensor set: qweight/qzeros/scales/g_idx per decoder linear, q/k/v biases, every other tensor; no .weight of a quantized linear');
  const wrong: string[] = [];
  for (const [name, [dtype, shape]] of want) {
    const got = table.get(name);
    if (got && (got.dtype !== dtype || got.shape.join() !== shape.join())) wrong.push(`${name}: ${got.dtype} [${got.shape}] instead of ${dtype} [${shape}]`);
  }
  t.strictSame(wrong, [], 'dtypes and shapes as §2.1 (I32 qweight/qzeros/g_idx, F16 scales and everything else)');
  const biases = [...table.keys()].filter((n) => n.endsWith('.bias') && f.tiny.quantizable.includes(n.slice(0, -'.bias'.length)));
  t.ok(biases.length > 0 && biases.every(isBiasOfQkv), 'only q/k/v of the decoder linears carry a bias');
  t.equal(biases.length, 3 * f.tiny.quantizable.length / 7, 'every q/k/v bias is kept');

  const maxq = 2 ** bits - 1;
  const problems: string[] = [];
  for (const prefix of f.tiny.quantizable) {
    const q = direct.get(prefix)!;
    const [N, K] = f.tiny.tensors.get(`${prefix}.weight`)!.shape;
    const { G } = gptqShapesByHand(N, K, bits, groupSize);
    const read = async (suffix: string) => readRawBytes(out, table.get(`${prefix}.${suffix}`)!);
    const codes = unpackQweight(i32(await read('qweight')), N, K, bits);
    const at = firstDifference(codes, q.codes);
    if (at >= 0) problems.push(`${prefix}: code ${at} is ${codes[at]}, quantizeLinear gave ${q.codes[at]}`);
    const stored = unpackQzeros(i32(await read('qzeros')), N, G, bits);
    const offset = format === 'gptq' ? 1 : 0;
    const badZero = q.zeros.findIndex((z, i) => stored[i] !== ((z - offset) & maxq));
    if (badZero >= 0) problems.push(`${prefix}: stored zero ${badZero} is ${stored[badZero]}, expected ${q.zeros[badZero]} − ${offset}`);
    const scales = u16(await read('scales'));
    for (let n = 0; n < N && problems.length < 20; n++) {
      for (let g = 0; g < G; g++) {
        const s = q.scales[n * G + g];
        if (scales[g * N + n] !== encodeF16(s) || decodeF16(scales[g * N + n]) !== s) problems.push(`${prefix}: scale (row ${n}, group ${g}) ${decodeF16(scales[g * N + n])} ≠ ${s}`);
      }
    }
    const gIdx = i32(await read('g_idx'));
    const badG = Array.from(gIdx).findIndex((g, k) => g !== (groupSize === -1 ? 0 : Math.floor(k / groupSize)));
    if (badG >= 0) problems.push(`${prefix}: g_idx[${badG}] = ${gIdx[badG]}`);
    if (sym && bits === 4) {
      const words = i32(await read('qzeros'));
      const word = format === 'gptq' ? 0x77777777 : 0x88888888 | 0;
      if (!words.every((w) => w === word)) problems.push(`${prefix}: sym 4-bit qzeros are not all 0x${(word >>> 0).toString(16)}`);
    }
  }
  t.strictSame(problems, [], 'codes, zeros, fp16 scales and g_idx unpack to what quantizeLinear computes');

  const converted: string[] = [];
  for (const [name, info] of f.raw) {
    if (!table.has(name)) continue;
    const expected = encodeFloats('F16', decodeFloats(info.dtype, f.bytes.get(name)!));
    const got = await readRawBytes(out, table.get(name)!);
    if (firstDifference(expected, got) >= 0) converted.push(name);
  }
  t.strictSame(converted, [], `every non-quantized tensor is the ${f.tiny.dtype} original rounded to F16`);

  const config = await readJson(join(out, 'config.json'));
  const input = structuredClone(f.tiny.config) as Json;
  t.strictSame(config.quantization_config, expectedQuantizationConfig(f, bits, groupSize, sym, format), 'quantization_config has exactly the §2.6 fields');
  t.equal(config.torch_dtype, 'float16', 'torch_dtype float16');
  if (input.text_config?.torch_dtype !== undefined) t.equal(config.text_config.torch_dtype, 'float16', 'text_config.torch_dtype float16');
  const { quantization_config: _q, torch_dtype: _d, ...rest } = config;
  delete input.torch_dtype;
  if (rest.text_config?.torch_dtype !== undefined) {
    delete rest.text_config.torch_dtype;
    delete input.text_config.torch_dtype;
  }
  t.strictSame(rest, input, 'every other config.json field as in the input');
  t.notMatch(await readFile(join(out, 'config.json'), 'utf8'), /is_marlin_format/, 'no is_marlin_format');
  t.strictSame(await readJson(join(out, 'quantize_config.json')), config.quantization_config, 'quantize_config.json = quantization_config');
}

const MODELS: [Architecture, Layout][] = [
  ['qwen2_vl', 'original'], ['qwen2_vl', 'transformers-4.52'], ['qwen2_5_vl', 'original'], ['qwen2_5_vl', 'transformers-4.52'],
  ['llava_onevision', 'original'], ['llava_onevision', 'transformers-4.52'],
];

for (const [architecture, layout] of MODELS) {
  for (const bits of BITS) {
    for (const groupSize of GROUPS) {
      for (const sym of [true, false]) {
        const what = `${bits}-bit ${groupSize === -1 ? 'per-channel' : `g${groupSize}`} ${sym ? 'sym' : 'asym'}`;
        t.test(`${architecture} ${layout}, RTN ${what}: gptq and gptq_v2 exports hold exactly the packed linears of quantizeLinear and F16 copies of everything else`, async (t) => {
          const dir = t.testdir();
          const f = await fixture(architecture, layout);
          const direct = new Map<string, LinearQuantization>();
          for (const prefix of f.tiny.quantizable) direct.set(prefix, await directRtn(f, prefix, bits, groupSize, sym));
          const all = [...direct.values()];
          t.ok(all.every((q) => q.codes.every((c) => c <= 2 ** bits - 1)), `codes within [0, ${2 ** bits - 1}]`);
          if (sym) t.ok(all.every((q) => q.zeros.every((z) => z === 2 ** (bits - 1))), `sym: every zero point is 2^(b−1) = ${2 ** (bits - 1)} (§2.2)`);
          const zeroZero = all.some((q) => q.zeros.some((z) => z === 0));
          const run = await quantize(f.model, null, { bits, groupSize, sym });
          for (const format of FORMATS) {
            const out = join(dir, format);
            if (format === 'gptq' && zeroZero) {
              await t.rejects(run.save(out, { format }), { message: /gptq_v2/ }, 'v1 cannot store a zero point of 0: rejected, suggesting gptq_v2');
              t.notOk(await exists(out), 'nothing written');
              continue;
            }
            const report = await run.save(out, { format });
            t.equal(report.format, format);
            t.strictSame(report.files, ['model.safetensors'], 'one shard, no index');
            await t.test(format, (t) => checkExport(t, f, out, direct, bits, groupSize, sym, format));
          }
        });
      }
    }
  }
}

for (const dtype of ['F32', 'F16'] as const) {
  t.test(`a ${dtype} checkpoint exports with every non-quantized tensor rounded to F16 and the same packed linears`, async (t) => {
    const dir = t.testdir();
    const f = await fixture('qwen2_5_vl', 'original', dtype);
    for (const [bits, groupSize, sym] of [[4, 32, true], [3, -1, false]] as const) {
      const direct = new Map<string, LinearQuantization>();
      for (const prefix of f.tiny.quantizable) direct.set(prefix, await directRtn(f, prefix, bits, groupSize, sym));
      const run = await quantize(f.model, null, { bits, groupSize, sym });
      const out = join(dir, `${bits}-${groupSize}`);
      await run.save(out, { format: 'gptq_v2' });
      await t.test(`${bits}-bit ${groupSize}`, (t) => checkExport(t, f, out, direct, bits, groupSize, sym, 'gptq_v2'));
    }
  });
}

t.test('a small maxShardBytes gives model-0000i-of-0000N shards, filled greedily, and an index covering every tensor once with total_size = Σ tensor bytes', async (t) => {
  const dir = t.testdir();
  const f = await fixture('llava_onevision', 'original');
  const run = await quantize(f.model, null, { bits: 4, groupSize: 32, sym: true });
  const single = join(dir, 'single'), sharded = join(dir, 'sharded');
  await run.save(single, { format: 'gptq' });
  const max = 20_000;
  const report = await run.save(sharded, { format: 'gptq', maxShardBytes: max });
  const files = (await readdir(sharded)).filter((n) => WEIGHT_FILES.test(n)).sort();
  const shards = files.filter((n) => n !== 'model.safetensors.index.json');
  const count = shards.length;
  t.ok(count > 2, `several shards (${count})`);
  const pad = (n: number) => String(n).padStart(5, '0');
  t.strictSame(shards, Array.from({ length: count }, (_, i) => `model-${pad(i + 1)}-of-${pad(count)}.safetensors`), 'shard names');
  t.ok(files.includes('model.safetensors.index.json'), 'index present');
  t.notOk(files.includes('model.safetensors'), 'no model.safetensors');
  t.strictSame([...report.files].sort(), files, 'the report lists the weight files');

  const index = await readJson(join(sharded, 'model.safetensors.index.json'));
  const table = await readTensorTable(sharded);
  const reference = await readTensorTable(single);
  t.strictSame(Object.keys(index.weight_map).sort(), [...reference.keys()].sort(), 'weight_map: every tensor of the export');
  const misplaced = Object.entries(index.weight_map as Record<string, string>).filter(([name, file]) => table.get(name)?.file !== file);
  t.strictSame(misplaced, [], 'weight_map points at the shard whose header holds each tensor');
  const bytesByHand = [...table.values()].reduce((sum, x) => sum + x.shape.reduce((a, b) => a * b, 1) * (x.dtype === 'I32' ? 4 : 2), 0);
  t.equal(index.metadata.total_size, bytesByHand, 'total_size = Σ numel × element size');
  t.equal(report.tensorBytes, bytesByHand, 'report.tensorBytes likewise');

  const perShard = shards.map((file) => [...table.values()].filter((x) => x.file === file).sort((a, b) => a.begin - b.begin));
  perShard.forEach((tensors, i) => {
    const size = tensors.reduce((s, x) => s + x.byteLength, 0);
    t.ok(size <= max || tensors.length === 1, `${shards[i]}: ${size} bytes ≤ ${max}, or a single larger tensor`);
    if (i + 1 < perShard.length) t.ok(size + perShard[i + 1][0].byteLength > max, `${shards[i]}: the next tensor would not have fit (greedy)`);
  });
  const different: string[] = [];
  for (const [name, info] of reference) {
    if (firstDifference(await readRawBytes(single, info), await readRawBytes(sharded, table.get(name)!)) >= 0) different.push(name);
  }
  t.strictSame(different, [], 'every tensor identical to the single-file export');
});

t.test('asym with format gptq (v1) and a group whose weights are all positive (zero point 0) is refused, naming the linear, row and group, suggesting gptq_v2', async (t) => {
  const dir = t.testdir();
  const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl' });
  const name = 'model.layers.0.mlp.up_proj.weight';
  const raw = await readTensorTable(tiny.dir);
  const info = raw.get(name)!;
  t.strictSame(info.shape, [128, 64], 'fixture: up_proj [128, 64], so g32 gives 2 groups');
  const values = u16(await readRawBytes(tiny.dir, info));
  const row = 3, group = 1;
  for (let k = 32; k < 64; k++) values[row * 64 + k] = encodeBf16(Math.abs(0.02 * Math.sin(k + 1)) + 1e-3);
  await patchBytes(join(tiny.dir, info.file), info.begin, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));

  const model = await loadModel(tiny.dir);
  t.teardown(() => model.close());
  const zeroZero: string[] = [];
  for (const linear of model.linears()) {
    const { weight } = await model.readLinear(linear);
    const q = await quantizeLinear(weight, null, { method: 'rtn', bits: 4, groupSize: 32, sym: false });
    q.zeros.forEach((z, i) => { if (z === 0) zeroZero.push(`${linear.prefix} row ${Math.floor(i / q.groups)} group ${i % q.groups}`); });
  }
  t.strictSame(zeroZero, [`model.layers.0.mlp.up_proj row ${row} group ${group}`], 'the edited group is the only one with zero point 0');

  const run = await quantize(model, null, { bits: 4, groupSize: 32, sym: false });
  const out = join(dir, 'v1');
  const error = await run.save(out, { format: 'gptq' }).then(() => null, (e: Error) => e);
  t.ok(error, 'the v1 export fails');
  t.match(error?.message, /row 3, group 1/, 'names the row and group');
  t.match(error?.message, /gptq_v2/, 'suggests gptq_v2');
  t.match(error?.message, /model\.layers\.0\.mlp\.up_proj/, 'names the linear');
  t.notOk(await exists(out), 'no output directory');
  t.strictSame((await readdir(dir)).filter((n) => n.includes('.tmp-')), [], 'no temporary directory left');

  const v2 = join(dir, 'v2');
  await run.save(v2, { format: 'gptq_v2' });
  const table = await readTensorTable(v2);
  const zeros = unpackQzeros(i32(await readRawBytes(v2, table.get('model.layers.0.mlp.up_proj.qzeros')!)), 128, 2, 4);
  t.equal(zeros[row * 2 + group], 0, 'gptq_v2 stores the zero point 0 as it is');
});

t.test('3-bit with an MLP width that is not a multiple of 32 is refused before anything is written, naming the dimension and the linear', async (t) => {
  const dir = t.testdir();
  const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl', intermediate: 80 });
  t.strictSame(tiny.tensors.get('model.layers.0.mlp.down_proj.weight')?.shape, [64, 80], 'fixture: down_proj K = 80 (80 · 3 bits is not a whole number of 32-value blocks)');
  const model = await loadModel(tiny.dir);
  t.teardown(() => model.close());
  const run = await quantize(model, null, { bits: 3, groupSize: -1, sym: true });
  const out = join(dir, 'out');
  const error = await run.save(out, { format: 'gptq' }).then(() => null, (e: Error) => e);
  t.match(error?.message, /a multiple of 32 for 3-bit GPTQ/, 'says what 3-bit needs');
  t.match(error?.message, /received 80/, 'and what it got');
  t.match(error?.message, /mlp\.(gate_proj|up_proj|down_proj)/, 'names the linear');
  t.strictSame(await readdir(dir), ['model'], 'nothing written, no temporary directory');
  const v2 = await quantize(model, null, { bits: 4, groupSize: 16, sym: true });
  await v2.save(join(dir, 'four'), { format: 'gptq' });
  t.ok(await exists(join(dir, 'four', 'model.safetensors')), '4-bit packs K = 80 (a multiple of 8)');
});

t.test('a BF16 value above 65504 in a non-quantized tensor fails the GPTQ export with ERR_VLMQ_F16_OVERFLOW naming the tensor and element', async (t) => {
  const dir = t.testdir();
  for (const architecture of ['qwen2_5_vl', 'llava_onevision'] as const) {
    const tiny = await writeTinyCheckpoint(join(dir, architecture), { architecture });
    const name = `${tiny.prefixes.text}norm.weight`;
    const info = (await readTensorTable(tiny.dir)).get(name)!;
    const big = encodeBf16(1e5);
    t.equal(big, 0x47c3, 'fixture edit: bf16(1e5) = 99840');
    await patchBytes(join(tiny.dir, info.file), info.begin + 5 * 2, new Uint8Array(new Uint16Array([big]).buffer));
    const model = await loadModel(tiny.dir);
    const run = await quantize(model, null, { bits: 4, groupSize: 32, sym: true });
    const out = join(dir, `${architecture}-out`);
    await t.rejects(run.save(out, { format: 'gptq' }), {
      code: 'ERR_VLMQ_F16_OVERFLOW',
      message: new RegExp(`^${name.replaceAll('.', '\\.')}: element 5 = 99840 does not fit in float16`),
    }, architecture);
    t.notOk(await exists(out), 'no output directory');
    const fake = await run.save(join(dir, `${architecture}-fake`), { format: 'fake-quant' });
    t.equal(fake.format, 'fake-quant', 'the fake-quant export (BF16 kept) is not affected');
    await model.close();
  }
});

t.test('quantize_config.json and config.json agree for the default format choice: sym → gptq, asym → gptq_v2', async (t) => {
  const dir = t.testdir();
  const f = await fixture('qwen2_vl', 'original');
  for (const sym of [true, false]) {
    const run = await quantize(f.model, null, { bits: 8, groupSize: -1, sym });
    const out = join(dir, String(sym));
    const report = await run.save(out);
    t.equal(report.format, sym ? 'gptq' : 'gptq_v2');
    const q = (await readJson(join(out, 'config.json'))).quantization_config;
    t.equal(q.checkpoint_format, sym ? 'gptq' : 'gptq_v2');
    t.strictSame(await readJson(join(out, 'quantize_config.json')), q);
  }
});
