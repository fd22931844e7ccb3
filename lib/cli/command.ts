// What a subcommand is: a name, a line for `vlmq --help`, its own help page, and a run function.
// main.ts parses nothing but the command name, --help and --json; each command parses the rest.
import type { Output } from './output.js';

export { packageVersion } from '../version.js';

export interface CommandContext {
  out: Output;
  /** Aborted on Ctrl-C; long work passes it on to the library. */
  signal: AbortSignal;
}

export interface Command {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  help(): string;
  /** Resolves when done; throws UsageError (exit 2) or any other error (exit 1). */
  run(argv: readonly string[], context: CommandContext): Promise<void>;
}
