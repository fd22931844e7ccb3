// The checkpoint reader (Checkpoint.open / loadModel): sharded and single-file checkpoints hold the
// same tensors, every documented corruption is rejected with a message naming the file and/or the
// tensor, bad directories are refused clearly, and tensor data is read lazily, one tensor at a time.
// Tensor bytes are cross-checked with a safetensors header parser written in the test helper.
import t from 'tap';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Checkpoint } from '../../lib/io/checkpoint.js';
import { loadModel } from '../../lib/models/model.js';
import { CORRUPTION_KINDS, corruptCheckpoint, writeTinyCheckpoint, type Architecture, type CorruptionKind, type Layout } from '../fixtures/checkpoints.js';
import { bytesOf, filesIn, firstDifference, patchBytes, readRawBytes, readTensorTable, textDims } from '../helpers/checkpoint-files.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const PAIRS: [Architecture, Layout][] = [
  ['qwen2_vl', 'original'], ['qwen2_vl', 'transformers-4.52'], ['qwen2_5_vl', 'original'],
  ['llava_onevision', 'original'], ['llava_onevision', 'transformers-4.52'],
];

for (const [architecture, layout] of PAIRS) {
  t.test(`${architecture} ${layout}: a 3-shard and a single-file checkpoint of the same seed read the same tensors byte for byte`, async (t) => {
    const dir = t.testdir();
    const single = await writeTinyCheckpoint(join(dir, 'single'), { architecture, layout, seed: 7 });
    const sharded = await writeTinyCheckpoint(join(dir, 'sharded'), { architecture, layout, seed: 7, shards: 3 });
    const a = await Checkpoint.open(single.dir);
    const b = await Checkpoint.open(sharded.dir);
    t.teardown(() => Promise.all([a.close(), b.close()]));
    t.strictSame(a.files, ['model.safetensors']);
    t.strictSame(b.files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    t.strictSame([...a.tensors.keys()].sort(), [...single.tensors.keys()].sort(), 'single file: the fixture\'s tensor set');
    t.strictSame([...b.tensors.keys()].sort(), [...single.tensors.keys()].sort(), 'sharded: the same tensor set');
    const raw = await readTensorTable(sharded.dir);
    let identical = 0;
    for (const name of single.tensors.keys()) {
      const x = await a.read(name), y = await b.read(name);
      t.equal(b.info(name).file, sharded.tensors.get(name)!.file, `${name}: in the shard the fixture put it in`);
      if (x.dtype !== y.dtype || x.shape.join() !== y.shape.join()) t.fail(`${name}: dtype/shape differ`);
      const fromDisk = await readRawBytes(sharded.dir, raw.get(name)!);
      if (firstDifference(bytesOf(x.data), bytesOf(y.data)) === -1 && firstDifference(bytesOf(y.data), fromDisk) === -1) identical++;
      else t.fail(`${name}: bytes differ`);
    }
    t.equal(identical, single.tensors.size, 'every tensor identical (and equal to the bytes on disk)');
    t.equal(a.totalBytes, b.totalBytes, 'same total tensor bytes');

    const m1 = await loadModel(single.dir), m2 = await loadModel(sharded.dir);
    t.teardown(() => Promise.all([m1.close(), m2.close()]));
    t.strictSame(m1.config.text, m2.config.text, 'same text config');
    t.strictSame(m1.linears(), m2.linears(), 'same linears');
    const linear = m2.linears()[3];
    const w1 = await m1.readLinear(linear), w2 = await m2.readLinear(linear);
    t.equal(firstDifference(bytesOf(w1.weight.data), bytesOf(w2.weight.data)), -1, `readLinear(${linear.prefix}) identical`);
  });
}

// --- corruptions ---------------------------------------------------------------------------------

/** What loadModel must say for each corruption: the patterns are built from what was broken. */
function expectations(kind: CorruptionKind, c: { file: string; tensor?: string }, dir: string, sharded: boolean): { code: string; patterns: RegExp[] } {
  const tensor = c.tensor ? escape(c.tensor) : '';
  const file = escape(c.file);
  const bad = 'ERR_VLMQ_BAD_FILE';
  switch (kind) {
    case 'missing-tensor':
      return { code: bad, patterns: [new RegExp(`^${escape(dir)}: 1 tensor\\(s\\) the config implies are missing: ${tensor} \\[64, 64\\]$`)] };
    case 'wrong-shape':
      return { code: bad, patterns: [new RegExp(`${tensor} \\(${file}\\): expected \\[64, 128\\], found \\[128, 64\\]`)] };
    case 'bad-dtype':
      return { code: bad, patterns: [new RegExp(`${tensor} \\(${file}\\): expected BF16, F16 or F32, found I16`)] };
    case 'missing-shard':
      return sharded
        ? { code: bad, patterns: [/model\.safetensors\.index\.json: names shard /, new RegExp(`${file}, which is missing`)] }
        : { code: bad, patterns: [new RegExp(`^${escape(dir)}: neither model\\.safetensors nor model\\.safetensors\\.index\\.json is present`)] };
    case 'bad-config-json':
      return { code: bad, patterns: [new RegExp(`^${escape(join(dir, 'config.json'))}: not valid JSON`)] };
    case 'unknown-architecture':
      return { code: 'ERR_VLMQ_UNSUPPORTED_MODEL', patterns: [/config\.json: unsupported architecture "MllamaForConditionalGeneration"/, /Qwen2VLForConditionalGeneration/] };
    case 'index-points-to-missing-tensor':
      return { code: bad, patterns: [new RegExp(`model\\.safetensors\\.index\\.json: lists tensor '${tensor}' in ${file}, which does not hold it`)] };
    case 'inconsistent-config':
      // intermediate_size doubled: the first linear shaped by it is the layer-0 gate_proj [I, H]
      return { code: bad, patterns: [/layers\.0\.mlp\.gate_proj\.weight \(model[-.0-9a-z]*\.safetensors\): expected \[256, 64\], found \[128, 64\] \(config\.json and the tensors disagree\)/] };
  }
}

for (const shards of [1, 3]) {
  for (const kind of CORRUPTION_KINDS) {
    if (kind === 'index-points-to-missing-tensor' && shards === 1) continue;
    t.test(`${shards === 1 ? 'single file' : '3 shards'}: loadModel rejects '${kind}' with a message naming what is wrong and where`, async (t) => {
      const dir = t.testdir();
      const results: string[] = [];
      for (const [architecture, layout] of PAIRS) {
        const tiny = await writeTinyCheckpoint(join(dir, `${architecture}-${layout}`), { architecture, layout, shards });
        t.equal(textDims(tiny.config, architecture).intermediate, 128, 'fixture: intermediate 128, hidden 64');
        const c = await corruptCheckpoint(tiny.dir, kind);
        const { code, patterns } = expectations(kind, c, tiny.dir, shards > 1);
        const error = await loadModel(tiny.dir).then(() => null, (e: Error & { code?: string }) => e);
        if (!error) {
          t.fail(`${architecture} ${layout}: loaded despite: ${c.description}`);
          continue;
        }
        t.equal(error.code, code, `${architecture} ${layout}: code ${code}`);
        for (const p of patterns) t.match(error.message, p, `${architecture} ${layout}: ${c.description}`);
        results.push(error.message);
      }
      t.equal(results.length, PAIRS.length, 'rejected for every architecture and layout');
    });
  }
}

t.test('a corrupt checkpoint opened by loadModel leaves no file handle behind (the same directory can be repaired and loaded)', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_vl' });
  const config = JSON.stringify(tiny.config);
  await corruptCheckpoint(tiny.dir, 'inconsistent-config');
  await t.rejects(loadModel(tiny.dir));
  await writeFile(join(tiny.dir, 'config.json'), config);
  const model = await loadModel(tiny.dir);
  t.equal(model.config.text.intermediateSize, 128);
  await model.close();
});

// --- bad directories -------------------------------------------------------------------------------

t.test('a directory without config.json is rejected naming config.json as missing', async (t) => {
  const dir = t.testdir({ 'model.safetensors': '' });
  await t.rejects(loadModel(dir), { code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`^${escape(join(dir, 'config.json'))}: missing$`) });
});

t.test('a directory with config.json but no weights is rejected naming both weight file names', async (t) => {
  const empty = join(t.testdir(), 'config-only');
  await writeTinyCheckpoint(empty, { architecture: 'qwen2_5_vl', extraFiles: false });
  await corruptCheckpoint(empty, 'missing-shard');
  await t.rejects(loadModel(empty), { code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`^${escape(empty)}: neither model\\.safetensors nor model\\.safetensors\\.index\\.json is present$`) });
  t.strictSame(await filesIn(empty), ['config.json'], 'fixture: config.json only');
});

t.test('a file path instead of a directory is rejected as "expected a checkpoint directory, found a file"', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'llava_onevision' });
  const file = join(tiny.dir, 'model.safetensors');
  await t.rejects(loadModel(file), { code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`^${escape(file)}: expected a checkpoint directory, found a file$`) });
  await t.rejects(Checkpoint.open(join(tiny.dir, 'config.json')), { message: /found a file/ });
});

t.test('a path that does not exist is rejected as "no such directory"', async (t) => {
  const missing = join(t.testdir(), 'nope');
  await t.rejects(loadModel(missing), { code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`^${escape(missing)}: no such directory$`) });
});

t.test('an index whose weight_map is not an object, or names a file outside the directory, is rejected naming the index', async (t) => {
  const dir = t.testdir();
  for (const [label, weightMap, pattern] of [
    ['array', [], /weight_map: expected an object, found \[\]/],
    ['outside', { 'model.norm.weight': '../x.safetensors' }, /weight_map\['model\.norm\.weight'\]: expected a \.safetensors file name in this directory, found "\.\.\/x\.safetensors"/],
    ['empty', {}, /weight_map is empty/],
  ] as const) {
    const tiny = await writeTinyCheckpoint(join(dir, label), { architecture: 'qwen2_vl', shards: 2 });
    await writeFile(join(tiny.dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
    await t.rejects(loadModel(tiny.dir), { code: 'ERR_VLMQ_BAD_FILE', message: pattern }, label);
  }
});

// --- lazy reading ----------------------------------------------------------------------------------

t.test('opening reads headers only: garbage in tensor data does not stop loadModel, and other tensors read correctly', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_vl', dtype: 'F32' });
  const raw = await readTensorTable(tiny.dir);
  const embed = raw.get('model.embed_tokens.weight')!;
  const norm = raw.get('model.norm.weight')!;
  const expectedNorm = await readRawBytes(tiny.dir, norm);
  // every byte of the embedding becomes 0xff (NaN as F32)
  await patchBytes(join(tiny.dir, embed.file), embed.begin, new Uint8Array(embed.byteLength).fill(0xff));
  const model = await loadModel(tiny.dir);
  t.teardown(() => model.close());
  const x = await model.checkpoint.read('model.norm.weight');
  t.equal(firstDifference(bytesOf(x.data), expectedNorm), -1, 'model.norm.weight reads its own bytes');
  t.ok(Array.from(x.data as Float32Array).every((v) => Math.abs(v - 1) < 0.2), 'norm weights are ≈ 1 (fixture init 1 + N(0, 0.02²))');
  const e = await model.checkpoint.read('model.embed_tokens.weight');
  t.ok(Number.isNaN((e.data as Float32Array)[0]), 'the corrupted tensor reads as what is on disk now');
});

t.test('tensor data is read when asked for, not when opened: bytes changed after open are seen, a truncated tail only fails the tensors in it', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_5_vl', dtype: 'F32' });
  const raw = await readTensorTable(tiny.dir);
  const ordered = [...raw.values()].sort((a, b) => a.begin - b.begin);
  const first = ordered[0], last = ordered[ordered.length - 1];
  const firstBytes = await readRawBytes(tiny.dir, first);
  const checkpoint = await Checkpoint.open(tiny.dir);
  t.teardown(() => checkpoint.close());

  const changed = new Float32Array([1.5, -2.25, 3.125, 4]);
  await patchBytes(join(tiny.dir, last.file), last.begin, bytesOf(changed));
  const after = await checkpoint.read(last.name);
  t.strictSame(Array.from((after.data as Float32Array).subarray(0, 4)), [1.5, -2.25, 3.125, 4], `${last.name}: the bytes written after open`);

  await truncate(join(tiny.dir, last.file), last.begin + 4);
  const ok = await checkpoint.read(first.name);
  t.equal(firstDifference(bytesOf(ok.data), firstBytes), -1, `${first.name} (before the cut) still reads correctly`);
  await t.rejects(checkpoint.read(last.name), { message: new RegExp(`tensor '${escape(last.name)}' ends past the end of the file`) }, `${last.name} (cut) fails on read`);
  let synchronous = false;
  const unknown = await (() => {
    try {
      return checkpoint.read('no.such.tensor');
    } catch (error) {
      synchronous = true;
      return Promise.reject(error);
    }
  })().then(() => null, (e: Error & { code?: string }) => e);
  t.match(unknown, { code: 'ERR_VLMQ_BAD_FILE', message: /no tensor named 'no\.such\.tensor'/ }, 'an unknown name is an error naming it');
  t.notOk(synchronous, 'read() of an unknown name rejects its promise instead of throwing synchronously');
});
