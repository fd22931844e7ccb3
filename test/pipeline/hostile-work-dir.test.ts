// The work directory and the export under the rule "vlmq deletes only what it created" (issue 11,
// findings 1, 7 and 8): a --work-dir holding a user's files, the model or the output is refused
// before any work and left as it was; a finished run removes only its own files, and the folder
// only if vlmq made it; two runs on one work directory meet a lock naming the live process, and a
// dead process's lock is taken over with a notice; a killed export's temporary folder is removed
// by the next export to the same place, and said so, while folders that are not certainly vlmq's
// leftovers stay.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CalibrationBundle, writeCalibrationBundle } from '../../lib/data/bundle.js';
import { syntheticSamples } from '../../lib/demo/synthetic.js';
import { PARTIAL_MARK } from '../../lib/io/move-into-place.js';
import { loadModel } from '../../lib/models/model.js';
import { type QuantizeEvent, quantize } from '../../lib/pipeline/quantize.js';
import { writeTinyCheckpoint } from '../fixtures/checkpoints.js';
import { deadProcessId, jsonLines, repoRoot, runCli, runCliUntil } from '../helpers/cli.js';
import { diskListing } from '../helpers/disk.js';

const dir = t.testdir({});
const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl', layers: 2, seed: 3 });
const calib = join(dir, 'calib.safetensors');
await writeCalibrationBundle(calib, syntheticSamples({ samples: 3, hidden: 64, textTokens: 8, imageGrid: [2, 2], mrope: true, seed: 1 }));
const model = await loadModel(tiny.dir);
const bundle = await CalibrationBundle.open(calib);
t.teardown(async () => {
  await bundle.close();
  await model.close();
});

const CALIBRATED = ['--calib', calib, '--method', 'gptq', '--bits', '4'];
const OPTIONS = { method: 'gptq', bits: 4 } as const;

/** A folder of somebody's own files, as a user might name by mistake. */
async function userFolder(path: string): Promise<string> {
  await mkdir(join(path, 'photos'), { recursive: true });
  await writeFile(join(path, 'notes.txt'), 'my notes');
  await writeFile(join(path, 'photos', 'a.jpg'), 'not really a jpeg');
  return path;
}

t.test('a --work-dir that holds other files is refused before any work, and nothing in it changes', async (t) => {
  const base = join(dir, 'foreign');
  const work = await userFolder(join(base, 'work'));
  const before = await diskListing(base);
  const run = await runCli(['quantize', '--model', tiny.dir, ...CALIBRATED, '--out', join(base, 'out'), '--work-dir', work]);
  t.equal(run.code, 2, run.stderr);
  t.match(run.stderr, /^vlmq: --work-dir: work directory .*work: is not empty and is not a vlmq work directory \(it holds notes\.txt, photos\)/m);
  t.same(await diskListing(base), before, 'the folder and its files are as they were; no output was made');
  await t.rejects(quantize(model, bundle, { ...OPTIONS, workDir: work }), { code: 'ERR_VLMQ_WORK_DIR', message: /is not empty and is not a vlmq work directory/ }, 'the library refuses it too');
  t.same(await diskListing(base), before);
});

t.test('the model directory, the output, and folders inside or around either are refused as work directories', async (t) => {
  const base = join(dir, 'placement');
  await mkdir(base);
  const out = join(base, 'out');
  const modelBefore = await diskListing(tiny.dir);
  const cases: [string, RegExp][] = [
    [tiny.dir, /is the model directory/],
    [join(tiny.dir, 'work'), /lies inside the model directory/],
    [dir, /contains the model directory/],
    [out, /is the output directory/],
    [join(out, 'work'), /lies inside the output directory/],
    [base, /contains the output directory/],
  ];
  for (const [work, message] of cases) {
    const run = await runCli(['quantize', '--model', tiny.dir, ...CALIBRATED, '--out', out, '--work-dir', work]);
    t.equal(run.code, 2, `--work-dir ${work}`);
    t.match(run.stderr, message);
  }
  t.same(await diskListing(tiny.dir), modelBefore, 'the model is untouched');
  t.same(readdirSync(base), [], 'no output, no work directory');
  await t.rejects(quantize(model, bundle, { ...OPTIONS, workDir: tiny.dir }), { code: 'ERR_VLMQ_WORK_DIR', message: /is the model directory/ });
  t.same(await diskListing(tiny.dir), modelBefore);
});

t.test('a --work-dir that is a file, or whose parent does not exist, is an error naming it', async (t) => {
  const base = join(dir, 'file-work');
  await mkdir(base);
  await writeFile(join(base, 'work'), 'a file');
  const run = await runCli(['quantize', '--model', tiny.dir, ...CALIBRATED, '--out', join(base, 'out'), '--work-dir', join(base, 'work')]);
  t.equal(run.code, 2);
  t.match(run.stderr, /^vlmq: --work-dir: work directory .*work: is a regular file, not a directory$/m);
  t.equal(await readFile(join(base, 'work'), 'utf8'), 'a file');
  await t.rejects(quantize(model, bundle, { ...OPTIONS, workDir: join(base, 'missing', 'work') }), { code: 'ERR_VLMQ_WORK_DIR', message: /its parent directory .*missing does not exist/ });
});

t.test('after a run, vlmq removes its own files, and the folder only if it made it', async (t) => {
  const base = join(dir, 'cleanup');
  await mkdir(base);
  const made = await runCli(['quantize', '--model', tiny.dir, ...CALIBRATED, '--out', join(base, 'out-a'), '--work-dir', join(base, 'new-work')]);
  t.equal(made.code, 0, made.stderr);
  t.notOk(existsSync(join(base, 'new-work')), 'a work directory vlmq made is removed');
  await mkdir(join(base, 'empty-work'));
  const given = await runCli(['quantize', '--model', tiny.dir, ...CALIBRATED, '--out', join(base, 'out-b'), '--work-dir', join(base, 'empty-work')]);
  t.equal(given.code, 0, given.stderr);
  t.same(readdirSync(join(base, 'empty-work')), [], 'an empty folder the user gave is emptied of vlmq files and kept');

  // A kept work directory to which the user has added a file: discarding the run leaves that file.
  const work = join(base, 'kept-work');
  const first = await quantize(model, bundle, { ...OPTIONS, workDir: work });
  await first.close();
  await writeFile(join(work, 'notes.txt'), 'mine');
  const resumed = await quantize(model, bundle, { ...OPTIONS, workDir: work, resume: true });
  await resumed.discard();
  t.same(readdirSync(work), ['notes.txt'], 'only vlmq files were removed; the folder stays because it is not empty');
});

t.test('two runs on one work directory: the second is told which process holds it', async (t) => {
  const work = join(dir, 'busy-work');
  const runs = await Promise.allSettled([quantize(model, bundle, { ...OPTIONS, workDir: work }), quantize(model, bundle, { ...OPTIONS, workDir: work })]);
  const done = runs.filter((r) => r.status === 'fulfilled');
  const refused = runs.filter((r) => r.status === 'rejected');
  t.equal(done.length, 1, 'one run goes on');
  t.match(refused[0]?.reason, { code: 'ERR_VLMQ_LOCKED', message: new RegExp(`is in use by process ${process.pid} `) });
  const state = await readFile(join(work, 'state.json'), 'utf8');

  // Two --resume at once of the same run: one continues, the other meets the lock (not a raw ENOENT).
  const resumes = await Promise.allSettled([quantize(model, bundle, { ...OPTIONS, workDir: work, resume: true }), quantize(model, bundle, { ...OPTIONS, workDir: work, resume: true })]);
  t.equal(resumes.filter((r) => r.status === 'rejected').length, 2, 'both are refused while the first run holds the directory');
  for (const r of resumes) t.match((r as PromiseRejectedResult).reason, { code: 'ERR_VLMQ_LOCKED' });
  t.equal(await readFile(join(work, 'state.json'), 'utf8'), state, 'the live run\'s state is untouched');
  await (done[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof quantize>>>).value.close();
  const [a, b] = await Promise.allSettled([quantize(model, bundle, { ...OPTIONS, workDir: work, resume: true }), quantize(model, bundle, { ...OPTIONS, workDir: work, resume: true })]);
  t.same([a.status, b.status].sort(), ['fulfilled', 'rejected'], 'once it is released, one resume proceeds and the other waits its turn');
  const winner = (a.status === 'fulfilled' ? a : b) as PromiseFulfilledResult<Awaited<ReturnType<typeof quantize>>>;
  await winner.value.discard();
  // Which of the first two made the folder is a race; either way no vlmq file is left.
  t.ok(!existsSync(work) || readdirSync(work).length === 0, 'nothing of vlmq is left');
});

t.test('a lock held by another live process: exit 2 naming it; a dead process\'s lock is taken over and said so', async (t) => {
  const base = join(dir, 'locks');
  const work = join(base, 'work');
  await mkdir(work, { recursive: true });
  await writeFile(join(work, 'vlmq-work.json'), `${JSON.stringify({ vlmq: 1, madeDirectory: true })}\n`);
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  t.teardown(() => sleeper.kill());
  await writeFile(join(work, 'vlmq.lock'), JSON.stringify({ pid: sleeper.pid, host: hostname(), since: '2026-01-01T00:00:00.000Z' }));
  const busy = await runCli(['quantize', '--model', tiny.dir, ...CALIBRATED, '--out', join(base, 'out'), '--work-dir', work]);
  t.equal(busy.code, 2, busy.stderr);
  t.match(busy.stderr, new RegExp(`^vlmq: --work-dir: work directory .*work is in use by process ${sleeper.pid} since 2026-01-01`, 'm'));
  t.notOk(existsSync(join(base, 'out')));

  const dead = await deadProcessId();
  await writeFile(join(work, 'vlmq.lock'), JSON.stringify({ pid: dead, host: hostname(), since: '2026-01-01T00:00:00.000Z' }));
  const events: QuantizeEvent[] = [];
  const run = await quantize(model, bundle, { ...OPTIONS, workDir: work, onEvent: (e) => events.push(e) });
  t.match(events.find((e) => e.type === 'notice'), { message: new RegExp(`took over the lock of process ${dead}, which is no longer running`) });
  t.same(JSON.parse(await readFile(join(work, 'vlmq.lock'), 'utf8')).pid, process.pid, 'the lock is now this process\'s');
  await run.discard();
  t.notOk(existsSync(work), 'removed: the marker says vlmq made it');
});

t.test('a killed export leaves its temporary folder; the next export to the same place removes it and says so', async (t) => {
  const base = join(dir, 'killed');
  await mkdir(base);
  const model8 = await writeTinyCheckpoint(join(base, 'model'), { architecture: 'qwen2_vl', layers: 8, hidden: 256, intermediate: 1024, vocab: 1024 });
  const target = join(base, 'out');
  // Many one-tensor shards, each written and synced, so the export is still running when SIGKILL lands.
  const killed = await runCliUntil(['quantize', '--model', model8.dir, '--out', target, '--max-shard-size', '1', '--json'], /"type":"progress".*"finished":false/, 'SIGKILL');
  t.ok(killed.matched, 'the export had started');
  const leftovers = readdirSync(base).filter((name) => name.startsWith('out.tmp-'));
  t.equal(leftovers.length, 1, `SIGKILL left the temporary folder (${readdirSync(base).join(', ')})`);

  // Folders that are not certainly a dead vlmq export's stay: a live process's, and one without vlmq's mark.
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  t.teardown(() => sleeper.kill());
  const live = join(base, `out.tmp-${sleeper.pid}-0a0b0c0d`);
  const unmarked = join(base, `out.tmp-${await deadProcessId()}-01020304`);
  for (const folder of [live, unmarked]) await userFolder(folder);
  await writeFile(join(live, PARTIAL_MARK), '');

  const next = await runCli(['quantize', '--model', model8.dir, '--out', target, '--json']);
  t.equal(next.code, 0, next.stderr);
  const result = jsonLines(next.stdout).at(-1) as { export: { removedStale: { path: string; pid: number }[] } };
  t.same(result.export.removedStale.map((s) => s.path), [join(base, leftovers[0])], 'the killed export\'s folder was removed, and reported');
  t.match(next.stdout, /removed .*out\.tmp-\d+-[0-9a-f]+, left by process \d+ \(no longer running\)/);
  t.same(readdirSync(base).sort(), ['model', 'out', `out.tmp-${sleeper.pid}-0a0b0c0d`, unmarked.slice(base.length + 1)].sort(), 'the others stay');
});

t.test('a lock still held when its process exits is released by the process itself', async (t) => {
  const base = join(dir, 'exit-lock');
  await mkdir(base);
  const script = `import { DirectoryLock } from ${JSON.stringify(join(repoRoot, 'lib', 'io', 'lock.ts'))};
await DirectoryLock.acquire(${JSON.stringify(join(base, 'a.lock'))}, 'a');
await DirectoryLock.acquire(${JSON.stringify(join(base, 'b.lock'))}, 'b');
console.log(JSON.stringify((await import('node:fs')).readdirSync(${JSON.stringify(base)}).sort()));
process.exit(0);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  t.equal(code, 0);
  t.same(JSON.parse(stdout), ['a.lock', 'b.lock'], 'both locks were held');
  t.same(readdirSync(base), [], 'and both are gone after exit');
});
