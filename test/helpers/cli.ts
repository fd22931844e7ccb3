// Runs the `vlmq` command as a child process, the way a user does: `node --import tsx
// lib/cli/main.ts ...` from the repository root (tsx is a devDependency), or a compiled entry.
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flagsOf, runVlmq } from '../../lib/cli/app.js';
import type { Command } from '../../lib/cli/command.js';
import { Output } from '../../lib/cli/output.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliEntry = join(repoRoot, 'lib', 'cli', 'main.ts');

export interface CliRun {
  /** Exit status, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  /** Variables to set (a value of undefined removes one). */
  env?: Record<string, string | undefined>;
  /** The entry to run: a .ts file runs through tsx, a .js file directly. Default lib/cli/main.ts. */
  entry?: string;
  timeoutMs?: number;
}

/** Runs `vlmq ...args` and collects its exit status and output. */
export function runCli(args: readonly string[], options: RunCliOptions = {}): Promise<CliRun> {
  const entry = options.entry ?? cliEntry;
  const nodeArgs = entry.endsWith('.ts') ? ['--import', 'tsx', entry] : [entry];
  // Not the test runner's loaders (NODE_OPTIONS), nor debugging or CI switches of the outer shell.
  const env: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: undefined, VLMQ_DEBUG: undefined, CI: undefined, ...options.env };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, ...args], { cwd: repoRoot, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/** Every stdout line parsed as JSON (throws on a line that is not, which is the point). */
export function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The final `type: "result"` object of a --json run. */
export function jsonResult(stdout: string): Record<string, unknown> {
  const lines = jsonLines(stdout);
  const last = lines[lines.length - 1];
  if (last?.type !== 'result') throw new Error(`the last JSON line is not a result: ${JSON.stringify(last)}`);
  return last;
}

/**
 * Runs `vlmq ...args` and sends `signal` to it once its stdout so far matches `when` (`onMatch`
 * runs just before, e.g. to list what is on disk at that moment).
 */
export function runCliUntil(args: readonly string[], when: RegExp, signal: NodeJS.Signals, onMatch: () => void = () => {}): Promise<CliRun & { matched: boolean }> {
  const env: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: undefined, VLMQ_DEBUG: undefined, CI: undefined };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cliEntry, ...args], { cwd: repoRoot, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let matched = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (!matched && when.test(stdout)) {
        matched = true;
        onMatch();
        child.kill(signal);
      }
    });
    child.on('error', reject);
    child.on('close', (code, closeSignal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal: closeSignal, stdout, stderr, matched });
    });
  });
}

/** The id of a process that has exited (for stale locks and leftovers of "killed" runs). */
export async function deadProcessId(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolvePromise) => child.on('close', resolvePromise));
  return child.pid!;
}

/** `vlmq ...args` in this process, as main.ts runs it: the exit status and what went to stdout and stderr. */
export async function runVlmqInProcess(args: readonly string[], signal: AbortSignal = new AbortController().signal): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const out = new Output({ write: (text: string) => ((stdout += text), true) }, { write: (text: string) => ((stderr += text), true) }, { json: flagsOf(args.slice(1)).includes('--json'), interactive: false });
  const code = await runVlmq(args, out, signal);
  return { code, signal: null, stdout, stderr };
}

/** `command` run in this process, its output discarded: the error it throws (main.ts turns a UsageError into exit 2), or null. */
export async function commandError(command: Command, argv: readonly string[]): Promise<unknown> {
  const sink = { write: () => true };
  try {
    await command.run(argv, { out: new Output(sink, sink, { json: false, interactive: false }), signal: new AbortController().signal });
    return null;
  } catch (error) {
    return error;
  }
}
