// What every reader fuzz property shares: the contract a reader keeps on any input, the per-case
// scratch directory and time bound, and the runner that both the tap files (a fixed seed, a few
// hundred cases each) and `npm run fuzz` (long runs, scripts in test/fuzz/run.ts) call.
//
// The contract, for any bytes on disk: the reader either accepts them, or rejects them with a
// VlmqError whose message names the file it was reading. Any other exception, a rejection that
// does not say which file, a case that does not settle in time (a hang), or a file descriptor left
// open is a failure. What "accepted" must mean (reads back identically) is each property's own check.
import fc from 'fast-check';
import { constants, readdirSync } from 'node:fs';
import { access, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VlmqError } from '../../lib/errors.js';

/** The readers, for `npm run fuzz -- --reader NAME`; each has its own tap file. */
export const READERS = ['safetensors', 'checkpoint', 'calibration'] as const;
export type Reader = (typeof READERS)[number];

/** The seed of `npm test`: fixed, so a failure there replays exactly. */
export const TEST_SEED = 0x5eed;

/** A case that takes longer than this did not finish: a hang (readers take milliseconds). */
export const DEFAULT_CASE_TIMEOUT_MS = 10_000;

/**
 * One property of one reader. `arbitrary` generates a case (small data: it is printed when the
 * property fails); `check` writes it under `dir` (a fresh directory, removed afterwards), runs the
 * reader and throws on a violation. `setup` builds what every case shares (fixture files, cached
 * checkpoints) once, under a directory of its own.
 */
export interface FuzzProperty<T = unknown, S = unknown> {
  /** `reader.what`, the name `--only` takes. */
  name: string;
  reader: Reader;
  /** The invariant, as the tap test's title. */
  title: string;
  /** Cases in `npm test`. */
  testRuns: number;
  /** Share of the reader's cases in `npm run fuzz -- --runs N`. */
  weight: number;
  /**
   * Set while the property fails today because of a bug in a file this fuzzer does not own. The tap
   * test is then a `todo` that stops at the first failure (reported, not failing the suite), or is
   * skipped when the failure `blocks` the event loop or ends the process, which only run.ts's
   * watchdog can catch. `reason` says what is wrong.
   */
  knownFailure?: { reason: string; blocks: boolean };
  arbitrary: fc.Arbitrary<T>;
  setup?(dir: string): Promise<S>;
  /** Resolves with what the reader did, for the tally that shows how much of the input got through. */
  check(value: T, dir: string, shared: S): Promise<Verdict>;
}

/** Whether the reader took the (final) input of a case; run.ts prints the shares. */
export type Verdict = 'accepted' | 'rejected';

/** Lets TypeScript infer T and S of a property literal. */
export function defineProperty<T, S = undefined>(property: FuzzProperty<T, S>): FuzzProperty<T, S> {
  return property;
}

// --- the contract -------------------------------------------------------------------------------

/** A broken invariant; its message says which and how. */
export class FuzzFailure extends Error {
  override name = 'FuzzFailure';
}

/** The reader threw something other than a VlmqError (a crash of the reader's logic). */
class UnexpectedException extends FuzzFailure {
  override name = 'UnexpectedException';
}

/** A case did not settle in time. */
class CaseTimeout extends FuzzFailure {
  override name = 'CaseTimeout';
}

export type Outcome<T> = { accepted: true; value: T } | { accepted: false; error: VlmqError };

/**
 * Runs one read. Acceptance resolves with its value; a VlmqError whose message names `file` (a
 * path, or a name it may give instead) resolves as a rejection. Anything else is a FuzzFailure.
 */
export async function readOrReject<T>(file: string | readonly string[], read: () => Promise<T>): Promise<Outcome<T>> {
  let value: T;
  try {
    value = await read();
  } catch (error) {
    checkRejection(file, error);
    return { accepted: false, error: error as VlmqError };
  }
  return { accepted: true, value };
}

/** Throws unless `error` is a VlmqError naming one of `file`. */
export function checkRejection(file: string | readonly string[], error: unknown): void {
  if (error instanceof FuzzFailure) throw error;
  if (!(error instanceof VlmqError)) {
    const described = error instanceof Error ? error.stack ?? `${error.name}: ${error.message}` : String(error);
    throw new UnexpectedException(`rejected with something other than a VlmqError: ${described}`);
  }
  const names = typeof file === 'string' ? [file] : file;
  if (!names.some((name) => error.message.includes(name))) {
    throw new FuzzFailure(`rejected with a VlmqError that does not name the file (${names.join(' or ')}): ${error.message}`);
  }
}

/** Throws a FuzzFailure saying `what` unless `condition`. */
export function expect(condition: boolean, what: () => string): asserts condition {
  if (!condition) throw new FuzzFailure(what());
}

/** Index of the first differing byte, or -1 when equal (lengths included). */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Throws unless the two byte strings are equal, saying where they differ. */
export function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  expect(at === -1, () => `${what}: read ${actual.length} bytes, expected ${expected.length}; first difference at byte ${at}`);
}

// --- special files --------------------------------------------------------------------------------

/**
 * Unblocks readers stuck opening or reading a FIFO under `dir` (a hang the case already failed
 * for): opening the write end without blocking lets their open() return, closing it gives them
 * end-of-file. Without this, each stuck read would hold a libuv worker thread for good.
 */
export async function releaseFifos(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFIFO()) continue;
    const path = join(entry.parentPath ?? entry.path, entry.name);
    const handle = await open(path, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => null);
    await handle?.close();
  }
}

/** Open file descriptors of this process, or null where /proc/self/fd does not exist. */
function openDescriptors(): number | null {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return null;
  }
}

// --- scratch space -------------------------------------------------------------------------------

/**
 * A fresh directory for one property's cases; the caller removes it. On a RAM disk where there is
 * one (/dev/shm): writeSafetensors fsyncs every file it writes, which costs milliseconds per case on
 * a real disk and nothing there, and a long run then writes nothing to disk. Else os.tmpdir().
 */
export async function makeScratch(): Promise<string> {
  const base = await access('/dev/shm', constants.W_OK).then(() => '/dev/shm', () => tmpdir());
  return mkdtemp(join(base, 'vlmq-fuzz-'));
}

// --- running ----------------------------------------------------------------------------------------

export interface RunOptions {
  runs: number;
  seed: number;
  /** fast-check's path, to replay one case (and shrink from it). */
  path?: string;
  /** Stop at the first failure without shrinking. */
  endOnFailure?: boolean;
  caseTimeoutMs?: number;
  /** Where the scratch directories go; emptied and removed by the runner's caller. */
  scratch: string;
  /** Called before every case with its index and value (run.ts's watchdog records them). */
  onCase?: (index: number, shrinking: boolean, value: unknown) => void;
}

export interface RunResult {
  failed: boolean;
  /** Cases run (fewer than asked when one failed). */
  numRuns: number;
  seed: number;
  /** fast-check's counterexample path, when one failed. */
  path: string | null;
  /** What failed, the seed, the path and the command that replays it; '' when it passed. */
  report: string;
  /** A FuzzFailure's kind, for run.ts's tally. */
  kind: 'hang' | 'exception' | 'violation' | null;
  /** Cases whose input the reader accepted (the rest it rejected), shrinking steps included. */
  accepted: number;
}

/** The command that replays one failure. */
export function replayCommand(name: string, seed: number, path: string | null): string {
  return `npm run fuzz -- --only ${name} --seed ${seed}${path ? ` --path ${path}` : ''}`;
}

/** Runs `property` for `options.runs` cases with fast-check, each in a fresh directory and within the time bound. */
export async function runProperty<T, S>(property: FuzzProperty<T, S>, options: RunOptions): Promise<RunResult> {
  const timeout = options.caseTimeoutMs ?? DEFAULT_CASE_TIMEOUT_MS;
  const shared = property.setup ? await property.setup(await mkdtemp(join(options.scratch, 'shared-'))) : (undefined as S);
  let index = 0;
  let shrinking = false;
  let accepted = 0;
  const predicate = async (value: T) => {
    options.onCase?.(index++, shrinking, value);
    const dir = await mkdtemp(join(options.scratch, 'case-'));
    const descriptors = openDescriptors();
    try {
      if ((await withinTime(timeout, () => property.check(value, dir, shared))) === 'accepted') accepted++;
    } catch (error) {
      shrinking = true; // fast-check now shrinks: the following cases are not new runs
      await releaseFifos(dir);
      throw error;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const leaked = descriptors === null ? 0 : (openDescriptors() ?? 0) - descriptors;
    if (leaked > 0) {
      shrinking = true;
      throw new FuzzFailure(`${leaked} file descriptor(s) left open after the case`);
    }
  };
  const details = await fc.check(fc.asyncProperty(property.arbitrary, predicate), {
    numRuns: options.runs,
    seed: options.seed,
    path: options.path,
    endOnFailure: options.endOnFailure,
    includeErrorInReport: true,
  });
  if (!details.failed) return { failed: false, numRuns: details.numRuns, seed: details.seed, path: null, report: '', kind: null, accepted };
  const error = details.errorInstance;
  const kind = error instanceof CaseTimeout ? 'hang' : error instanceof UnexpectedException || !(error instanceof FuzzFailure) ? 'exception' : 'violation';
  const report = [
    `${property.name}: ${property.title}`,
    `FAILED (${kind}) with seed ${details.seed}, path ${details.counterexamplePath}`,
    fc.defaultReportMessage(details) ?? '',
    `Replay: ${replayCommand(property.name, details.seed, details.counterexamplePath)}`,
  ].join('\n');
  return { failed: true, numRuns: details.numRuns, seed: details.seed, path: details.counterexamplePath, report, kind, accepted };
}

/** `run()`, failing with a CaseTimeout if it has not settled after `ms` (it cannot stop synchronous code: run.ts's watchdog does). */
async function withinTime<R>(ms: number, run: () => Promise<R>): Promise<R> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CaseTimeout(`the case did not settle within ${ms} ms (a hang)`)), ms);
  });
  try {
    return await Promise.race([run(), expired]);
  } finally {
    clearTimeout(timer);
  }
}
