// The calibrated pipeline's behaviour around the algorithm (which test/pipeline/reference.test.ts
// checks against a float64 reference): an interrupted run resumed gives byte-identical output,
// spilling and batching do not change the result, VLMQ with equal factors is its base, the
// rtn-probe fallback, quality against RTN on held-out samples, events, and errors that name
// what is wrong.
import t from 'tap';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CalibrationBundle, writeCalibrationBundle, type BundleSample } from '../../lib/data/bundle.js';
import { syntheticSamples } from '../../lib/demo/synthetic.js';
import { loadModel, type Model } from '../../lib/models/model.js';
import { DecoderLayer } from '../../lib/pipeline/decoder-layer.js';
import { quantize, type QuantizationRun, type QuantizeEvent, type QuantizeModelOptions } from '../../lib/pipeline/quantize.js';
import { writeTinyCheckpoint } from '../fixtures/checkpoints.js';

const dir = t.testdir({});
const LAYERS = 3;
const checkpoint = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl', layers: LAYERS, seed: 11 });
const model = await loadModel(checkpoint.dir);
const H = model.config.text.hiddenSize;
const synthetic = (samples: number, seed: number) => syntheticSamples({ samples, hidden: H, textTokens: 12, imageGrid: [4, 6], mrope: true, seed });
// held-out samples from the same distribution (same seed: the same vision subspace), not calibrated on
const [calibrationSamples, heldOut] = ((all) => [all.slice(0, 16), all.slice(16)])(synthetic(20, 1));
await writeCalibrationBundle(join(dir, 'calib.safetensors'), calibrationSamples);
const bundle = await CalibrationBundle.open(join(dir, 'calib.safetensors'));
t.teardown(async () => {
  await bundle.close();
  await model.close();
});

let runs = 0;
const workDir = () => join(dir, `work-${runs++}`);

async function run(options: QuantizeModelOptions, events: QuantizeEvent[] = []): Promise<QuantizationRun> {
  return quantize(model, bundle, { workDir: workDir(), onEvent: (e) => events.push(e), ...options });
}

/** Every linear's codes, layer by layer, as one string per module. */
async function codesOf(r: QuantizationRun, layers = LAYERS): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (let l = 0; l < layers; l++) for (const linear of model.layerLinears(l)) out.set(`${l}.${linear.module}`, (await r.linear(linear)).codes);
  return out;
}

function sameCodes(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>, filter: (key: string) => boolean = () => true): boolean {
  return [...a.keys()].filter(filter).every((k) => Buffer.from(a.get(k)!).equals(Buffer.from(b.get(k)!)));
}

async function filesOf(d: string): Promise<Map<string, Buffer>> {
  const names = (await readdir(d)).sort();
  return new Map(await Promise.all(names.map(async (n) => [n, await readFile(join(d, n))] as [string, Buffer])));
}

/** Final hidden states of `samples` through every layer, with the run's weights (or the model's, for null). */
async function finalStates(m: Model, r: QuantizationRun | null, samples: readonly BundleSample[]): Promise<Float32Array[]> {
  let states = samples.map((s) => s.embeddings.data as Float32Array);
  for (let l = 0; l < LAYERS; l++) {
    const layer = await DecoderLayer.load(m, l);
    if (r) for (const linear of m.layerLinears(l)) await layer.setLinear(linear.module, (await r.linear(linear)).dequantized, [linear.outFeatures, linear.inFeatures]);
    states = await Promise.all(states.map((x, i) => layer.forward(x, { tokens: samples[i].modality.length, positions: samples[i].positions, segments: Int32Array.from([0, samples[i].modality.length]) })));
    layer.dispose();
  }
  return states;
}

function squaredError(a: Float32Array[], b: Float32Array[]): number {
  let e = 0;
  for (const [i, x] of a.entries()) for (let j = 0; j < x.length; j++) e += (x[j] - b[i][j]) ** 2;
  return e;
}

t.test('an interrupted run, resumed, writes byte for byte what an uninterrupted run writes', async (t) => {
  const options: QuantizeModelOptions = { method: 'vlmq', bits: 3, actOrder: true, importance: { fallback: 'rtn-probe' } };
  const whole = await run(options);
  await whole.save(join(dir, 'whole'));

  const work = workDir();
  // first interruption: right after layer 0 is stored
  const stopAfterLayer0 = new AbortController();
  await t.rejects(
    quantize(model, bundle, { ...options, workDir: work, signal: stopAfterLayer0.signal, onEvent: (e) => e.type === 'layer' && stopAfterLayer0.abort() }),
    { name: 'AbortError' },
  );
  t.same(JSON.parse(await readFile(join(work, 'state.json'), 'utf8')).completed, 1, 'layer 0 was stored before the stop');
  t.notOk(existsSync(join(work, 'full.f32')) || existsSync(join(work, 'quantized.f32')), 'no spill files are left behind');

  // second interruption: in the middle of layer 1 (after o_proj), which is then not stored
  const stopInLayer1 = new AbortController();
  const events: QuantizeEvent[] = [];
  await t.rejects(
    quantize(model, bundle, {
      ...options, workDir: work, resume: true, signal: stopInLayer1.signal,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'module' && e.module === 'o_proj') stopInLayer1.abort();
      },
    }),
    { name: 'AbortError' },
  );
  t.match(events[0], { type: 'device', requested: 'auto' }, 'the device comes first');
  t.match(events[1], { type: 'start', resumedLayers: 1 });
  t.match(events[2], { type: 'replay', layer: 0 });
  t.same(JSON.parse(await readFile(join(work, 'state.json'), 'utf8')).completed, 1, 'the half-done layer 1 was not stored');

  const resumed = await quantize(model, bundle, { ...options, workDir: work, resume: true });
  await resumed.save(join(dir, 'resumed'));
  const [a, b] = [await filesOf(join(dir, 'whole')), await filesOf(join(dir, 'resumed'))];
  t.same([...b.keys()], [...a.keys()], 'the same files');
  for (const [name, bytes] of a) t.ok(bytes.equals(b.get(name)!), `${name} is identical`);
  t.ok(sameCodes(await codesOf(whole), await codesOf(resumed)), 'identical codes in every layer');
});

t.test('a work directory is resumed only on request, and only by the same run', async (t) => {
  const work = workDir();
  const stop = new AbortController();
  await t.rejects(quantize(model, bundle, { method: 'gptq', bits: 4, workDir: work, signal: stop.signal, onEvent: (e) => e.type === 'layer' && stop.abort() }));
  await t.rejects(quantize(model, bundle, { method: 'gptq', bits: 4, workDir: work }), { code: 'ERR_VLMQ_WORK_EXISTS', message: /unfinished run \(1 of 3 layers\)/ });
  await t.rejects(quantize(model, bundle, { method: 'gptq', bits: 3, workDir: work, resume: true }), { code: 'ERR_VLMQ_RESUME_MISMATCH', message: new RegExp(work) });
  await t.rejects(quantize(model, bundle, { method: 'gptaq', bits: 4, workDir: work, resume: true }), { code: 'ERR_VLMQ_RESUME_MISMATCH' });
  const state = await readFile(join(work, 'state.json'), 'utf8');
  for (const garbage of ['{"version": 1', '{"version": 2}', JSON.stringify({ ...JSON.parse(state), completed: 9 })]) {
    await writeFile(join(work, 'state.json'), garbage);
    await t.rejects(quantize(model, bundle, { method: 'gptq', bits: 4, workDir: work, resume: true }), { code: 'ERR_VLMQ_BAD_FILE', message: /state\.json: .*remove the directory to start over/ }, garbage);
  }
  await writeFile(join(work, 'state.json'), state);
  const resumed = await quantize(model, bundle, { method: 'gptq', bits: 4, workDir: work, resume: true });
  t.ok(sameCodes(await codesOf(resumed), await codesOf(await run({ method: 'gptq', bits: 4 }))), 'and then completes as a fresh run would');
});

t.test('activations spilled to disk, and other batchings, give the same result', async (t) => {
  const options: QuantizeModelOptions = { method: 'vlmq', bits: 3 };
  const inMemory = await codesOf(await run(options));
  const events: QuantizeEvent[] = [];
  const spilled = await codesOf(await run({ ...options, memory: 0 }, events));
  t.match(events[1], { type: 'start', spilledSamples: 2 * bundle.samples }, 'memory 0 spills both streams of every sample');
  t.ok(sameCodes(inMemory, spilled), 'identical codes with spilled streams');
  // Streams are kept per batch: with one sample per batch, a budget of 3 samples keeps 3 batches.
  const partEvents: QuantizeEvent[] = [];
  const partly = await codesOf(await run({ ...options, batchTokens: 1, memory: 2 * 3 * bundle.tokens(0) * H * 4 }, partEvents));
  t.match(partEvents[1], { type: 'start', spilledSamples: 2 * (bundle.samples - 3) }, 'a budget of 3 one-sample batches per stream keeps 3 in memory');
  const single = await codesOf(await run({ ...options, batchTokens: 1 }));
  t.ok(sameCodes(single, partly), 'identical codes with some batches in memory and some on disk');

  // one sample per batch vs all samples in one: the same statistics up to summation order
  const one = await codesOf(await run({ ...options, batchTokens: 1 << 20 }));
  let same = 0, total = 0;
  for (const [k, codes] of single) {
    const other = one.get(k)!;
    for (let i = 0; i < codes.length; i++) same += codes[i] === other[i] ? 1 : 0;
    total += codes.length;
  }
  t.ok(same / total > 0.99, `one sample per batch and one batch of all agree on ${(100 * same / total).toFixed(2)}% of the codes`);
});

t.test('VLMQ with uniform factors is its base; with real factors it is not', async (t) => {
  for (const [bits, base] of [[3, 'gptaq'], [2, 'gptq']] as const) {
    const events: QuantizeEvent[] = [];
    const vlmq = await codesOf(await run({ method: 'vlmq', bits, groupSize: bits === 2 ? 32 : -1 }, events));
    const baseline = await codesOf(await run({ method: base, bits, groupSize: bits === 2 ? 32 : -1 }));
    t.match(events.find((e) => e.type === 'start'), { base }, `${bits}-bit: VLMQ runs on ${base}`);
    t.match(events.find((e) => e.type === 'importance' && e.layer === 0), { loss: 0, fallback: 'uniform' });
    t.ok(sameCodes(vlmq, baseline, (k) => k.startsWith('0.')), `${bits}-bit: layer 0 (uniform factors) is identical to ${base}`);
    t.notOk(sameCodes(vlmq, baseline, (k) => k === '1.q_proj' || k === '1.o_proj'), `${bits}-bit: layer 1's attention (weighted) differs from ${base}`);
  }
});

t.test('the rtn-probe fallback gives layer 0 informative factors', async (t) => {
  const events: QuantizeEvent[] = [];
  const probe = await codesOf(await run({ method: 'vlmq', bits: 3, importance: { fallback: 'rtn-probe' } }, events));
  const importance = events.filter((e) => e.type === 'importance');
  t.equal(importance.length, LAYERS, 'one importance event per layer');
  t.match(importance[0], { layer: 0, fallback: 'rtn-probe' });
  t.ok((importance[0] as { loss: number }).loss > 0, 'the probe has a block loss');
  t.ok(importance.slice(1).every((e) => e.type === 'importance' && e.fallback === null && e.loss > 0), 'later layers use their own loss');
  // the per-modality means, weighted by the token counts, give back the overall mean of 1
  const counts = { text: 0, image: 0 };
  for (let i = 0; i < bundle.samples; i++) for (const m of (await bundle.read(i)).modality) counts[m === 0 ? 'text' : 'image']++;
  for (const e of importance) {
    if (e.type !== 'importance') continue;
    for (const p of ['q', 'k', 'v', 'o'] as const) {
      const overall = (counts.text * e.meanByModality.text![p] + counts.image * e.meanByModality.image![p]) / (counts.text + counts.image);
      t.ok(Math.abs(overall - 1) < 1e-5, `layer ${e.layer} ${p}: factors have mean 1 (${overall})`);
    }
  }
  const uniform = await codesOf(await run({ method: 'vlmq', bits: 3 }));
  t.notOk(sameCodes(probe, uniform, (k) => k === '0.q_proj'), 'layer 0 differs from the uniform fallback');
});

t.test('calibrated methods beat RTN on held-out samples, and report every module and layer', async (t) => {
  const reference = await finalStates(model, null, heldOut);
  const calibration = await Promise.all(Array.from({ length: bundle.samples }, (_, i) => bundle.read(i)));
  const referenceCal = await finalStates(model, null, calibration.map((s) => ({ ...s, embeddings: { dtype: 'F32', shape: [s.modality.length, H], data: s.embeddings } }) as BundleSample));
  const errors: Record<string, { heldOut: number; calibration: number }> = {};
  for (const method of ['rtn', 'gptq', 'gptaq', 'vlmq'] as const) {
    const events: QuantizeEvent[] = [];
    const r = method === 'rtn' ? await quantize(model, null, { method, bits: 3 }) : await run({ method, bits: 3 }, events);
    errors[method] = {
      heldOut: squaredError(await finalStates(model, r, heldOut), reference),
      calibration: squaredError(await finalStates(model, r, calibration.map((s) => ({ ...s, embeddings: { dtype: 'F32', shape: [s.modality.length, H], data: s.embeddings } }) as BundleSample)), referenceCal),
    };
    if (method === 'rtn') continue;
    const modules = events.filter((e) => e.type === 'module');
    t.equal(modules.length, 7 * LAYERS, `${method}: an event for each of the 7 linears of each layer`);
    t.same(modules.slice(0, 7).map((e) => e.type === 'module' && e.module), ['k_proj', 'v_proj', 'q_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], `${method}: in true-sequential order`);
    t.ok(modules.every((e) => e.type === 'module' && e.tokens === bundle.totalTokens && e.loss >= 0 && !e.fallback && e.percdamp === 0.01), `${method}: every module saw every token, without fallback`);
    const layers = events.filter((e) => e.type === 'layer');
    t.same(layers.map((e) => e.type === 'layer' && e.layer), [0, 1, 2]);
    t.ok(layers.every((e) => e.type === 'layer' && Object.values(e.phases).reduce((a, b) => a + b, 0) <= e.seconds * 1.01), `${method}: the phases add up to at most the layer's time`);
    t.match(events.at(-1), { type: 'done' });
  }
  t.comment(JSON.stringify(errors));
  for (const method of ['gptq', 'gptaq', 'vlmq'] as const) {
    t.ok(errors[method].calibration < errors.rtn.calibration, `${method}: output error on the calibration samples below RTN's`);
    t.ok(errors[method].heldOut < errors.rtn.heldOut, `${method}: output error on held-out samples below RTN's`);
  }
});

t.test('bad calibration sets and options are errors that name them', async (t) => {
  const narrow = join(dir, 'narrow.safetensors');
  await writeCalibrationBundle(narrow, syntheticSamples({ samples: 1, hidden: H / 2, textTokens: 4, imageGrid: [2, 2], mrope: true, seed: 1 }));
  const flat = join(dir, 'flat.safetensors');
  await writeCalibrationBundle(flat, syntheticSamples({ samples: 1, hidden: H, textTokens: 4, imageGrid: [2, 2], mrope: false, seed: 1 }));
  for (const [path, message] of [[narrow, /narrow\.safetensors: embeddings of width 32, but the model's hidden size is 64/], [flat, /flat\.safetensors: position ids with 1 row\(s\), but Qwen2-VL needs 3 \(M-RoPE\)/]] as const) {
    const b = await CalibrationBundle.open(path);
    await t.rejects(quantize(model, b, { method: 'gptq', workDir: workDir() }), { code: 'ERR_VLMQ_BAD_FILE', message });
    await b.close();
  }
  await t.rejects(quantize(model, null, { method: 'vlmq' }), { message: /calibration/ });
  const bad: [QuantizeModelOptions, RegExp][] = [
    [{ method: 'gptq', base: 'gptaq' }, /base/],
    [{ method: 'vlmq', importance: { norm: 'l3' as 'l1' } }, /importance\.norm/],
    [{ method: 'vlmq', importance: { power: 3 as 1 } }, /importance\.power/],
    [{ method: 'vlmq', importance: { fallback: 'zero' as 'uniform' } }, /importance\.fallback/],
    [{ method: 'gptq', batchTokens: 0 }, /batchTokens/],
    [{ method: 'gptq', memory: -1 }, /memory/],
    [{ method: 'gptq', bits: 5 }, /bits/],
  ];
  for (const [options, message] of bad) await t.rejects(quantize(model, bundle, { workDir: workDir(), ...options }), { message }, JSON.stringify(options));
});
