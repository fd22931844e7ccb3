// The registry of backends and the device choice: what backends() reports, how a device name is
// resolved, and that every object and call taking a device fails at once, with the registry's
// reason, for a device that is not usable — never a silent fallback to the CPU — while 'cpu' and
// 'auto' give the same bytes here.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { backends, resolveDevice } from '../../lib/native/devices.js';
import { loadModel } from '../../lib/models/model.js';
import { DecoderLayer } from '../../lib/pipeline/decoder-layer.js';
import { quantize } from '../../lib/pipeline/quantize.js';
import { HessianAccumulator } from '../../lib/quant/hessian-accumulator.js';
import { quantizeLinear } from '../../lib/quant/quantize-linear.js';
import { writeTinyCheckpoint } from '../fixtures/checkpoints.js';

const all = backends();
const cpu = all[0];
const unusable = all.filter((b) => !b.usable);
const usableCuda = all.find((b) => b.kind === 'cuda' && b.usable);

t.test('backends(): the CPU first and usable; every entry says what it is and, if not usable, why', async (t) => {
  t.match(cpu, { name: 'cpu', kind: 'cpu', compiled: true, usable: true, reason: '' });
  t.ok(cpu.memoryBytes > 0, `host memory ${cpu.memoryBytes} bytes`);
  for (const b of all) {
    t.match(b, { name: /^(cpu|cuda|cuda:\d+)$/, kind: /^(cpu|cuda)$/ }, b.name);
    if (!b.usable) t.ok(b.reason.length > 10, `${b.name} is not usable: ${b.reason}`);
  }
  t.ok(all.some((b) => b.kind === 'cuda'), 'the CUDA entry is listed even where it cannot run');
});

t.test('device names: auto, cpu, cuda, cuda:N; anything else is a usage error naming the option', async (t) => {
  t.equal(resolveDevice('cpu'), 'cpu');
  t.equal(resolveDevice(), usableCuda ? usableCuda.name : 'cpu', 'auto: CUDA when usable, else the CPU');
  for (const bad of ['gpu', 'CUDA', 'cuda:', 'cuda:-1', 'cuda:x', '', 3, null]) {
    t.throws(() => resolveDevice(bad), { code: 'ERR_VLMQ_INVALID_ARG', message: /'auto', 'cpu', 'cuda' or 'cuda:N' for device/ }, String(bad));
  }
  if (!usableCuda) {
    t.throws(() => resolveDevice('cuda'), { code: 'ERR_VLMQ_DEVICE_UNAVAILABLE', message: /^device 'cuda' is not usable: / });
    t.throws(() => resolveDevice('cuda:3'), { code: 'ERR_VLMQ_DEVICE_UNAVAILABLE' });
  }
});

t.test('an unusable device is refused by every object and call, with the reason', { skip: usableCuda ? 'a CUDA device is usable here' : false }, async (t) => {
  const reason = unusable.find((b) => b.kind === 'cuda')!.reason;
  const unavailable = { code: 'ERR_VLMQ_DEVICE_UNAVAILABLE', message: reason };
  t.throws(() => new HessianAccumulator(8, { device: 'cuda' }), unavailable, 'HessianAccumulator');
  t.throws(() => DecoderLayer.empty({ hidden: 8, heads: 2, kvHeads: 1, headDim: 4, intermediate: 8, eps: 1e-6, ropeTheta: 1e4, mropeSection: null }, 'cuda'), unavailable, 'DecoderLayer');
  const weight = { dtype: 'F32' as const, shape: [4, 8] as [number, number], data: new Float32Array(32).fill(0.5) };
  await t.rejects(quantizeLinear(weight, null, { method: 'rtn', device: 'cuda' }), unavailable, 'quantizeLinear');
  const acc = new HessianAccumulator(8, { device: 'cpu' });
  await acc.add({ dtype: 'F32', shape: [3, 8], data: Float32Array.from({ length: 24 }, (_, i) => Math.sin(i)) });
  await t.rejects(quantizeLinear(weight, acc, { device: 'cuda' }), unavailable, 'quantizeLinear with an accumulator and another device');
  acc.dispose();

  const dir = t.testdir();
  const checkpoint = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl', layers: 1, seed: 3 });
  const model = await loadModel(checkpoint.dir);
  const work = join(dir, 'work');
  await t.rejects(quantize(model, null, { method: 'gptq', device: 'cuda', workDir: work }), unavailable, 'quantize() refuses before any work');
  t.notOk(existsSync(work), 'and nothing was written');
});

t.test("'cpu' and 'auto' give the same bytes here", { skip: usableCuda ? "'auto' is CUDA here" : false }, async (t) => {
  const n = 24;
  const x = Float32Array.from({ length: 40 * n }, (_, i) => Math.sin(0.37 * i) + 0.1 * Math.cos(i * i));
  const weight = { dtype: 'F32' as const, shape: [16, n] as [number, number], data: Float32Array.from({ length: 16 * n }, (_, i) => Math.cos(0.11 * i)) };
  const results = [];
  for (const device of ['cpu', 'auto'] as const) {
    const acc = new HessianAccumulator(n, { device });
    await acc.add({ dtype: 'F32', shape: [40, n], data: x });
    results.push(await quantizeLinear(weight, acc, { bits: 3, groupSize: 8, actOrder: true }));
    acc.dispose();
  }
  t.same(results[0].codes, results[1].codes, 'codes');
  t.same(results[0].dequantized, results[1].dequantized, 'dequantized weights');
});
