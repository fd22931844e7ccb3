// inspectCheckpoint: parameter counts split into language model and everything else, computed here
// as Σ numel over the fixture's own tensor table (a GPTQ qweight stands for its unpacked K·N
// weights; qzeros, scales and g_idx for none), a dtype histogram, the quantization block for GPTQ
// checkpoints only, and file sizes equal to what fs.stat says.
import t from 'tap';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { inspectCheckpoint } from '../../lib/export/inspect.js';
import { loadModel } from '../../lib/models/model.js';
import { quantize } from '../../lib/pipeline/quantize.js';
import { corruptCheckpoint, writeTinyCheckpoint, type Architecture, type Layout, type TinyCheckpoint } from '../fixtures/checkpoints.js';
import { ELEMENT_BYTES, filesIn, gptqShapesByHand, numelOf, readJson } from '../helpers/checkpoint-files.js';

const VERSION: string = (await readJson(new URL('../../package.json', import.meta.url).pathname)).version;

const MODELS: [Architecture, Layout, number][] = [
  ['qwen2_vl', 'original', 1], ['qwen2_vl', 'transformers-4.52', 2], ['qwen2_5_vl', 'original', 1],
  ['qwen2_5_vl', 'transformers-4.52', 1], ['llava_onevision', 'original', 3], ['llava_onevision', 'transformers-4.52', 1],
];

/** Language vs everything else, by the fixture's own prefixes. */
function isLanguage(tiny: TinyCheckpoint, name: string): boolean {
  return name.startsWith(tiny.prefixes.text) || name === tiny.prefixes.lmHead;
}

function parametersOf(tiny: TinyCheckpoint) {
  const counts = { language: 0, vision: 0 };
  for (const [name, info] of tiny.tensors) counts[isLanguage(tiny, name) ? 'language' : 'vision'] += numelOf(info.shape);
  return counts;
}

async function fileSizes(dir: string) {
  const names = await filesIn(dir);
  return Promise.all(names.map(async (name) => ({ name, bytes: (await stat(join(dir, name))).size })));
}

for (const [architecture, layout, shards] of MODELS) {
  t.test(`${architecture} ${layout}${shards > 1 ? `, ${shards} shards` : ''}: inspect counts parameters, dtypes and file sizes of the original, the GPTQ and the fake-quant checkpoint`, async (t) => {
    const dir = t.testdir();
    const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture, layout, shards });
    const parameters = parametersOf(tiny);
    t.ok(parameters.language > 0 && parameters.vision > 0, `fixture: ${parameters.language} language and ${parameters.vision} vision parameters`);

    await t.test('original', async (t) => {
      const report = await inspectCheckpoint(tiny.dir);
      t.equal(report.layout, layout);
      t.strictSame(report.parameters, parameters, 'language / vision = Σ numel of the fixture\'s tensors');
      const bytes = [...tiny.tensors.values()].reduce((s, x) => s + numelOf(x.shape) * 2, 0);
      t.strictSame(report.dtypes, { BF16: { tensors: tiny.tensors.size, bytes } }, 'every tensor BF16');
      t.equal(report.quantization, null, 'no quantization block');
      const files = await fileSizes(tiny.dir);
      t.strictSame(report.files, files, 'every file with its fs.stat size');
      t.equal(report.diskBytes, files.reduce((s, f) => s + f.bytes, 0), 'diskBytes = Σ file sizes');
      t.equal(report.config.text.numLayers, 2);
      t.strictSame(report.problems, [], 'no problem: loadModel accepts it');
      t.strictSame(report.unknownTensors, []);
    });

    const model = await loadModel(tiny.dir);
    t.teardown(() => model.close());
    for (const [bits, groupSize, sym, format] of [[4, 32, true, 'gptq'], [3, -1, false, 'gptq_v2']] as const) {
      const run = await quantize(model, null, { bits, groupSize, sym });
      const out = join(dir, `gptq-${bits}`);
      await run.save(out, { format, maxShardBytes: shards > 1 ? 30_000 : undefined });
      await t.test(`GPTQ ${bits}-bit ${groupSize} ${format}`, async (t) => {
        const report = await inspectCheckpoint(out);
        t.strictSame(report.parameters, parameters, 'the same parameter counts as the original (qweight = K·N, qzeros/scales/g_idx none)');
        let i32 = 0, i32Bytes = 0, f16 = 0, f16Bytes = 0;
        const quantized = new Set(tiny.quantizable.map((p) => `${p}.weight`));
        for (const [name, info] of tiny.tensors) {
          if (!quantized.has(name)) {
            f16++;
            f16Bytes += numelOf(info.shape) * 2;
            continue;
          }
          const [N, K] = info.shape;
          const s = gptqShapesByHand(N, K, bits, groupSize);
          i32 += 3;
          i32Bytes += (numelOf(s.qweight) + numelOf(s.qzeros) + numelOf(s.gIdx)) * ELEMENT_BYTES.I32;
          f16++;
          f16Bytes += numelOf(s.scales) * 2;
        }
        t.strictSame(report.dtypes, { I32: { tensors: i32, bytes: i32Bytes }, F16: { tensors: f16, bytes: f16Bytes } }, 'I32 qweight/qzeros/g_idx, F16 scales and everything else');
        t.strictSame(report.quantization, {
          bits, groupSize, descAct: false, sym, format, staticGroups: false, quantizedLinears: tiny.quantizable.length, producer: `vlmq:${VERSION}`,
        }, 'the quantization block');
        const files = await fileSizes(out);
        t.strictSame(report.files, files, 'every file with its fs.stat size');
        t.equal(report.diskBytes, files.reduce((s, f) => s + f.bytes, 0), 'diskBytes = Σ file sizes');
        if (shards > 1) t.ok(files.some((f) => f.name === 'model.safetensors.index.json'), 'sharded export: the index is listed');
        t.strictSame(report.problems, [], 'the packed tensor set is what the config implies');
      });
    }

    const run = await quantize(model, null, { bits: 4, groupSize: 32, sym: true });
    const fake = join(dir, 'fake');
    await run.save(fake, { format: 'fake-quant', fakeQuantDtype: 'F32' });
    await t.test('fake-quant (F32 linears)', async (t) => {
      const report = await inspectCheckpoint(fake);
      t.strictSame(report.parameters, parameters);
      t.equal(report.quantization, null, 'no quantization block');
      t.strictSame(report.problems, [], 'no problem');
      const linearParams = tiny.quantizable.reduce((s, p) => s + numelOf(tiny.tensors.get(`${p}.weight`)!.shape), 0);
      const all = [...tiny.tensors.values()].reduce((s, x) => s + numelOf(x.shape), 0);
      t.strictSame(report.dtypes, {
        BF16: { tensors: tiny.tensors.size - tiny.quantizable.length, bytes: (all - linearParams) * 2 },
        F32: { tensors: tiny.quantizable.length, bytes: linearParams * 4 },
      });
    });
  });
}

t.test('an incomplete tensor set is described (counting what is there) and its missing tensor reported as a problem', async (t) => {
  const dir = t.testdir();
  const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl', shards: 2 });
  const c = await corruptCheckpoint(tiny.dir, 'missing-tensor');
  const report = await inspectCheckpoint(tiny.dir);
  const removed = numelOf(tiny.tensors.get(c.tensor!)!.shape);
  t.equal(report.parameters.language, parametersOf(tiny).language - removed, 'counts what is there');
  t.match(report.problems, [{ kind: 'missing-tensors', tensors: [c.tensor], files: [] }]);
  t.equal(report.problems.length, 1);
});

t.test('a GPTQ checkpoint with a packed tensor of the wrong dtype or shape is reported against its packed tensor set', async (t) => {
  const dir = t.testdir();
  const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_5_vl' });
  const model = await loadModel(tiny.dir);
  t.teardown(() => model.close());
  const out = join(dir, 'gptq');
  await (await quantize(model, null, { bits: 4, groupSize: 32, sym: true })).save(out, { format: 'gptq' });
  const prefix = tiny.quantizable[0];
  await corruptCheckpoint(out, 'bad-dtype', { tensor: `${prefix}.qweight`, dtype: 'F32' });
  await corruptCheckpoint(out, 'missing-tensor', { tensor: `${prefix}.g_idx` });
  const report = await inspectCheckpoint(out);
  const [N, K] = tiny.tensors.get(`${prefix}.weight`)!.shape;
  t.match(report.problems, [
    { kind: 'dtype', tensors: [`${prefix}.qweight`], message: `${prefix}.qweight (model.safetensors): expected I32, found F32` },
    { kind: 'missing-tensors', tensors: [`${prefix}.g_idx`], message: `1 tensor(s) the config implies are missing: ${prefix}.g_idx [${K}]` },
  ]);
  t.equal(report.problems.length, 2, `nothing else (qweight stays [${K * 4 / 32}, ${N}])`);
});
