#!/usr/bin/env node
// The `vlmq` process: argv, Ctrl-C and a closed stdout wired to the command (app.ts).
import { EXIT, flagsOf, runVlmq } from './app.js';
import { Output } from './output.js';

const argv = process.argv.slice(2);
const out = Output.forProcess(flagsOf(argv.slice(1)).includes('--json'));
const controller = new AbortController();
// The first Ctrl-C asks the running work to stop (the sweep polls between blocks); a second one
// gets Node's default handling and ends the process at once.
process.once('SIGINT', () => controller.abort(new Error('interrupted')));
// A reader that goes away (`vlmq doctor | head -1`) is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.ok);
  throw error;
});

process.exitCode = await runVlmq(argv, out, controller.signal);
