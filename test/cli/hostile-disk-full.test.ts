// A full disk (issue 11): ENOSPC while the work directory, the calibration bundle or the export is
// written leaves nothing that looks finished (no bundle, no layer file, no state that claims a
// layer, no output directory, no temporaries) and a message that names the file and says the disk
// is full. No small filesystem can be mounted here, so the error is injected: the functions of
// node:fs/promises are replaced, while the command runs, by ones whose writes fail once a chosen
// file has been written into (module.syncBuiltinESMExports carries the replacement into every ES
// module's imports). After space is "freed" (the real functions), --resume finishes the run into
// the same files an uninterrupted run writes.
import t, { type Test } from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { writeBuiltinSet } from '../../lib/demo/builtin-set.js';
import { Output } from '../../lib/cli/output.js';
import { quantizeCommand } from '../../lib/cli/quantize.js';
import { writeTinyCheckpoint } from '../fixtures/checkpoints.js';

const root = t.testdir({});
const set = await writeBuiltinSet(join(root, 'set'), { samples: 4, width: 112, height: 84 });
const tiny = await writeTinyCheckpoint(join(root, 'model'), { architecture: 'qwen2_vl', layers: 3, seed: 9 });
const flags = (work: string, out: string) => ['--model', tiny.dir, '--calib', set.json, '--images', set.images, '--max-tokens', '400', '--method', 'gptq', '--bits', '4', '--work-dir', work, '--out', out, '--json'];

type Fsp = typeof import('node:fs/promises');
const fsp = createRequire(import.meta.url)('node:fs/promises') as Fsp;

/**
 * Writers of node:fs/promises on a disk that fills up: once `afterBytes` bytes have gone into a
 * file whose path matches `file`, that write and every later one under the test's folder fails
 * with ENOSPC (removing files still works).
 */
function fillingDisk(file: RegExp, afterBytes: number): Pick<Fsp, 'open' | 'writeFile' | 'copyFile'> {
  let intoTarget = 0;
  let full = false;
  const spend = (path: string, bytes: number) => {
    if (!path.startsWith(root)) return;
    if (!full && file.test(path)) {
      intoTarget += bytes;
      full = intoTarget > afterBytes;
    }
    if (full) throw Object.assign(new Error(`ENOSPC: no space left on device, write`), { code: 'ENOSPC', errno: -28, syscall: 'write' });
  };
  const sizeOf = (data: unknown) => (typeof data === 'string' ? Buffer.byteLength(data) : (data as ArrayBufferView).byteLength);
  const handleOn = (path: string, handle: FileHandle) => new Proxy(handle, {
    get(target, property) {
      if (property === 'write') {
        return (data: ArrayBufferView | string, offset?: number, length?: number, position?: number) => {
          spend(path, typeof data === 'string' ? Buffer.byteLength(data) : (length ?? data.byteLength - (offset ?? 0)));
          return (target.write as (...args: unknown[]) => unknown)(data, offset, length, position);
        };
      }
      if (property === 'writeFile') return (data: string | ArrayBufferView, options?: unknown) => (spend(path, sizeOf(data)), target.writeFile(data as string, options as never));
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const { open, writeFile, copyFile } = fsp;
  return {
    open: (async (path: string, ...rest: unknown[]) => handleOn(String(path), await (open as (...args: unknown[]) => Promise<FileHandle>)(path, ...rest))) as Fsp['open'],
    writeFile: (async (path: string, data: string | ArrayBufferView, ...rest: unknown[]) => {
      spend(String(path), sizeOf(data));
      return (writeFile as (...args: unknown[]) => Promise<void>)(path, data, ...rest);
    }) as Fsp['writeFile'],
    copyFile: (async (from: string, to: string, ...rest: unknown[]) => {
      spend(String(to), (await fsp.stat(from)).size);
      return (copyFile as (...args: unknown[]) => Promise<void>)(from, to, ...rest);
    }) as Fsp['copyFile'],
  };
}

async function run(argv: string[]): Promise<{ error: unknown; lines: Record<string, unknown>[] }> {
  const lines: Record<string, unknown>[] = [];
  const stdout = { write: (text: string) => (lines.push(...text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)), true) };
  try {
    await quantizeCommand.run(argv, { out: new Output(stdout, { write: () => true }, { json: true, interactive: false }), signal: new AbortController().signal });
    return { error: null, lines };
  } catch (error) {
    return { error, lines };
  }
}

/** `vlmq quantize ...argv` on a disk that fills up while `file` is written. */
async function onFullDisk(file: RegExp, afterBytes: number, argv: string[]) {
  const real = { open: fsp.open, writeFile: fsp.writeFile, copyFile: fsp.copyFile };
  Object.assign(fsp, fillingDisk(file, afterBytes));
  syncBuiltinESMExports();
  try {
    return await run(argv);
  } finally {
    Object.assign(fsp, real);
    syncBuiltinESMExports();
  }
}

/** What a run leaves in its folder, in name order. */
const listing = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : null);

const reference = join(root, 'reference');
const uninterrupted = await run(flags(join(root, 'reference-work'), reference));
if (uninterrupted.error) throw uninterrupted.error;

async function sameAsReference(t: Test, out: string): Promise<void> {
  t.same(listing(out), listing(reference), 'the same files as an uninterrupted run');
  for (const name of listing(reference)!) t.ok((await readFile(join(out, name))).equals(await readFile(join(reference, name))), `${name} is byte-identical`);
}

t.test('the disk fills while the calibration bundle is written', async (t) => {
  const [work, out] = [join(root, 'bundle-work'), join(root, 'bundle-out')];
  const { error } = await onFullDisk(/calibration\.safetensors/, 4096, flags(work, out));
  t.match(error, { code: 'ERR_VLMQ_WRITE_FAILED', message: `${join(work, 'calibration.safetensors')}: cannot write: the disk is full (no space left on device)` });
  t.equal(listing(work), null, 'no bundle, no temporary, no lock: the work directory vlmq made for the run is gone again');
  t.equal(listing(out), null, 'no output');
  const resumed = await run([...flags(work, out), '--resume']);
  t.equal(resumed.error, null);
  await sameAsReference(t, out);
  t.equal(listing(work), null, 'the work directory is removed after the export');
});

t.test('the disk fills while a layer is stored', async (t) => {
  const [work, out] = [join(root, 'layer-work'), join(root, 'layer-out')];
  const { error, lines } = await onFullDisk(/layer-00001\.safetensors/, 100, flags(work, out));
  t.match(error, { code: 'ERR_VLMQ_WRITE_FAILED', message: `${join(work, 'layer-00001.safetensors')}: cannot write: the disk is full (no space left on device)` });
  t.ok(lines.some((l) => l.type === 'log' && /kept in .*layer-work; once the problem is fixed, run the same command with --resume/.test(l.message as string)), 'says how to go on');
  t.same(listing(work), ['calibration.safetensors', 'layer-00000.safetensors', 'state.json', 'vlmq-work.json'], 'layer 1 is not there, not even half-written');
  t.match(JSON.parse(await readFile(join(work, 'state.json'), 'utf8')), { completed: 1 }, 'and the state does not claim it');
  t.equal(listing(out), null);
  const resumed = await run([...flags(work, out), '--resume']);
  t.equal(resumed.error, null);
  await sameAsReference(t, out);
});

t.test('the disk fills while the export is written', async (t) => {
  const [work, out] = [join(root, 'export-work'), join(root, 'export-out')];
  const { error } = await onFullDisk(/export-out\.tmp-\d+-[0-9a-f]+\/model\.safetensors/, 4096, flags(work, out));
  t.match(error, { code: 'ERR_VLMQ_WRITE_FAILED', message: /export-out\.tmp-\d+-[0-9a-f]+\/model\.safetensors: cannot write: the disk is full \(no space left on device\)$/ });
  t.same(readdirSync(root).filter((name) => name.startsWith('export-out')), [], 'no output directory and no temporary one');
  t.ok(listing(work)!.includes('layer-00002.safetensors'), 'the finished layers are kept');
  const resumed = await run([...flags(work, out), '--resume']);
  t.equal(resumed.error, null);
  await sameAsReference(t, out);
});
