// verifyCheckpoint: a GPTQ export and the fake-quant export of the same run verify with no problems
// for every architecture; tampering with the files (a flipped qweight byte, a changed scale, a
// missing or extra tensor, config fields, quantize_config.json) is reported; a fake-quant export of
// a different run is reported as mismatched.
import t from 'tap';
import { cp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadSafetensors } from '../../lib/io/safetensors-reader.js';
import { writeSafetensors, type WritableTensor } from '../../lib/io/safetensors-writer.js';
import { verifyCheckpoint } from '../../lib/export/verify.js';
import { loadModel } from '../../lib/models/model.js';
import { quantize } from '../../lib/pipeline/quantize.js';
import { writeTinyCheckpoint, type Architecture, type Layout, type TinyCheckpoint } from '../fixtures/checkpoints.js';
import { editJson, exists, patchBytes, readJson, readRawBytes, readTensorTable, type Json } from '../helpers/checkpoint-files.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const MODELS: [Architecture, Layout][] = [
  ['qwen2_vl', 'original'], ['qwen2_vl', 'transformers-4.52'], ['qwen2_5_vl', 'original'], ['qwen2_5_vl', 'transformers-4.52'],
  ['llava_onevision', 'original'], ['llava_onevision', 'transformers-4.52'],
];

const SETTINGS = [
  { bits: 4, groupSize: 32, sym: true, format: 'gptq' },
  { bits: 3, groupSize: -1, sym: false, format: 'gptq_v2' },
  { bits: 2, groupSize: 32, sym: false, format: 'gptq_v2' },
  { bits: 8, groupSize: -1, sym: true, format: 'gptq' },
] as const;

for (const [architecture, layout] of MODELS) {
  t.test(`${architecture} ${layout}: the GPTQ and fake-quant exports of one run verify with no problems`, async (t) => {
    const dir = t.testdir();
    const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture, layout });
    const model = await loadModel(tiny.dir);
    t.teardown(() => model.close());
    for (const s of SETTINGS) {
      const run = await quantize(model, null, { bits: s.bits, groupSize: s.groupSize, sym: s.sym });
      const gptq = join(dir, `${s.bits}-${s.format}`), fake = join(dir, `${s.bits}-fake`), fake32 = join(dir, `${s.bits}-fake32`);
      await run.save(gptq, { format: s.format });
      await run.save(fake, { format: 'fake-quant' });
      await run.save(fake32, { format: 'fake-quant', fakeQuantDtype: 'F32' });
      const label = `${s.bits}-bit ${s.groupSize} ${s.sym ? 'sym' : 'asym'} ${s.format}`;
      const alone = await verifyCheckpoint(gptq);
      t.strictSame(alone.problems, [], `${label}: no problems on its own`);
      t.match(alone, {
        layout, linears: 7 * 2, comparison: null,
        settings: { bits: s.bits, groupSize: s.groupSize, descAct: false, sym: s.sym, format: s.format, staticGroups: false },
      }, `${label}: settings and counts`);
      for (const against of [fake, fake32]) {
        const report = await verifyCheckpoint(gptq, { against });
        t.strictSame(report.problems, [], `${label} against ${against.endsWith('32') ? 'F32' : 'BF16'} fake-quant: no problems`);
        // every tensor of the input is compared once: the 14 linears through their weights, the rest as tensors
        t.strictSame(report.comparison, { against, tensors: tiny.tensors.size, mismatched: 0 }, `${label}: ${tiny.tensors.size} tensors compared, none differ`);
      }
    }
  });
}

/** A verified 4-bit g32 sym export pair (gptq, fake-quant) of a Qwen2-VL fixture, copied per tamper case. */
async function pair(dir: string, options: { seed?: number } = {}): Promise<{ tiny: TinyCheckpoint; gptq: string; fake: string }> {
  const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl', seed: options.seed ?? 0 });
  const model = await loadModel(tiny.dir);
  try {
    const run = await quantize(model, null, { bits: 4, groupSize: 32, sym: true });
    await run.save(join(dir, 'gptq'), { format: 'gptq' });
    await run.save(join(dir, 'fake'), { format: 'fake-quant' });
  } finally {
    await model.close();
  }
  return { tiny, gptq: join(dir, 'gptq'), fake: join(dir, 'fake') };
}

/** Rewrites model.safetensors of `dir` through `edit`. */
async function editTensors(dir: string, edit: (tensors: WritableTensor[]) => WritableTensor[]): Promise<void> {
  const file = join(dir, 'model.safetensors');
  const { metadata, tensors } = await loadSafetensors(file);
  const list: WritableTensor[] = [...tensors].map(([name, x]) => ({ name, dtype: x.dtype, shape: x.shape, data: x.data }));
  await writeSafetensors(file, edit(list), metadata ? { metadata } : {});
}

t.test('tampering with a verified export is reported', async (t) => {
  const dir = t.testdir();
  const { gptq, fake } = await pair(join(dir, 'base'));
  const clean = await verifyCheckpoint(gptq, { against: fake });
  t.strictSame(clean.problems, [], 'the untouched export verifies');
  const q = 'model.layers.1.self_attn.q_proj';
  const copy = async (name: string) => {
    const to = join(dir, name);
    await cp(gptq, to, { recursive: true });
    return to;
  };

  await t.test('a flipped byte in qweight data: the unpacked weights differ from the fake-quant export at that element', async (t) => {
    const d = await copy('flip');
    const info = (await readTensorTable(d)).get(`${q}.qweight`)!;
    // word 0 of qweight holds codes 0–7 of output row 0; byte 0 = codes 0 and 1
    const original = (await readRawBytes(d, info))[0];
    await patchBytes(join(d, info.file), info.begin, new Uint8Array([original ^ 0xff]));
    const report = await verifyCheckpoint(d, { against: fake });
    t.match(report.problems, [new RegExp(`^${escape(q)}\\.weight: unpacked weights differ from the fake-quant export at element 0 \\(row 0, column 0\\)`)]);
    t.equal(report.problems.length, 1, 'only that linear');
    t.equal(report.comparison?.mismatched, 1);
  });

  await t.test('a changed scale: the rows of that group differ', async (t) => {
    const d = await copy('scale');
    const info = (await readTensorTable(d)).get(`${q}.scales`)!;
    const bytes = await readRawBytes(d, info);
    const scales = new Uint16Array(bytes.buffer);
    // scales [G, N]: element N·1 + 5 is (group 1, row 5); +0x0400 doubles it (exponent + 1)
    const N = info.shape[1];
    scales[N + 5] += 0x0400;
    await patchBytes(join(d, info.file), info.begin, bytes);
    const report = await verifyCheckpoint(d, { against: fake });
    t.equal(report.problems.length, 1, 'one problem');
    t.match(report.problems[0], new RegExp(`^${escape(q)}\\.weight: unpacked weights differ .* \\(row 5, column (3[2-9]|[4-5]\\d|6[0-3])\\)`), 'in row 5, group 1 (columns 32–63)');
  });

  await t.test('a missing tensor is reported with its expected shape', async (t) => {
    const d = await copy('missing');
    await editTensors(d, (ts) => ts.filter((x) => x.name !== `${q}.g_idx` && x.name !== 'model.norm.weight'));
    const report = await verifyCheckpoint(d, { against: fake });
    t.ok(report.problems.includes(`missing tensor ${q}.g_idx [64]`), `names ${q}.g_idx [64]`);
    t.ok(report.problems.includes('missing tensor model.norm.weight [64]'), 'names model.norm.weight [64]');
  });

  await t.test('an extra tensor is reported, and a .weight next to a packed linear is called out', async (t) => {
    const d = await copy('extra');
    await editTensors(d, (ts) => [
      ...ts,
      { name: `${q}.weight`, dtype: 'F16', shape: [64, 64], data: new Uint16Array(64 * 64) },
      { name: 'model.layers.0.self_attn.o_proj.bias', dtype: 'F16', shape: [64], data: new Uint16Array(64) },
      { name: 'extra.tensor', dtype: 'F16', shape: [2], data: new Uint16Array(2) },
    ]);
    const report = await verifyCheckpoint(d);
    t.ok(report.problems.some((p) => p === `unexpected tensor ${q}.weight (model.safetensors): a quantized linear keeps no .weight`), 'the .weight of a quantized linear');
    t.ok(report.problems.some((p) => p.startsWith('unexpected tensor model.layers.0.self_attn.o_proj.bias')), 'a bias o_proj never had (§2.1)');
    t.ok(report.problems.some((p) => p.startsWith('unexpected tensor extra.tensor')), 'an unknown tensor');
  });

  await t.test('a tensor with the wrong dtype or shape is reported', async (t) => {
    const d = await copy('dtype');
    await editTensors(d, (ts) => ts.map((x) => x.name === `${q}.scales` ? { ...x, dtype: 'BF16' } : x.name === 'model.norm.weight' ? { ...x, shape: [32, 2] } : x));
    const report = await verifyCheckpoint(d);
    t.ok(report.problems.includes(`${q}.scales (model.safetensors): expected F16, found BF16`), 'scales as BF16');
    t.ok(report.problems.includes('model.norm.weight (model.safetensors): expected [64], found [32, 2]'), 'norm reshaped');
  });

  await t.test('bits changed in config.json only: quantize_config.json differs and the packed shapes disagree', async (t) => {
    const d = await copy('bits');
    await editJson(join(d, 'config.json'), (c) => { c.quantization_config.bits = 8; });
    const report = await verifyCheckpoint(d);
    t.ok(report.problems.includes(`${join(d, 'quantize_config.json')}: differs from config.json's quantization_config`), 'quantize_config.json differs');
    // qweight [K·b/32, N]: 4-bit [8, 64] read as 8-bit [16, 64]
    t.ok(report.problems.includes(`${q}.qweight (model.safetensors): expected [16, 64], found [8, 64]`), 'qweight shape for 8 bits');
  });

  await t.test('bits changed in both configs: the packed shapes disagree', async (t) => {
    const d = await copy('bits-both');
    await editJson(join(d, 'config.json'), (c) => { c.quantization_config.bits = 2; });
    await editJson(join(d, 'quantize_config.json'), (c) => { c.bits = 2; });
    const report = await verifyCheckpoint(d);
    t.notOk(report.problems.some((p) => p.includes('quantize_config.json')), 'the configs agree');
    t.ok(report.problems.includes(`${q}.qweight (model.safetensors): expected [4, 64], found [8, 64]`), 'qweight shape for 2 bits');
  });

  await t.test('desc_act changed in config.json only: quantize_config.json differs', async (t) => {
    const d = await copy('desc-act');
    await editJson(join(d, 'config.json'), (c) => { c.quantization_config.desc_act = true; });
    const report = await verifyCheckpoint(d, { against: fake });
    t.strictSame(report.problems, [`${join(d, 'quantize_config.json')}: differs from config.json's quantization_config`]);
    t.equal(report.settings?.descAct, true, 'settings come from config.json');
  });

  await t.test('quantize_config.json edited alone differs from config.json', async (t) => {
    const d = await copy('quantize-config');
    await editJson(join(d, 'quantize_config.json'), (c) => { c.damp_percent = 0.05; });
    const report = await verifyCheckpoint(d);
    t.strictSame(report.problems, [`${join(d, 'quantize_config.json')}: differs from config.json's quantization_config`]);
  });

  await t.test('quantize_config.json with the same fields in another key order (e.g. re-saved with sorted keys) does not differ', async (t) => {
    const d = await copy('key-order');
    await editJson(join(d, 'quantize_config.json'), (c) => {
      const sorted = Object.fromEntries(Object.keys(c).sort().map((k) => [k, c[k]]));
      for (const k of Object.keys(c)) delete c[k];
      Object.assign(c, sorted);
    });
    const q = (await readJson(join(d, 'quantize_config.json')));
    t.notSame(Object.keys(q), Object.keys((await readJson(join(d, 'config.json'))).quantization_config), 'fixture edit: the key order differs');
    const report = await verifyCheckpoint(d);
    t.strictSame(report.problems, [], 'no problems');
  });

  await t.test('g_idx that does not follow k / group_size is reported (desc_act false)', async (t) => {
    const d = await copy('g-idx');
    const info = (await readTensorTable(d)).get(`${q}.g_idx`)!;
    await patchBytes(join(d, info.file), info.begin + 4 * 3, new Uint8Array(new Int32Array([1]).buffer));
    const report = await verifyCheckpoint(d);
    t.ok(report.problems.includes(`${q}.g_idx[3] = 1, expected 0 (desc_act false, static_groups false)`), 'g_idx[3]');
  });

  await t.test('a checkpoint without quantization_config is not a GPTQ checkpoint', async (t) => {
    const report = await verifyCheckpoint(fake);
    t.strictSame(report.problems, [`${join(fake, 'config.json')}: no quantization_config — not a GPTQ checkpoint`]);
  });

  await t.test('a config.json with is_marlin_format is refused', async (t) => {
    const d = await copy('marlin');
    await editJson(join(d, 'config.json'), (c) => { c.quantization_config.is_marlin_format = false; });
    await t.rejects(verifyCheckpoint(d), { code: 'ERR_VLMQ_BAD_FILE', message: /is_marlin_format is present/ });
  });
});

t.test('a fake-quant export of a different run is reported as mismatched', async (t) => {
  const dir = t.testdir();
  const { tiny, gptq } = await pair(join(dir, 'seed0'));
  const other = await pair(join(dir, 'seed1'), { seed: 1 });

  await t.test('another seed: every tensor differs', async (t) => {
    const report = await verifyCheckpoint(gptq, { against: other.fake });
    t.equal(report.comparison?.tensors, tiny.tensors.size);
    t.equal(report.comparison?.mismatched, tiny.tensors.size, 'every weight of another seed differs');
    t.ok(report.problems.some((p) => /^model\.layers\.0\.self_attn\.k_proj\.weight: unpacked weights differ/.test(p)), 'names a linear');
    t.ok(report.problems.some((p) => /^model\.norm\.weight: differs from the fake-quant export \(as F16\)/.test(p)), 'names a non-quantized tensor');
  });

  await t.test('other bits: the 14 linears differ, nothing else', async (t) => {
    const model = await loadModel(tiny.dir);
    const run = await quantize(model, null, { bits: 8, groupSize: 32, sym: true });
    const fake8 = join(dir, 'fake8');
    await run.save(fake8, { format: 'fake-quant' });
    await model.close();
    const report = await verifyCheckpoint(gptq, { against: fake8 });
    t.equal(report.comparison?.mismatched, 14);
    t.strictSame(report.problems.map((p) => p.split(':')[0]).sort(), tiny.quantizable.map((p) => `${p}.weight`).sort(), 'one problem per linear weight');
  });

  await t.test('asym instead of sym at the same bits: mismatched', async (t) => {
    const model = await loadModel(tiny.dir);
    const run = await quantize(model, null, { bits: 4, groupSize: 32, sym: false });
    const fakeAsym = join(dir, 'fake-asym');
    await run.save(fakeAsym, { format: 'fake-quant' });
    await model.close();
    const report = await verifyCheckpoint(gptq, { against: fakeAsym });
    t.ok((report.comparison?.mismatched ?? 0) > 0, `mismatched ${report.comparison?.mismatched}`);
  });
});

t.test('a sharded GPTQ export verifies against a sharded fake-quant export of the same run', async (t) => {
  const dir = t.testdir();
  const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'llava_onevision', shards: 2 });
  const model = await loadModel(tiny.dir);
  t.teardown(() => model.close());
  const run = await quantize(model, null, { bits: 8, groupSize: 32, sym: false });
  await run.save(join(dir, 'gptq'), { format: 'gptq_v2', maxShardBytes: 12_000 });
  await run.save(join(dir, 'fake'), { format: 'fake-quant', maxShardBytes: 12_000 });
  t.ok(await exists(join(dir, 'gptq', 'model.safetensors.index.json')), 'fixture: the GPTQ export is sharded');
  t.ok(await exists(join(dir, 'fake', 'model.safetensors.index.json')), 'fixture: the fake-quant export is sharded');
  const report = await verifyCheckpoint(join(dir, 'gptq'), { against: join(dir, 'fake') });
  t.strictSame(report.problems, []);
  t.strictSame(report.comparison, { against: join(dir, 'fake'), tensors: tiny.tensors.size, mismatched: 0 });
});

t.test('verify does not modify the files it checks', async (t) => {
  const dir = t.testdir();
  const { gptq, fake } = await pair(dir);
  const before = await readFile(join(gptq, 'model.safetensors'));
  const config = await readFile(join(gptq, 'config.json'), 'utf8');
  await verifyCheckpoint(gptq, { against: fake });
  t.ok(before.equals(await readFile(join(gptq, 'model.safetensors'))), 'model.safetensors unchanged');
  t.equal(await readFile(join(gptq, 'config.json'), 'utf8'), config, 'config.json unchanged');
  const parsed: Json = JSON.parse(config);
  t.equal(parsed.quantization_config.bits, 4);
});
