import t from 'tap';
import { nativeInfo, quantizeLinear, setThreads } from '../../lib/index.js';
import { layerProblem } from '../helpers/problems.js';

t.test('nativeInfo names the loaded binary, its backends, the BLAS and the CUDA status with a reason', async (t) => {
  const info = nativeInfo();
  t.match(info.path, /\.node$/);
  t.ok(info.backends.includes('cpu'));
  t.match(info.cpu.blas, /OpenBLAS/);
  t.ok(info.cpu.threads >= 1);
  t.equal(info.cuda.usable, false, 'this release runs everything on the CPU');
  t.ok(info.cuda.reason.length > 0, 'a reason is always given when CUDA is not used');
  t.equal(info.backends.includes('cuda'), info.cuda.compiled);
});

t.test('setThreads changes the threads of the CPU backend and OpenBLAS, and results stay the same', async (t) => {
  const p = layerProblem({ m: 24, n: 96, seed: 5 });
  const weight = { dtype: 'F32' as const, shape: [p.m, p.n], data: p.W };
  const before = nativeInfo().cpu.threads;
  const reference = await quantizeLinear(weight, { hessian: p.H }, { bits: 3, groupSize: 32, actOrder: true });
  await setThreads(1);
  t.equal(nativeInfo().cpu.threads, 1);
  t.equal(nativeInfo().cpu.blasThreads, 1);
  const single = await quantizeLinear(weight, { hessian: p.H }, { bits: 3, groupSize: 32, actOrder: true });
  t.same(single.codes, reference.codes, 'rows are independent: the tiling across threads does not change a code');
  await setThreads(before);
  t.equal(nativeInfo().cpu.threads, before);
});

t.test('setThreads rejects anything but an integer in [1, 1024]', async (t) => {
  for (const bad of [0, -1, 1.5, 2000, Number.NaN]) {
    await t.rejects(setThreads(bad), { code: 'ERR_VLMQ_INVALID_ARG', message: /Expected an integer in \[1, 1024\] for threads/ });
  }
});
