// Fake-quant export: the input checkpoint's tensors (names, dtypes, shapes) with every decoder
// linear's weight replaced by its RTN-dequantized values rounded to the stored dtype (the test's
// own bf16/f16 encoders), everything else byte-identical, config.json unchanged except torch_dtype
// when the dtype changes, and the tokenizer/processor files copied.
import t, { type Test } from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel } from '../../lib/models/model.js';
import { quantize } from '../../lib/pipeline/quantize.js';
import { quantizeLinear } from '../../lib/quant/quantize-linear.js';
import { writeTinyCheckpoint, type Architecture, type Layout, type TinyCheckpoint, type WeightDType } from '../fixtures/checkpoints.js';
import { bytesOf, encodeFloats, filesIn, firstDifference, readJson, readRawBytes, readTensorTable, u16, type Json } from '../helpers/checkpoint-files.js';

const WEIGHT_FILES = /^(model\.safetensors|model-\d{5}-of-\d{5}\.safetensors|model\.safetensors\.index\.json)$/;
const TORCH: Record<string, string> = { BF16: 'bfloat16', F16: 'float16', F32: 'float32' };

interface Case {
  architecture: Architecture;
  layout: Layout;
  dtype: WeightDType;
  shards?: number;
  bits: 2 | 3 | 4 | 8;
  groupSize: number;
  sym: boolean;
}

const CASES: Case[] = [
  { architecture: 'qwen2_vl', layout: 'original', dtype: 'BF16', bits: 4, groupSize: 32, sym: false },
  { architecture: 'qwen2_vl', layout: 'transformers-4.52', dtype: 'BF16', bits: 3, groupSize: -1, sym: true },
  { architecture: 'qwen2_5_vl', layout: 'original', dtype: 'BF16', bits: 2, groupSize: 32, sym: false, shards: 3 },
  { architecture: 'qwen2_5_vl', layout: 'transformers-4.52', dtype: 'F16', bits: 8, groupSize: -1, sym: false },
  { architecture: 'llava_onevision', layout: 'original', dtype: 'BF16', bits: 4, groupSize: -1, sym: true },
  { architecture: 'llava_onevision', layout: 'transformers-4.52', dtype: 'F32', bits: 4, groupSize: 32, sym: true },
];

/** Dequantized weights of every decoder linear by a direct quantizeLinear call on the fixture's bytes. */
async function directDequantized(tiny: TinyCheckpoint, c: Pick<Case, 'bits' | 'groupSize' | 'sym'>): Promise<Map<string, Float32Array>> {
  const raw = await readTensorTable(tiny.dir);
  const out = new Map<string, Float32Array>();
  for (const prefix of tiny.quantizable) {
    const info = raw.get(`${prefix}.weight`)!;
    const bytes = await readRawBytes(tiny.dir, info);
    const data = info.dtype === 'F32' ? new Float32Array(bytes.buffer) : u16(bytes);
    const q = await quantizeLinear({ dtype: info.dtype as WeightDType, shape: info.shape, data }, null, { method: 'rtn', bits: c.bits, groupSize: c.groupSize, sym: c.sym });
    out.set(`${prefix}.weight`, q.dequantized);
  }
  return out;
}

/** Compares an export with the input: linears as `linearBytes` says, every other tensor byte-identical. */
async function compareTensors(t: Test, input: string, out: string, linearDtype: (original: string) => string, dequantized: Map<string, Float32Array>) {
  const a = await readTensorTable(input), b = await readTensorTable(out);
  t.strictSame([...b.keys()].sort(), [...a.keys()].sort(), 'the same tensor names as the input');
  const shape = [...a.values()].filter((x) => b.get(x.name)?.shape.join() !== x.shape.join()).map((x) => x.name);
  t.strictSame(shape, [], 'the same shapes');
  const dtype = [...a.values()].filter((x) => b.get(x.name)?.dtype !== (dequantized.has(x.name) ? linearDtype(x.dtype) : x.dtype)).map((x) => x.name);
  t.strictSame(dtype, [], 'dtypes: the requested one for quantized linears, the original for the rest');
  const linears: string[] = [], others: string[] = [];
  for (const [name, info] of a) {
    const got = await readRawBytes(out, b.get(name)!);
    const values = dequantized.get(name);
    if (values) {
      if (firstDifference(encodeFloats(linearDtype(info.dtype), values), got) >= 0) linears.push(name);
    } else if (firstDifference(await readRawBytes(input, info), got) >= 0) others.push(name);
  }
  t.equal(dequantized.size > 0 && [...dequantized.keys()].every((n) => a.has(n)), true, 'fixture: every decoder linear weight is in the input');
  t.strictSame(linears, [], 'quantized linear weights = RTN dequantized values rounded to the stored dtype');
  t.strictSame(others, [], 'every other tensor byte-identical to the input');
}

for (const c of CASES) {
  const what = `${c.bits}-bit ${c.groupSize === -1 ? 'per-channel' : `g${c.groupSize}`} ${c.sym ? 'sym' : 'asym'}`;
  t.test(`${c.architecture} ${c.layout} ${c.dtype}${c.shards ? ` (${c.shards} shards)` : ''}, RTN ${what}: the fake-quant export keeps names, dtypes, shapes, config and auxiliary files`, async (t) => {
    const dir = t.testdir();
    const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture: c.architecture, layout: c.layout, dtype: c.dtype, shards: c.shards ?? 1, seed: 5 });
    const dequantized = await directDequantized(tiny, c);
    const model = await loadModel(tiny.dir);
    t.teardown(() => model.close());
    const run = await quantize(model, null, { bits: c.bits, groupSize: c.groupSize, sym: c.sym });
    const out = join(dir, 'fake');
    const report = await run.save(out, { format: 'fake-quant' });
    t.equal(report.format, 'fake-quant');
    t.equal(report.compatibility, null, 'no loader table for fake-quant');

    const auxiliary = tiny.files.filter((name) => name !== 'config.json' && !WEIGHT_FILES.test(name));
    t.ok(auxiliary.length >= 4, `fixture: auxiliary files (${auxiliary.join(', ')})`);
    t.strictSame(await filesIn(out), ['config.json', 'model.safetensors', ...auxiliary].sort(), 'model.safetensors, config.json and the auxiliary files; no quantize_config.json');
    t.strictSame([...report.copied].sort(), auxiliary, 'the report lists the copied files');
    for (const name of auxiliary) {
      t.equal(await readFile(join(out, name), 'utf8'), await readFile(join(tiny.dir, name), 'utf8'), `${name} copied unchanged`);
    }
    await compareTensors(t, tiny.dir, out, (d) => d, dequantized);
    t.strictSame(await readJson(join(out, 'config.json')), tiny.config, 'config.json unchanged');
  });
}

t.test('fakeQuantDtype F32 stores the exact f32 dequantized values; config.json changes only torch_dtype', async (t) => {
  const dir = t.testdir();
  for (const [architecture, layout] of [['qwen2_5_vl', 'transformers-4.52'], ['llava_onevision', 'original']] as const) {
    const tiny = await writeTinyCheckpoint(join(dir, architecture), { architecture, layout });
    const c = { bits: 3 as const, groupSize: 32, sym: false };
    const dequantized = await directDequantized(tiny, c);
    const model = await loadModel(tiny.dir);
    const run = await quantize(model, null, c);
    const out = join(dir, `${architecture}-f32`);
    await run.save(out, { format: 'fake-quant', fakeQuantDtype: 'F32' });
    await t.test(architecture, async (t) => {
      await compareTensors(t, tiny.dir, out, () => 'F32', dequantized);
      const table = await readTensorTable(out);
      const name = `${tiny.quantizable[0]}.weight`;
      const stored = new Float32Array((await readRawBytes(out, table.get(name)!)).buffer);
      t.equal(firstDifference(bytesOf(stored), bytesOf(dequantized.get(name)!)), -1, `${name}: bit-identical f32`);
      const config = await readJson(join(out, 'config.json'));
      const expected = structuredClone(tiny.config) as Json;
      expected.torch_dtype = 'float32';
      if (expected.text_config?.torch_dtype !== undefined) expected.text_config.torch_dtype = 'float32';
      t.strictSame(config, expected, 'config.json: torch_dtype float32, nothing else changed');
    });
    await model.close();
  }
});

t.test('fakeQuantDtype F16 on a BF16 model stores F16 linears and says torch_dtype float16; BF16 (the original) changes nothing', async (t) => {
  const dir = t.testdir();
  const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl', layout: 'transformers-4.52', nestedTextConfig: 'both' });
  const c = { bits: 4 as const, groupSize: -1, sym: true };
  const dequantized = await directDequantized(tiny, c);
  const model = await loadModel(tiny.dir);
  t.teardown(() => model.close());
  const run = await quantize(model, null, c);

  const f16 = join(dir, 'f16');
  await run.save(f16, { format: 'fake-quant', fakeQuantDtype: 'F16' });
  await t.test('F16', async (t) => {
    await compareTensors(t, tiny.dir, f16, () => 'F16', dequantized);
    const config = await readJson(join(f16, 'config.json'));
    t.equal(config.torch_dtype, 'float16');
    t.equal(config.text_config.torch_dtype, 'float16', 'the nested copy too');
    const expected = structuredClone(tiny.config) as Json;
    expected.torch_dtype = 'float16';
    expected.text_config.torch_dtype = 'float16';
    t.strictSame(config, expected, 'nothing else changed');
  });

  const same = join(dir, 'bf16'), original = join(dir, 'original');
  await run.save(same, { format: 'fake-quant', fakeQuantDtype: 'BF16' });
  await run.save(original, { format: 'fake-quant' });
  await t.test('BF16', async (t) => {
    t.strictSame(await readJson(join(same, 'config.json')), tiny.config, `config.json unchanged (torch_dtype ${TORCH[tiny.dtype]})`);
    t.equal(firstDifference(new Uint8Array(await readFile(join(same, 'model.safetensors'))), new Uint8Array(await readFile(join(original, 'model.safetensors')))), -1,
      'the same bytes as the export in the original dtype');
    await compareTensors(t, tiny.dir, same, () => 'BF16', dequantized);
  });
});

t.test('the fake-quant export of one run is deterministic: saving twice gives identical files', async (t) => {
  const dir = t.testdir();
  const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'llava_onevision' });
  const model = await loadModel(tiny.dir);
  t.teardown(() => model.close());
  const run = await quantize(model, null, { bits: 2, groupSize: 32, sym: true });
  await run.save(join(dir, 'a'), { format: 'fake-quant' });
  await run.save(join(dir, 'b'), { format: 'fake-quant' });
  for (const name of await filesIn(join(dir, 'a'))) {
    t.equal(firstDifference(new Uint8Array(await readFile(join(dir, 'a', name))), new Uint8Array(await readFile(join(dir, 'b', name)))), -1, name);
  }
});
