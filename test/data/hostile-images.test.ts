// Images are untrusted input, and vlmq must never hang or run out of memory on one: a
// decompression bomb (a few KB of PNG declaring 16000×16000 pixels) is refused from its header
// with PIL's limit, Image.MAX_IMAGE_PIXELS, and an error naming the file, its size and the limit;
// the limit can be raised (or lifted) by an option, checked with small numbers; and a FIFO, a
// directory or a device given as an image is refused by kind, at once, naming the path.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { Calibration, buildCalibrationBundle } from '../../lib/pipeline/calibration.js';
import { MAX_IMAGE_PIXELS, decodeImage, readImageSize } from '../../lib/data/image.js';
import { loadModel } from '../../lib/models/model.js';
import { writeTinyCheckpoint } from '../../lib/demo/tiny-checkpoint.js';
import { bilevelPng } from '../fixtures/images.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const dir = t.testdir();

async function timed<T>(promise: Promise<T>): Promise<{ error: (Error & { code?: string }) | null; seconds: number }> {
  const start = performance.now();
  const error = await promise.then(() => null, (e: Error & { code?: string }) => e);
  return { error, seconds: (performance.now() - start) / 1000 };
}

const bomb = join(dir, 'bomb.png');
await writeFile(bomb, bilevelPng(16000, 16000));
const small = join(dir, 'small-40x40.png');
await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 10, g: 200, b: 30 } } }).png().toFile(small);

t.test("the default limit is PIL's Image.MAX_IMAGE_PIXELS, int(1024·1024·1024 // 4 // 3)", async (t) => {
  t.equal(MAX_IMAGE_PIXELS, 89_478_485);
  t.equal(MAX_IMAGE_PIXELS, Math.floor(1024 * 1024 * 1024 / 4 / 3));
});

t.test('a 16000×16000 PNG bomb is refused from its header, fast, naming the file, its pixels and the limit', async (t) => {
  const meta = await sharp(bomb).metadata();
  t.same([meta.width, meta.height, meta.format], [16000, 16000, 'png'], 'the bomb is a real PNG of that size');
  for (const [what, call] of [['readImageSize', () => readImageSize(bomb)], ['decodeImage', () => decodeImage(bomb)]] as const) {
    const { error, seconds } = await timed(call());
    t.equal(error?.code, 'ERR_VLMQ_BAD_FILE', what);
    const message = error?.message ?? '';
    t.ok(message.startsWith(`${bomb}: 16000×16000 = 256,000,000 pixels is more than the limit of 89,478,485`), `${what}: ${message}`);
    t.match(message, /Image\.MAX_IMAGE_PIXELS/, `${what}: says whose limit it is`);
    t.match(message, /decompression bomb/, `${what}: says why`);
    t.match(message, /raise the limit with the maxImagePixels option/, `${what}: says how to raise it`);
    t.ok(seconds < 2, `${what}: refused in ${seconds.toFixed(2)} s, before decoding`);
  }
});

t.test('the limit with small numbers: more pixels than the limit is refused, as many is allowed (PIL: pixels > MAX)', async (t) => {
  for (const call of [(o: object) => readImageSize(small, undefined, o), (o: object) => decodeImage(small, undefined, o)]) {
    await t.rejects(call({ maxImagePixels: 1000 }), { code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`^${escape(small)}: 40×40 = 1,600 pixels is more than the limit of 1,000 \\(a guard against decompression bombs\\)`) });
    await t.rejects(call({ maxImagePixels: 1599 }), { message: /1,600 pixels is more than the limit of 1,599/ });
    for (const maxImagePixels of [1600, 2000, Infinity, null]) await t.resolves(call({ maxImagePixels }), `maxImagePixels ${maxImagePixels}`);
  }
  const image = await decodeImage(small, undefined, { maxImagePixels: 1600 });
  t.same([image.width, image.height, Array.from(image.data.subarray(0, 3))], [40, 40, [10, 200, 30]], 'decoded under a limit of exactly its size (sharp given the same limit)');
  for (const bad of [0, -5, 1.5, NaN, '1000']) {
    await t.rejects(decodeImage(small, undefined, { maxImagePixels: bad as number }), { code: 'ERR_VLMQ_INVALID_ARG', message: /maxImagePixels/ }, `maxImagePixels ${String(bad)}`);
  }
});

t.test("a raised limit does not run into sharp's own (0x3FFF² = 268,402,689 pixels)", async (t) => {
  const huge = join(dir, 'huge-17000.png');
  await writeFile(huge, bilevelPng(17000, 17000)); // 289,000,000 pixels: over sharp's default too
  t.same(await readImageSize(huge, undefined, { maxImagePixels: 300_000_000 }), { width: 17000, height: 17000 });
  t.same(await readImageSize(huge, undefined, { maxImagePixels: null }), { width: 17000, height: 17000 });
  await t.rejects(readImageSize(huge), { message: /289,000,000 pixels is more than the limit of 89,478,485/ }, "by default PIL's limit, with vlmq's message");
});

t.test('Calibration: maxImagePixels in the build options refuses or lets through; it does not change the fingerprint', async (t) => {
  const checkpoint = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl', dtype: 'F32', seed: 3, imageMaxPixels: 40 * 28 * 28 });
  const model = await loadModel(checkpoint.dir);
  t.teardown(() => model.close());
  const record = { id: 'r', images: [small], prompt: 'What colour?', answer: 'Green.' };
  await t.rejects(buildCalibrationBundle(model, [record], join(dir, 'refused.safetensors'), { maxImagePixels: 1000 }), { message: new RegExp(`^${escape(small)}: 40×40 = 1,600 pixels`) });
  const report = await buildCalibrationBundle(model, [record], join(dir, 'allowed.safetensors'), { maxImagePixels: 1600 });
  t.equal(report.samples, 1, 'a limit of 1600 lets the 40×40 image through');
  const bombed = { id: 'bomb', images: [bomb], prompt: 'p', answer: 'a' };
  await t.rejects(buildCalibrationBundle(model, [bombed], join(dir, 'bomb.safetensors')), { message: new RegExp(`^${escape(bomb)}: 16000×16000`) }, 'the bomb, by default');
  const plain = await Calibration.fromRecords([record]).fingerprint(model);
  t.equal(await Calibration.fromRecords([record], { maxImagePixels: 5000 }).fingerprint(model), plain, 'the limit is not in the fingerprint');
  t.throws(() => Calibration.fromRecords([record], { maxImagePixels: -1 }), { code: 'ERR_VLMQ_INVALID_ARG', message: /maxImagePixels/ }, 'checked when the calibration is made');
});

t.test('an image that is a FIFO, a directory or a device is refused by kind, at once, naming the path', { timeout: 20_000 }, async (t) => {
  const fifo = join(dir, 'pipe.png');
  execFileSync('mkfifo', [fifo]);
  const folder = join(dir, 'folder.png');
  await mkdir(folder);
  const cases = [[fifo, /is a FIFO \(named pipe\), not a regular image file/], [folder, /is a directory, not a regular image file/], ['/dev/null', /is a character device, not a regular image file/]] as const;
  for (const [path, why] of cases) {
    for (const [what, call] of [['readImageSize', () => readImageSize(path)], ['decodeImage', () => decodeImage(path)]] as const) {
      const { error, seconds } = await timed(call());
      t.equal(error?.code, 'ERR_VLMQ_BAD_FILE', `${what} ${path}`);
      t.match(error?.message, new RegExp(`^${escape(path)}: ${why.source}`), `${what} ${path}: named, with its kind`);
      t.ok(seconds < 2, `${what} ${path}: refused in ${seconds.toFixed(2)} s`);
    }
  }
  await t.rejects(decodeImage(fifo, 'record 7'), { message: new RegExp(`^record 7: ${escape(fifo)}: is a FIFO`) }, 'a label goes in front of the path');
});
