// The `vlmq` command without the process around it (main.ts wires argv, signals and the exit
// status): the list of subcommands, --help, --version, and how an error becomes an exit status and
// a message; each subcommand (one file each) parses its own flags. Tests run it in-process.
//
// Exit status: 0 ok, 1 runtime error, 2 usage error (bad flags, missing or malformed input files),
// 130 interrupted (Ctrl-C). Errors print "vlmq: <message>" on stderr, with the stack when
// VLMQ_DEBUG=1; with --json they also end stdout with a `type: "error"` object.
import { UsageError, closest, helpHint } from './args.js';
import { type Command, packageVersion } from './command.js';
import { demoCommand } from './demo.js';
import { doctorCommand } from './doctor.js';
import { exampleLinearCommand } from './example-linear.js';
import { inspectCommand } from './inspect.js';
import type { Output } from './output.js';
import { quantizeCommand } from './quantize.js';
import { quantizeLinearCommand } from './quantize-linear.js';
import { verifyCommand } from './verify.js';

const COMMANDS: readonly Command[] = [demoCommand, quantizeCommand, inspectCommand, verifyCommand, quantizeLinearCommand, exampleLinearCommand, doctorCommand];

export const EXIT = { ok: 0, error: 1, usage: 2, interrupted: 130 } as const;

function generalHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 3;
  return [
    'Usage: vlmq <command> [options]',
    '',
    'Post-training quantization of vision-language models (RTN, GPTQ, GPTAQ, VLMQ) with a native CPU/CUDA core.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Options:',
    `  ${'-h, --help'.padEnd(width)}show this help; 'vlmq <command> --help' shows a command's`,
    `  ${'-v, --version'.padEnd(width)}print the version`,
    '',
    'Exit status: 0 ok, 1 runtime error, 2 usage error (bad flags or input files), 130 interrupted.',
    'Set VLMQ_DEBUG=1 to print stack traces with errors.',
    '',
  ].join('\n');
}

/** Arguments before a "--" terminator: where --help and --json count. */
export function flagsOf(argv: readonly string[]): readonly string[] {
  const end = argv.indexOf('--');
  return end < 0 ? argv : argv.slice(0, end);
}

function findCommand(name: string): Command {
  const command = COMMANDS.find((c) => c.name === name);
  if (command) return command;
  const suggestion = closest(name, COMMANDS.map((c) => c.name));
  throw new UsageError(
    `unknown command '${name}'${suggestion ? `. Did you mean '${suggestion}'?` : ''}`,
    `Commands: ${COMMANDS.map((c) => c.name).join(', ')}. ${helpHint(null)}`,
  );
}

async function dispatch(argv: readonly string[], out: Output, signal: AbortSignal): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    process.stderr.write(generalHelp());
    return EXIT.usage;
  }
  if (first === '--version' || first === '-v' || first === '-V') {
    process.stdout.write(`${packageVersion()}\n`);
    return EXIT.ok;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    const topic = first === 'help' ? rest[0] : undefined;
    process.stdout.write(topic === undefined ? generalHelp() : findCommand(topic).help());
    return EXIT.ok;
  }
  if (first.startsWith('-')) {
    const suggestion = closest(first.replace(/^-+/, ''), ['help', 'version']);
    throw new UsageError(`unknown option ${first}${suggestion ? ` (did you mean --${suggestion}?)` : ''}; options go after the command`, helpHint(null));
  }
  const command = findCommand(first);
  const flags = flagsOf(rest);
  if (flags.includes('--help') || flags.includes('-h')) {
    process.stdout.write(command.help());
    return EXIT.ok;
  }
  await command.run(rest, { out, signal });
  return EXIT.ok;
}

function describeError(error: unknown, signal: AbortSignal): { exitCode: number; message: string; code: string | null; hint: string | null } {
  if (signal.aborted && (error === signal.reason || (error as Error)?.name === 'AbortError')) {
    return { exitCode: EXIT.interrupted, message: 'interrupted', code: 'ABORT_ERR', hint: null };
  }
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown })?.code;
  if (error instanceof UsageError) return { exitCode: EXIT.usage, message, code: error.code, hint: error.hint };
  return { exitCode: EXIT.error, message, code: typeof code === 'string' ? code : null, hint: null };
}

/** The stack of `error` and of its causes, for VLMQ_DEBUG=1. */
function stackOf(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    parts.push(`${depth === 0 ? '' : 'Caused by: '}${e instanceof Error ? (e.stack ?? String(e)) : String(e)}`);
  }
  return parts.join('\n');
}

/** Runs `vlmq ...argv`: the exit status, with any error reported on `out` ("vlmq: <message>", and the stack when VLMQ_DEBUG=1). */
export async function runVlmq(argv: readonly string[], out: Output, signal: AbortSignal): Promise<number> {
  try {
    return await dispatch(argv, out, signal);
  } catch (error) {
    const { exitCode, message, code, hint } = describeError(error, signal);
    const debug = process.env.VLMQ_DEBUG === '1';
    out.error(message, { code, exitCode }, hint, debug ? stackOf(error) : null);
    return exitCode;
  }
}
