// vlmq quantize-linear: OUT holds exactly what quantizeLinear returns for the same inputs and
// options (the command adds nothing), in the documented layout; bad flags and bad inputs exit 2
// naming the flag, file and tensor; OUT is written atomically or not at all.
import t, { type Test } from 'tap';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type QuantizeLinearOptions, type Tensor, loadSafetensors, quantizeLinear, resolveLinearOptions, writeSafetensors } from '../../lib/index.js';
import { jsonLines, jsonResult, repoRoot, runCli } from '../helpers/cli.js';

const M = 24;
const N = 64;
const dir = t.testdir({});
const IN = join(dir, 'layer.safetensors');
const version = (JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

const made = await runCli(['example-linear', IN, '--out-features', String(M), '--in-features', String(N), '--tokens', '512', '--seed', '3']);
if (made.code !== 0) throw new Error(`example-linear failed: ${made.stderr}`);
const input = (await loadSafetensors(IN)).tensors;

interface Case {
  name: string;
  flags: string[];
  options: QuantizeLinearOptions;
}

const CASES: Case[] = [
  { name: 'rtn, groups of 16', flags: ['--method', 'rtn', '--group-size', '16'], options: { method: 'rtn', groupSize: 16 } },
  { name: 'gptq, act-order, groups of 16', flags: ['--method', 'gptq', '--act-order', '--group-size', '16'], options: { method: 'gptq', actOrder: true, groupSize: 16 } },
  { name: 'gptaq, act-order, groups of 16, 3 bits', flags: ['--method', 'gptaq', '--act-order', '--group-size', '16', '--bits', '3'], options: { method: 'gptaq', actOrder: true, groupSize: 16, bits: 3 } },
  {
    name: 'gptq, act-order, static groups, sym, block 16, damp 0.05',
    flags: ['--act-order', '--static-groups', '--group-size', '32', '--sym', '--block-size', '16', '--damp', '0.05', '--max-damp', '0.2', '--damp-increment', '0.01'],
    options: { actOrder: true, staticGroups: true, groupSize: 32, sym: true, blockSize: 16, percdamp: 0.05, maxPercdamp: 0.2, dampIncrement: 0.01 },
  },
  {
    name: 'gptaq per channel, derivation variant, alpha 0.5, mse, fp32 scales, 2 bits, 1 thread',
    flags: ['--method', 'gptaq', '--gptaq-variant', 'derivation', '--alpha', '0.5', '--mse', '--mse-grid', '20', '--fp32-scales', '--bits', '2', '--group-size', '-1', '--threads', '1'],
    options: { method: 'gptaq', gptaqVariant: 'derivation', alpha: 0.5, mse: true, mseGrid: 20, fp32Scales: true, bits: 2, groupSize: -1 },
  },
];

function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

function statisticsFor(method: string | undefined, tensors: Map<string, Tensor>) {
  if (method === 'rtn') return null;
  return method === 'gptaq' ? { hessian: tensors.get('hessian')!, dxxt: tensors.get('dxxt')! } : { hessian: tensors.get('hessian')! };
}

for (const c of CASES) {
  t.test(`${c.name}: OUT equals a direct quantizeLinear call, in the documented layout`, async (t) => {
    const out = join(dir, `out-${CASES.indexOf(c)}.safetensors`);
    const run = await runCli(['quantize-linear', '--in', IN, '--out', out, ...c.flags]);
    t.equal(run.code, 0, run.stderr);
    const { metadata, tensors } = await loadSafetensors(out);
    const resolved = resolveLinearOptions(c.options);
    const groups = resolved.groupSize === -1 ? 1 : Math.ceil(N / resolved.groupSize);
    const expected: Record<string, [string, number[]]> = {
      dequantized: ['F32', [M, N]],
      codes: ['U8', [M, N]],
      scales: ['F32', [M, groups]],
      zeros: ['I32', [M, groups]],
      g_idx: ['I32', [N]],
      ...(resolved.actOrder ? { perm: ['I32', [N]] as [string, number[]] } : {}),
    };
    t.same([...tensors.keys()].sort(), Object.keys(expected).sort(), 'tensor names');
    for (const [name, [dtype, shape]] of Object.entries(expected)) {
      t.equal(tensors.get(name)?.dtype, dtype, `${name} dtype`);
      t.same(tensors.get(name)?.shape, shape, `${name} shape`);
    }

    // dequantized = scales[g_idx] · (codes − zeros), exactly (an f32 product of exact operands).
    const Q = tensors.get('dequantized')!.data as Float32Array;
    const codes = tensors.get('codes')!.data as Uint8Array;
    const scales = tensors.get('scales')!.data as Float32Array;
    const zeros = tensors.get('zeros')!.data as Int32Array;
    const gIdx = tensors.get('g_idx')!.data as Int32Array;
    let mismatches = 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        const g = gIdx[j];
        if (Q[i * N + j] !== Math.fround(scales[i * groups + g] * (codes[i * N + j] - zeros[i * groups + g]))) mismatches++;
      }
    }
    t.equal(mismatches, 0, 'dequantized = scales[g_idx] · (codes − zeros)');
    const maxq = 2 ** resolved.bits - 1;
    t.ok(codes.every((q) => q <= maxq), `codes within [0, ${maxq}]`);

    const direct = await quantizeLinear(input.get('weight')!, statisticsFor(resolved.method, input), c.options);
    t.ok(bytesOf(Q).equals(bytesOf(direct.dequantized)), 'dequantized equals quantizeLinear');
    t.ok(bytesOf(codes).equals(bytesOf(direct.codes)), 'codes equal');
    t.ok(bytesOf(scales).equals(bytesOf(direct.scales)), 'scales equal');
    t.ok(bytesOf(zeros).equals(bytesOf(direct.zeros)), 'zeros equal');
    t.ok(bytesOf(gIdx).equals(bytesOf(direct.gIdx)), 'g_idx equal');
    if (resolved.actOrder) t.ok(bytesOf(tensors.get('perm')!.data).equals(bytesOf(direct.perm!)), 'perm equal');

    t.equal(metadata?.method, resolved.method);
    t.same(JSON.parse(metadata?.options ?? 'null'), resolved, 'metadata records every option used');
    t.equal(Number(metadata?.loss), direct.loss, 'metadata records the loss');
    t.same(JSON.parse(metadata?.damping ?? 'null'), direct.damping, 'metadata records the damping');
    t.equal(metadata?.vlmq_version, version);
    t.equal(metadata?.fallback, undefined, 'no fallback');

    t.match(run.stdout, new RegExp(`^method: +${resolved.method} \\(${resolved.bits}-bit`, 'm'), 'summary names the method and bits');
    t.match(run.stdout, /^loss: +\S+/m);
    t.match(run.stdout, /^damping: +/m);
    t.match(run.stdout, /^fallback: +none$/m);
    t.match(run.stdout, /^seconds: +read .*sweep .*write/m);
  });
}

t.test('an F16 weight works the same way', async (t) => {
  const in16 = join(dir, 'layer-f16.safetensors');
  const out = join(dir, 'out-f16.safetensors');
  const made = await runCli(['example-linear', in16, '--out-features', '8', '--in-features', '32', '--tokens', '128', '--dtype', 'f16']);
  t.equal(made.code, 0, made.stderr);
  const run = await runCli(['quantize-linear', '--in', in16, '--out', out, '--method', 'gptq', '--group-size', '8', '--act-order']);
  t.equal(run.code, 0, run.stderr);
  const source = (await loadSafetensors(in16)).tensors;
  t.equal(source.get('weight')!.dtype, 'F16');
  const direct = await quantizeLinear(source.get('weight')!, { hessian: source.get('hessian')! }, { method: 'gptq', groupSize: 8, actOrder: true });
  const written = (await loadSafetensors(out)).tensors;
  t.ok(bytesOf(written.get('dequantized')!.data).equals(bytesOf(direct.dequantized)));
});

t.test('--json prints only JSON lines: progress events, then one result', async (t) => {
  const out = join(dir, 'out-json.safetensors');
  const run = await runCli(['quantize-linear', '--in', IN, '--out', out, '--method', 'gptaq', '--block-size', '16', '--alpha', '0.25', '--json']);
  t.equal(run.code, 0, run.stderr);
  t.equal(run.stderr, '', 'nothing on stderr');
  const lines = jsonLines(run.stdout);
  const progress = lines.filter((l) => l.type === 'progress');
  // Native progress calls may be dropped under load; the final event is always there.
  t.ok(progress.length >= 1, 'progress events');
  t.match(progress[progress.length - 1], { task: 'gptaq', done: N, total: N, unit: 'columns', percent: 100, finished: true });
  const result = jsonResult(run.stdout);
  t.match(result, { command: 'quantize-linear', out, method: 'gptaq', rows: M, cols: N, groups: 1, fallback: null, vlmqVersion: version });
  t.same(result.options, resolveLinearOptions({ method: 'gptaq', blockSize: 16, alpha: 0.25 }));
  t.type(result.loss, 'number');
  t.match(result.seconds, { read: Number, prepare: Number, factor: Number, sweep: Number, write: Number, total: Number });
});

t.test('a flag that does nothing with the method is a warning, not an error', async (t) => {
  const run = await runCli(['quantize-linear', '--in', IN, '--out', join(dir, 'out-warn.safetensors'), '--method', 'gptq', '--alpha', '0.5']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stderr, /^vlmq: warning: --alpha has no effect with --method gptq$/m);
});

t.test('progress and logs go to stderr, the summary to stdout', async (t) => {
  const run = await runCli(['quantize-linear', '--in', IN, '--out', join(dir, 'out-streams.safetensors')]);
  t.equal(run.code, 0);
  t.match(run.stderr, /^read .*layer\.safetensors: weight BF16 \[24, 64\], hessian F32 \[64, 64\]$/m);
  t.match(run.stderr, /^gptq: done \(64 columns\) in /m);
  t.notMatch(run.stdout, /gptq: done/);
  t.match(run.stdout, /^output: +.*out-streams\.safetensors/m);
});

// --- errors ------------------------------------------------------------------------------

/** Runs quantize-linear expecting exit 2 and no OUT file; returns stderr. */
async function usageError(t: Test, args: string[], out: string): Promise<string> {
  const run = await runCli(['quantize-linear', ...args]);
  t.equal(run.code, 2, `exit 2: ${run.stderr}`);
  t.equal(run.stdout, '');
  t.match(run.stderr, /^vlmq: /);
  const left = (await readdir(dir)).filter((name) => name.startsWith(out.split('/').pop()!));
  t.same(left, [], 'no OUT (nor a temporary sibling) is left');
  return run.stderr;
}

t.test('bad flag values exit 2 naming the flag', async (t) => {
  const out = join(dir, 'never.safetensors');
  const base = ['--in', IN, '--out', out];
  t.match(await usageError(t, [...base, '--bits', '5'], out), /^vlmq: --bits: expected one of 2, 3, 4, 8 but received 5$/m);
  t.match(await usageError(t, [...base, '--group-size', '0'], out), /^vlmq: --group-size: expected -1 \(per channel\) or a positive integer but received 0$/m);
  t.match(await usageError(t, [...base, '--bits', 'four'], out), /^vlmq: --bits: expected an integer but received "four"$/m);
  t.match(await usageError(t, [...base, '--method', 'awq'], out), /^vlmq: --method: expected one of rtn, gptq, gptaq but received "awq"$/m);
  t.match(await usageError(t, [...base, '--method', 'rtn', '--act-order'], out), /^vlmq: --act-order: expected false with --method rtn/m);
  t.match(await usageError(t, [...base, '--static-groups'], out), /^vlmq: --static-groups: expected false when --group-size is -1/m);
  t.match(await usageError(t, [...base, '--threads', '0'], out), /^vlmq: --threads: expected an integer in \[1, 1024\] but received 0$/m);
});

t.test('unknown flags, missing values and missing --in/--out exit 2 naming the flag', async (t) => {
  const out = join(dir, 'never.safetensors');
  const unknown = await usageError(t, ['--in', IN, '--out', out, '--bitz', '4'], out);
  t.match(unknown, /^vlmq: unknown option --bitz for 'quantize-linear' \(did you mean --bits\?\)$/m);
  t.match(unknown, /Run 'vlmq quantize-linear --help' for usage\./);
  t.match(await usageError(t, ['--in', IN, '--out', out, '--bits'], out), /^vlmq: --bits: expected a value/m);
  t.match(await usageError(t, ['--in', IN, '--out', out, '--bits', '--sym'], out), /^vlmq: --bits: expected a value \(N\) but found --sym$/m);
  t.match(await usageError(t, ['--out', out], out), /^vlmq: --in: required$/m);
  t.match(await usageError(t, ['--in', IN, '--out', IN], out), /^vlmq: --out: must name a different file than --in$/m);
  t.match(await usageError(t, ['--in', IN, '--out', join(dir, 'no-such-dir', 'x.safetensors')], out), /^vlmq: --out: directory .*no-such-dir does not exist$/m);
});

t.test('input problems exit 2 naming the file and the tensor', async (t) => {
  const out = join(dir, 'never.safetensors');
  const weight = input.get('weight')!;
  const hessian = input.get('hessian')!;
  const write = async (name: string, tensors: { name: string; tensor: Tensor }[]) => {
    const path = join(dir, name);
    await writeSafetensors(path, tensors.map(({ name, tensor }) => ({ name, dtype: tensor.dtype, shape: tensor.shape, data: tensor.data })));
    return path;
  };
  const missing = join(dir, 'missing.safetensors');
  t.match(await usageError(t, ['--in', missing, '--out', out], out), `vlmq: ${missing}: no such file (given as --in)`);

  const weightOnly = await write('weight-only.safetensors', [{ name: 'weight', tensor: weight }]);
  t.match(await usageError(t, ['--in', weightOnly, '--out', out], out), `vlmq: ${weightOnly}: tensor 'hessian' is missing: --method gptq needs the Hessian [${N}, ${N}] F32 (it holds 'weight')`);
  const noDxxt = await write('no-dxxt.safetensors', [{ name: 'weight', tensor: weight }, { name: 'hessian', tensor: hessian }]);
  t.match(await usageError(t, ['--in', noDxxt, '--out', out, '--method', 'gptaq'], out), `vlmq: ${noDxxt}: tensor 'dxxt' is missing: --method gptaq needs GPTAQ's cross term [${N}, ${N}] F32`);

  const f16 = { dtype: 'F16', shape: [N, N], data: new Uint16Array(N * N) } as const;
  const halfHessian = await write('f16-hessian.safetensors', [{ name: 'weight', tensor: weight }, { name: 'hessian', tensor: f16 }]);
  t.match(await usageError(t, ['--in', halfHessian, '--out', out], out), `vlmq: ${halfHessian}: tensor 'hessian': expected dtype F32, found F16`);

  const small = { dtype: 'F32', shape: [N / 2, N / 2], data: new Float32Array((N * N) / 4) } as const;
  const badShape = await write('bad-shape.safetensors', [{ name: 'weight', tensor: weight }, { name: 'hessian', tensor: small }]);
  t.match(await usageError(t, ['--in', badShape, '--out', out], out), `vlmq: ${badShape}: tensor 'hessian': expected shape [${N}, ${N}] (weight has ${N} input columns), found [${N / 2}, ${N / 2}]`);

  const intWeight = await write('int-weight.safetensors', [{ name: 'weight', tensor: { dtype: 'I32', shape: [M, N], data: new Int32Array(M * N) } }]);
  t.match(await usageError(t, ['--in', intWeight, '--out', out, '--method', 'rtn'], out), `vlmq: ${intWeight}: tensor 'weight': expected dtype F32, F16, BF16, found I32`);

  const notSafetensors = join(dir, 'text.safetensors');
  await writeFile(notSafetensors, 'this is not a safetensors file at all');
  t.match(await usageError(t, ['--in', notSafetensors, '--out', out], out), `vlmq: ${notSafetensors}: header length`);

  // rtn needs no statistics: the weight-only file is enough.
  const rtn = await runCli(['quantize-linear', '--in', weightOnly, '--out', join(dir, 'out-rtn-only.safetensors'), '--method', 'rtn']);
  t.equal(rtn.code, 0, rtn.stderr);
});

t.test('an existing OUT is replaced atomically; a failed run leaves it untouched', async (t) => {
  const out = join(dir, 'replace.safetensors');
  await writeFile(out, 'old contents');
  const weightOnly = join(dir, 'replace-in.safetensors');
  const weight = input.get('weight')!;
  await writeSafetensors(weightOnly, [{ name: 'weight', dtype: weight.dtype, shape: weight.shape, data: weight.data }]);
  const failed = await runCli(['quantize-linear', '--in', weightOnly, '--out', out]);
  t.equal(failed.code, 2);
  t.equal(await readFile(out, 'utf8'), 'old contents', 'a failed run leaves the old OUT as it was');
  const run = await runCli(['quantize-linear', '--in', IN, '--out', out, '--method', 'rtn']);
  t.equal(run.code, 0, run.stderr);
  const { tensors } = await loadSafetensors(out);
  t.ok(tensors.has('dequantized'), 'OUT now holds the result');
  t.same((await readdir(dir)).filter((name) => name.startsWith('replace.safetensors.tmp-')), [], 'no temporary file is left');
});

t.test('a Hessian that no damping makes positive definite: RTN fallback, reported, exit 0', async (t) => {
  const n = 16;
  // unit diagonal, every off-diagonal entry 2: eigenvalues 2n − 1 and −1, far beyond what 10% damping repairs
  const hessian = new Float32Array(n * n).fill(2);
  for (let i = 0; i < n; i++) hessian[i * n + i] = 1;
  const weight = Float32Array.from({ length: 4 * n }, (_, i) => Math.sin(i));
  const path = join(dir, 'indefinite.safetensors');
  await writeSafetensors(path, [{ name: 'weight', dtype: 'F32', shape: [4, n], data: weight }, { name: 'hessian', dtype: 'F32', shape: [n, n], data: hessian }]);
  const out = join(dir, 'out-indefinite.safetensors');
  const run = await runCli(['quantize-linear', '--in', path, '--out', out]);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^fallback: +rtn: the damped Hessian is not positive definite at any damping tried \(tried \d+ values from 0\.01 to 0\.1\)$/m);
  t.match(run.stderr, /^vlmq: warning: the damped Hessian is not positive definite .*; the layer was quantized with RTN instead$/m);
  const { metadata, tensors } = await loadSafetensors(out);
  t.match(JSON.parse(metadata?.fallback ?? 'null'), { method: 'rtn', reason: /not positive definite/ });
  const direct = await quantizeLinear({ dtype: 'F32', shape: [4, n], data: weight }, { hessian }, {});
  t.ok(direct.fallback, 'quantizeLinear falls back too');
  t.ok(bytesOf(tensors.get('dequantized')!.data).equals(bytesOf(direct.dequantized)));
});
