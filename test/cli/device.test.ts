// --device from the command line: a device that is not usable stops the command before any work
// with the registry's reason (exit 1), a bad name is a usage error (exit 2), 'cpu' and 'auto' write
// the same bytes here, the choice is logged, and `vlmq doctor` lists every device.
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeCalibrationBundle } from '../../lib/data/bundle.js';
import { syntheticSamples } from '../../lib/demo/synthetic.js';
import { backends } from '../../lib/native/devices.js';
import { writeTinyCheckpoint } from '../fixtures/checkpoints.js';
import { jsonLines, jsonResult, runCli } from '../helpers/cli.js';

const dir = t.testdir();
const model = (await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl', layers: 2, seed: 5 })).dir;
const calib = join(dir, 'calib.safetensors');
await writeCalibrationBundle(calib, syntheticSamples({ samples: 4, hidden: 64, textTokens: 10, imageGrid: [4, 4], mrope: true, seed: 2 }));
const cuda = backends().find((b) => b.kind === 'cuda')!;
const quantizeArgs = (out: string, ...more: string[]) => ['quantize', '--model', model, '--calib', calib, '--method', 'gptaq', '--bits', '3', '--out', out, ...more];

t.test('a device that is not usable: exit 1 with the reason, nothing written', { skip: cuda.usable ? 'CUDA is usable here' : false }, async (t) => {
  for (const [command, args] of [
    ['quantize', quantizeArgs(join(dir, 'never'), '--device', 'cuda')],
    ['quantize-linear', ['quantize-linear', '--in', join(dir, 'missing.safetensors'), '--out', join(dir, 'never.safetensors'), '--device', 'cuda:0']],
    ['demo', ['demo', '--dir', join(dir, 'never-demo'), '--device', 'cuda']],
  ] as const) {
    const run = await runCli(args);
    t.equal(run.code, 1, `${command}: exit 1`);
    t.match(run.stderr, `is not usable: ${cuda.reason}`, `${command}: the reason`);
  }
  t.notOk(existsSync(join(dir, 'never')) || existsSync(join(dir, 'never.vlmq-work')) || existsSync(join(dir, 'never-demo')), 'nothing was written');
});

t.test('a device name that does not exist is a usage error naming the flag', async (t) => {
  const run = await runCli(quantizeArgs(join(dir, 'never'), '--device', 'gpu'));
  t.equal(run.code, 2);
  t.match(run.stderr, /--device: expected 'auto', 'cpu', 'cuda' or 'cuda:N' but received "gpu"/);
});

t.test("--device cpu and the default (auto) write the same bytes here; the log says which device and why", { skip: cuda.usable ? "auto is CUDA here" : false }, async (t) => {
  const outputs = [];
  for (const device of ['cpu', null]) {
    const out = join(dir, `out-${device ?? 'auto'}`);
    const run = await runCli(quantizeArgs(out, ...(device ? ['--device', device] : []), '--json'));
    t.equal(run.code, 0, run.stderr);
    const chosen = jsonLines(run.stdout).find((e) => e.type === 'device');
    t.match(chosen, { requested: device ?? 'auto', device: 'cpu' }, `${device ?? 'auto'}: a device event`);
    if (!device) t.match(chosen, { description: `cpu (auto; no GPU: ${cuda.reason})` }, 'auto says why it did not take a GPU');
    outputs.push(Object.fromEntries(readdirSync(out).filter((f) => f.endsWith('.safetensors')).map((f) => [f, readFileSync(join(out, f))])));
  }
  t.same(Object.keys(outputs[0]), Object.keys(outputs[1]));
  for (const file of Object.keys(outputs[0])) t.ok(outputs[0][file].equals(outputs[1][file]), `${file}: identical bytes`);
  const text = await runCli(quantizeArgs(join(dir, 'out-text'), '--device', 'cpu'));
  t.match(text.stderr, /^device: cpu$/m, 'without --json the log has a device line');
});

t.test('vlmq doctor lists every device, usable or not, with why not', async (t) => {
  const text = await runCli(['doctor']);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /^device cpu: +usable/m);
  if (!cuda.usable) t.match(text.stdout, new RegExp(`^device ${cuda.name}: +not usable: `, 'm'));
  const json = jsonResult((await runCli(['doctor', '--json'])).stdout);
  t.same((json.devices as { name: string }[]).map((d) => d.name), backends().map((b) => b.name), 'the registry in --json');
});
