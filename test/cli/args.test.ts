// The flag helpers every command shares, in-process: parsing (a flag given twice is an error), the
// library's option errors re-worded to name flags (extreme values included), and suggestions for typos.
import t from 'tap';
import { UsageError, asFlagError, closest, parseFlags, quantizerFlagTable, quantizerOptionsFromFlags } from '../../lib/cli/args.js';
import type { Command } from '../../lib/cli/command.js';
import { Output } from '../../lib/cli/output.js';
import { DEFAULT_LINEAR_OPTIONS, VlmqError } from '../../lib/index.js';

t.test('every quantizer option has a flag, and the help shows the library default', async (t) => {
  const table = quantizerFlagTable();
  const { resolved } = quantizerOptionsFromFlags('x', {});
  t.same(resolved, DEFAULT_LINEAR_OPTIONS, 'no flags: the defaults of resolveLinearOptions');
  t.equal(table.bits.default, String(DEFAULT_LINEAR_OPTIONS.bits));
  t.equal(table.damp.default, String(DEFAULT_LINEAR_OPTIONS.percdamp));
  t.equal(Object.keys(table).length, Object.keys(DEFAULT_LINEAR_OPTIONS).length, 'one flag per option');
});

t.test('flags map onto options', async (t) => {
  const { values } = parseFlags('x', quantizerFlagTable(), ['--method', 'gptaq', '--bits', '3', '--group-size', '-1', '--damp=0.05', '--act-order', '--alpha', '-0.5'], { names: [], required: 0 });
  const { options, resolved, ignored } = quantizerOptionsFromFlags('x', values);
  t.same(options, { method: 'gptaq', bits: 3, groupSize: -1, percdamp: 0.05, actOrder: true, alpha: -0.5 });
  t.match(resolved, { method: 'gptaq', bits: 3, percdamp: 0.05, blockSize: DEFAULT_LINEAR_OPTIONS.blockSize });
  t.same(ignored, []);
  t.same(quantizerOptionsFromFlags('x', { method: 'rtn', damp: '0.1', alpha: '1' }).ignored, ['--damp', '--alpha']);
});

t.test("the library's option errors are re-worded to name the flags", async (t) => {
  const flags = { percdamp: '--damp', maxPercdamp: '--max-damp', groupSize: '--group-size' };
  const error = asFlagError(new VlmqError('ERR_VLMQ_INVALID_ARG', 'Expected a number ≥ percdamp (0.2) for maxPercdamp but received 0.1'), flags);
  t.type(error, UsageError);
  t.equal((error as Error).message, '--max-damp: expected a number ≥ --damp (0.2) but received 0.1');
  const other = new Error('something else');
  t.equal(asFlagError(other, flags), other, 'other errors pass through');
  t.throws(() => quantizerOptionsFromFlags('x', { 'mse-max-shrink': '1.5' }), { name: 'UsageError', message: /^--mse-max-shrink: expected a number in \(0, 1\] but received 1\.5$/ });
});

t.test('closest suggests near misses and prefixes, not unrelated words', async (t) => {
  const names = ['quantize-linear', 'example-linear', 'doctor'];
  t.equal(closest('quantise-linear', names), 'quantize-linear');
  t.equal(closest('doc', names), 'doctor');
  t.equal(closest('exmaple-linear', names), 'example-linear');
  t.equal(closest('bench', names), null);
});

t.test('a flag given twice is an error naming it (not last-wins), with both values', async (t) => {
  const flags = quantizerFlagTable();
  const parse = (argv: string[]) => () => parseFlags('x', flags, argv, { names: [], required: 0 });
  t.throws(parse(['--bits', '4', '--bits', '8']), { name: 'UsageError', message: '--bits: given more than once ("4", then "8"); give it once' });
  t.throws(parse(['--bits=4', '--method', 'rtn', '--bits=4']), { name: 'UsageError', message: '--bits: given more than once ("4", then "4"); give it once' }, 'even with the same value');
  t.throws(parse(['--sym', '--sym']), { name: 'UsageError', message: '--sym: given more than once; give it once' });
  t.throws(parse(['--alpha', '0.5', '--alpha']), { name: 'UsageError', message: /^--alpha: given more than once/ }, 'the repeat without its value');
  t.same(parseFlags('x', flags, ['--bits', '4', '--group-size', '4'], { names: [], required: 0 }).values, { bits: '4', 'group-size': '4' }, 'different flags with the same value are fine');
});

t.test('every command refuses a repeated flag before doing anything, naming the flag', async (t) => {
  const modules = await Promise.all(['demo', 'quantize', 'inspect', 'verify', 'quantize-linear', 'example-linear', 'doctor'].map((name) => import(`../../lib/cli/${name}.js`)));
  const commands = modules.flatMap((m) => Object.values(m).filter((v): v is Command => typeof v === 'object' && v !== null && 'run' in v && 'name' in v));
  t.equal(commands.length, 7, 'every command');
  const sink = { write: () => true };
  for (const command of commands) {
    const out = new Output(sink, sink, { json: false, interactive: false });
    const error = await command.run(['--json', '--json'], { out, signal: new AbortController().signal }).then(() => null, (e: unknown) => e);
    t.match(error, { name: 'UsageError', message: '--json: given more than once; give it once' }, command.name);
  }
});

t.test('extreme values of quantizer flags fail with the flag named, before any work', async (t) => {
  const cases: [Record<string, string | boolean>, RegExp][] = [
    [{ method: 'gptaq', alpha: '1e308' }, /^--alpha: expected a finite number as a float32 \(\|x\| ≤ 3\.4e38, and not so small that it rounds to 0\) but received 1e\+308$/],
    [{ method: 'gptaq', alpha: '-1e39' }, /^--alpha: .* but received -1e\+39$/],
    [{ mse: true, 'mse-norm': '1e308' }, /^--mse-norm: expected a number > 0 as a float32 .* but received 1e\+308$/],
    [{ mse: true, 'mse-norm': '1e-50' }, /^--mse-norm: expected a number > 0 as a float32 .* but received 1e-50$/],
    [{ mse: true, 'mse-max-shrink': '1e-50' }, /^--mse-max-shrink: expected a number in \(0, 1\] as a float32 .* but received 1e-50$/],
    [{ mse: true, 'mse-grid': '99999999999' }, /^--mse-grid: expected an integer in \[1, 10000\] but received 99999999999$/],
    [{ 'damp-increment': '1e-320' }, /^--damp-increment: expected a step that reaches --max-damp \(0\.1\) from --damp \(0\.01\) in at most 1000 steps but received 1e-320$/],
    [{ damp: '1e308' }, /^--max-damp: expected a number ≥ --damp \(1e\+308\) but received 0\.1$/],
    [{ 'max-damp': '1e308' }, /^--damp-increment: expected a step that reaches --max-damp \(1e\+308\)/],
    [{ alpha: 'NaN', method: 'gptaq' }, /^--alpha: expected a number but received "NaN"$/],
    [{ alpha: 'Infinity', method: 'gptaq' }, /^--alpha: expected a number but received "Infinity"$/],
    [{ bits: '-0' }, /^--bits: expected one of 2, 3, 4, 8 but received 0$/],
    [{ 'group-size': '-0' }, /^--group-size: expected -1 \(per channel\) or a positive integer but received 0$/],
    [{ 'block-size': '-0' }, /^--block-size: expected a positive integer but received 0$/],
    [{ bits: '99999999999999999999' }, /^--bits: expected an integer but received "99999999999999999999"$/],
    [{ bits: '4294967300' }, /^--bits: expected one of 2, 3, 4, 8 but received 4294967300$/],
    [{ 'group-size': '9007199254740993' }, /^--group-size: expected an integer but received "9007199254740993"$/],
    [{ 'block-size': '1e3' }, /^--block-size: expected an integer but received "1e3"$/],
  ];
  for (const [values, message] of cases) {
    t.throws(() => quantizerOptionsFromFlags('x', values), { name: 'UsageError', message }, JSON.stringify(values));
  }
  t.match(quantizerOptionsFromFlags('x', { method: 'gptaq', alpha: '-0', damp: '-0' }).resolved, { alpha: -0, percdamp: -0 }, '-0 is a valid alpha and damping (it is 0)');
  t.match(quantizerOptionsFromFlags('x', { method: 'gptaq', alpha: '3.4e38', 'group-size': '9007199254740991' }).resolved, { alpha: 3.4e38, groupSize: 9007199254740991 }, 'the largest float32 alpha and safe integer group size are accepted');
});
