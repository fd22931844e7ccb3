// Flags: one table per command drives both the parser (node:util parseArgs) and the help text, so
// the two cannot drift. String flags become typed values here; quantizer flags map onto
// QuantizeLinearOptions and resolveLinearOptions validates them, with its message re-worded to name
// the flag the user typed ("--bits: expected one of 2, 3, 4, 8 but received 5").
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { VlmqError } from '../errors.js';
import { describeFsError, describeKind } from '../io/files.js';
import { DEFAULT_LINEAR_OPTIONS, QUANT_METHODS, type QuantMethod, type QuantizeLinearOptions, resolveLinearOptions } from '../quant/options.js';
import type { NativeLinearOptions } from '../native/binding.js';

/** Wrong invocation or unusable input named on the command line: exit status 2. */
export class UsageError extends VlmqError {
  /** A line printed after the message, e.g. "Run 'vlmq doctor --help' for usage." */
  readonly hint: string | null;
  constructor(message: string, hint: string | null = null, options?: { cause?: unknown }) {
    super('ERR_VLMQ_USAGE', message, options);
    this.name = 'UsageError';
    this.hint = hint;
  }
}

export function helpHint(command: string | null): string {
  return command === null ? "Run 'vlmq --help' for usage." : `Run 'vlmq ${command} --help' for usage.`;
}

export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Placeholder of the value in the help ("N", "FILE", "rtn|gptq|gptaq"). */
  value?: string;
  description: string;
  /** Shown as "(default: …)". */
  default?: string;
  /** Heading the flag is listed under in the help. */
  group?: string;
}

/** Long flag name (without "--") → spec. */
export type FlagTable = Readonly<Record<string, FlagSpec>>;

export type FlagValues = Record<string, string | boolean | undefined>;

export interface ParsedArgs {
  values: FlagValues;
  positionals: string[];
}

/** Flags every command has; main.ts acts on --help before a command parses anything. */
const COMMON_FLAGS: FlagTable = {
  help: { type: 'boolean', short: 'h', description: 'show this help', group: 'Other' },
};

/**
 * Parses `argv` against `flags`. Every problem is a UsageError naming the flag: unknown flags
 * (with the closest known one), missing values, values given to switches, extra positionals.
 */
export function parseFlags(command: string, flags: FlagTable, argv: readonly string[], positionals: { names: readonly string[]; required: number }): ParsedArgs {
  const all = { ...flags, ...COMMON_FLAGS };
  const hint = helpHint(command);
  const options = Object.fromEntries(Object.entries(all).map(([name, spec]) => [name, spec.short ? { type: spec.type, short: spec.short } : { type: spec.type }]));
  // Non-strict parsing with tokens, checked below, so that every message is ours and names the flag.
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const values: FlagValues = {};
  const rest: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') {
      rest.push(token.value);
      continue;
    }
    if (token.kind !== 'option') continue;
    const spec = Object.hasOwn(all, token.name) ? all[token.name] : undefined;
    if (spec === undefined) {
      const suggestion = closest(token.name, Object.keys(all));
      throw new UsageError(`unknown option ${token.rawName} for '${command}'${suggestion ? ` (did you mean --${suggestion}?)` : ''}`, hint);
    }
    const name = `--${token.name}`;
    // Last-wins would silently drop a value the user typed (often the one they meant).
    if (values[token.name] !== undefined) {
      const earlier = values[token.name] === true || token.value === undefined ? '' : ` (${JSON.stringify(values[token.name])}, then ${JSON.stringify(token.value)})`;
      throw new UsageError(`${name}: given more than once${earlier}; give it once`, hint);
    }
    if (spec.type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`${name}: takes no value but received ${JSON.stringify(token.value)}`, hint);
      values[token.name] = true;
      continue;
    }
    // A string flag swallows the next argument; refuse one that is itself a flag (but let "-1" through).
    if (token.value === undefined || (!token.inlineValue && /^-(-|[a-zA-Z])/.test(token.value))) {
      throw new UsageError(`${token.rawName === name ? name : `${token.rawName} (${name})`}: expected a value${spec.value ? ` (${spec.value})` : ''}${token.value === undefined ? '' : ` but found ${token.value}`}`, hint);
    }
    values[token.name] = token.value;
  }
  if (rest.length > positionals.names.length) {
    const extra = rest[positionals.names.length];
    throw new UsageError(`unexpected argument ${JSON.stringify(extra)}${positionals.names.length === 0 ? ` ('${command}' takes only flags)` : ''}`, hint);
  }
  if (rest.length < positionals.required) {
    throw new UsageError(`missing argument ${positionals.names[rest.length]}`, hint);
  }
  return { values, positionals: rest };
}

/** A string flag's value, or a UsageError naming it when it is required and absent. */
export function stringFlag(command: string, values: FlagValues, name: string, required: true): string;
export function stringFlag(command: string, values: FlagValues, name: string, required?: false): string | undefined;
export function stringFlag(command: string, values: FlagValues, name: string, required = false): string | undefined {
  const value = values[name];
  if (typeof value === 'string') return value;
  if (required) throw new UsageError(`--${name}: required`, helpHint(command));
  return undefined;
}

/** "--tokens 2048" → 2048; anything but a plain decimal integer is an error naming the flag. */
export function parseInteger(flag: string, text: string): number {
  const trimmed = text.trim();
  const value = Number(trimmed);
  if (!/^[+-]?\d+$/.test(trimmed) || !Number.isSafeInteger(value)) throw new UsageError(`${flag}: expected an integer but received ${JSON.stringify(text)}`);
  return value;
}

/** "--damp 0.01" → 0.01 (also 1e-2); NaN, Infinity, hex and empty strings are errors. */
export function parseNumber(flag: string, text: string): number {
  const trimmed = text.trim();
  const value = Number(trimmed);
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(trimmed) || !Number.isFinite(value)) {
    throw new UsageError(`${flag}: expected a number but received ${JSON.stringify(text)}`);
  }
  return value;
}

/** An integer flag checked against [min, max], with the flag in the message. */
export function integerInRange(flag: string, text: string, min: number, max: number): number {
  const value = parseInteger(flag, text);
  if (value < min || value > max) throw new UsageError(`${flag}: expected an integer in [${min}, ${max}] but received ${value}`);
  return value;
}

/**
 * Checks before any work that a file can be written at `path`: its directory exists and it is not
 * itself a directory. `label` names the argument in the message ("--out", "OUT").
 */
export async function checkOutputPath(label: string, path: string): Promise<void> {
  const directory = dirname(resolve(path));
  const parent = await stat(directory).catch(() => null);
  if (parent === null || !parent.isDirectory()) throw new UsageError(`${label}: directory ${directory} does not exist`);
  const existing = await stat(path).catch(() => null);
  // The file is replaced by a rename: a device, FIFO or socket there would be replaced, not written to.
  if (existing !== null && !existing.isFile()) throw new UsageError(`${label}: ${path} is ${describeKind(existing)}; expected a regular file or a path that does not exist yet`);
}

/**
 * Checks before any work that `path` names an existing directory (a checkpoint directory given on
 * the command line); `label` names the argument in the message ("--model", "DIR").
 */
export async function checkInputDirectory(label: string, path: string): Promise<void> {
  const info = await statInput(label, path, 'no such directory');
  if (!info.isDirectory()) throw new UsageError(`${path}: is ${info.isFile() ? 'a file' : describeKind(info)}, not a checkpoint directory (given as ${label})`);
}

/** Checks before any work that `path` names an existing regular file: not a directory, FIFO, device or socket. */
export async function checkInputFile(label: string, path: string): Promise<void> {
  const info = await statInput(label, path, 'no such file');
  if (!info.isFile()) throw new UsageError(`${path}: is ${describeKind(info)}, not a regular file (given as ${label})`);
}

async function statInput(label: string, path: string, missing: string): Promise<Stats> {
  return stat(path).catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`${path}: ${error.code === 'ENOENT' ? missing : describeFsError(error)} (given as ${label})`, null, { cause: error });
  });
}

/**
 * A malformed input checkpoint (the reader's message names the file, tensor or config field) or an
 * unreadable file as a UsageError; any other error is returned unchanged.
 */
export function asInputError(error: unknown): unknown {
  const code = (error as { code?: unknown })?.code;
  if (error instanceof VlmqError && (code === 'ERR_VLMQ_BAD_FILE' || code === 'ERR_VLMQ_UNSUPPORTED_MODEL')) {
    return new UsageError(error.message, null, { cause: error });
  }
  if (typeof code === 'string' && ['ENOENT', 'EACCES', 'EPERM', 'EISDIR', 'ENOTDIR'].includes(code) && !(error instanceof VlmqError)) {
    return new UsageError((error as Error).message, null, { cause: error });
  }
  return error;
}

// --- quantizer flags -----------------------------------------------------------------------

type OptionKey = keyof NativeLinearOptions;

interface QuantizerFlag {
  option: OptionKey;
  kind: 'integer' | 'number' | 'string' | 'boolean';
  value?: string;
  description: string;
  /** Methods the flag has an effect on; giving it with another method prints a warning. */
  only?: readonly QuantMethod[];
}

const SWEEP_METHODS: readonly QuantMethod[] = ['gptq', 'gptaq'];

/** Every quantizer option as a flag. Defaults are read from DEFAULT_LINEAR_OPTIONS, never repeated. */
export const QUANTIZER_FLAGS: Readonly<Record<string, QuantizerFlag>> = {
  method: { option: 'method', kind: 'string', value: QUANT_METHODS.join('|'), description: 'rtn: round to nearest; gptq: Hessian-compensated sweep; gptaq: gptq plus the asymmetric term (needs dxxt)' },
  bits: { option: 'bits', kind: 'integer', value: 'N', description: 'bits per weight: 2, 3, 4 or 8' },
  'group-size': { option: 'groupSize', kind: 'integer', value: 'N', description: 'columns sharing one (scale, zero); -1 = one per output channel' },
  sym: { option: 'sym', kind: 'boolean', description: 'symmetric: zero point fixed at mid-range' },
  'act-order': { option: 'actOrder', kind: 'boolean', description: 'quantize columns in order of decreasing Hessian diagonal (desc_act)', only: SWEEP_METHODS },
  'static-groups': { option: 'staticGroups', kind: 'boolean', description: 'fit group parameters up front on the original column order', only: SWEEP_METHODS },
  damp: { option: 'percdamp', kind: 'number', value: 'P', description: 'damping λ = P · mean(diag H)', only: SWEEP_METHODS },
  'damp-increment': { option: 'dampIncrement', kind: 'number', value: 'P', description: 'step by which the damping grows when the Cholesky factorisation fails', only: SWEEP_METHODS },
  'max-damp': { option: 'maxPercdamp', kind: 'number', value: 'P', description: 'largest damping tried before falling back to RTN (reported)', only: SWEEP_METHODS },
  'block-size': { option: 'blockSize', kind: 'integer', value: 'N', description: 'columns per lazy-update block', only: SWEEP_METHODS },
  alpha: { option: 'alpha', kind: 'number', value: 'A', description: 'gptaq: scale of the asymmetric correction', only: ['gptaq'] },
  'gptaq-variant': { option: 'gptaqVariant', kind: 'string', value: 'reference|derivation', description: "gptaq: lazy P-term from the quantized block ('reference', as the GPTAQ code) or the pre-quantization values ('derivation', Eq. 15)", only: ['gptaq'] },
  mse: { option: 'mse', kind: 'boolean', description: 'search a clipped range minimising Σ|q − w|^norm per row' },
  'mse-norm': { option: 'mseNorm', kind: 'number', value: 'P', description: 'exponent of the --mse error' },
  'mse-grid': { option: 'mseGrid', kind: 'integer', value: 'N', description: 'candidate ranges of the --mse search' },
  'mse-max-shrink': { option: 'mseMaxShrink', kind: 'number', value: 'S', description: 'largest fraction, in (0, 1], by which the --mse search shrinks the range' },
  'fp32-scales': { option: 'fp32Scales', kind: 'boolean', description: 'keep FP32 scales (the reference tools\' numbers) instead of the fp16 grid a checkpoint stores' },
};

/** The quantizer flags as a FlagTable for the parser and the help, defaults included. */
export function quantizerFlagTable(group = 'Quantizer'): FlagTable {
  const table: Record<string, FlagSpec> = {};
  for (const [name, flag] of Object.entries(QUANTIZER_FLAGS)) {
    const fallback = DEFAULT_LINEAR_OPTIONS[flag.option];
    table[name] = {
      type: flag.kind === 'boolean' ? 'boolean' : 'string',
      value: flag.value,
      description: flag.description,
      default: flag.kind === 'boolean' ? undefined : String(fallback),
      group,
    };
  }
  return table;
}

export interface QuantizerSettings {
  /** Only the options the user gave, for quantizeLinear. */
  options: QuantizeLinearOptions;
  /** Every option with its default filled in, as quantizeLinear will use them. */
  resolved: NativeLinearOptions;
  /** Flags given that do nothing with the chosen method. */
  ignored: string[];
}

/**
 * The quantizer flags given, as the options they set: parsed (numbers are numbers), not yet
 * checked; resolveLinearOptions, or the resolver of the options they are part of, checks them.
 */
export function parseQuantizerFlags(values: FlagValues): QuantizeLinearOptions {
  const options: Record<string, unknown> = {};
  for (const [name, flag] of Object.entries(QUANTIZER_FLAGS)) {
    const text = values[name];
    if (text === undefined) continue;
    if (flag.kind === 'boolean') options[flag.option] = text === true;
    else if (flag.kind === 'integer') options[flag.option] = parseInteger(`--${name}`, String(text));
    else if (flag.kind === 'number') options[flag.option] = parseNumber(`--${name}`, String(text));
    else options[flag.option] = text;
  }
  return options as QuantizeLinearOptions;
}

/** Quantizer flags → options, validated by resolveLinearOptions with the flag named in any error. */
export function quantizerOptionsFromFlags(command: string, values: FlagValues): QuantizerSettings {
  const options = parseQuantizerFlags(values);
  let resolved: NativeLinearOptions;
  try {
    resolved = resolveLinearOptions(options);
  } catch (error) {
    throw asFlagError(error, optionFlags(), helpHint(command));
  }
  const ignored = Object.entries(QUANTIZER_FLAGS)
    .filter(([name, flag]) => values[name] !== undefined && flag.only !== undefined && !flag.only.includes(resolved.method))
    .map(([name]) => `--${name}`);
  return { options, resolved, ignored };
}

/** Option name → "--flag" for every quantizer option. */
export function optionFlags(): Record<string, string> {
  return Object.fromEntries(Object.entries(QUANTIZER_FLAGS).map(([name, flag]) => [flag.option, `--${name}`]));
}

/**
 * Re-words a library error "Expected E for option but received R" (lib/errors.ts
 * invalidParameterError) as "--flag: expected E but received R", with option names inside E
 * replaced by their flags too. Any other error is returned unchanged.
 */
export function asFlagError(error: unknown, flags: Readonly<Record<string, string>>, hint: string | null = null): unknown {
  if (!(error instanceof VlmqError) || error.code !== 'ERR_VLMQ_INVALID_ARG') return error;
  for (const [option, flag] of Object.entries(flags)) {
    const marker = ` for ${option} but received `;
    const at = error.message.lastIndexOf(marker);
    if (!error.message.startsWith('Expected ') || at < 0) continue;
    let expected = error.message.slice('Expected '.length, at);
    for (const [other, otherFlag] of Object.entries(flags)) expected = expected.replace(new RegExp(`\\b${other}\\b`, 'g'), otherFlag);
    const received = error.message.slice(at + marker.length);
    return new UsageError(`${flag}: expected ${expected} but received ${received}`, hint, { cause: error });
  }
  return error;
}

// --- suggestions ---------------------------------------------------------------------------

/** The candidate closest to `word` (a prefix, or within a small edit distance), or null. */
export function closest(word: string, candidates: readonly string[]): string | null {
  const lower = word.toLowerCase();
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = candidate.startsWith(lower) && lower.length >= 2 ? 0.5 : editDistance(lower, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}

/** Levenshtein distance with adjacent transpositions counted as one edit. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

// --- help ----------------------------------------------------------------------------------

export interface HelpText {
  usage: readonly string[];
  description: string;
  flags: FlagTable;
  /** Positional arguments: [name, description]. */
  arguments?: readonly (readonly [string, string])[];
  examples?: readonly string[];
  notes?: readonly string[];
}

/** Help pages are wrapped to this width. */
const HELP_COLUMNS = 100;

/** Splits `text` into lines of at most `columns` characters at spaces. */
function wrap(text: string, columns: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > columns) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** The help page of a command, in the layout of npm's and node-llama-cpp's. */
export function formatHelp(help: HelpText): string {
  const lines: string[] = [];
  lines.push(...help.usage.map((u, i) => `${i === 0 ? 'Usage: ' : '       '}${u}`), '', help.description, '');
  const rows: (readonly [string, string])[] = [];
  const groups = new Map<string, [string, FlagSpec][]>();
  for (const [name, spec] of Object.entries({ ...help.flags, ...COMMON_FLAGS })) {
    const group = spec.group ?? 'Options';
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group)!.push([name, spec]);
  }
  if (help.arguments?.length) rows.push(...help.arguments);
  const flagRows = new Map<string, (readonly [string, string])[]>();
  for (const [group, entries] of groups) {
    flagRows.set(group, entries.map(([name, spec]) => {
      const left = `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.value ? ` ${spec.value}` : ''}`;
      return [left, `${spec.description}${spec.default !== undefined ? ` (default: ${spec.default})` : ''}`] as const;
    }));
  }
  const width = Math.min(26, Math.max(...[...rows, ...[...flagRows.values()].flat()].map(([left]) => left.length)) + 2);
  const indent = ' '.repeat(width + 2);
  const row = ([left, right]: readonly [string, string]) => {
    const text = wrap(right, HELP_COLUMNS - width - 2).join(`\n${indent}`);
    return left.length + 2 > width ? `  ${left}\n${indent}${text}` : `  ${left.padEnd(width)}${text}`;
  };
  if (rows.length) lines.push('Arguments:', ...rows.map(row), '');
  for (const [group, entries] of flagRows) lines.push(`${group}:`, ...entries.map(row), '');
  if (help.notes?.length) lines.push(...help.notes, '');
  if (help.examples?.length) lines.push('Examples:', ...help.examples.map((e) => `  ${e}`), '');
  return lines.join('\n');
}
