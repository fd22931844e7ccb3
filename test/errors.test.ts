import t from 'tap';
import { invalidParameterError, describeValue } from '../lib/errors.js';

t.test('invalidParameterError names the option, the expectation and the value', async (t) => {
  const e = invalidParameterError('bits', 'integer in {2, 3, 4, 8}', 9);
  t.equal(e.message, 'Expected integer in {2, 3, 4, 8} for bits but received 9');
  t.equal(e.code, 'ERR_VLMQ_INVALID_ARG');
});

t.test('describeValue summarises typed arrays and long strings', async (t) => {
  t.equal(describeValue(new Float32Array(3)), 'Float32Array of length 3');
  t.equal(describeValue('x'.repeat(100)).length, 62);
});
