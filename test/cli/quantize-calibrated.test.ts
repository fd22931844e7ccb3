// vlmq quantize with --calib: the calibrated methods from the command line. The files it writes
// are those of the library run with the same options (so every flag reaches the library); the
// events carry an ETA; Ctrl-C (an aborted signal) stops after a module and keeps the finished
// layers, which --resume continues into byte-identical output; work directories of other runs
// and mismatched calibration sets are usage errors that say what to do.
import t, { type Test } from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CalibrationBundle, writeCalibrationBundle } from '../../lib/data/bundle.js';
import { writeBuiltinSet } from '../../lib/demo/builtin-set.js';
import { syntheticSamples } from '../../lib/demo/synthetic.js';
import { loadModel } from '../../lib/models/model.js';
import { quantize } from '../../lib/pipeline/quantize.js';
import { Output } from '../../lib/cli/output.js';
import { quantizeCommand } from '../../lib/cli/quantize.js';
import { writeTinyCheckpoint } from '../fixtures/checkpoints.js';
import { jsonLines, jsonResult, runCli } from '../helpers/cli.js';

const dir = t.testdir({});
const LAYERS = 3;
const model = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_5_vl', layers: LAYERS, seed: 5 });
const calib = join(dir, 'calib.safetensors');
await writeCalibrationBundle(calib, syntheticSamples({ samples: 6, hidden: 64, textTokens: 10, imageGrid: [4, 4], mrope: true, seed: 2 }));

async function filesOf(d: string): Promise<Map<string, Buffer>> {
  const names = (await readdir(d)).sort();
  return new Map(await Promise.all(names.map(async (n) => [n, await readFile(join(d, n))] as [string, Buffer])));
}

async function sameFiles(t: Test, a: string, b: string): Promise<void> {
  const [x, y] = [await filesOf(a), await filesOf(b)];
  t.same([...y.keys()], [...x.keys()], 'the same files');
  for (const [name, bytes] of x) t.ok(bytes.equals(y.get(name)!), `${name} is byte-identical`);
}

/** The command in this process, with JSON output collected and `onEvent` seeing each line. */
async function runInProcess(argv: string[], onEvent: (event: Record<string, unknown>, abort: () => void) => void = () => {}) {
  const controller = new AbortController();
  const lines: Record<string, unknown>[] = [];
  const stdout = { write: (text: string) => { for (const l of text.split('\n').filter(Boolean)) { lines.push(JSON.parse(l)); onEvent(lines.at(-1)!, () => controller.abort(new Error('interrupted'))); } return true; } };
  const stderr = { write: () => true };
  try {
    await quantizeCommand.run(argv, { out: new Output(stdout, stderr, { json: true, interactive: false }), signal: controller.signal });
    return { error: null, lines };
  } catch (error) {
    return { error, lines };
  }
}

const FLAGS = ['--calib', calib, '--method', 'vlmq', '--bits', '3', '--act-order', '--importance-fallback', 'rtn-probe', '--importance-norm', 'l2', '--batch-tokens', '40'];

t.test('--calib: the files are those the library writes for the same options, and the events carry an ETA', async (t) => {
  const out = join(dir, 'cli');
  const run = await runCli(['quantize', '--model', model.dir, ...FLAGS, '--out', out, '--json']);
  t.equal(run.code, 0, run.stderr);
  const events = jsonLines(run.stdout);
  t.match(events.find((e) => e.type === 'start'), { method: 'vlmq', base: 'gptaq', layers: LAYERS, samples: 6, tokens: 6 * 26, resumedLayers: 0 });
  const modules = events.filter((e) => e.type === 'module');
  t.equal(modules.length, 7 * LAYERS, 'an event per module');
  t.ok(modules.every((e) => typeof e.etaSeconds === 'number' && e.etaSeconds >= 0), 'each with an ETA');
  t.equal(modules.at(-1)!.etaSeconds, 0, 'the last module leaves nothing');
  t.match(events.filter((e) => e.type === 'importance')[0], { layer: 0, fallback: 'rtn-probe' });
  t.equal(events.filter((e) => e.type === 'layer').length, LAYERS);
  t.match(jsonResult(run.stdout), {
    settings: { method: 'vlmq', bits: 3, actOrder: true }, base: 'gptaq', importance: { norm: 'l2', power: 1, fallback: 'rtn-probe' },
    calibration: { bundle: calib, samples: 6, tokens: 156 }, workDir: null,
  });
  t.notOk(existsSync(`${out}.vlmq-work`), 'the work directory is removed after the export');
  t.match(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).quantization_config, { bits: 3, desc_act: true, quant_method: 'gptq' });

  const m = await loadModel(model.dir);
  const bundle = await CalibrationBundle.open(calib);
  const library = await quantize(m, bundle, { method: 'vlmq', bits: 3, actOrder: true, importance: { fallback: 'rtn-probe', norm: 'l2' }, batchTokens: 40, workDir: join(dir, 'library-work') });
  await library.save(join(dir, 'library'));
  await library.discard();
  await bundle.close();
  await m.close();
  await sameFiles(t, join(dir, 'library'), out);
});

t.test('for people: a line per module with an ETA, one per layer with its phases, and a summary', async (t) => {
  const out = join(dir, 'human');
  const run = await runCli(['quantize', '--model', model.dir, '--calib', calib, '--method', 'gptq', '--bits', '4', '--out', out, '--keep-work']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stderr, /^calibration: 6 samples, 156 tokens; gptq, 3 layers$/m);
  t.match(run.stderr, /^layer 0\/3 k_proj +loss \d\.\d{3}e[+-]\d+ +damp 0\.01 +[\d.]+s +ETA [\d.]+s$/m);
  t.match(run.stderr, /^layer 2\/3 done in [\d.]+s: forward \d+%, importance 0%, statistics \d+%, cholesky \d+%, sweep \d+%, other \d+%$/m);
  t.match(run.stdout, /^calibration: .*calib\.safetensors \(6 samples, 156 tokens\)$/m);
  t.match(run.stdout, /^work dir: +.*human\.vlmq-work \(kept\)$/m);
  t.match(run.stdout, /^seconds: +load [\d.]+s, calibrate [\d.]+s, export [\d.]+s; total [\d.]+s$/m);
  t.ok(existsSync(join(`${out}.vlmq-work`, 'state.json')), '--keep-work keeps it');
});

t.test('an interrupted run continues with --resume into the files of an uninterrupted one', async (t) => {
  const out = join(dir, 'interrupted');
  const work = `${out}.vlmq-work`;
  const argv = ['--model', model.dir, ...FLAGS, '--out', out];
  const stopped = await runInProcess(argv, (e, abort) => e.type === 'module' && e.layer === 1 && e.module === 'q_proj' && abort());
  t.match(stopped.error, { message: 'interrupted' }, 'the abort ends the command');
  t.ok(stopped.lines.some((e) => e.type === 'log' && /stopped: the finished layers are kept in .*interrupted\.vlmq-work; run the same command with --resume/.test(e.message as string)));
  t.notOk(existsSync(out), 'no output');
  t.equal(JSON.parse(await readFile(join(work, 'state.json'), 'utf8')).completed, 1, 'layer 0 is kept; layer 1 was stopped after q_proj and is not');

  const again = await runInProcess(argv);
  t.match(again.error, { name: 'UsageError', message: /^--work-dir: .*holds an unfinished run \(1 of 3 layers\)/, hint: 'Add --resume to continue it.' });
  const other = await runInProcess([...argv.map((v, i) => (argv[i - 1] === '--bits' ? '4' : v)), '--resume']);
  t.match(other.error, { name: 'UsageError', message: /^--resume: .*another model, calibration set or options/ });

  const resumed = await runInProcess([...argv, '--resume']);
  t.equal(resumed.error, null);
  t.match(resumed.lines.find((e) => e.type === 'start'), { resumedLayers: 1 });
  t.match(resumed.lines.find((e) => e.type === 'replay'), { layer: 0 });
  await sameFiles(t, join(dir, 'cli'), out);
  t.notOk(existsSync(work));
});

t.test('flags for another method are warned about; a calibration set that does not fit the model is exit 2', async (t) => {
  const rtn = await runCli(['quantize', '--model', model.dir, '--calib', calib, '--method', 'rtn', '--memory', '1GiB', '--out', join(dir, 'rtn')]);
  t.equal(rtn.code, 0, rtn.stderr);
  t.match(rtn.stderr, /^vlmq: warning: --calib has no effect with --method rtn$/m);
  t.match(rtn.stderr, /^vlmq: warning: --memory has no effect with --method rtn$/m);
  const gptq = await runCli(['quantize', '--model', model.dir, '--calib', calib, '--method', 'gptq', '--importance-power', '2', '--alpha', '0.5', '--out', join(dir, 'gptq')]);
  t.equal(gptq.code, 0, gptq.stderr);
  t.match(gptq.stderr, /^vlmq: warning: --importance-power has no effect with --method gptq$/m);
  t.match(gptq.stderr, /^vlmq: warning: --alpha has no effect with --method gptq$/m);

  const flat = join(dir, 'flat.safetensors');
  await writeCalibrationBundle(flat, syntheticSamples({ samples: 1, hidden: 64, textTokens: 4, imageGrid: [2, 2], mrope: false, seed: 1 }));
  const mismatch = await runCli(['quantize', '--model', model.dir, '--calib', flat, '--out', join(dir, 'flat-out')]);
  t.equal(mismatch.code, 2);
  t.match(mismatch.stderr, /^vlmq: .*flat\.safetensors: position ids with 1 row\(s\), but Qwen2\.5-VL needs 3 \(M-RoPE\)$/m);
  const broken = join(dir, 'broken.safetensors');
  await writeCalibrationBundle(broken, syntheticSamples({ samples: 1, hidden: 64, textTokens: 4, imageGrid: [2, 2], mrope: true, seed: 1 }));
  const { truncate } = await import('node:fs/promises');
  await truncate(broken, 100);
  const truncated = await runCli(['quantize', '--model', model.dir, '--calib', broken, '--out', join(dir, 'broken-out')]);
  t.equal(truncated.code, 2, truncated.stderr);
  t.match(truncated.stderr, /^vlmq: .*broken\.safetensors: /m);
  t.same(readdirSync(dir).filter((n) => /(flat|broken)-out/.test(n)), [], 'nothing written');
});

t.test('--calib image-text pairs (ShareGPT4V JSON + --images): the bundle is built in the work directory, reused by --resume; a missing image is exit 2', async (t) => {
  const root = t.testdir();
  const set = await writeBuiltinSet(join(root, 'set'), { samples: 6, width: 112, height: 84 });
  const qwen = await writeTinyCheckpoint(join(root, 'model'), { architecture: 'qwen2_vl', layers: 2, seed: 9 });
  const work = join(root, 'work');
  const flags = (seed: string) => ['--model', qwen.dir, '--calib', set.json, '--images', set.images, '--samples', '4', '--seed', seed, '--max-tokens', '400',
    '--method', 'gptq', '--bits', '4', '--work-dir', work, '--keep-work'];
  const argv = flags('2');
  const first = await runInProcess([...argv, '--out', join(root, 'first')]);
  t.equal(first.error, null);
  const built = first.lines.find((e) => e.type === 'calibration-set');
  t.match(built, { samples: 4, truncated: 0, dropped: [] });
  t.ok((built!.imageTokens as number) > 0, 'with image tokens');
  t.match(first.lines.at(-1), { type: 'result', calibration: { bundle: set.json, samples: 4, tokens: built!.tokens } });
  t.ok(existsSync(join(work, 'calibration.safetensors')), 'the bundle is in the work directory');

  const resumed = await runInProcess([...argv, '--resume', '--out', join(root, 'resumed')]);
  t.equal(resumed.error, null);
  t.notOk(resumed.lines.some((e) => e.type === 'calibration-set'), 'no bundle is built again');
  t.ok(resumed.lines.some((e) => e.type === 'log' && /calibration set: reusing the bundle built earlier/.test(e.message as string)));
  await sameFiles(t, join(root, 'first'), join(root, 'resumed'));

  const bundleBytes = await readFile(join(work, 'calibration.safetensors'));
  const other = await runInProcess([...flags('3'), '--out', join(root, 'other')]);
  t.match(other.error, { name: 'UsageError', message: /^--work-dir: .*holds an unfinished run/ }, 'a work directory in use is refused without --resume');
  t.notOk(other.lines.some((e) => e.type === 'calibration-set'), 'before any bundle is built');
  t.ok(bundleBytes.equals(await readFile(join(work, 'calibration.safetensors'))), 'and the run\'s bundle is untouched');

  const broken = join(root, 'broken.json');
  const records = JSON.parse(await readFile(set.json, 'utf8')) as { image: string }[];
  records[1].image = 'not-there.png';
  await writeFile(broken, JSON.stringify(records));
  const missing = await runCli(['quantize', '--model', qwen.dir, '--calib', broken, '--images', set.images, '--method', 'gptq', '--out', join(root, 'never')]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /broken\.json: .*not-there\.png/);
  t.notOk(existsSync(join(root, 'never')));
});
