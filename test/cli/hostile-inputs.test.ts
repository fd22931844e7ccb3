// Hostile but fair inputs through the command line, by category (issue 11): malformed files,
// broken checkpoint folders, bad calibration sets, impossible options, special files where files
// belong, and interruptions. Each case asserts the exit status, that the message names the
// culprit (file, tensor, field or flag), and that nothing on disk changed (a listing with sizes
// and hashes of everything under the test's folder, before and after). The commands run in this
// process through the same entry as `vlmq` (cli/app.ts), each with a time bound, so a hang fails
// the case instead of the file. Findings with tests of their own: hostile-work-dir (work
// directories, locks, killed exports), hostile-disk-full, hostile-checkpoints, hostile-images,
// hostile-templates, and the fuzz-*.test.ts readers.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeCalibrationBundle } from '../../lib/data/bundle.js';
import { writeBuiltinSet } from '../../lib/demo/builtin-set.js';
import { syntheticSamples } from '../../lib/demo/synthetic.js';
import { loadSafetensors } from '../../lib/io/safetensors-reader.js';
import { writeSafetensors } from '../../lib/io/safetensors-writer.js';
import { loadModel } from '../../lib/models/model.js';
import { quantize } from '../../lib/pipeline/quantize.js';
import { writeTinyCheckpoint } from '../fixtures/checkpoints.js';
import { bilevelPng } from '../fixtures/images.js';
import { type CliRun, runVlmqInProcess } from '../helpers/cli.js';
import { diskListing } from '../helpers/disk.js';

const root = t.testdir({});
const tiny = await writeTinyCheckpoint(join(root, 'model'), { architecture: 'qwen2_vl', layers: 2, seed: 4 });
const bundle = join(root, 'calib.safetensors');
await writeCalibrationBundle(bundle, syntheticSamples({ samples: 3, hidden: 64, textTokens: 8, imageGrid: [2, 2], mrope: true, seed: 1 }));
const set = await writeBuiltinSet(join(root, 'set'), { samples: 2, width: 112, height: 84 });
const cases = join(root, 'cases');
await mkdir(cases);
const out = join(root, 'out');
const layer = join(root, 'layer.safetensors');
const example = await runVlmqInProcess(['example-linear', layer, '--in-features', '32', '--out-features', '16', '--tokens', '64']);
if (example.code !== 0) throw new Error(example.stderr);

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const mkfifo = (path: string) => execFileSync('mkfifo', [path]);

/** A copy of the tiny checkpoint to break. */
async function modelCopy(name: string, edit: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(cases, name);
  await cp(tiny.dir, dir, { recursive: true });
  await edit(dir);
  return dir;
}

async function editConfig(dir: string, edit: (config: Record<string, unknown>) => void): Promise<void> {
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit(config);
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
}

/** Rewrites one tensor of model.safetensors through `edit` (which may change its dtype). */
async function editTensor(dir: string, name: string, edit: (x: { dtype: string; shape: number[]; data: ArrayBufferView }) => { dtype: string; shape: number[]; data: ArrayBufferView }): Promise<void> {
  const file = join(dir, 'model.safetensors');
  const { metadata, tensors } = await loadSafetensors(file);
  const list = [...tensors].map(([n, x]) => ({ name: n, ...(n === name ? edit({ dtype: x.dtype, shape: [...x.shape], data: x.data }) : { dtype: x.dtype, shape: [...x.shape], data: x.data }) }));
  await writeSafetensors(file, list as Parameters<typeof writeSafetensors>[1], metadata ? { metadata } : {});
}

/** `vlmq ...args` with a time bound: a hang is a failed case, not a stuck test file. */
async function vlmq(args: readonly string[], seconds = 60): Promise<CliRun> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CliRun>((resolve) => {
    timer = setTimeout(() => resolve({ code: null, signal: null, stdout: '', stderr: `did not finish in ${seconds} s` }), seconds * 1000);
  });
  try {
    return await Promise.race([runVlmqInProcess(args), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Case {
  title: string;
  args: () => Promise<string[]>;
  code: number;
  /** The message (stderr, or a report on stdout): it must name the culprit. */
  message: RegExp;
}

/** Each case: the exit status, the message, and not a byte changed under the test's folder. */
function category(name: string, list: Case[]): void {
  t.test(name, async (t: Test) => {
    for (const c of list) {
      const args = await c.args();
      const before = await diskListing(root);
      const run = await vlmq(args);
      t.equal(run.code, c.code, `${c.title}: exit ${c.code} (${run.stderr.trim().split('\n').at(-1)})`);
      t.match(`${run.stdout}${run.stderr}`, c.message, `${c.title}: the message names the culprit`);
      t.same(await diskListing(root), before, `${c.title}: nothing on disk changed`);
    }
  });
}

const quantizeArgs = (model: string, ...more: string[]) => ['quantize', '--model', model, '--out', out, ...more];

category('files', [
  {
    title: 'a truncated safetensors file as --in',
    args: async () => {
      const path = join(cases, 'truncated.safetensors');
      const bytes = await readFile(layer);
      await writeFile(path, bytes.subarray(0, bytes.length - 100));
      return ['quantize-linear', '--in', path, '--out', join(root, 'q.safetensors')];
    },
    code: 2,
    message: /truncated\.safetensors: .*(truncated|past the end|shorter)/,
  },
  {
    title: 'an empty file as --in',
    args: async () => {
      const path = join(cases, 'empty.safetensors');
      await writeFile(path, '');
      return ['quantize-linear', '--in', path, '--out', join(root, 'q.safetensors')];
    },
    code: 2,
    message: /empty\.safetensors: /,
  },
  {
    title: 'a model.safetensors whose header is not JSON',
    args: async () => [
      'inspect', await modelCopy('garbage-header', async (dir) => {
        const header = Buffer.from('{"a": nonsense}   ');
        const prefix = Buffer.alloc(8);
        prefix.writeBigUInt64LE(BigInt(header.length));
        await writeFile(join(dir, 'model.safetensors'), Buffer.concat([prefix, header]));
      }),
    ],
    code: 2,
    message: /garbage-header\/model\.safetensors: .*JSON/,
  },
  {
    title: 'an index that names a missing shard',
    args: async () => quantizeArgs(await modelCopy('missing-shard', async (dir) => {
      await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: { 'model.norm.weight': 'model-00002-of-00002.safetensors' } }));
    })),
    code: 2,
    message: /model\.safetensors\.index\.json: names shard model-00002-of-00002\.safetensors, which is missing/,
  },
  {
    title: 'a symbolic link loop as --in',
    args: async () => {
      const path = join(cases, 'loop.safetensors');
      await symlink(path, path);
      return ['quantize-linear', '--in', path, '--out', join(root, 'q.safetensors')];
    },
    code: 2,
    message: /loop\.safetensors: too many levels of symbolic links/,
  },
]);

category('checkpoint folders', [
  {
    title: 'config.json is {}',
    args: async () => quantizeArgs(await modelCopy('empty-config', (dir) => writeFile(join(dir, 'config.json'), '{}'))),
    code: 2,
    message: /empty-config\/config\.json: .*names no architecture/,
  },
  {
    title: 'a config that declares fewer layers than the files hold',
    args: async () => quantizeArgs(await modelCopy('fewer-layers', (dir) => editConfig(dir, (c) => {
      (c.text_config as Record<string, unknown> | undefined ?? c).num_hidden_layers = 1;
      if (c.num_hidden_layers !== undefined) c.num_hidden_layers = 1;
    }))),
    code: 2,
    message: /model\.layers\.1\./,
  },
  {
    title: 'NaN in a weight (RTN)',
    args: async () => quantizeArgs(await modelCopy('nan-weight', (dir) => editTensor(dir, 'model.layers.0.self_attn.q_proj.weight', (x) => {
      const data = (x.data as Uint16Array | Float32Array).slice();
      data[5] = x.dtype === 'F32' ? NaN : x.dtype === 'BF16' ? 0x7fc0 : 0x7e00; // a NaN in F32, BF16 or F16
      return { ...x, data };
    }))),
    code: 2,
    message: /nan-weight\/model\.safetensors: tensor 'model\.layers\.0\.self_attn\.q_proj\.weight' holds 1 NaN/,
  },
  {
    title: 'rms_norm_eps is -1',
    args: async () => quantizeArgs(await modelCopy('negative-eps', (dir) => editConfig(dir, (c) => {
      if (c.text_config) (c.text_config as Record<string, unknown>).rms_norm_eps = -1;
      c.rms_norm_eps = -1;
    }))),
    code: 2,
    message: /negative-eps\/config\.json: .*rms_norm_eps/,
  },
  {
    title: 'an I32 q_proj, seen by inspect',
    args: async () => ['inspect', await modelCopy('int-q-proj', (dir) => editTensor(dir, 'model.layers.0.self_attn.q_proj.weight', (x) => ({ ...x, dtype: 'I32', data: new Int32Array(x.shape[0] * x.shape[1]) })))],
    code: 2,
    message: /model\.layers\.0\.self_attn\.q_proj\.weight \(model\.safetensors\): expected BF16, F16 or F32, found I32/,
  },
]);

category('calibration sets', [
  {
    title: 'a JSONL record without a prompt',
    args: async () => {
      const path = join(cases, 'no-prompt.jsonl');
      await writeFile(path, `${JSON.stringify({ image: join(set.images, '0000.png'), answer: 'x' })}\n`);
      return quantizeArgs(tiny.dir, '--calib', path, '--method', 'gptq');
    },
    code: 2,
    message: /no-prompt\.jsonl: line 1: prompt: expected a string/,
  },
  {
    title: 'an image path that is a directory',
    args: async () => {
      const path = join(cases, 'dir-image.jsonl');
      await writeFile(path, `${JSON.stringify({ image: set.images, prompt: 'p', answer: 'a' })}\n`);
      return quantizeArgs(tiny.dir, '--calib', path, '--method', 'gptq');
    },
    code: 2,
    message: new RegExp(`dir-image\\.jsonl: 1 image file is missing or unreadable: line 1 .*: ${escape(set.images)} \\(not a file\\)`),
  },
  {
    title: 'a decompression bomb (16000 × 16000 in 31 KB)',
    args: async () => {
      const image = join(cases, 'bomb.png');
      await writeFile(image, bilevelPng(16000, 16000));
      const path = join(cases, 'bomb.jsonl');
      await writeFile(path, `${JSON.stringify({ image, prompt: 'p', answer: 'a' })}\n`);
      return quantizeArgs(tiny.dir, '--calib', path, '--method', 'gptq', '--max-tokens', '20000', '--work-dir', join(cases, 'work-none'));
    },
    code: 2,
    message: /bomb\.png: 16000×16000 = 256,000,000 pixels is more than the limit of 89,478,485/,
  },
]);

category('options', [
  { title: 'a flag given twice', args: async () => quantizeArgs(tiny.dir, '--bits', '4', '--bits', '8'), code: 2, message: /--bits: given more than once/ },
  { title: 'an alpha no float32 holds', args: async () => quantizeArgs(tiny.dir, '--calib', bundle, '--method', 'gptaq', '--alpha', '1e308'), code: 2, message: /--alpha: / },
  { title: 'a shard size of 0', args: async () => quantizeArgs(tiny.dir, '--max-shard-size', '0'), code: 2, message: /--max-shard-size: / },
  { title: 'a memory budget that is not a size', args: async () => quantizeArgs(tiny.dir, '--calib', bundle, '--memory', '-5'), code: 2, message: /--memory: / },
  { title: '--work-dir equal to --out, before any work', args: async () => quantizeArgs(tiny.dir, '--calib', bundle, '--work-dir', out), code: 2, message: /--work-dir: .* is the output directory/ },
  { title: '--max-image-pixels 0', args: async () => quantizeArgs(tiny.dir, '--calib', set.json, '--max-image-pixels', '0'), code: 2, message: /--max-image-pixels: / },
]);

const specialFiles: Case[] = [
  {
    title: 'a FIFO as --in',
    args: async () => {
      const path = join(cases, 'fifo.safetensors');
      mkfifo(path);
      return ['quantize-linear', '--in', path, '--out', join(root, 'q.safetensors')];
    },
    code: 2,
    message: /fifo\.safetensors: is a FIFO \(named pipe\), not a regular file \(given as --in\)/,
  },
  {
    title: 'a FIFO as --calib',
    args: async () => {
      const path = join(cases, 'fifo.jsonl');
      mkfifo(path);
      return quantizeArgs(tiny.dir, '--calib', path);
    },
    code: 2,
    message: /fifo\.jsonl: is a FIFO/,
  },
  {
    title: 'a FIFO as config.json',
    args: async () => ['inspect', await modelCopy('fifo-config', async (dir) => {
      await rm(join(dir, 'config.json'));
      mkfifo(join(dir, 'config.json'));
    })],
    code: 2,
    message: /fifo-config\/config\.json: is a FIFO/,
  },
  {
    title: 'a FIFO as --model',
    args: async () => {
      const path = join(cases, 'fifo-model');
      mkfifo(path);
      return quantizeArgs(path);
    },
    code: 2,
    message: /fifo-model: is a FIFO \(named pipe\), not a checkpoint directory/,
  },
];
for (const device of ['/dev/full', '/dev/null']) {
  if (!existsSync(device)) continue;
  specialFiles.push(
    { title: `${device} as quantize-linear --out`, args: async () => ['quantize-linear', '--in', layer, '--out', device], code: 2, message: new RegExp(`--out: ${device} is a character device`) },
    { title: `${device} as example-linear OUT`, args: async () => ['example-linear', device], code: 2, message: new RegExp(`${device} is a character device`) },
  );
}
category('special files', specialFiles);

t.test('special files: the devices are still devices', async (t) => {
  for (const device of ['/dev/full', '/dev/null'].filter((d) => existsSync(d))) t.ok(statSync(device).isCharacterDevice(), `${device} was not replaced`);
});

t.test('interruption: a stopped calibrated run changes nothing but its own work directory', async (t) => {
  const work = join(root, 'stopped-work');
  const outside = await diskListing(root);
  const model = await loadModel(tiny.dir);
  const { CalibrationBundle } = await import('../../lib/data/bundle.js');
  const calibration = await CalibrationBundle.open(bundle);
  t.teardown(async () => {
    await calibration.close();
    await model.close();
  });
  const stop = new AbortController();
  await t.rejects(quantize(model, calibration, { method: 'gptq', bits: 4, workDir: work, signal: stop.signal, onEvent: (e) => e.type === 'module' && stop.abort(new Error('interrupted')) }), { message: 'interrupted' });
  const after = await diskListing(root);
  const changed = Object.keys({ ...outside, ...after }).filter((k) => outside[k] !== after[k]);
  t.ok(changed.length > 0 && changed.every((k) => k === 'stopped-work' || k.startsWith('stopped-work/')), `only the work directory changed (${changed.join(', ')})`);
  t.notOk(existsSync(join(work, 'vlmq.lock')), 'and its lock is released');
});

t.test('calibration sets: more samples asked for than the set holds is said, with why', async (t) => {
  const path = join(cases, 'one.jsonl');
  await writeFile(path, `${JSON.stringify({ image: join(set.images, '0000.png'), prompt: 'What is shown?', answer: 'A chart.' })}\n`);
  const run = await vlmq(['quantize', '--model', tiny.dir, '--out', join(root, 'one-out'), '--calib', path, '--method', 'gptq', '--samples', '1000000000']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stderr, /warning: 1 calibration sample\(s\) of the 1000000000 requested: the calibration set has only 1 record\(s\)/);
});

t.test('library misuse is an error at the call', async (t) => {
  const model = await loadModel(tiny.dir);
  t.teardown(() => model.close());
  await t.rejects(quantize(null as never, null, { method: 'rtn' }), { code: 'ERR_VLMQ_INVALID_ARG', message: /for model but received null/ });
  await t.rejects(quantize(model, bundle as never, { method: 'gptq' }), { code: 'ERR_VLMQ_INVALID_ARG', message: /for calibration but received "/ });
  await t.rejects(quantize(model, null, { method: 'rtn', onEvent: 'log' as never }), { code: 'ERR_VLMQ_INVALID_ARG', message: /for onEvent/ });
  await t.rejects(loadModel(undefined as never), { code: 'ERR_VLMQ_INVALID_ARG', message: /for dir/ });

  // A callback that throws ends the call with its error, and leaves nothing half-done behind.
  const { CalibrationBundle } = await import('../../lib/data/bundle.js');
  const calibration = await CalibrationBundle.open(bundle);
  t.teardown(() => calibration.close());
  const work = join(root, 'throwing-work');
  await t.rejects(quantize(model, calibration, { method: 'gptq', workDir: work, onEvent: () => { throw new Error('from onEvent'); } }), { message: 'from onEvent' });
  t.notOk(existsSync(join(work, 'vlmq.lock')), 'the work directory is unlocked');
  const run = await quantize(model, null, { method: 'rtn', bits: 4 });
  await t.rejects(run.save(join(root, 'throwing-out'), { onProgress: () => { throw new Error('from onProgress'); } }), { message: 'from onProgress' });
  t.same((await diskListing(root))['throwing-out'], undefined, 'no output');
  t.notOk(Object.keys(await diskListing(root)).some((k) => k.startsWith('throwing-out.tmp-')), 'no temporary directory');
});
