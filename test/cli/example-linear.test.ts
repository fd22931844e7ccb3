// vlmq example-linear: a seeded, reproducible layer with the statistics quantize-linear needs.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bf16ToF32, loadSafetensors } from '../../lib/index.js';
import { jsonResult, runCli } from '../helpers/cli.js';

const dir = t.testdir({});

t.test('writes weight [out, in] BF16, hessian and dxxt [in, in] F32, and says so', async (t) => {
  const out = join(dir, 'default.safetensors');
  const run = await runCli(['example-linear', out, '--out-features', '16', '--in-features', '48', '--tokens', '300']);
  t.equal(run.code, 0, run.stderr);
  const { metadata, tensors } = await loadSafetensors(out);
  t.same([...tensors.keys()].sort(), ['dxxt', 'hessian', 'weight']);
  t.match(tensors.get('weight'), { dtype: 'BF16', shape: [16, 48] });
  t.match(tensors.get('hessian'), { dtype: 'F32', shape: [48, 48] });
  t.match(tensors.get('dxxt'), { dtype: 'F32', shape: [48, 48] });
  t.match(metadata, { command: 'example-linear', out_features: '16', in_features: '48', tokens: '300', seed: '1', samples: '3' });

  const n = 48;
  const H = tensors.get('hessian')!.data as Float32Array;
  const D = tensors.get('dxxt')!.data as Float32Array;
  let asymmetric = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) if (H[i * n + j] !== H[j * n + i]) asymmetric++;
  t.equal(asymmetric, 0, 'H is symmetric');
  const diagonal = Array.from({ length: n }, (_, i) => H[i * n + i]);
  t.ok(diagonal.every((d) => d > 0), 'every input channel is active');
  t.ok(Math.max(...diagonal) / Math.min(...diagonal) > 100, 'channel scales span decades, as real activations');
  t.ok(D.some((x) => x !== 0), 'the cross term is not zero');
  const W = Array.from(tensors.get('weight')!.data as Uint16Array, bf16ToF32);
  t.ok(W.every(Number.isFinite) && W.some((w) => w !== 0), 'the weight holds finite, non-zero values');

  t.match(run.stdout, /^wrote: +.*default\.safetensors/m);
  t.match(run.stdout, /^next: +vlmq quantize-linear --in .*default\.safetensors --out .*default-q\.safetensors/m);
  t.match(run.stderr, /^statistics: done \(300 tokens\) in /m);
});

t.test('the same seed gives the same file; another seed another one', async (t) => {
  const args = ['--out-features', '8', '--in-features', '32', '--tokens', '200', '--dtype', 'f16'];
  const paths = ['a', 'b', 'c'].map((name) => join(dir, `${name}.safetensors`));
  for (const [i, path] of paths.entries()) {
    const run = await runCli(['example-linear', path, ...args, '--seed', i === 2 ? '8' : '7']);
    t.equal(run.code, 0, run.stderr);
  }
  const [a, b, c] = await Promise.all(paths.map((path) => readFile(path)));
  t.ok(a.equals(b), 'seed 7 twice: identical bytes');
  t.notOk(a.equals(c), 'seed 8 differs');
  const { tensors } = await loadSafetensors(paths[0]);
  t.equal(tensors.get('weight')!.dtype, 'F16', '--dtype f16');
});

t.test('--json prints progress events and one result', async (t) => {
  const out = join(dir, 'json.safetensors');
  const run = await runCli(['example-linear', out, '--out-features', '4', '--in-features', '16', '--tokens', '256', '--json']);
  t.equal(run.code, 0, run.stderr);
  t.equal(run.stderr, '');
  t.match(jsonResult(run.stdout), { type: 'result', command: 'example-linear', out, outFeatures: 4, inFeatures: 16, tokens: 256, samples: 2, seed: 1, dtype: 'BF16' });
  t.match(run.stdout, /"type":"progress","task":"statistics","done":256,"total":256,.*"finished":true/);
});

t.test('bad arguments exit 2 naming the flag', async (t) => {
  const out = join(dir, 'never.safetensors');
  const cases: [string[], RegExp][] = [
    [['--in-features', '0'], /^vlmq: --in-features: expected an integer in \[1, 16384\] but received 0$/m],
    [['--tokens', '1.5'], /^vlmq: --tokens: expected an integer but received "1\.5"$/m],
    [['--dtype', 'f8'], /^vlmq: --dtype: expected one of bf16, f16, f32 but received "f8"$/m],
  ];
  for (const [args, message] of cases) {
    const run = await runCli(['example-linear', out, ...args]);
    t.equal(run.code, 2, args.join(' '));
    t.match(run.stderr, message);
  }
  const missing = await runCli(['example-linear']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /^vlmq: missing argument OUT\.safetensors$/m);
});
