// Chat templates are programs, and a checkpoint's is untrusted: `{% for i in range(100000000) %}`
// keeps @huggingface/jinja busy for minutes and allocates gigabytes, synchronously, and a few
// doublings of a string write hundreds of megabytes. Synchronous JavaScript cannot be interrupted
// from its own thread, so templates render in a child Node process with a bounded heap, killed
// after a time limit; the output length is checked before it reaches the tokenizer.
//
// A process, not a worker thread: a worker's resourceLimits are best effort, and one array grown
// past the limit (exactly what range(100000000) does) aborts the whole process instead of the
// worker (nodejs/node#47224). A child that runs out of heap dies alone, and we say why.
// One child serves every render (starting it costs about 100 ms, a render a fraction of a
// millisecond) and is replaced only after it died or was killed. It never keeps the parent alive
// while idle, and exits when the parent goes away.
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';

/**
 * A real chat template renders a calibration conversation in well under a millisecond, so 10 s is
 * ten thousand times that, and still short enough that a runaway template fails before anyone
 * gives up waiting on it.
 */
export const TEMPLATE_TIME_LIMIT_MS = 10_000;

/**
 * Characters a template may write beyond the conversation's own text: real templates add a few
 * hundred characters of markup. The conversation's text is allowed on top (four times, for
 * templates that repeat it), since a long record is legitimate and is cut to maxTokens later.
 */
export const TEMPLATE_OUTPUT_LIMIT = 1 << 20;

/**
 * The rendering process's old-generation heap in MB. Rendering needs a few MB; 256 MB holds
 * outputs far past the output limit, and `range(100000000)` (an array of 10^8 values) exhausts it
 * in a second or two instead of taking the machine's memory.
 */
export const TEMPLATE_HEAP_LIMIT_MB = 256;

export interface TemplateLimits {
  /** Milliseconds one render may take (default TEMPLATE_TIME_LIMIT_MS, 10 s). */
  timeMs?: number;
  /** Characters of output beyond 4× the conversation's text (default TEMPLATE_OUTPUT_LIMIT, 1 Mi). */
  outputChars?: number;
}

/** Why a render failed: the template threw (`message`), or a bound was exceeded. */
export type RenderFailure =
  | { kind: 'error'; message: string }
  | { kind: 'time'; limitMs: number }
  | { kind: 'memory'; limitMb: number }
  | { kind: 'output'; limit: number; length: number | null };

export type RenderResult = { ok: true; text: string } | { ok: false; failure: RenderFailure };

interface Request {
  template: string;
  context: Record<string, unknown>;
  maxOutput: number;
  timeMs: number;
}

// The child's whole program, plain JavaScript so that it runs the same whether vlmq runs from
// lib/ under a TypeScript loader or from dist/. It keeps the last template parsed (a run renders one
// template hundreds of times). A V8 "Invalid string length" is output past V8's longest string.
const jinjaPath = createRequire(import.meta.url).resolve('@huggingface/jinja');
const CHILD_SOURCE = `
const { Template } = require(${JSON.stringify(jinjaPath)});
let last = { text: null, template: null };
process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
process.on('message', ({ template, context, maxOutput }) => {
  try {
    if (last.text !== template) last = { text: template, template: new Template(template) };
    const text = last.template.render(context);
    process.send(text.length > maxOutput ? { tooLong: text.length } : { text });
  } catch (error) {
    const tooLong = error instanceof RangeError && /Invalid string length/.test(error.message);
    process.send(tooLong ? { tooLong: null } : { error: String(error && error.message || error) });
  }
});
`;

/** The child's command line: a bounded heap, and (where there is a shell) no core file when it dies of it. */
function childCommand(): [string, string[]] {
  const node = [`--max-old-space-size=${TEMPLATE_HEAP_LIMIT_MB}`, '-e', CHILD_SOURCE];
  if (process.platform === 'win32') return [process.execPath, node];
  // V8 aborts on heap exhaustion; with core dumps enabled that would leave a core file in the cwd
  return ['/bin/sh', ['-c', 'ulimit -c 0 2>/dev/null; exec "$0" "$@"', process.execPath, ...node]];
}

/** The parent's environment without NODE_OPTIONS: no TypeScript loader or heap flag of ours in the child. */
function childEnvironment(): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _options, ...env } = process.env;
  return env;
}

/** The rendering process and the render it is running (one at a time, so each gets its whole time limit). */
class RenderProcess {
  private readonly child: ChildProcess;
  private current: { done: (result: RenderResult) => void; maxOutput: number } | null = null;
  private stderr = '';
  /** Resolves true once the child has loaded the template engine, false if it died first. */
  private readonly ready: Promise<boolean>;
  private signalReady: (ready: boolean) => void = () => undefined;
  private failure: RenderFailure | null = null;
  dead = false;

  constructor() {
    this.ready = new Promise((resolve) => { this.signalReady = resolve; });
    const [command, args] = childCommand();
    this.child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: childEnvironment() });
    // only a render in flight keeps the parent alive (render() refs the child), an idle child does not
    this.child.unref();
    this.child.channel?.unref();
    const stderr = this.child.stderr as (NodeJS.ReadableStream & { unref?: () => void }) | null;
    stderr?.unref?.();
    stderr?.on('data', (chunk: Buffer) => { this.stderr = (this.stderr + chunk.toString()).slice(-4096); });
    this.child.on('message', (message: { ready?: true; text?: string; tooLong?: number | null; error?: string }) => {
      if (message.ready) this.signalReady(true);
      else this.answer(message);
    });
    this.child.on('error', (error) => this.died({ kind: 'error', message: `the rendering process could not run (${error.message})` }));
    this.child.on('close', (code, signal) => this.died(this.deathCause(code, signal)));
  }

  /** The render, timed from when the child is ready: its start-up (a loaded machine: a second) is not the template's. */
  async render(request: Request): Promise<RenderResult> {
    this.child.ref(); // a render in flight keeps the parent alive, an idle child does not
    try {
      if (!(await this.ready)) return { ok: false, failure: this.failure ?? { kind: 'error', message: 'the rendering process did not start' } };
      return await this.send(request);
    } finally {
      this.child.unref();
    }
  }

  private send(request: Request): Promise<RenderResult> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.died({ kind: 'time', limitMs: request.timeMs });
        this.child.kill('SIGKILL'); // the only way to stop a busy JavaScript thread
      }, request.timeMs);
      this.current = { maxOutput: request.maxOutput, done: (result) => { clearTimeout(timer); resolve(result); } };
      try {
        this.child.send({ template: request.template, context: request.context, maxOutput: request.maxOutput });
      } catch (error) {
        this.died({ kind: 'error', message: `the rendering process went away (${(error as Error).message})` });
      }
    });
  }

  /** Stops the child now, whatever it is doing. */
  kill(): void {
    if (!this.dead) this.child.kill('SIGKILL');
  }

  private answer(message: { text?: string; tooLong?: number | null; error?: string }): void {
    const current = this.current;
    if (!current) return;
    this.current = null;
    if (message.text !== undefined) current.done({ ok: true, text: message.text });
    else if (message.error !== undefined) current.done({ ok: false, failure: { kind: 'error', message: message.error } });
    else current.done({ ok: false, failure: { kind: 'output', limit: current.maxOutput, length: message.tooLong ?? null } });
  }

  /** The child is gone or being killed: the render in flight (if any) fails with `failure`. */
  private died(failure: RenderFailure): void {
    this.dead = true;
    this.failure ??= failure;
    this.signalReady(false);
    const current = this.current;
    this.current = null;
    current?.done({ ok: false, failure });
  }

  private deathCause(code: number | null, signal: NodeJS.Signals | null): RenderFailure {
    if (/heap out of memory|Allocation failed/.test(this.stderr)) return { kind: 'memory', limitMb: TEMPLATE_HEAP_LIMIT_MB };
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    const said = this.stderr.trim().split('\n').slice(-1)[0] ?? '';
    return { kind: 'error', message: `the rendering process ended (${how})${said ? `: ${said}` : ''}` };
  }
}

let shared: RenderProcess | null = null;
let queue: Promise<unknown> = Promise.resolve();

/** The shared child, started on first use. A child busy in a loop would not notice its parent exit, so the parent kills it. */
function renderProcess(): RenderProcess {
  if (shared === null) process.once('exit', () => shared?.kill());
  if (shared === null || shared.dead) shared = new RenderProcess();
  return shared;
}

/**
 * Renders `template` with `context` in the shared process, within the limits. `textLength` is the
 * length of the conversation's own text, which the output may hold on top of the limit.
 * Resolves with the text or with why it failed; never rejects.
 */
export function renderTemplate(template: string, context: Record<string, unknown>, textLength: number, limits: TemplateLimits = {}): Promise<RenderResult> {
  const timeMs = limits.timeMs ?? TEMPLATE_TIME_LIMIT_MS;
  const outputChars = limits.outputChars ?? TEMPLATE_OUTPUT_LIMIT;
  const maxOutput = outputChars + 4 * textLength;
  const run = (): Promise<RenderResult> => renderProcess().render({ template, context, maxOutput, timeMs });
  const result = queue.then(run, run);
  queue = result;
  return result;
}
