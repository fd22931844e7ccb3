// Runs the `vlmq` command as a child process, the way a user does: `node --import tsx
// lib/cli/main.ts ...` from the repository root (tsx is a devDependency), or a compiled entry.
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
