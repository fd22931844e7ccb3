// vlmq quantize: tiny checkpoints of every architecture (both layouts, sharded input) exported as
// gptq, gptq_v2 and fake-quant; each GPTQ output verifies against the fake-quant one with
// `vlmq verify`; the configs carry the documented quantization_config; auxiliary files are
// copied; --out is never half-written (overwrite, interruption, a failure mid-export); the
// calibrated methods, bad flags and corrupted models exit 2 naming the flag, file or tensor.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { f32ToBf16, loadSafetensors, readSafetensorsHeader, writeSafetensors } from '../../lib/index.js';
import { CORRUPTION_KINDS, corruptCheckpoint, writeTinyCheckpoint, type TinyCheckpoint, type TinyCheckpointOptions } from '../fixtures/checkpoints.js';
import { parseByteSize, quantizeCommand } from '../../lib/cli/quantize.js';
import { cliEntry, type CliRun, commandError, jsonLines, jsonResult, repoRoot, runCli } from '../helpers/cli.js';

type Json = any;

const dir = t.testdir({});
const version = (JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const INDEX = 'model.safetensors.index.json';

async function readJson(path: string): Promise<Json> {
  return JSON.parse(await readFile(path, 'utf8'));
}

/** Every tensor of a checkpoint directory → dtype, shape and shard, from the headers. */
async function tensorsOf(checkpoint: string): Promise<Map<string, { dtype: string; shape: readonly number[]; file: string }>> {
  const files = (await readdir(checkpoint)).filter((f) => f.endsWith('.safetensors')).sort();
  const tensors = new Map<string, { dtype: string; shape: readonly number[]; file: string }>();
  for (const file of files) {
    for (const [name, info] of (await readSafetensorsHeader(join(checkpoint, file))).tensors) tensors.set(name, { dtype: info.dtype, shape: info.shape, file });
  }
  return tensors;
}

/** Files the fixture wrote besides config.json and the weights: what the export must copy. */
function auxiliaryFiles(ck: TinyCheckpoint): string[] {
  return ck.files.filter((f) => f !== 'config.json' && f !== INDEX && !f.endsWith('.safetensors'));
}

/** Nothing but `names` in `parent`: no half-written output, no temporary or old directories. */
function leftovers(parent: string): string[] {
  return readdirSync(parent).filter((name) => /\.(tmp|old)-/.test(name));
}

// --- exports of every architecture, verified against the fake-quant export ------------------

interface Case {
  name: string;
  fixture: TinyCheckpointOptions;
  /** Quantizer (and sharding) flags shared by the three exports. */
  flags: string[];
  bits: number;
  groupSize: number;
  sym: boolean;
  /** Flags of the GPTQ exports: [] relies on the default format. */
  gptq: string[];
  gptqV2: string[];
  /** Extra flags of the fake-quant export and the dtype its linears get. */
  fakeQuant: string[];
  fakeQuantDtype: string | null;
  /** The GPTQ export is sharded (several shards + index). */
  sharded: boolean;
}

const CASES: Case[] = [
  {
    name: 'Qwen2-VL, original layout, BF16, 4-bit sym g32',
    fixture: { architecture: 'qwen2_vl', layout: 'original', dtype: 'BF16', seed: 1 },
    flags: ['--bits', '4', '--group-size', '32', '--sym'],
    bits: 4, groupSize: 32, sym: true,
    gptq: [], gptqV2: ['--format', 'gptq_v2'], fakeQuant: [], fakeQuantDtype: null, sharded: false,
  },
  {
    name: 'Qwen2.5-VL, transformers-4.52 layout, F16, 3-bit asym g16',
    fixture: { architecture: 'qwen2_5_vl', layout: 'transformers-4.52', dtype: 'F16', seed: 2 },
    flags: ['--bits', '3', '--group-size', '16'],
    bits: 3, groupSize: 16, sym: false,
    gptq: ['--format', 'gptq'], gptqV2: [], fakeQuant: ['--fake-quant-dtype', 'f32'], fakeQuantDtype: 'F32', sharded: false,
  },
  {
    name: 'LLaVA-OneVision, original layout, F32 in 3 shards, 8-bit sym per channel, 40KB shards',
    fixture: { architecture: 'llava_onevision', layout: 'original', dtype: 'F32', shards: 3, seed: 3 },
    flags: ['--bits', '8', '--group-size', '-1', '--sym', '--max-shard-size', '40KB'],
    bits: 8, groupSize: -1, sym: true,
    gptq: ['--format', 'gptq'], gptqV2: ['--format', 'gptq_v2'], fakeQuant: ['--fake-quant-dtype', 'bf16'], fakeQuantDtype: 'BF16', sharded: true,
  },
];

for (const c of CASES) {
  t.test(`${c.name}: gptq, gptq_v2 and fake-quant exports that verify against each other`, async (t) => {
    const base = join(dir, `case-${CASES.indexOf(c)}`);
    await mkdir(base);
    const ck = await writeTinyCheckpoint(join(base, 'model'), c.fixture);
    const out = { gptq: join(base, 'gptq'), gptq_v2: join(base, 'gptq_v2'), fq: join(base, 'fq') };
    const [gptq, gptqV2, fq] = await Promise.all([
      runCli(['quantize', '--model', ck.dir, '--out', out.gptq, ...c.flags, ...c.gptq]),
      runCli(['quantize', '--model', ck.dir, '--out', out.gptq_v2, ...c.flags, ...c.gptqV2, '--json']),
      runCli(['quantize', '--model', ck.dir, '--out', out.fq, ...c.flags, '--format', 'fake-quant', ...c.fakeQuant]),
    ]);
    t.equal(gptq.code, 0, gptq.stderr);
    t.equal(gptqV2.code, 0, gptqV2.stderr);
    t.equal(fq.code, 0, fq.stderr);
    if (gptq.code !== 0 || gptqV2.code !== 0 || fq.code !== 0) return;

    await checkHumanOutput(t, c, ck, gptq, 'gptq');
    await checkJsonOutput(t, c, ck, gptqV2, out.gptq_v2);
    for (const format of ['gptq', 'gptq_v2'] as const) await checkGptqCheckpoint(t, c, ck, out[format], format);
    await checkFakeQuant(t, c, ck, out.fq);
    t.match(fq.stderr, /fake-quant: dequantized weights in the original layout/);
    t.match(fq.stdout, new RegExp(`^format: +fake-quant \\(${c.fakeQuantDtype ?? 'original dtype'}\\)$`, 'm'));

    const verified = await Promise.all([
      runCli(['verify', out.gptq, '--against', out.fq]),
      runCli(['verify', out.gptq_v2, '--against', out.fq]),
    ]);
    for (const run of verified) {
      t.equal(run.code, 0, `${run.stdout}${run.stderr}`);
      t.match(run.stdout, /^result: +ok, no problems found$/m, 'verify says so');
      t.match(run.stdout, new RegExp(`^comparison: +\\d+ tensors compared with .*, 0 mismatched$`, 'm'));
      t.match(run.stdout, new RegExp(`^linears: +${ck.quantizable.length} quantized linears`, 'm'));
      t.equal(run.stderr, '');
    }
  });
}

/** The summary on stdout, the loader table and progress on stderr. */
async function checkHumanOutput(t: Test, c: Case, ck: TinyCheckpoint, run: CliRun, format: string): Promise<void> {
  const config = ck.config as Json;
  const layers = config.text_config?.num_hidden_layers ?? config.num_hidden_layers;
  t.match(run.stdout, new RegExp(`^model: +${escape(ck.dir)} \\(.*, ${c.fixture.layout} layout, ${layers} layers, ${ck.quantizable.length} linears to quantize\\)$`, 'm'));
  t.match(run.stdout, new RegExp(`^settings: +rtn, ${c.bits}-bit, ${c.sym ? 'symmetric' : 'asymmetric'}, ${c.groupSize === -1 ? 'per channel' : `group size ${c.groupSize}`}$`, 'm'));
  t.match(run.stdout, new RegExp(`^format: +${format} `, 'm'));
  t.match(run.stdout, /^output: +\S/m);
  t.match(run.stdout, /^files: +.*config\.json, quantize_config\.json$/m);
  t.match(run.stdout, /^size: +[\d.]+ [KM]iB of tensors, [\d.]+ [KM]iB on disk$/m);
  t.match(run.stdout, new RegExp(`^copied: +${auxiliaryFiles(ck).length ? '' : 'none'}`, 'm'));
  for (const file of auxiliaryFiles(ck)) t.match(run.stdout, new RegExp(`^copied: .*\\b${escape(file)}\\b`, 'm'), `summary lists ${file}`);
  t.match(run.stdout, /^seconds: +load [\d.]+s, export [\d.]+s; total [\d.]+s$/m);
  // Loader table first, then progress.
  const table = run.stderr.indexOf('vLLM (Marlin / auto_gptq)');
  const done = run.stderr.search(/^export: done \(\d+ tensors\) in /m);
  t.ok(table >= 0 && done > table, 'the loader table comes before the progress');
  t.match(run.stderr, /^ {2}(yes|no ) {2}GPTQModel {2,}/m);
  t.match(run.stderr, new RegExp(`^ {2}${c.sym && (c.bits === 4 || c.bits === 8) ? 'yes' : 'no '} {2}vLLM \\(Marlin`, 'm'), 'Marlin only for 4/8-bit sym');
}

/** --json: the loader table as an event, progress events, then a result with the export report. */
async function checkJsonOutput(t: Test, c: Case, ck: TinyCheckpoint, run: CliRun, outDir: string): Promise<void> {
  const lines = jsonLines(run.stdout);
  const result = jsonResult(run.stdout) as Json;
  const compat = lines.find((l) => l.type === 'compatibility') as Json;
  t.match(compat, { format: 'gptq_v2', loaders: Array });
  t.same(compat.loaders.map((l: Json) => l.loader), result.export.compatibility.map((l: Json) => l.loader));
  const progress = lines.filter((l) => l.type === 'progress') as Json[];
  t.ok(progress.length >= 2, 'progress events');
  t.ok(lines.indexOf(compat) < lines.indexOf(progress[0]), 'the loader table comes before the progress');
  t.ok(progress.every((p, i) => p.task === 'export' && p.unit === 'tensors' && (i === 0 || p.done >= progress[i - 1].done)), 'progress counts tensors written, increasing');
  const last = progress[progress.length - 1];
  t.match(last, { finished: true, percent: 100 });
  t.equal(last.done, last.total);
  t.match(result, {
    type: 'result', command: 'quantize', vlmqVersion: version,
    model: { dir: ck.dir, layers: Number, linears: ck.quantizable.length, layout: c.fixture.layout },
    settings: { method: 'rtn', bits: c.bits, groupSize: c.groupSize, sym: c.sym },
    export: { format: 'gptq_v2', files: Array, tensorBytes: Number, copied: Array, compatibility: Array },
    diskBytes: Number,
    seconds: { load: Number, export: Number, total: Number },
  });
  t.same([...result.export.copied].sort(), auxiliaryFiles(ck).sort(), 'copied lists the auxiliary files');
  t.same([...result.export.files].sort(), (await readdir(outDir)).filter((f) => f.endsWith('.safetensors') || f === INDEX).sort(), 'files lists the weight files written');
  const tensors = await tensorsOf(outDir);
  t.equal(last.total, tensors.size, 'one progress step per tensor');
}

/** config.json / quantize_config.json, dtypes, the tensor set, shards and copied files. */
async function checkGptqCheckpoint(t: Test, c: Case, ck: TinyCheckpoint, outDir: string, format: 'gptq' | 'gptq_v2'): Promise<void> {
  const config = await readJson(join(outDir, 'config.json'));
  const q = config.quantization_config;
  t.match(q, {
    bits: c.bits, group_size: c.groupSize, desc_act: false, sym: c.sym, quant_method: 'gptq', checkpoint_format: format,
    static_groups: false, true_sequential: true, damp_percent: Number, lm_head: false, pack_dtype: 'int32',
  }, `${format}: quantization_config`);
  t.ok(Array.isArray(q.meta?.quantizer) && q.meta.quantizer.some((s: string) => s.startsWith('vlmq')), `${format}: meta.quantizer names vlmq`);
  t.notOk('is_marlin_format' in q, 'no is_marlin_format');
  t.same(await readJson(join(outDir, 'quantize_config.json')), q, `${format}: quantize_config.json equals quantization_config`);
  t.equal(config.torch_dtype, 'float16', `${format}: torch_dtype float16`);
  if (config.text_config?.torch_dtype !== undefined) t.equal(config.text_config.torch_dtype, 'float16', 'text_config.torch_dtype float16');
  const { quantization_config: _q, torch_dtype: _d, ...rest } = config;
  const { torch_dtype: _o, ...original } = ck.config;
  if (rest.text_config) rest.text_config = { ...rest.text_config, torch_dtype: (ck.config as Json).text_config?.torch_dtype };
  t.same(rest, original, `${format}: every other config field as in the model`);

  const tensors = await tensorsOf(outDir);
  const quantized = new Set(ck.quantizable);
  for (const module of ck.quantizable) {
    for (const suffix of ['qweight', 'qzeros', 'g_idx']) t.equal(tensors.get(`${module}.${suffix}`)?.dtype, 'I32', `${module}.${suffix} I32`);
    t.equal(tensors.get(`${module}.scales`)?.dtype, 'F16', `${module}.scales F16`);
    t.notOk(tensors.has(`${module}.weight`), `${module}.weight is gone`);
  }
  for (const [name, info] of ck.tensors) {
    const module = name.replace(/\.(weight|bias)$/, '');
    if (quantized.has(module) && name.endsWith('.weight')) continue;
    t.match(tensors.get(name), { dtype: 'F16', shape: info.shape }, `${name} copied as F16`);
  }
  const shards = (await readdir(outDir)).filter((f) => f.endsWith('.safetensors'));
  if (c.sharded) {
    t.ok(shards.length >= 3, `${format}: several shards (${shards.length})`);
    const index = await readJson(join(outDir, INDEX));
    t.same(new Set(Object.keys(index.weight_map)), new Set(tensors.keys()), 'the index lists every tensor');
    for (const [name, info] of tensors) t.equal(index.weight_map[name], info.file, `index: ${name}`);
    t.ok(shards.every((s) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(s)), 'shard names');
  } else {
    t.same(shards, ['model.safetensors']);
    t.notOk(existsSync(join(outDir, INDEX)));
  }
  for (const file of auxiliaryFiles(ck)) {
    t.same(await readFile(join(outDir, file)), await readFile(join(ck.dir, file)), `${file} copied unchanged`);
  }
}

async function checkFakeQuant(t: Test, c: Case, ck: TinyCheckpoint, outDir: string): Promise<void> {
  const config = await readJson(join(outDir, 'config.json'));
  t.notOk('quantization_config' in config, 'fake-quant: no quantization_config');
  t.notOk(existsSync(join(outDir, 'quantize_config.json')));
  const torchDtype = { BF16: 'bfloat16', F16: 'float16', F32: 'float32' }[c.fakeQuantDtype ?? ck.dtype];
  t.equal(config.torch_dtype, torchDtype, 'fake-quant: torch_dtype');
  const tensors = await tensorsOf(outDir);
  t.same(new Set(tensors.keys()), new Set(ck.tensors.keys()), 'fake-quant: the original tensor names');
  const quantized = new Set(ck.quantizable.map((m) => `${m}.weight`));
  for (const [name, info] of ck.tensors) {
    const dtype = quantized.has(name) ? (c.fakeQuantDtype ?? ck.dtype) : ck.dtype;
    t.match(tensors.get(name), { dtype, shape: info.shape }, `fake-quant ${name}`);
  }
  for (const file of auxiliaryFiles(ck)) t.ok(existsSync(join(outDir, file)), `fake-quant: ${file} copied`);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// --- --out: overwrite, interruption, failure mid-export ---------------------------------------

/** The command in this process: the error it throws (main.ts turns a UsageError into exit 2), or null. */
const runInProcess = (argv: string[]) => commandError(quantizeCommand, argv);

const small = await writeTinyCheckpoint(join(dir, 'small'), { architecture: 'qwen2_vl', seed: 7 });

t.test('--out: a non-empty directory needs --overwrite, which replaces a checkpoint completely; an empty one is used', async (t) => {
  const base = join(dir, 'overwrite');
  const target = join(base, 'out');
  await mkdir(target, { recursive: true });
  await writeFile(join(target, 'stale.txt'), 'old');
  const refused = await runCli(['quantize', '--model', small.dir, '--out', target, '--sym']);
  t.equal(refused.code, 2);
  t.match(refused.stderr, /^vlmq: --out: .* exists and is not empty; pass --overwrite to replace it$/m);
  t.same(readdirSync(target), ['stale.txt'], 'left untouched');
  const notCheckpoint = await runCli(['quantize', '--model', small.dir, '--out', target, '--sym', '--overwrite']);
  t.equal(notCheckpoint.code, 2, 'a folder that is not a checkpoint is not replaced, even with --overwrite');
  t.match(notCheckpoint.stderr, /^vlmq: --out: .*out is not a checkpoint directory \(no config\.json; it holds stale\.txt\)/m);
  t.same(readdirSync(target), ['stale.txt'], 'left untouched');
  await writeFile(join(target, 'config.json'), '{}');
  const replaced = await runCli(['quantize', '--model', small.dir, '--out', target, '--sym', '--overwrite']);
  t.equal(replaced.code, 0, replaced.stderr);
  t.notOk(existsSync(join(target, 'stale.txt')), 'the old content is gone');
  t.ok(existsSync(join(target, 'model.safetensors')));
  t.same(leftovers(base), [], 'no temporary or old directory');
  const empty = join(base, 'empty');
  await mkdir(empty);
  const intoEmpty = await runCli(['quantize', '--model', small.dir, '--out', empty, '--format', 'fake-quant']);
  t.equal(intoEmpty.code, 0, intoEmpty.stderr);
  t.ok(existsSync(join(empty, 'model.safetensors')));
  t.match(await runInProcess(['--model', small.dir, '--out', join(target, 'config.json')]), { name: 'UsageError', message: /^--out: .*config\.json exists and is a file, not a directory$/ });
  t.match(await runInProcess(['--model', small.dir, '--out', small.dir, '--overwrite']), { name: 'UsageError', message: /^--out: must name a different directory than --model, and not one that contains it$/ });
});

t.test('an --out whose parent does not exist: exit 2, nothing created', async (t) => {
  const base = join(dir, 'no-parent');
  await mkdir(base);
  const run = await runCli(['quantize', '--model', small.dir, '--out', join(base, 'missing', 'out')]);
  t.equal(run.code, 2);
  t.match(run.stderr, /^vlmq: --out: directory .*missing does not exist/m);
  t.same(readdirSync(base), []);
});

t.test('Ctrl-C while the export is writing: exit 130, no output directory, no temporary directory', async (t) => {
  const base = join(dir, 'interrupt');
  await mkdir(base);
  const model = await writeTinyCheckpoint(join(base, 'model'), { architecture: 'qwen2_vl', layers: 8, hidden: 256, intermediate: 1024, vocab: 1024 });
  const target = join(base, 'out');
  // One tensor per shard: many files, each written and synced, so the export is still running when the signal lands.
  const env: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: undefined, VLMQ_DEBUG: undefined, CI: undefined };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  const child = spawn(process.execPath, ['--import', 'tsx', cliEntry, 'quantize', '--model', model.dir, '--out', target, '--max-shard-size', '1', '--json'], { cwd: repoRoot, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let duringExport: string[] | null = null;
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (duringExport === null && /"type":"progress".*"finished":false/.test(stdout)) {
      duringExport = readdirSync(base);
      child.kill('SIGINT');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  t.ok(duringExport !== null, 'progress was reported before the signal');
  t.ok(duringExport!.some((name) => name.startsWith('out.tmp-')), `the export was writing its temporary directory (${duringExport!.join(', ')})`);
  t.equal(code, 130, stderr);
  t.match(stderr, /^vlmq: interrupted$/m);
  t.match(jsonLines(stdout).at(-1), { type: 'error', exitCode: 130 });
  t.same(readdirSync(base).sort(), ['model'], 'no output, no temporary directory');
});

t.test('a failure in the middle of the export (a value F16 cannot hold) leaves nothing behind, exit 1', async (t) => {
  const base = join(dir, 'overflow');
  const model = await writeTinyCheckpoint(join(base, 'model'), { architecture: 'qwen2_vl', seed: 9 });
  // The last non-quantized tensor the export writes gets a value beyond the float16 range (fine in BF16).
  const file = join(model.dir, 'model.safetensors');
  const { metadata, tensors } = await loadSafetensors(file);
  const quantized = new Set(model.quantizable.map((m) => `${m}.weight`));
  const victim = [...tensors.keys()].filter((name) => !quantized.has(name)).at(-1)!;
  (tensors.get(victim)!.data as Uint16Array)[0] = f32ToBf16(1e5);
  await writeSafetensors(file, [...tensors].map(([name, x]) => ({ name, dtype: x.dtype, shape: x.shape, data: x.data })), metadata ? { metadata } : {});
  const target = join(base, 'out');
  const run = await runCli(['quantize', '--model', model.dir, '--out', target, '--sym', '--json']);
  t.equal(run.code, 1, run.stderr);
  t.match(run.stderr, new RegExp(`^vlmq: ${escape(victim)}: element 0 = \\d+ does not fit in float16`, 'm'));
  t.ok(jsonLines(run.stdout).some((l) => l.type === 'progress' && (l.done as number) > 0), 'tensors had been written');
  t.same(readdirSync(base).sort(), ['model'], 'no output, no temporary directory');
});

// --- methods, flags, corrupted models ------------------------------------------------------------

t.test('--method gptq, gptaq and vlmq without --calib: exit 2, naming --calib', async (t) => {
  const target = join(dir, 'method-out');
  const [human, json] = await Promise.all([
    runCli(['quantize', '--model', small.dir, '--out', target, '--method', 'gptq']),
    runCli(['quantize', '--model', small.dir, '--out', target, '--method', 'gptq', '--json']),
  ]);
  t.equal(human.code, 2);
  t.match(human.stderr, /^vlmq: --method gptq: needs calibration data: --calib FILE .*or --method rtn/m);
  t.equal(human.stdout, '');
  t.equal(json.code, 2);
  t.match(jsonLines(json.stdout).at(-1), { type: 'error', exitCode: 2, code: 'ERR_VLMQ_USAGE', message: /^--method gptq: / });
  for (const method of ['gptaq', 'vlmq']) {
    t.match(await runInProcess(['--model', small.dir, '--out', target, '--method', method]), { name: 'UsageError', message: new RegExp(`^--method ${method}: needs calibration data: --calib FILE`) }, method);
  }
  t.notOk(existsSync(target));
});

t.test('bad flags: exit 2 naming the flag', async (t) => {
  const target = join(dir, 'flags-out');
  const spawned: [string[], RegExp][] = [
    [['--out', target], /^vlmq: --model: required/m],
    [['--model', join(dir, 'nowhere'), '--out', target], /^vlmq: .*nowhere: no such directory \(given as --model\)/m],
  ];
  const runs = await Promise.all(spawned.map(([args]) => runCli(['quantize', ...args])));
  for (const [i, [args, message]] of spawned.entries()) {
    t.equal(runs[i].code, 2, args.join(' '));
    t.match(runs[i].stderr, message, args.join(' '));
  }
  const cases: [string[], RegExp][] = [
    [['--model', small.dir], /^--out: required/],
    [['--model', small.dir, '--out', target, '--max-shard-size', '5XB'], /^--max-shard-size: expected a size such as 500MB, 5GB, 4GiB or a number of bytes but received "5XB"/],
    [['--model', small.dir, '--out', target, '--max-shard-size', '0'], /^--max-shard-size: expected a size of at least 1 byte/],
    [['--model', small.dir, '--out', target, '--format', 'awq'], /^--format: expected one of gptq, gptq_v2, fake-quant but received "awq"/],
    [['--model', small.dir, '--out', target, '--fake-quant-dtype', 'f8'], /^--fake-quant-dtype: expected one of original, bf16, f16, f32/],
    [['--model', small.dir, '--out', target, '--bits', '5'], /^--bits: expected one of 2, 3, 4, 8 but received 5/],
    [['--model', small.dir, '--out', target, '--group-size', '0'], /^--group-size: /],
    [['--model', small.dir, '--out', target, '--method', 'awq'], /^--method: expected one of rtn, gptq, gptaq, vlmq/],
    [['--model', small.dir, '--out', target, '--act-ordr'], /^unknown option --act-ordr for 'quantize'/],
    [['--model', small.dir, '--out', target, '--calib', join(dir, 'nothing.safetensors')], /nothing\.safetensors: no such file \(given as --calib\)/],
    [['--model', small.dir, '--out', target, '--calib', small.dir], /: is a directory, not a regular file \(given as --calib\)/],
    [['--model', small.dir, '--out', target, '--method', 'gptq', '--base', 'gptaq'], /^--base: expected gptq \(only vlmq chooses a --base\) but received "gptaq"/],
    [['--model', small.dir, '--out', target, '--base', 'awq'], /^--base: expected one of gptq, gptaq but received "awq"/],
    [['--model', small.dir, '--out', target, '--importance-norm', 'l3'], /^--importance-norm: expected one of l1, l2/],
    [['--model', small.dir, '--out', target, '--importance-power', '3'], /^--importance-power: expected one of 1, 2/],
    [['--model', small.dir, '--out', target, '--importance-fallback', 'zero'], /^--importance-fallback: expected one of uniform, rtn-probe/],
    [['--model', small.dir, '--out', target, '--memory', 'lots'], /^--memory: expected a size such as/],
    [['--model', small.dir, '--out', target, '--batch-tokens', '0'], /^--batch-tokens: expected a positive integer but received 0/],
    [['--model', small.dir, '--out', target, '--batch-tokens', '1.5'], /^--batch-tokens: expected an integer but received "1.5"/],
    [['--model', join(small.dir, 'config.json'), '--out', target], /config\.json: is a file, not a checkpoint directory \(given as --model\)/],
  ];
  for (const [args, message] of cases) t.match(await runInProcess(args), { name: 'UsageError', message }, args.join(' '));
  t.notOk(existsSync(target));
});

t.test('--max-shard-size takes bytes and decimal or binary units', async (t) => {
  t.equal(parseByteSize('--max-shard-size', '5GB'), 5e9);
  t.equal(parseByteSize('--max-shard-size', '500MB'), 5e8);
  t.equal(parseByteSize('--max-shard-size', '1.5kb'), 1500);
  t.equal(parseByteSize('--max-shard-size', '4GiB'), 4 * 2 ** 30);
  t.equal(parseByteSize('--max-shard-size', '123'), 123);
  t.equal(parseByteSize('--max-shard-size', '64 KiB'), 65536);
  for (const bad of ['', 'GB', '-1GB', '1e3', '0.1B']) t.throws(() => parseByteSize('--max-shard-size', bad), { code: 'ERR_VLMQ_USAGE' }, JSON.stringify(bad));
});

t.test('--fake-quant-dtype without --format fake-quant is a warning', async (t) => {
  const target = join(dir, 'dtype-warning');
  const run = await runCli(['quantize', '--model', small.dir, '--out', target, '--fake-quant-dtype', 'f32']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stderr, /^vlmq: warning: --fake-quant-dtype has no effect with --format gptq_v2$/m);
  t.match(run.stderr, /^ {2}no {3}vLLM \(Marlin/m, 'asymmetric: not for current vLLM');
  t.match(run.stderr, /^vlmq: warning: current vLLM will not load this checkpoint/m);
});

t.test('corrupted models: exit 2 with a message naming the file or tensor, nothing written', async (t) => {
  const base = join(dir, 'corrupt');
  const made = await Promise.all(CORRUPTION_KINDS.map(async (kind) => {
    const model = join(base, kind);
    await writeTinyCheckpoint(model, { architecture: 'qwen2_vl', shards: kind === 'index-points-to-missing-tensor' || kind === 'missing-shard' ? 2 : 1, extraFiles: false });
    return { kind, model, corruption: await corruptCheckpoint(model, kind) };
  }));
  const runs = await Promise.all(made.map(({ kind, model }) => runCli(['quantize', '--model', model, '--out', join(base, `${kind}-out`)])));
  for (const [i, { kind, corruption }] of made.entries()) {
    const run = runs[i];
    t.equal(run.code, 2, `${kind}: ${run.stderr}`);
    t.equal(run.stdout, '', kind);
    t.match(run.stderr, /^vlmq: /, kind);
    t.match(run.stderr, corruption.tensor ?? corruption.file, `${kind} (${corruption.description}): the message names ${corruption.tensor ?? corruption.file}`);
    t.notOk(existsSync(join(base, `${kind}-out`)), `${kind}: nothing written`);
  }
  t.same(leftovers(base), []);
});
