// GPTQ with act-order and dynamic groups scatters each group's columns (g_idx is not monotonic);
// the export must carry that through g_idx so that the unpacked checkpoint equals the fake-quant
// weights, and the group structure must survive the round trip.
import t from 'tap';
import { join } from 'node:path';
import { HessianAccumulator, exportModel, loadModel, quantizeLinear, verifyCheckpoint } from '../../lib/index.js';
import type { QuantizationSettings, QuantizedSource } from '../../lib/index.js';
import type { LinearSpec } from '../../lib/models/types.js';
import { SafetensorsFile } from '../../lib/io/safetensors-reader.js';
import { unpackGptqLinear } from '../../lib/export/gptq-unpack.js';
import { writeTinyCheckpoint } from '../fixtures/checkpoints.js';
import { mulberry32, randn } from '../reference/oracle.js';

const settings: QuantizationSettings = {
  method: 'gptq', bits: 4, groupSize: 32, sym: false, actOrder: true, staticGroups: false, percdamp: 0.01, trueSequential: true,
};

/** GPTQ with act-order on each linear, from seeded tokens whose channel scales vary widely. */
function gptqSource(model: Awaited<ReturnType<typeof loadModel>>): QuantizedSource {
  const cache = new Map<string, Awaited<ReturnType<typeof quantizeLinear>>>();
  return {
    async get(linear: LinearSpec) {
      const hit = cache.get(linear.prefix);
      if (hit) return hit;
      const rng = mulberry32(linear.layer * 7 + linear.inFeatures);
      const tokens = 4 * linear.inFeatures;
      const x = new Float32Array(tokens * linear.inFeatures);
      for (let i = 0; i < x.length; i++) x[i] = randn(rng) * (1 + (i % linear.inFeatures) / 4);
      const acc = new HessianAccumulator(linear.inFeatures);
      await acc.add(x);
      const { weight } = await model.readLinear(linear);
      const q = await quantizeLinear(weight, acc, { method: 'gptq', bits: 4, groupSize: 32, actOrder: true });
      acc.dispose();
      cache.set(linear.prefix, q);
      return q;
    },
  };
}

t.test('an act-order GPTQ export keeps the scattered groups in g_idx and verifies against its fake-quant export', async (t) => {
  const dir = t.testdir();
  const fixture = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl', seed: 3 });
  const model = await loadModel(fixture.dir);
  const source = gptqSource(model);
  await exportModel(model, source, join(dir, 'gptq'), { format: 'gptq_v2', settings });
  await exportModel(model, source, join(dir, 'fq'), { format: 'fake-quant', settings, fakeQuantDtype: 'F32' });

  const report = await verifyCheckpoint(join(dir, 'gptq'), { against: join(dir, 'fq') });
  t.same(report.problems, []);
  t.equal(report.comparison?.mismatched, 0);

  const linear = model.layerLinears(1).find((l) => l.module === 'down_proj')!;
  const file = await SafetensorsFile.open(join(dir, 'gptq', 'model.safetensors'));
  const read = async (suffix: string) => (await file.read(`${linear.prefix}.${suffix}`)).data;
  const unpacked = unpackGptqLinear(
    { qweight: await read('qweight') as Int32Array, qzeros: await read('qzeros') as Int32Array, scales: await read('scales') as Uint16Array, gIdx: await read('g_idx') as Int32Array },
    { rows: linear.outFeatures, cols: linear.inFeatures, groups: linear.inFeatures / 32, bits: 4 },
    'gptq_v2',
  );
  await file.close();
  const direct = await source.get(linear);
  t.same(unpacked.gIdx, direct.gIdx, 'g_idx is written as the sweep produced it');
  t.ok(unpacked.gIdx.some((g, k) => g !== Math.floor(k / 32)), 'act-order scattered the groups');
  t.same(unpacked.codes, direct.codes, 'codes survive packing');
  t.same(unpacked.dequantize(), direct.dequantized, 'and so do the weights, exactly');
  await model.close();
});
