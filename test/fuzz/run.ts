// `npm run fuzz -- [options]`: long fuzz runs of the readers, outside tap.
//
// Each property runs in a child process that records the index of the case it is on (one small
// positional write per case). The parent watches it: a child that dies without reporting is a
// crash (out of memory, a native abort), one whose case index stands still for --hang seconds is
// a hang (synchronous code that the per-case time bound cannot interrupt) and is killed; either
// way the report names the seed and the case, and the command that replays it. After a failure
// the property carries on with the next seed (up to --max-failures), so one run counts several.
import { fork } from 'node:child_process';
import { randomInt } from 'node:crypto';
import fc from 'fast-check';
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHECKPOINT_PROPERTIES } from './checkpoint.js';
import { BUNDLE_PROPERTIES } from './bundle.js';
import { CALIBRATION_SET_PROPERTIES } from './calibration.js';
import { DEFAULT_CASE_TIMEOUT_MS, READERS, makeScratch, replayCommand, runProperty, type FuzzProperty, type Reader, type RunResult } from './harness.js';
import { SAFETENSORS_PROPERTIES } from './safetensors.js';

const PROPERTIES: readonly FuzzProperty[] = [...SAFETENSORS_PROPERTIES, ...CHECKPOINT_PROPERTIES, ...CALIBRATION_SET_PROPERTIES, ...BUNDLE_PROPERTIES];

const USAGE = `Usage: npm run fuzz -- [--runs N] [--seed S] [--reader ${READERS.join('|')}]... [--only NAME] [--path P]
                        [--timeout MS] [--hang S] [--max-failures K] [--list]

  --runs N          cases per reader (default 1000), shared among its properties by weight;
                    with --only, the cases of that property
  --seed S          the first seed (default: random, printed); after a failure a property goes on with S+1, S+2, ...
  --reader R        only these readers (repeatable; default all)
  --only NAME       one property (see --list); with --seed and --path, replays one failure
  --path P          fast-check's path of the case to replay (needs --only and --seed)
  --timeout MS      time bound of one case (default ${DEFAULT_CASE_TIMEOUT_MS})
  --hang S          seconds a case may block the process before it is killed as a hang (default 60)
  --max-failures K  failures per property before it stops (default 3)`;

interface Options {
  runs: number;
  seed: number;
  readers: Reader[];
  only: string | null;
  path: string | null;
  timeout: number;
  hang: number;
  maxFailures: number;
  list: boolean;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { runs: 1000, seed: randomInt(2 ** 31), readers: [], only: null, path: null, timeout: DEFAULT_CASE_TIMEOUT_MS, hang: 60, maxFailures: 3, list: false };
  const number = (flag: string, text: string | undefined, min: number): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min) throw new Error(`${flag} takes an integer ≥ ${min}, not ${text}`);
    return value;
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    switch (flag) {
      case '--runs': options.runs = number(flag, value, 1); i++; break;
      case '--seed': options.seed = number(flag, value, -(2 ** 31)); i++; break;
      case '--timeout': options.timeout = number(flag, value, 1); i++; break;
      case '--hang': options.hang = number(flag, value, 1); i++; break;
      case '--max-failures': options.maxFailures = number(flag, value, 1); i++; break;
      case '--path': options.path = value ?? ''; i++; break;
      case '--only':
        if (!PROPERTIES.some((p) => p.name === value)) throw new Error(`--only takes one of ${PROPERTIES.map((p) => p.name).join(', ')}, not ${value}`);
        options.only = value;
        i++;
        break;
      case '--reader':
        if (!(READERS as readonly string[]).includes(value)) throw new Error(`--reader takes one of ${READERS.join(', ')}, not ${value}`);
        options.readers.push(value as Reader);
        i++;
        break;
      case '--list': options.list = true; break;
      case '--help': case '-h': console.log(USAGE); process.exit(0); break;
      default: throw new Error(`unknown option ${flag}\n${USAGE}`);
    }
  }
  if (options.path !== null && options.only === null) throw new Error('--path replays one case of one property: give --only NAME and the --seed it failed with');
  return options;
}

/** Cases per property: a reader's `runs` shared by weight; at least one each. */
function plan(options: Options): Array<{ property: FuzzProperty; runs: number }> {
  if (options.only !== null) return [{ property: PROPERTIES.find((p) => p.name === options.only)!, runs: options.path === null ? options.runs : 1 }];
  const readers = options.readers.length > 0 ? options.readers : [...READERS];
  return readers.flatMap((reader) => {
    const properties = PROPERTIES.filter((p) => p.reader === reader);
    const total = properties.reduce((sum, p) => sum + p.weight, 0);
    return properties.map((property) => ({ property, runs: Math.max(1, Math.round((options.runs * property.weight) / total)) }));
  });
}

// --- the child: one property, one seed -----------------------------------------------------------------

interface ChildRequest {
  name: string;
  runs: number;
  seed: number;
  path: string | null;
  timeout: number;
  progress: string;
  /** The child's scratch directory, made and removed by the parent (a killed child cannot clean up). */
  scratch: string;
}

async function child(request: ChildRequest): Promise<void> {
  const property = PROPERTIES.find((p) => p.name === request.name)!;
  const scratch = request.scratch;
  const progress = openSync(request.progress, 'w');
  try {
    const result: RunResult | { fuzzerError: string } = await runProperty(property, {
      runs: request.runs,
      seed: request.seed,
      // A replay stops at its (minimal) counterexample, as fast-check's report advises.
      ...(request.path === null ? {} : { path: request.path, endOnFailure: true }),
      caseTimeoutMs: request.timeout,
      scratch,
      // What the parent reads if this process dies or stops: the case's index, then its value.
      onCase: (index, shrinking, value) => {
        ftruncateSync(progress);
        writeSync(progress, `${index} ${shrinking ? 'shrinking' : 'running'}\n${fc.stringify(value)}`, 0);
      },
    }).catch((error: unknown) => ({ fuzzerError: error instanceof Error ? error.message : String(error) })); // e.g. a --path from other generators
    process.send!(result);
  } finally {
    closeSync(progress);
  }
}

// --- the parent: plan, watch, report -------------------------------------------------------------------

/** A failure found; `cases` counts the cases its child ran, the failing one included. */
type Failure = { property: FuzzProperty; kind: 'crash' | 'hang' | 'exception' | 'violation'; report: string; cases: number };

/**
 * Runs `runs` cases of `property` with `seed` in a child, in a directory under `scratch`; resolves
 * with its result or with the crash or hang that ended it; rejects when the fuzzer itself could not
 * run (a --path it cannot replay).
 */
async function runChild(options: Options, property: FuzzProperty, runs: number, seed: number, scratch: string): Promise<RunResult | Failure> {
  const dir = await mkdtemp(join(scratch, 'child-'));
  try {
    return await watchChild(options, property, { name: property.name, runs, seed, path: options.path, timeout: options.timeout, progress: join(dir, 'progress'), scratch: dir });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function watchChild(options: Options, property: FuzzProperty, request: ChildRequest): Promise<RunResult | Failure> {
  const { seed, progress: progressFile } = request;
  return new Promise((resolve, reject) => {
    const self = fileURLToPath(import.meta.url);
    // The child runs this file through tsx too (its loader is in execArgv when this ran under tsx).
    const execArgv = process.execArgv.some((a) => a.includes('tsx')) ? process.execArgv : ['--import', 'tsx'];
    const worker = fork(self, ['--child', JSON.stringify(request)], { execArgv: [...execArgv, '--max-old-space-size=4096'], stdio: 'inherit' });
    let result: RunResult | { fuzzerError: string } | null = null;
    let last = '';
    let still = 0;
    const readProgress = () => {
      try {
        return readFileSync(progressFile, 'utf8');
      } catch {
        return '';
      }
    };
    const watchdog = setInterval(() => {
      const now = readProgress().split('\n', 1)[0];
      still = now === last ? still + 1 : 0;
      last = now;
      if (still >= options.hang) worker.kill('SIGKILL');
    }, 1000);
    worker.on('message', (message) => {
      result = message as RunResult | { fuzzerError: string };
    });
    worker.on('exit', (code, signal) => {
      clearInterval(watchdog);
      if (result !== null && 'fuzzerError' in result) return reject(new Error(`${property.name}: the fuzzer could not run: ${result.fuzzerError}`));
      if (result !== null) return resolve(result);
      const progress = readProgress();
      const newline = progress.indexOf('\n');
      const [index, phase] = progress.slice(0, newline < 0 ? undefined : newline).split(' ');
      const value = newline < 0 ? '' : progress.slice(newline + 1);
      // Replaying a path, the child's case 0 is the path's own case.
      const path = options.path ?? (index || null);
      const hung = still >= options.hang;
      const at = index === undefined || index === '' ? 'before its first case'
        : options.path !== null ? `in the replayed case (path ${options.path})`
          : `in case ${index}${phase === 'shrinking' ? ' (while shrinking an earlier failure)' : ''}`;
      const what = hung ? `blocked for ${options.hang} s ${at} and was killed (a hang)` : `died ${at} (${signal ?? `exit code ${code}`}): a crash`;
      resolve({
        property,
        kind: hung ? 'hang' : 'crash',
        cases: Number(index || 0) + 1,
        report: [`${property.name}: ${property.title}`, `FAILED (${hung ? 'hang' : 'crash'}) with seed ${seed}: the process ${what}`,
          ...(value ? [`Case: ${value.length > 2000 ? `${value.slice(0, 2000)}…` : value}`] : []),
          `Replay: ${replayCommand(property.name, seed, path)}${hung ? ` --hang ${options.hang}` : ''}`].join('\n'),
      });
    });
  });
}

async function parent(options: Options): Promise<number> {
  if (options.list) {
    for (const p of PROPERTIES) console.log(`${p.name.padEnd(32)} ${p.reader.padEnd(12)} ${p.knownFailure ? '(known failure) ' : ''}${p.title}`);
    return 0;
  }
  const scratch = await makeScratch();
  const work = plan(options);
  const total = work.reduce((sum, w) => sum + w.runs, 0);
  console.log(`vlmq reader fuzzing: seed ${options.seed}, ${total} cases (${work.map((w) => `${w.property.name} ${w.runs}`).join(', ')}), case time bound ${options.timeout} ms, hang after ${options.hang} s`);
  const failures: Failure[] = [];
  const started = performance.now();
  let done = 0;
  try {
    for (const { property, runs } of work) {
      const propertyStarted = performance.now();
      let left = runs;
      let seed = options.seed;
      let accepted = 0;
      let failed = 0;
      while (left > 0 && failed < options.maxFailures) {
        const outcome = await runChild(options, property, left, seed, scratch);
        if ('property' in outcome) {
          failures.push(outcome);
          failed++;
          left -= outcome.cases;
          done += outcome.cases;
        } else {
          accepted += outcome.accepted;
          left -= outcome.numRuns;
          done += outcome.numRuns;
          if (outcome.failed) {
            failures.push({ property, kind: outcome.kind ?? 'exception', report: outcome.report, cases: outcome.numRuns });
            failed++;
          }
        }
        if (options.path !== null) break; // a replay is one case
        seed++;
      }
      const seconds = (performance.now() - propertyStarted) / 1000;
      const cases = runs - Math.max(0, left);
      console.log(`${property.name.padEnd(32)} ${String(cases).padStart(7)} cases ${seconds.toFixed(1).padStart(7)} s ${(cases / seconds).toFixed(0).padStart(5)} cases/s  accepted ${((100 * accepted) / Math.max(1, cases)).toFixed(0).padStart(3)}%  ${failed === 0 ? 'ok' : `${failed} failure(s)${property.knownFailure ? ' (known failure)' : ''}`}`);
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  const seconds = (performance.now() - started) / 1000;
  for (const failure of failures) console.log(`\n${failure.report}${failure.property.knownFailure ? `\n(known failure: ${failure.property.knownFailure.reason})` : ''}`);
  const count = (kind: Failure['kind']) => failures.filter((f) => f.kind === kind).length;
  console.log(`\nseed ${options.seed}: ${done} cases in ${seconds.toFixed(0)} s (${(done / seconds).toFixed(0)} cases/s): `
    + `${count('crash')} crashes, ${count('hang')} hangs, ${count('exception')} exceptions other than VlmqError, ${count('violation')} other violations`
    + ` (${failures.filter((f) => f.property.knownFailure).length} of them in known-failure properties)`);
  return failures.some((f) => !f.property.knownFailure) ? 1 : 0;
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') {
  await child(JSON.parse(argv[1]) as ChildRequest);
} else {
  try {
    process.exitCode = await parent(parseOptions(argv));
  } catch (error) {
    console.error((error as Error).message);
    process.exitCode = 2;
  }
}
