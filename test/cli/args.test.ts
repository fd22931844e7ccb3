// The flag helpers every command shares, in-process: parsing, the library's option errors
// re-worded to name flags, and suggestions for typos.
import t from 'tap';
import { UsageError, asFlagError, closest, parseFlags, quantizerFlagTable, quantizerOptionsFromFlags } from '../../lib/cli/args.js';
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
