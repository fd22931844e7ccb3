// Where the CLI's words go. Results on stdout; progress, logs and warnings on stderr; with --json,
// stdout carries one JSON object per line instead (events, then a final `type: "result"` or
// `type: "error"` object) and stderr only the error line, so stdout can be piped into a parser.

/** The part of a stream the CLI writes to (process.stdout/stderr, or a test double). */
export interface TextSink {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface OutputOptions {
  json: boolean;
  /** Progress may redraw one line: stderr is a terminal and CI is not set. */
  interactive: boolean;
}

export type JsonEvent = Record<string, unknown>;

export class Output {
  readonly json: boolean;
  readonly interactive: boolean;
  readonly #stdout: TextSink;
  readonly #stderr: TextSink;
  /** The status line currently drawn on the terminal (redrawn in place), if any. */
  #status: string | null = null;

  constructor(stdout: TextSink, stderr: TextSink, options: OutputOptions) {
    this.#stdout = stdout;
    this.#stderr = stderr;
    this.json = options.json;
    this.interactive = options.interactive && !options.json;
  }

  /** Output on the process's own streams; CI (any value but "", "0" or "false") disables redrawing. */
  static forProcess(json: boolean): Output {
    const ci = process.env.CI !== undefined && !['', '0', 'false'].includes(process.env.CI.toLowerCase());
    return new Output(process.stdout, process.stderr, { json, interactive: Boolean(process.stderr.isTTY) && !ci });
  }

  /** Width available for a status line on the terminal. */
  get columns(): number {
    return this.#stderr.columns || 80;
  }

  /** A line for people about what is happening: stderr, or a `log` event with --json. */
  log(message: string): void {
    if (this.json) this.event('log', { message });
    else this.#line(message);
  }

  /** Something the user should know that does not stop the command. */
  warn(message: string): void {
    if (this.json) this.event('warning', { message });
    else this.#line(`vlmq: warning: ${message}`);
  }

  /** One JSON line on stdout (--json only; ignored otherwise). */
  event(type: string, fields: JsonEvent): void {
    if (!this.json) return;
    this.#stdout.write(`${JSON.stringify({ type, ...fields })}\n`);
  }

  /** The command's result: `text` on stdout for people, or one `result` object with --json. */
  result(fields: JsonEvent, text: string): void {
    this.endStatus();
    if (this.json) this.event('result', fields);
    else this.#stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** "vlmq: message" (and a hint line) on stderr; with --json also an `error` object on stdout. */
  error(message: string, fields: JsonEvent, hint: string | null, stack: string | null): void {
    this.endStatus();
    this.#stderr.write(`vlmq: ${message}\n${hint ? `${hint}\n` : ''}${stack ? `${stack}\n` : ''}`);
    this.event('error', { message, ...fields });
  }

  /** Draws `line` over the current status line (interactive terminals only). */
  status(line: string): void {
    if (!this.interactive) return;
    const fitted = line.length >= this.columns ? line.slice(0, Math.max(this.columns - 1, 10)) : line;
    this.#stderr.write(`\r\x1b[2K${fitted}`);
    this.#status = fitted;
  }

  /** Replaces the status line by `final` (kept on screen), or just moves past it. */
  endStatus(final?: string): void {
    if (this.#status === null) {
      if (final !== undefined) this.#line(final);
      return;
    }
    this.#status = null;
    this.#stderr.write(final === undefined ? '\n' : `\r\x1b[2K${final}\n`);
  }

  #line(message: string): void {
    if (this.#status !== null) {
      // Print above the status line, then redraw it.
      const status = this.#status;
      this.#stderr.write(`\r\x1b[2K${message}\n${status}`);
    } else {
      this.#stderr.write(`${message}\n`);
    }
  }
}

/** Aligned "key: value" lines, the layout of `vlmq doctor` and of every human summary. */
export function formatFields(fields: readonly (readonly [string, string])[]): string {
  const width = Math.max(...fields.map(([key]) => key.length)) + 2;
  return fields.map(([key, value]) => `${`${key}:`.padEnd(width)}${value}`).join('\n');
}

/** 0.42 → "0.42s", 75 → "1m15s", 3725 → "1h02m". */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 10) return `${seconds.toFixed(2)}s`;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Bytes for people: "512 B", "1.5 MiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}
