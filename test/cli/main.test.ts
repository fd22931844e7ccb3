// The `vlmq` entry: --help, --version, dispatch, unknown commands and exit statuses, from the
// sources (through tsx), from a relocated copy, and compiled (the package's bin, dist/cli/main.js).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jsonLines, repoRoot, runCli } from '../helpers/cli.js';

const COMMANDS = ['demo', 'quantize', 'inspect', 'verify', 'quantize-linear', 'example-linear', 'doctor'];
const packageJson = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };

t.test('--version prints the version of package.json and exits 0', async (t) => {
  for (const flag of ['--version', '-v']) {
    const run = await runCli([flag]);
    t.equal(run.code, 0, flag);
    t.equal(run.stdout, `${packageJson.version}\n`, flag);
    t.equal(run.stderr, '', flag);
  }
});

t.test('--help lists every command and exits 0', async (t) => {
  for (const args of [['--help'], ['-h'], ['help']]) {
    const run = await runCli(args);
    t.equal(run.code, 0, args.join(' '));
    t.match(run.stdout, /^Usage: vlmq <command>/, args.join(' '));
    for (const name of COMMANDS) t.match(run.stdout, new RegExp(`^  ${name} `, 'm'), `${args.join(' ')} lists ${name}`);
    t.equal(run.stderr, '');
  }
});

t.test('commands that do not exist yet are not listed', async (t) => {
  const run = await runCli(['--help']);
  for (const name of ['eval', 'bench']) t.notMatch(run.stdout, new RegExp(`^  ${name} `, 'm'), name);
});

t.test('every command has its own --help (also as `vlmq help <command>`), exit 0', async (t) => {
  for (const name of COMMANDS) {
    const run = await runCli([name, '--help']);
    t.equal(run.code, 0, name);
    t.match(run.stdout, new RegExp(`^Usage: vlmq ${name}`), name);
    t.match(run.stdout, /-h, --help/, name);
    t.equal(run.stderr, '', name);
  }
  const help = await runCli(['help', 'doctor']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^Usage: vlmq doctor/);
});

t.test('--help wins over other flags, even invalid ones', async (t) => {
  const run = await runCli(['quantize-linear', '--bits', '5', '--nonsense', '-h']);
  t.equal(run.code, 0);
  t.match(run.stdout, /^Usage: vlmq quantize-linear/);
});

t.test('no command: the help on stderr, exit 2', async (t) => {
  const run = await runCli([]);
  t.equal(run.code, 2);
  t.equal(run.stdout, '');
  t.match(run.stderr, /Usage: vlmq <command>/);
});

t.test('an unknown command exits 2, suggests the closest and lists the commands', async (t) => {
  const run = await runCli(['quantise-linear', '--in', 'x']);
  t.equal(run.code, 2);
  t.equal(run.stdout, '');
  t.match(run.stderr, /^vlmq: unknown command 'quantise-linear'\. Did you mean 'quantize-linear'\?/);
  t.match(run.stderr, `Commands: ${COMMANDS.join(', ')}`);
  const prefix = await runCli(['doc']);
  t.equal(prefix.code, 2);
  t.match(prefix.stderr, "Did you mean 'doctor'?");
  const far = await runCli(['zzzzzzzz']);
  t.equal(far.code, 2);
  t.notMatch(far.stderr, 'Did you mean');
  t.match(far.stderr, 'Commands:');
});

t.test('an option before the command is a usage error', async (t) => {
  const run = await runCli(['--verison']);
  t.equal(run.code, 2);
  t.match(run.stderr, /^vlmq: unknown option --verison \(did you mean --version\?\)/);
});

t.test('errors print "vlmq: <message>" without a stack unless VLMQ_DEBUG=1', async (t) => {
  const plain = await runCli(['quantize-linear', '--in', 'missing.safetensors', '--out', 'x.safetensors']);
  t.equal(plain.code, 2);
  t.match(plain.stderr, /^vlmq: missing\.safetensors: no such file/);
  t.notMatch(plain.stderr, /\n\s+at /);
  const debug = await runCli(['quantize-linear', '--in', 'missing.safetensors', '--out', 'x.safetensors'], { env: { VLMQ_DEBUG: '1' } });
  t.equal(debug.code, 2);
  t.match(debug.stderr, /\n\s+at /);
  t.match(debug.stderr, /Caused by: .*ENOENT/);
});

t.test('with --json a failure also ends stdout with an error object', async (t) => {
  const run = await runCli(['quantize-linear', '--bits', '5', '--in', 'a', '--out', 'b', '--json']);
  t.equal(run.code, 2);
  const [error] = jsonLines(run.stdout);
  t.match(error, { type: 'error', exitCode: 2, code: 'ERR_VLMQ_USAGE', message: /^--bits: / });
  t.match(run.stderr, /^vlmq: --bits: /);
});

t.test('the version is read from the package.json next to the module, wherever it lives', async (t) => {
  const root = t.testdir({ 'package.json': JSON.stringify({ name: 'vlmq', version: '9.8.7-relocated', type: 'module' }) });
  await cp(join(repoRoot, 'lib'), join(root, 'lib'), { recursive: true });
  const run = await runCli(['--version'], { entry: join(root, 'lib', 'cli', 'main.ts') });
  t.equal(run.code, 0);
  t.equal(run.stdout, '9.8.7-relocated\n');
});

t.test('compiled, the bin (dist/cli/main.js) starts with a shebang and works', async (t) => {
  const root = t.testdir({});
  await writeFile(join(root, 'package.json'), JSON.stringify(packageJson));
  const tsc = spawnSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(repoRoot, 'tsconfig.build.json'), '--outDir', join(root, 'dist'), '--sourceMap', 'false', '--declaration', 'false'], { encoding: 'utf8' });
  t.equal(packageJson.bin.vlmq, './dist/cli/main.js');
  const entry = join(root, packageJson.bin.vlmq);
  let source: string;
  try {
    source = await readFile(entry, 'utf8');
  } catch {
    t.fail(`tsc emitted no ${packageJson.bin.vlmq}: ${tsc.stdout}${tsc.stderr}`);
    return;
  }
  t.match(source, /^#!\/usr\/bin\/env node\n/);
  const version = await runCli(['--version'], { entry });
  t.equal(version.code, 0);
  t.equal(version.stdout, `${packageJson.version}\n`);
  const help = await runCli(['quantize-linear', '--help'], { entry });
  t.equal(help.code, 0);
  t.match(help.stdout, /^Usage: vlmq quantize-linear/);
  // The compiled package has no addon of its own next to it; point the loader at this checkout's.
  const doctor = await runCli(['doctor', '--json'], { entry, env: { VLMQ_NATIVE_PATH: join(repoRoot, 'build', 'Release', 'vlmq.node') } });
  t.equal(doctor.code, 0, doctor.stderr);
});
