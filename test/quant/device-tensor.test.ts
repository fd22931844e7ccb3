// DeviceTensor: activations held in a backend's memory. Round trips are exact; a layer forward,
// the importance backward and the statistics give bit for bit what they give on host arrays;
// disposed tensors and tensors of another device are errors; a tensor the program forgets while
// a call still needs it stays alive until the call ends.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { DecoderLayer, type PackedTokens } from '../../lib/pipeline/decoder-layer.js';
import { backends } from '../../lib/native/devices.js';
import { DeviceTensor } from '../../lib/quant/device-tensor.js';
import { HessianAccumulator } from '../../lib/quant/hessian-accumulator.js';
import * as ref from '../reference/decoder.js';

const f32 = (a: Float64Array) => Float32Array.from(a);
const dims: ref.DecoderDims = { hidden: 32, heads: 4, kvHeads: 2, headDim: 8, intermediate: 48, eps: 1e-6, ropeTheta: 1e6, mropeSection: null };
const T = 13;
const tokens: PackedTokens = { tokens: T, positions: Int32Array.from({ length: T }, (_, i) => (i < 6 ? i : i - 6)), segments: Int32Array.from([0, 6, T]) };

async function layer(): Promise<DecoderLayer> {
  const w = ref.randomDecoder(dims, 5);
  const l = DecoderLayer.empty(dims, 'cpu');
  const H = dims.hidden, q = dims.heads * dims.headDim, kv = dims.kvHeads * dims.headDim, I = dims.intermediate;
  const set = (name: string, data: Float64Array, shape: [number, number]) => l.set(name, { dtype: 'F32', shape, data: f32(data) });
  await set('input_layernorm', w.inputNorm, [1, H]);
  await set('post_attention_layernorm', w.postNorm, [1, H]);
  for (const [name, data, shape] of [['q_proj', w.q, [q, H]], ['k_proj', w.k, [kv, H]], ['v_proj', w.v, [kv, H]], ['o_proj', w.o, [H, q]],
    ['gate_proj', w.gate, [I, H]], ['up_proj', w.up, [I, H]], ['down_proj', w.down, [H, I]]] as const) await set(name, data, [...shape]);
  for (const [name, data, n] of [['q_proj.bias', w.qBias, q], ['k_proj.bias', w.kBias, kv], ['v_proj.bias', w.vBias, kv]] as const) await set(name, data, [1, n]);
  return l;
}

const bitsEqual = (a: Float32Array, b: Float32Array) => a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

t.test('a host array through a tensor and back is the same bytes', async (t) => {
  const data = Float32Array.from({ length: 21 }, (_, i) => Math.sin(i) * 1e3 + (i === 3 ? NaN : 0));
  const tensor = await DeviceTensor.fromHost(data, 3, 7, 'cpu');
  t.same([tensor.rows, tensor.cols, tensor.device, tensor.disposed], [3, 7, 'cpu', false]);
  t.ok(bitsEqual(await tensor.read(), data), 'read() returns the uploaded bytes, NaN included');
  data[0] = 42;
  t.not((await tensor.read())[0], 42, 'the tensor holds a copy, not the array');
  tensor.dispose();
  tensor.dispose();
  t.same([tensor.disposed, tensor.device, tensor.rows], [true, null, 0], 'disposed (twice is harmless)');
  t.throws(() => tensor.read(), { code: 'ERR_VLMQ_INVALID_ARG' }, 'a disposed tensor cannot be read');
});

t.test('bad shapes and unusable devices are errors at the call', async (t) => {
  await t.rejects(DeviceTensor.fromHost(new Float32Array(6), 4, 2, 'cpu'), { code: 'ERR_VLMQ_INVALID_ARG', message: /4 × 2 floats/ });
  await t.rejects(DeviceTensor.fromHost(new Float32Array(6), 0, 6, 'cpu'), { code: 'ERR_VLMQ_INVALID_ARG', message: /rows/ });
  await t.rejects(DeviceTensor.fromHost(new Float32Array(6), 2, 3, 'tpu'), { code: 'ERR_VLMQ_INVALID_ARG', message: /'auto', 'cpu', 'cuda' or 'cuda:N' for device/ });
  const cuda = backends().find((b) => b.kind === 'cuda' && !b.usable);
  if (cuda) await t.rejects(DeviceTensor.fromHost(new Float32Array(6), 2, 3, 'cuda'), { code: 'ERR_VLMQ_DEVICE_UNAVAILABLE', message: cuda.reason }, `cuda: ${cuda.reason}`);
});

t.test('forward, importance and statistics on tensors equal the host-array path bit for bit', async (t) => {
  const l = await layer();
  const x = f32(ref.randomTokens(T, dims.hidden, 8));
  const u = x.map((v, i) => v + 0.05 * Math.cos(i));
  const tx = await DeviceTensor.fromHost(x, T, dims.hidden, 'cpu');
  const tu = await DeviceTensor.fromHost(u, T, dims.hidden, 'cpu');
  for (const stage of ['attention-input', 'o-input', 'attention-output', 'mlp-input', 'down-input', 'output'] as const) {
    const host = await l.forward(x, tokens, stage);
    const device = await l.forward(tx, tokens, stage);
    t.ok(device instanceof DeviceTensor && device.device === 'cpu', `${stage}: a tensor in, a tensor out`);
    t.ok(bitsEqual(await device.read(), host), `${stage}: the same bits as from a Float32Array`);
    device.dispose();
  }
  const host = await l.importance(u, x, tokens);
  const device = await l.importance(tu, tx, tokens);
  for (const p of ['q', 'k', 'v', 'o'] as const) t.ok(bitsEqual(device[p], host[p]), `importance g_${p}: same bits`);
  t.equal(device.loss, host.loss, 'and the same loss');
  const reference = await l.forward(tx, tokens, 'attention-output');
  const viaReference = await l.importance(tu, null, tokens, { reference });
  t.ok(bitsEqual(viaReference.q, (await l.importance(u, null, tokens, { reference: await reference.read() })).q), 'a tensor as the reference B(f)');
  reference.dispose();

  const weights = Float32Array.from({ length: T }, (_, i) => 0.5 + (i % 3));
  const a = new HessianAccumulator(dims.hidden, { crossTerm: true, device: 'cpu' });
  const b = new HessianAccumulator(dims.hidden, { crossTerm: true, device: 'cpu' });
  await a.add({ dtype: 'F32', shape: [T, dims.hidden], data: u }, { xFull: { dtype: 'F32', shape: [T, dims.hidden], data: x }, tokenWeights: weights });
  await b.add(tu, { xFull: tx, tokenWeights: weights });
  t.ok(bitsEqual(await b.hessian(), await a.hessian()), 'H from tensors: same bits');
  t.ok(bitsEqual(await b.dxxt(), await a.dxxt()), 'dXXT from tensors: same bits');
  await t.rejects(b.add(new DeviceTensor(tx.native), { xFull: tu, tokenWeights: new Float32Array(T + 1) }), { code: 'ERR_VLMQ_INVALID_ARG', message: /tokenWeights/ });
  const narrow = await DeviceTensor.fromHost(new Float32Array(T * 4), T, 4, 'cpu');
  await t.rejects(a.add(narrow, { xFull: tx }), { code: 'ERR_VLMQ_INVALID_ARG', message: /columns of x/ });
  narrow.dispose();

  tx.dispose();
  await t.rejects(async () => l.forward(tx, tokens), { code: 'ERR_VLMQ_INVALID_ARG', message: /hidden states/ }, 'a disposed tensor is refused');
  await t.rejects(b.add(tu, { xFull: tx }), { code: 'ERR_VLMQ_INVALID_ARG', message: /disposed/ });
  tu.dispose();
  a.dispose();
  b.dispose();
  l.dispose();
});

t.test('a tensor the program forgets while a call still needs it lives until the call ends', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const l = await layer();
  const x = f32(ref.randomTokens(T, dims.hidden, 9));
  const want = await l.forward(x, tokens);
  let pending: Promise<DeviceTensor>;
  {
    const tx = await DeviceTensor.fromHost(x, T, dims.hidden, 'cpu');
    pending = l.forward(tx, tokens);  // no reference is kept: the queued call and then the native job hold it
  }
  for (let i = 0; i < 3; i++) gc();
  const got = await pending;
  t.ok(bitsEqual(await got.read(), want), 'the forward still reads the right rows');
  for (let i = 0; i < 200; i++) await DeviceTensor.fromHost(x, T, dims.hidden, 'cpu');  // never disposed: the finalizer frees them
  gc();
  t.pass('undisposed tensors are collected without a crash');
  got.dispose();
  l.dispose();
});
