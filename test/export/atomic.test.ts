// exportModel writes atomically: a failure midway leaves neither the output directory nor any
// temporary directory; an existing directory is refused unless overwrite, and an overwrite that
// fails leaves the old directory intact and readable; the model directory itself and a missing
// parent directory are refused up front with clear errors.
import t from 'tap';
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportModel, type ExportFormat, type QuantizationSettings, type QuantizedSource } from '../../lib/export/export.js';
import { verifyCheckpoint } from '../../lib/export/verify.js';
import { loadModel, type Model } from '../../lib/models/model.js';
import type { LinearSpec } from '../../lib/models/types.js';
import { quantizeLinear } from '../../lib/quant/quantize-linear.js';
import { writeTinyCheckpoint } from '../fixtures/checkpoints.js';
import { exists, filesIn } from '../helpers/checkpoint-files.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const SETTINGS: QuantizationSettings = {
  method: 'rtn', bits: 4, groupSize: 32, sym: true, actOrder: false, staticGroups: false, percdamp: 0.01, trueSequential: true,
};

/** RTN for every linear; with `failAfter`, the call after that many linears throws. */
function source(model: Model, failAfter = Infinity): QuantizedSource & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async get(linear: LinearSpec) {
      if (calls.length >= failAfter) throw new Error(`source failed at ${linear.prefix}`);
      calls.push(linear.prefix);
      const { weight } = await model.readLinear(linear);
      return quantizeLinear(weight, null, { method: 'rtn', bits: SETTINGS.bits, groupSize: SETTINGS.groupSize, sym: SETTINGS.sym });
    },
  };
}

async function setup(dir: string): Promise<Model> {
  const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_5_vl' });
  return loadModel(tiny.dir);
}

/** Every file of a directory with its content, for before/after comparisons. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await filesIn(dir)) out[name] = (await readFile(join(dir, name))).toString('base64');
  return out;
}

const leftovers = async (dir: string) => (await readdir(dir)).filter((n) => /\.(tmp|old)-/.test(n));

const FORMATS: ExportFormat[] = ['gptq', 'gptq_v2', 'fake-quant'];

for (const format of FORMATS) {
  t.test(`${format}: a source that throws after 3 linears makes exportModel reject and leaves no output and no *.tmp-* directory`, async (t) => {
    const dir = t.testdir();
    const model = await setup(dir);
    t.teardown(() => model.close());
    const out = join(dir, 'out');
    const before = (await readdir(dir)).sort();
    const failing = source(model, 3);
    await t.rejects(exportModel(model, failing, out, { format, settings: SETTINGS }), { message: /^source failed at model\.layers\.\d\./ });
    t.equal(failing.calls.length, 3, 'three linears were produced before the failure');
    t.notOk(await exists(out), 'no output directory');
    t.strictSame(await leftovers(dir), [], 'no temporary directory');
    t.strictSame((await readdir(dir)).sort(), before, 'the parent directory is as before');
  });
}

t.test('an existing non-empty output directory is refused without overwrite and left untouched', async (t) => {
  const dir = t.testdir();
  const model = await setup(dir);
  t.teardown(() => model.close());
  const out = join(dir, 'out');
  await mkdir(out);
  await writeFile(join(out, 'notes.txt'), 'keep me');
  await t.rejects(exportModel(model, source(model), out, { format: 'gptq', settings: SETTINGS }), {
    code: 'ERR_VLMQ_BAD_FILE',
    message: new RegExp(`^${escape(out)}: exists and is not empty \\(pass overwrite to replace it\\)$`),
  });
  t.strictSame(await snapshot(out), { 'notes.txt': Buffer.from('keep me').toString('base64') }, 'untouched');
  t.strictSame(await leftovers(dir), []);
});

t.test('an existing file at the output path is refused even with overwrite', async (t) => {
  const dir = t.testdir();
  const model = await setup(dir);
  t.teardown(() => model.close());
  const out = join(dir, 'out');
  await writeFile(out, 'a file');
  await t.rejects(exportModel(model, source(model), out, { format: 'gptq', settings: SETTINGS, overwrite: true }), {
    code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`^${escape(out)}: exists and is a regular file, not a directory$`),
  });
  t.equal(await readFile(out, 'utf8'), 'a file');
});

t.test('with overwrite, a successful export replaces the old directory and leaves nothing else behind', async (t) => {
  const dir = t.testdir();
  const model = await setup(dir);
  t.teardown(() => model.close());
  const out = join(dir, 'out');
  await exportModel(model, source(model), out, { format: 'fake-quant', settings: SETTINGS });
  await writeFile(join(out, 'stale.txt'), 'from the old export');
  await exportModel(model, source(model), out, { format: 'gptq', settings: SETTINGS, overwrite: true });
  const files = await filesIn(out);
  t.notOk(files.includes('stale.txt'), 'old content gone');
  t.ok(files.includes('quantize_config.json'), 'the new export is in place');
  t.strictSame((await verifyCheckpoint(out)).problems, [], 'and verifies');
  t.strictSame(await leftovers(dir), [], 'no temporary or old directory');
});

for (const format of FORMATS) {
  t.test(`${format}: with overwrite, an export that fails midway leaves the old directory intact and readable`, async (t) => {
    const dir = t.testdir();
    const model = await setup(dir);
    t.teardown(() => model.close());
    const out = join(dir, 'out');
    await exportModel(model, source(model), out, { format: 'gptq', settings: SETTINGS });
    const before = await snapshot(out);
    await t.rejects(exportModel(model, source(model, 5), out, { format, settings: SETTINGS, overwrite: true }), { message: /^source failed at / });
    t.strictSame(await snapshot(out), before, 'every file of the old export byte-identical');
    t.strictSame((await verifyCheckpoint(out)).problems, [], 'the old export still verifies');
    t.strictSame(await leftovers(dir), [], 'no temporary or old directory');
  });
}

t.test('exporting into the model directory itself is refused, with or without overwrite, however the path is spelled', async (t) => {
  const dir = t.testdir();
  const model = await setup(dir);
  t.teardown(() => model.close());
  const before = await snapshot(model.dir);
  for (const [spelling, overwrite] of [[model.dir, false], [model.dir, true], [`${model.dir}/`, true], [join(model.dir, '..', 'model'), true]] as const) {
    const calls = source(model);
    await t.rejects(exportModel(model, calls, spelling, { format: 'fake-quant', settings: SETTINGS, overwrite }), {
      code: 'ERR_VLMQ_INVALID_ARG', message: /a directory other than the model directory/,
    }, `${spelling} (overwrite ${overwrite})`);
    t.equal(calls.calls.length, 0, 'refused before any work');
  }
  t.strictSame(await snapshot(model.dir), before, 'the model directory is untouched');
  t.strictSame(await leftovers(dir), []);
});

t.test('an overwrite export into a directory that contains the model directory is refused (replacing it would delete the model)', async (t) => {
  const dir = t.testdir();
  const parent = join(dir, 'models');
  const model = await setup(parent);
  t.teardown(() => model.close());
  const before = await snapshot(model.dir);
  const outcome = await exportModel(model, source(model), parent, { format: 'gptq', settings: SETTINGS, overwrite: true }).then(() => null, (e: Error) => e);
  t.ok(outcome, `refused (got: ${outcome ? outcome.message : 'the export replaced the parent directory'})`);
  t.ok(await exists(model.dir), 'the model directory still exists');
  if (await exists(model.dir)) t.strictSame(await snapshot(model.dir), before, 'the model directory is untouched');
});

t.test('an overwrite export into the model directory reached through a symbolic link is refused', async (t) => {
  const dir = t.testdir();
  const model = await setup(dir);
  t.teardown(() => model.close());
  const link = join(dir, 'link');
  await symlink(model.dir, link);
  const viaLink = await loadModel(link);
  t.teardown(() => viaLink.close());
  const before = await snapshot(model.dir);
  const outcome = await exportModel(viaLink, source(viaLink), model.dir, { format: 'gptq', settings: SETTINGS, overwrite: true }).then(() => null, (e: Error) => e);
  t.ok(outcome, `refused (got: ${outcome ? outcome.message : 'the export replaced the model directory'})`);
  t.strictSame(await snapshot(model.dir), before, 'the model directory is untouched');
});

t.test('every linear is requested from the source exactly once, whatever the format and sharding', async (t) => {
  const dir = t.testdir();
  const model = await setup(dir);
  t.teardown(() => model.close());
  const expected = model.linears().map((l) => l.prefix);
  t.equal(expected.length, 14, 'fixture: 2 layers × 7 linears');
  for (const format of FORMATS) {
    for (const maxShardBytes of [undefined, 10_000]) {
      const counting = source(model);
      await exportModel(model, counting, join(dir, `${format}-${maxShardBytes ?? 'one'}`), { format, settings: SETTINGS, maxShardBytes });
      t.strictSame([...counting.calls].sort(), [...expected].sort(), `${format}, ${maxShardBytes ? `shards of ${maxShardBytes} bytes` : 'one file'}`);
    }
  }
});

t.test('a missing parent directory gives a clear error naming it, before any work', async (t) => {
  const dir = t.testdir();
  const model = await setup(dir);
  t.teardown(() => model.close());
  const parent = join(dir, 'no', 'such');
  const calls = source(model);
  await t.rejects(exportModel(model, calls, join(parent, 'out'), { format: 'gptq', settings: SETTINGS }), {
    code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`^${escape(parent)}: the parent directory of the output does not exist$`),
  });
  t.equal(calls.calls.length, 0, 'no linear was quantized');
  t.notOk(await exists(join(dir, 'no')), 'nothing created');
});

t.test('an empty existing directory is accepted without overwrite (e.g. one made by mkdir for the output)', async (t) => {
  const dir = t.testdir();
  const model = await setup(dir);
  t.teardown(() => model.close());
  const out = join(dir, 'out');
  await mkdir(out);
  await exportModel(model, source(model), out, { format: 'gptq', settings: SETTINGS });
  t.ok((await filesIn(out)).includes('model.safetensors'));
  t.strictSame(await leftovers(dir), []);
});
