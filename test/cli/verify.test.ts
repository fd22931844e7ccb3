// vlmq verify: a GPTQ export verifies (exit 0) on its own and against the fake-quant export of the
// same run; tampering — one flipped byte inside a qweight, a deleted tensor, an edited
// quantization_config.bits — fails (exit 1) naming the linear, tensor or field; a DIR or --against
// that does not exist is a usage error (exit 2).
import t from 'tap';
import { cp, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel, quantize, SafetensorsFile } from '../../lib/index.js';
import { verifyCommand } from '../../lib/cli/verify.js';
import { corruptCheckpoint, writeTinyCheckpoint } from '../fixtures/checkpoints.js';
import { commandError, jsonLines, jsonResult, runCli } from '../helpers/cli.js';

type Json = any;

const dir = t.testdir({});
const ck = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_5_vl', layout: 'transformers-4.52', seed: 5 });
const GPTQ = join(dir, 'gptq');
const FQ = join(dir, 'fq');
{
  // The exports come from the library directly (the CLI's exports are tested in quantize.test.ts).
  const model = await loadModel(ck.dir);
  const run = await quantize(model, null, { method: 'rtn', bits: 4, groupSize: 32, sym: true });
  await run.save(GPTQ, { format: 'gptq' });
  await run.save(FQ, { format: 'fake-quant' });
  await model.close();
}
const LINEARS = ck.quantizable.length;

/** A copy of the clean GPTQ export to tamper with. */
async function copyOfGptq(name: string): Promise<string> {
  const target = join(dir, name);
  await cp(GPTQ, target, { recursive: true });
  return target;
}

async function editJson(path: string, edit: (value: Json) => void): Promise<void> {
  const value = JSON.parse(await readFile(path, 'utf8'));
  edit(value);
  await writeFile(path, JSON.stringify(value, null, 2));
}

/** The command in this process: the error it throws (main.ts turns a UsageError into exit 2), or null. */
const runInProcess = (argv: string[]) => commandError(verifyCommand, argv);

t.test('a clean export verifies, on its own and against the fake-quant export: exit 0', async (t) => {
  const [against, alone, json] = await Promise.all([
    runCli(['verify', GPTQ, '--against', FQ]),
    runCli(['verify', GPTQ]),
    runCli(['verify', GPTQ, '--against', FQ, '--json']),
  ]);
  t.equal(against.code, 0, against.stdout + against.stderr);
  t.equal(against.stderr, '');
  const lines = against.stdout.trimEnd().split('\n');
  const columns = new Set(lines.map((line) => /^[a-z ]+:\s+/.exec(line)?.[0].length));
  t.equal(columns.size, 1, 'aligned "key: value" lines');
  t.match(against.stdout, new RegExp(`^directory: +${GPTQ.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  t.match(against.stdout, /^architecture: +Qwen2\.5-VL$/m);
  t.match(against.stdout, /^layout: +transformers-4\.52$/m);
  t.match(against.stdout, /^settings: +gptq, 4-bit, group size 32, sym true, desc_act false, static groups false$/m);
  t.match(against.stdout, new RegExp(`^linears: +${LINEARS} quantized linears unpacked and checked$`, 'm'));
  t.match(against.stdout, /^tensors: +\d+$/m);
  t.match(against.stdout, /^comparison: +\d+ tensors compared with .*fq, 0 mismatched$/m);
  t.match(against.stdout, /^result: +ok, no problems found$/m);
  t.notMatch(against.stdout, /problems:/);

  t.equal(alone.code, 0, alone.stdout + alone.stderr);
  t.match(alone.stdout, /^comparison: +not requested \(--against\)$/m);
  t.match(alone.stdout, /^result: +ok, no problems found$/m);

  t.equal(json.code, 0, json.stderr);
  t.equal(jsonLines(json.stdout).length, 1);
  const result = jsonResult(json.stdout) as Json;
  t.match(result, {
    command: 'verify', ok: true, dir: GPTQ, architecture: 'Qwen2.5-VL', layout: 'transformers-4.52',
    settings: { bits: 4, groupSize: 32, sym: true, descAct: false, format: 'gptq', staticGroups: false },
    linears: LINEARS, problems: [], comparison: { against: FQ, mismatched: 0 },
  });
  t.ok(result.comparison.tensors > LINEARS, 'the linears and the other tensors were compared');
});

t.test('one flipped byte inside a qweight: verify --against fails naming that linear, exit 1', async (t) => {
  const target = await copyOfGptq('flipped');
  const linear = ck.quantizable.find((m) => m.endsWith('layers.1.mlp.down_proj'))!;
  const file = join(target, 'model.safetensors');
  const reader = await SafetensorsFile.open(file);
  const info = reader.info(`${linear}.qweight`);
  await reader.close();
  const at = info.begin + Math.floor(info.byteLength / 2) + 1;
  const handle = await open(file, 'r+');
  const byte = Buffer.alloc(1);
  await handle.read(byte, 0, 1, at);
  byte[0] ^= 0x5a;
  await handle.write(byte, 0, 1, at);
  await handle.close();

  const [human, json] = await Promise.all([runCli(['verify', target, '--against', FQ]), runCli(['verify', target, '--against', FQ, '--json'])]);
  t.equal(human.code, 1, human.stdout + human.stderr);
  t.match(human.stdout, /^result: +FAILED, 1 problem$/m);
  t.match(human.stdout, /^comparison: +\d+ tensors compared with .*, 1 mismatched$/m);
  t.match(human.stdout, new RegExp(`^problems:\\n {2}- ${linear.replace(/\./g, '\\.')}\\.weight: unpacked weights differ from the fake-quant export at element \\d+`, 'm'));
  t.match(human.stderr, /^vlmq: .*flipped: verification failed: 1 problem \(listed above\)$/m);
  t.equal(json.code, 1);
  const [result, error] = jsonLines(json.stdout) as Json[];
  t.match(result, { type: 'result', ok: false, problems: [new RegExp(`^${linear.replace(/\./g, '\\.')}\\.weight: `)] });
  t.match(error, { type: 'error', exitCode: 1, code: 'ERR_VLMQ_VERIFY_FAILED', message: /verification failed: 1 problem$/ });

  const alone = await runCli(['verify', target]);
  t.equal(alone.code, 0, 'on its own, any code is a valid code: only the comparison can tell');
});

t.test('a deleted tensor: verify fails naming it, exit 1', async (t) => {
  const target = await copyOfGptq('deleted');
  const qzeros = `${ck.quantizable[3]}.qzeros`;
  const norm = ck.quantizable[0].replace(/self_attn\.q_proj$/, 'input_layernorm.weight');
  await corruptCheckpoint(target, 'missing-tensor', { tensor: qzeros });
  await corruptCheckpoint(target, 'missing-tensor', { tensor: norm });
  const run = await runCli(['verify', target, '--against', FQ]);
  t.equal(run.code, 1, run.stdout + run.stderr);
  t.match(run.stdout, new RegExp(`^ {2}- missing tensor ${qzeros.replace(/\./g, '\\.')} \\[`, 'm'));
  t.match(run.stdout, new RegExp(`^ {2}- missing tensor ${norm.replace(/\./g, '\\.')} \\[64\\]$`, 'm'));
  t.match(run.stdout, /^result: +FAILED, 2 problems$/m);
  t.match(run.stderr, /verification failed: 2 problems/);
});

t.test('an edited quantization_config.bits: verify fails naming the field or the shapes, exit 1', async (t) => {
  const onlyConfig = await copyOfGptq('bits-config-only');
  await editJson(join(onlyConfig, 'config.json'), (c) => (c.quantization_config.bits = 8));
  const both = await copyOfGptq('bits-both');
  for (const file of ['config.json', 'quantize_config.json']) await editJson(join(both, file), (c) => ((c.quantization_config ?? c).bits = 2));
  const invalid = await copyOfGptq('bits-invalid');
  await editJson(join(invalid, 'config.json'), (c) => (c.quantization_config.bits = 5));
  const [a, b, c] = await Promise.all([onlyConfig, both, invalid].map((target) => runCli(['verify', target])));

  t.equal(a.code, 1, a.stdout + a.stderr);
  t.match(a.stdout, /^settings: +gptq, 8-bit, /m);
  t.match(a.stdout, /^ {2}- .*quantize_config\.json: differs from config\.json's quantization_config$/m);
  t.match(a.stdout, /^ {2}- .*\.qweight \(model\.safetensors\): expected \[\d+, \d+\], found \[\d+, \d+\]$/m, 'packed shapes no longer match');

  t.equal(b.code, 1, b.stdout + b.stderr);
  t.notMatch(b.stdout, /quantize_config\.json: differs/);
  t.match(b.stdout, /^settings: +gptq, 2-bit, /m);
  t.match(b.stdout, /\.qweight \(model\.safetensors\): expected \[/);

  t.equal(c.code, 1, 'a checkpoint that cannot be read as GPTQ does not verify');
  t.match(c.stderr, /^vlmq: .*config\.json: quantization_config\.bits: expected one of 2, 3, 4, 8, found 5$/m);
});

t.test('a checkpoint that is not GPTQ, or not readable, fails verification: exit 1', async (t) => {
  const broken = join(dir, 'broken');
  await cp(GPTQ, broken, { recursive: true });
  await corruptCheckpoint(broken, 'bad-config-json');
  const [fake, original, unreadable] = await Promise.all([runCli(['verify', FQ]), runCli(['verify', ck.dir, '--json']), runCli(['verify', broken])]);
  t.equal(fake.code, 1);
  t.match(fake.stdout, /^settings: +none \(no quantization_config\)$/m);
  t.match(fake.stdout, /^ {2}- .*config\.json: no quantization_config — not a GPTQ checkpoint$/m);
  t.equal(original.code, 1);
  const [result, error] = jsonLines(original.stdout);
  t.match(result, { type: 'result', ok: false, settings: null, problems: [/no quantization_config/] });
  t.match(error, { type: 'error', exitCode: 1, code: 'ERR_VLMQ_VERIFY_FAILED' });
  t.equal(unreadable.code, 1);
  t.match(unreadable.stderr, /^vlmq: .*broken\/config\.json: not valid JSON/m);
});

t.test('a DIR or --against that does not exist is a usage error: exit 2', async (t) => {
  const run = await runCli(['verify', join(dir, 'nowhere')]);
  t.equal(run.code, 2);
  t.match(run.stderr, /^vlmq: .*nowhere: no such directory \(given as DIR\)$/m);
  t.match(await runInProcess([GPTQ, '--against', join(dir, 'nowhere')]), { name: 'UsageError', message: /nowhere: no such directory \(given as --against\)$/ });
  t.match(await runInProcess([join(GPTQ, 'config.json')]), { name: 'UsageError', message: /config\.json: is a file, not a checkpoint directory \(given as DIR\)$/ });
  t.match(await runInProcess([]), { name: 'UsageError', message: 'missing argument DIR' });
  t.match(await runInProcess([GPTQ, FQ]), { name: 'UsageError', message: /^unexpected argument/ });
});
