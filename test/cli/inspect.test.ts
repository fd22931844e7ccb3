// vlmq inspect: original models of every architecture (both layouts, sharded or not), a GPTQ and a
// fake-quant export, each described with the right architecture, dimensions and parameter counts —
// the expected numbers computed here from the fixture's config and tensor shapes, not by inspect's
// code — and the quantization block only for GPTQ; a missing or malformed DIR exits 2, and so does
// a checkpoint quantize would refuse (a wrong dtype or shape, a missing, renamed or extra tensor, a
// config that disagrees with the tensors), after describing it and listing every problem.
import t, { type Test } from 'tap';
import { readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel, quantize, readSafetensorsHeader } from '../../lib/index.js';
import { loadSafetensors } from '../../lib/io/safetensors-reader.js';
import { writeSafetensors } from '../../lib/io/safetensors-writer.js';
import { humanCount, inspectCommand } from '../../lib/cli/inspect.js';
import { formatBytes } from '../../lib/cli/output.js';
import { byteSize } from '../../lib/tensor.js';
import { corruptCheckpoint, writeTinyCheckpoint, type TinyCheckpoint, type TinyCheckpointOptions } from '../fixtures/checkpoints.js';
import { type CliRun, commandError, jsonLines, jsonResult, repoRoot, runCli } from '../helpers/cli.js';

type Json = any;

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const dir = t.testdir({});
const version = (JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

const MODELS: [string, TinyCheckpointOptions][] = [
  ['qwen2-vl', { architecture: 'qwen2_vl', layout: 'original', seed: 11 }],
  ['qwen2.5-vl', { architecture: 'qwen2_5_vl', layout: 'transformers-4.52', shards: 2, dtype: 'F16', layers: 3, seed: 12 }],
  ['llava-ov', { architecture: 'llava_onevision', layout: 'original', dtype: 'F32', seed: 13, vision: { depth: 3 } }],
  ['llava-ov-4.52', { architecture: 'llava_onevision', layout: 'transformers-4.52', seed: 14, tieWordEmbeddings: true }],
];
const DISPLAY: Record<string, string> = { qwen2_vl: 'Qwen2-VL', qwen2_5_vl: 'Qwen2.5-VL', llava_onevision: 'LLaVA-OneVision (Qwen2)' };

const models = new Map<string, TinyCheckpoint>();
for (const [name, options] of MODELS) models.set(name, await writeTinyCheckpoint(join(dir, name), options));

// A GPTQ (3-bit, asymmetric, gptq_v2 by default) and a fake-quant export of the LLaVA-OV model, by the library.
const llava = models.get('llava-ov')!;
const GPTQ = join(dir, 'llava-gptq');
const FQ = join(dir, 'llava-fq');
{
  const model = await loadModel(llava.dir);
  const run = await quantize(model, null, { method: 'rtn', bits: 3, groupSize: 16 });
  await run.save(GPTQ);
  await run.save(FQ, { format: 'fake-quant' });
  await model.close();
}

/** Everything inspect should print for a checkpoint made from `ck`, computed from the fixture's own description. */
function expectedOf(ck: TinyCheckpoint) {
  const config = ck.config as Json;
  const text = ck.architecture === 'llava_onevision' ? config.text_config : (config.text_config ?? config);
  const v = config.vision_config;
  const vision = ck.architecture === 'qwen2_vl'
    ? { kind: 'qwen2_vl', depth: v.depth, width: v.embed_dim, heads: v.num_heads }
    : ck.architecture === 'qwen2_5_vl'
      ? { kind: 'qwen2_5_vl', depth: v.depth, width: v.hidden_size, heads: v.num_heads }
      : { kind: 'siglip', depth: v.num_hidden_layers, width: v.hidden_size, heads: v.num_attention_heads };
  let language = 0, total = 0;
  for (const [name, info] of ck.tensors) {
    const n = info.shape.reduce((a, b) => a * b, 1);
    total += n;
    if (name.startsWith(ck.prefixes.text) || name === ck.prefixes.lmHead) language += n;
  }
  return {
    architecture: DISPLAY[ck.architecture],
    layout: ck.layout,
    layers: text.num_hidden_layers,
    hidden: text.hidden_size,
    intermediate: text.intermediate_size,
    heads: text.num_attention_heads,
    kvHeads: text.num_key_value_heads,
    headDim: text.hidden_size / text.num_attention_heads,
    vocab: text.vocab_size,
    tied: config.tie_word_embeddings,
    mrope: ck.architecture === 'llava_onevision' ? null : text.rope_scaling.mrope_section,
    vision,
    parameters: { language, vision: total - language },
  };
}

/** dtype → tensors and bytes, and the files, of a directory on disk (read from the headers). */
async function onDisk(checkpoint: string) {
  const names = (await readdir(checkpoint)).sort();
  const dtypes: Record<string, { tensors: number; bytes: number }> = {};
  let diskBytes = 0;
  for (const name of names) {
    diskBytes += (await stat(join(checkpoint, name))).size;
    if (!name.endsWith('.safetensors')) continue;
    for (const info of (await readSafetensorsHeader(join(checkpoint, name))).tensors.values()) {
      const entry = (dtypes[info.dtype] ??= { tensors: 0, bytes: 0 });
      entry.tensors++;
      entry.bytes += info.byteLength;
    }
  }
  return { names, dtypes, diskBytes, shards: names.filter((n) => n.endsWith('.safetensors')).length };
}

function field(stdout: string, key: string): string | undefined {
  return new RegExp(`^${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: +(.*)$`, 'm').exec(stdout)?.[1];
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

async function checkDescription(t: Test, run: CliRun, ck: TinyCheckpoint, checkpoint: string): Promise<void> {
  t.equal(run.code, 0, run.stderr);
  t.equal(run.stderr, '');
  const e = expectedOf(ck);
  const disk = await onDisk(checkpoint);
  const lines = run.stdout.trimEnd().split('\n');
  t.equal(new Set(lines.map((line) => /^[a-z_ -]+:\s+/.exec(line)?.[0].length)).size, 1, 'values start in one column');
  t.equal(field(run.stdout, 'architecture'), e.architecture);
  t.equal(field(run.stdout, 'layout'), e.layout);
  t.equal(field(run.stdout, 'layers'), String(e.layers));
  t.equal(field(run.stdout, 'hidden'), String(e.hidden));
  t.equal(field(run.stdout, 'intermediate'), String(e.intermediate));
  t.equal(field(run.stdout, 'heads'), String(e.heads));
  t.equal(field(run.stdout, 'kv heads'), String(e.kvHeads));
  t.equal(field(run.stdout, 'head dim'), String(e.headDim));
  t.equal(field(run.stdout, 'vocab'), String(e.vocab));
  t.equal(field(run.stdout, 'tied embeddings'), e.tied ? 'yes' : 'no');
  t.equal(field(run.stdout, 'm-rope sections'), e.mrope ? `[${e.mrope.join(', ')}]` : 'none (1-D RoPE)');
  t.equal(field(run.stdout, 'vision tower'), `${e.vision.kind}, depth ${e.vision.depth}, width ${e.vision.width}, ${e.vision.heads} heads`);
  const { language, vision } = e.parameters;
  t.match(field(run.stdout, 'parameters'), new RegExp(`^${count(language + vision)} \\(${humanCount(language + vision)}\\)$`));
  t.match(field(run.stdout, '  language'), new RegExp(`^${count(language)} \\(`));
  t.match(field(run.stdout, '  vision'), new RegExp(`^${count(vision)} \\(`));
  const dtypes = Object.entries(disk.dtypes).map(([dtype, d]) => `${dtype} ${d.tensors} tensors ${formatBytes(d.bytes)}`);
  t.same(field(run.stdout, 'dtypes')?.split(', ').sort(), dtypes.sort(), 'dtypes: tensors and bytes per dtype');
  t.match(field(run.stdout, 'files'), new RegExp(`^${disk.names.length} \\(${disk.shards === 1 ? '1 safetensors file' : `${disk.shards} shards \\+ index`}\\), ${formatBytes(disk.diskBytes).replace('.', '\\.')} on disk$`));
}

t.test('original models of every architecture and layout', async (t) => {
  const runs = await Promise.all(MODELS.map(([name]) => runCli(['inspect', models.get(name)!.dir])));
  for (const [i, [name]] of MODELS.entries()) {
    t.test(name, async (t) => {
      const ck = models.get(name)!;
      await checkDescription(t, runs[i], ck, ck.dir);
      t.equal(field(runs[i].stdout, 'quantization'), 'none');
      for (const key of ['bits', 'group size', 'desc_act', 'sym', 'format', 'static groups', 'quantized linears', 'producer']) t.equal(field(runs[i].stdout, key), undefined, `no ${key} line`);
    });
  }
});

t.test('a GPTQ export: the same parameter counts (a packed linear counts its weights), and the quantization block', async (t) => {
  const [run, json] = await Promise.all([runCli(['inspect', GPTQ]), runCli(['inspect', GPTQ, '--json'])]);
  await checkDescription(t, run, llava, GPTQ);
  const disk = await onDisk(GPTQ);
  t.same(Object.keys(disk.dtypes).sort(), ['F16', 'I32']);
  t.equal(disk.dtypes.I32.tensors, 3 * llava.quantizable.length, 'qweight, qzeros, g_idx per linear');
  t.equal(field(run.stdout, 'quantization'), 'GPTQ');
  t.equal(field(run.stdout, 'bits'), '3');
  t.equal(field(run.stdout, 'group size'), '16');
  t.equal(field(run.stdout, 'desc_act'), 'false');
  t.equal(field(run.stdout, 'sym'), 'false');
  t.equal(field(run.stdout, 'format'), 'gptq_v2');
  t.equal(field(run.stdout, 'static groups'), 'false');
  t.equal(field(run.stdout, 'quantized linears'), String(llava.quantizable.length));
  t.equal(field(run.stdout, 'producer'), `vlmq:${version}`);

  t.equal(json.code, 0, json.stderr);
  t.equal(jsonLines(json.stdout).length, 1, 'one JSON line');
  const e = expectedOf(llava);
  t.match(jsonResult(json.stdout) as Json, {
    command: 'inspect', dir: GPTQ, architecture: e.architecture, layout: 'original',
    config: { text: { numLayers: e.layers, hiddenSize: e.hidden, tieWordEmbeddings: false, mropeSection: null }, vision: { kind: 'siglip', depth: e.vision.depth } },
    parameters: e.parameters,
    dtypes: disk.dtypes,
    files: disk.names.map((name) => ({ name, bytes: Number })),
    diskBytes: disk.diskBytes,
    quantization: { bits: 3, groupSize: 16, descAct: false, sym: false, format: 'gptq_v2', staticGroups: false, quantizedLinears: llava.quantizable.length, producer: `vlmq:${version}` },
  });
});

t.test('a fake-quant export: the original description, no quantization block', async (t) => {
  const run = await runCli(['inspect', FQ]);
  await checkDescription(t, run, llava, FQ);
  t.equal(field(run.stdout, 'quantization'), 'none');
  t.equal(field(run.stdout, 'bits'), undefined);
  t.equal(field(run.stdout, 'dtypes'), `F32 ${llava.tensors.size} tensors ${formatBytes([...llava.tensors.values()].reduce((s, x) => s + byteSize('F32', x.shape), 0))}`);
});

t.test('parameter counts for people: three significant digits with K, M, B', async (t) => {
  t.equal(humanCount(1_543_714_304), '1.54 B');
  t.equal(humanCount(675_000_000), '675 M');
  t.equal(humanCount(178_560), '179 K');
  t.equal(humanCount(90_688), '90.7 K');
  t.equal(humanCount(999_999), '1.00 M');
  t.equal(humanCount(99_960), '100 K');
  t.equal(humanCount(999), '999');
});

/** The command in this process: the error it throws (main.ts turns a UsageError into exit 2), or null. */
const runInProcess = (argv: string[]) => commandError(inspectCommand, argv);

t.test('a missing, malformed or looped DIR: exit 2 naming the file; an incomplete one is a problem', async (t) => {
  const missing = await runCli(['inspect', join(dir, 'nowhere')]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /^vlmq: .*nowhere: no such directory \(given as DIR\)$/m);
  const broken = await writeTinyCheckpoint(join(dir, 'broken'), { architecture: 'qwen2_vl', extraFiles: false });
  await corruptCheckpoint(broken.dir, 'bad-config-json');
  const malformed = await runCli(['inspect', broken.dir, '--json']);
  t.equal(malformed.code, 2);
  t.match(malformed.stderr, /^vlmq: .*broken\/config\.json: not valid JSON/m);
  t.match(jsonLines(malformed.stdout).at(-1), { type: 'error', exitCode: 2, code: 'ERR_VLMQ_USAGE' });
  const unknown = await writeTinyCheckpoint(join(dir, 'unknown'), { architecture: 'qwen2_vl', extraFiles: false });
  await corruptCheckpoint(unknown.dir, 'unknown-architecture');
  t.match(await runInProcess([unknown.dir]), { name: 'UsageError', message: /config\.json: unsupported architecture "MllamaForConditionalGeneration"/ });
  const incomplete = await writeTinyCheckpoint(join(dir, 'incomplete'), { architecture: 'qwen2_vl', extraFiles: false });
  const removed = await corruptCheckpoint(incomplete.dir, 'missing-tensor');
  t.match(await runInProcess([incomplete.dir]), { name: 'UsageError', message: /1 problem that `vlmq quantize` would refuse/ }, 'an incomplete tensor set is a problem, as quantize says');
  t.match(await runInProcess([]), { name: 'UsageError', message: 'missing argument DIR' });
  const looped = join(dir, 'looped');
  await symlink(`${looped}-2`, looped);
  await symlink(looped, `${looped}-2`);
  const loop = await runCli(['inspect', looped]);
  t.equal(loop.code, 2);
  t.match(loop.stderr, new RegExp(`^vlmq: ${esc(looped)}: too many levels of symbolic links \\(a link loop\\?\\) \\(given as DIR\\)$`, 'm'));
  t.ok(removed.tensor, 'fixture: a tensor was removed');
});

// --- the checks quantize makes ---------------------------------------------------------------------

interface Broken {
  title: string;
  /** Breaks the checkpoint; returns the problem lines inspect (and loadModel) must print, and how many problems in all. */
  apply(ck: TinyCheckpoint): Promise<{ lines: RegExp[]; count: number; tensors: string[] }>;
}

/** Renames one tensor of a single-file checkpoint, bytes unchanged (the test's own rewrite). */
async function renameTensor(ck: TinyCheckpoint, from: string, to: string): Promise<void> {
  const path = join(ck.dir, 'model.safetensors');
  const { tensors } = await loadSafetensors(path);
  await writeSafetensors(path, [...tensors].map(([name, x]) => ({ name: name === from ? to : name, dtype: x.dtype, shape: [...x.shape], data: x.data as ArrayBufferView })));
}

/** Sets a text field of a flat Qwen config.json. */
async function setTextField(ck: TinyCheckpoint, field: string, value: number): Promise<void> {
  const config = JSON.parse(await readFile(join(ck.dir, 'config.json'), 'utf8')) as Json;
  config[field] = value;
  await writeFile(join(ck.dir, 'config.json'), JSON.stringify(config));
}

const BROKEN: Broken[] = [
  {
    title: 'an I32 q_proj',
    async apply(ck) {
      const tensor = `${ck.prefixes.text}layers.0.self_attn.q_proj.weight`;
      const c = await corruptCheckpoint(ck.dir, 'bad-dtype', { tensor, dtype: 'I32' });
      return { lines: [new RegExp(`^  - ${esc(tensor)} \\(${esc(c.file)}\\): expected BF16, F16 or F32, found I32$`)], count: 1, tensors: [tensor] };
    },
  },
  {
    title: 'a transposed down_proj',
    async apply(ck) {
      const c = await corruptCheckpoint(ck.dir, 'wrong-shape');
      return { lines: [new RegExp(`^  - ${esc(c.tensor!)} \\(${esc(c.file)}\\): expected \\[64, 128\\], found \\[128, 64\\]`)], count: 1, tensors: [c.tensor!] };
    },
  },
  {
    title: 'a missing model.norm.weight',
    async apply(ck) {
      const tensor = `${ck.prefixes.text}norm.weight`;
      await corruptCheckpoint(ck.dir, 'missing-tensor', { tensor });
      return { lines: [new RegExp(`^  - 1 tensor\\(s\\) the config implies are missing: ${esc(tensor)} \\[64\\]$`)], count: 1, tensors: [tensor] };
    },
  },
  {
    title: 'a renamed embedding',
    async apply(ck) {
      const from = `${ck.prefixes.text}embed_tokens.weight`, to = `${ck.prefixes.text}embed.weight`;
      await renameTensor(ck, from, to);
      return {
        lines: [
          new RegExp(`^  - 1 tensor\\(s\\) the config implies are missing: ${esc(from)} \\[256, 64\\]$`),
          new RegExp(`^  - 1 tensor\\(s\\) in model\\.safetensors that the architecture and config\\.json do not account for: ${esc(to)} `),
        ],
        count: 2,
        tensors: [from, to],
      };
    },
  },
  {
    title: 'num_hidden_layers 3 on a 2-layer checkpoint',
    async apply(ck) {
      await setTextField(ck, 'num_hidden_layers', 3);
      const layer2 = [...ck.tensors.keys()].filter((name) => name.startsWith(`${ck.prefixes.text}layers.1.`)).map((name) => name.replace('.layers.1.', '.layers.2.'));
      return { lines: [new RegExp(`^  - ${layer2.length} tensor\\(s\\) the config implies are missing: ${esc(ck.prefixes.text)}layers\\.2\\.`)], count: 1, tensors: layer2 };
    },
  },
  {
    title: 'num_hidden_layers 1 on a 2-layer checkpoint',
    async apply(ck) {
      await setTextField(ck, 'num_hidden_layers', 1);
      const layer1 = [...ck.tensors.keys()].filter((name) => name.startsWith(`${ck.prefixes.text}layers.1.`));
      return { lines: [new RegExp(`^  - ${layer1.length} tensor\\(s\\) in model\\.safetensors that the architecture and config\\.json do not account for: .*num_hidden_layers is 1`)], count: 1, tensors: layer1 };
    },
  },
  {
    title: 'a vocab_size the embedding does not have',
    async apply(ck) {
      await setTextField(ck, 'vocab_size', 512);
      const tensor = `${ck.prefixes.text}embed_tokens.weight`;
      return { lines: [new RegExp(`^  - ${esc(tensor)} \\(model\\.safetensors\\): expected \\[512, 64\\], found \\[256, 64\\]`)], count: 1, tensors: [tensor] };
    },
  },
  {
    title: 'an intermediate_size the MLPs do not have',
    async apply(ck) {
      await setTextField(ck, 'intermediate_size', 256);
      const mlp = [...ck.tensors.keys()].filter((name) => /\.mlp\.(gate|up|down)_proj\.weight$/.test(name) && name.startsWith(ck.prefixes.text));
      return { lines: mlp.map((name) => new RegExp(`^  - ${esc(name)} \\(model\\.safetensors\\): expected \\[(256, 64|64, 256)\\], found`)), count: mlp.length, tensors: mlp };
    },
  },
];

for (const broken of BROKEN) {
  t.test(`${broken.title}: inspect describes the checkpoint, lists the problem quantize refuses it for, and exits 2 (also with --json)`, async (t) => {
    const ck = await writeTinyCheckpoint(join(dir, broken.title.replace(/\W+/g, '-')), { architecture: 'qwen2_vl', nestedTextConfig: 'flat', extraFiles: false });
    t.equal(ck.tensors.has(ck.prefixes.lmHead), false, 'fixture: tied embeddings, no lm_head');
    const { lines, count, tensors } = await broken.apply(ck);
    const [human, json] = await Promise.all([runCli(['inspect', ck.dir]), runCli(['inspect', ck.dir, '--json'])]);
    t.equal(human.code, 2, 'exit 2');
    t.equal(field(human.stdout, 'architecture'), 'Qwen2-VL', 'what can be described is');
    t.equal(field(human.stdout, 'problems'), `${count} (listed below)`);
    const printed = human.stdout.split('\n');
    for (const line of lines) t.ok(printed.some((l) => line.test(l)), `a problem line matches ${line}`);
    t.equal(printed.filter((l) => l.startsWith('  - ')).length, count, `${count} problem line(s)`);
    t.match(human.stderr, new RegExp(`^vlmq: ${esc(ck.dir)}: ${count} problems? that \`vlmq quantize\` would refuse \\(listed above\\)$`, 'm'));

    t.equal(json.code, 2);
    const [result, error] = jsonLines(json.stdout).slice(-2) as Json[];
    t.match(result, { type: 'result', command: 'inspect', architecture: 'Qwen2-VL' });
    t.equal(result.problems.length, count, 'the problems are in the result object');
    t.strictSame(result.problems.flatMap((p: Json) => p.tensors).sort(), [...tensors].sort(), 'naming every tensor concerned');
    t.match(error, { type: 'error', exitCode: 2, code: 'ERR_VLMQ_USAGE' });

    const refused = await loadModel(ck.dir).then(() => null, (e: Error) => e);
    t.ok(refused, 'loadModel (quantize) refuses it too');
    for (const line of lines) t.match(refused?.message ?? '', new RegExp(line.source.replace(/^\^ {2}- /, '').replace(/\$$/, '')), 'with the same words');
  });
}

t.test('--keep-unknown-tensors lists tensors the config does not account for without counting them as a problem', async (t) => {
  const ck = await writeTinyCheckpoint(join(dir, 'keep-unknown'), { architecture: 'qwen2_vl', nestedTextConfig: 'flat', extraFiles: false });
  await setTextField(ck, 'num_hidden_layers', 1);
  const layer1 = [...ck.tensors.keys()].filter((name) => name.startsWith(`${ck.prefixes.text}layers.1.`));
  const [human, json] = await Promise.all([runCli(['inspect', ck.dir, '--keep-unknown-tensors']), runCli(['inspect', ck.dir, '--keep-unknown-tensors', '--json'])]);
  t.equal(human.code, 0, human.stderr);
  t.match(field(human.stdout, 'unknown tensors'), new RegExp(`^${layer1.length} \\(`));
  t.equal(field(human.stdout, 'problems'), 'none');
  t.equal(json.code, 0);
  const result = jsonResult(json.stdout) as Json;
  t.strictSame([...result.unknownTensors].sort(), layer1.sort());
  t.strictSame(result.problems, []);
});
