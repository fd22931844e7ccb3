// Image decoding and Pillow-exact bicubic resizing (lib/data/image.ts): files made with sharp in the
// test, hand-computed alpha compositing and CMYK conversion, bicubic weights derived by hand from
// Pillow's filter formula, an independent float64 + fixed-point re-implementation of Pillow's
// ImagingResample written here, and Python's round() on ties.
import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeImage, readImageSize, resizeBicubic, roundHalfEven, type RgbImage } from '../../lib/data/image.js';
import { greyPng } from '../fixtures/images.js';
import { TRANSFORMERS_FIXTURES_DIR } from '../fixtures/transformers/cases.js';

const raw = (width: number, height: number, channels: 1 | 2 | 3 | 4, pixel: (x: number, y: number, c: number) => number) => {
  const data = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < channels; c++) data[(y * width + x) * channels + c] = pixel(x, y, c);
  return { data, info: { raw: { width, height, channels } } };
};

/** A minimal 16-bit greyscale PNG (colour type 0, depth 16): sharp cannot be asked for one. */
function grey16Png(width: number, height: number, value: (x: number, y: number) => number): Buffer {
  const rows: Buffer[] = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 2); // filter byte 0
    for (let x = 0; x < width; x++) row.writeUInt16BE(value(x, y), 1 + x * 2);
    rows.push(row);
  }
  return greyPng(width, height, 16, Buffer.concat(rows));
}

const pixel = (image: RgbImage, x: number, y: number) => Array.from(image.data.subarray((y * image.width + x) * 3, (y * image.width + x) * 3 + 3));

t.test('decode: an RGB PNG gives its exact pixels, row-major, channels interleaved', async (t) => {
  const { data, info } = raw(5, 3, 3, (x, y, c) => (x * 40 + y * 7 + c * 90) % 256);
  const png = await sharp(data, info).png().toBuffer();
  const image = await decodeImage(png);
  t.same([image.width, image.height], [5, 3]);
  t.same(Array.from(image.data), Array.from(data));
});

t.test('decode: a JPEG decodes to its size with small error (lossy), from a path', async (t) => {
  const { data, info } = raw(32, 16, 3, (x, y, c) => (c === 0 ? x * 8 : c === 1 ? y * 16 : 128));
  const path = join(t.testdir(), 'smooth.jpg');
  await sharp(data, info).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toFile(path);
  const image = await decodeImage(path);
  t.same([image.width, image.height], [32, 16]);
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum += Math.abs(image.data[i] - data[i]);
  t.ok(sum / data.length < 2, `mean absolute error ${sum / data.length} < 2`);
});

t.test('decode: alpha is dropped by default (PIL convert("RGB")), colours kept even where alpha is 0', async (t) => {
  const rgba = Buffer.from([200, 100, 0, 128, 10, 20, 30, 0, 40, 50, 60, 255, 1, 2, 3, 4]);
  const png = await sharp(rgba, { raw: { width: 2, height: 2, channels: 4 } }).png().toBuffer();
  const image = await decodeImage(png);
  t.same(Array.from(image.data), [200, 100, 0, 10, 20, 30, 40, 50, 60, 1, 2, 3]);
});

t.test('decode alpha "white": RGBA over white as round((v·a + 255·(255 − a)) / 255)', async (t) => {
  const rgba = Buffer.from([200, 100, 0, 128, 10, 20, 30, 0, 40, 50, 60, 255, 1, 2, 3, 4]);
  const png = await sharp(rgba, { raw: { width: 2, height: 2, channels: 4 } }).png().toBuffer();
  const image = await decodeImage(png, 'rgba', { alpha: 'white' });
  // (200·128 + 255·127)/255 = 57985/255 = 227.39 → 227; (100·128 + 32385)/255 = 177.2 → 177; 32385/255 = 127.
  // a = 0 → white; a = 255 → unchanged; a = 4: (1·4 + 255·251)/255 = 251.02 → 251, (8 + 64005)/255 = 251.03 → 251, (12 + 64005)/255 = 251.05 → 251.
  t.same(Array.from(image.data), [227, 177, 127, 255, 255, 255, 40, 50, 60, 251, 251, 251]);
});

t.test('decode: greyscale is replicated to R = G = B; grey+alpha drops or composites alpha', async (t) => {
  const grey = await sharp(Buffer.from([0, 100, 200, 255]), { raw: { width: 4, height: 1, channels: 1 } }).toColourspace('b-w').png().toBuffer();
  t.equal((await sharp(grey).metadata()).channels, 1, 'the fixture really is a 1-channel PNG');
  t.same(Array.from((await decodeImage(grey)).data), [0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255]);
  const greyAlpha = await sharp(Buffer.from([100, 0, 100, 51]), { raw: { width: 2, height: 1, channels: 2 } }).toColourspace('b-w').png().toBuffer();
  t.same(Array.from((await decodeImage(greyAlpha)).data), [100, 100, 100, 100, 100, 100]);
  // a = 51: (100·51 + 255·204)/255 = 57120/255 = 224.0 → 224
  t.same(Array.from((await decodeImage(greyAlpha, 'la', { alpha: 'white' })).data), [255, 255, 255, 224, 224, 224]);
});

t.test('decode: 16-bit greyscale is clipped at 255 (PIL I;16 → RGB), not scaled', async (t) => {
  const values = [0, 200, 255, 256, 1000, 65535];
  const png = grey16Png(values.length, 1, (x) => values[x]);
  const image = await decodeImage(png, 'grey16.png');
  t.same(Array.from(image.data), [0, 0, 0, 200, 200, 200, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255]);
});

t.test('decode: CMYK converts with R = 255 − K − round(C·(255 − K)/255) (Pillow cmyk2rgb), not via ICC', async (t) => {
  // sharp reads raw 4-channel input as sRGB + alpha and converts it to CMYK with its ICC profile
  // when writing, so the stored CMYK values are read back rather than assumed. With sharp 0.35 they
  // are (0, 20, 40, 26): 255 − 26 = 229, then 229 − round(0) = 229, 229 − round(20·229/255 = 17.96) = 211,
  // 229 − round(40·229/255 = 35.92) = 193; an ICC conversion gives (228, 208, 187) instead.
  const { data, info } = raw(8, 8, 4, (x, y, c) => [100, 50, 0, 40][c]); // constant, so the JPEG keeps it exactly
  const jpeg = await sharp(data, info).jpeg({ quality: 100 }).toColourspace('cmyk').toBuffer();
  t.equal((await sharp(jpeg).metadata()).space, 'cmyk', 'the fixture is a CMYK JPEG');
  const stored = await sharp(jpeg).pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer();
  const [c, m, y, k] = stored.subarray(0, 4);
  const nk = 255 - k;
  const expected = [c, m, y].map((v) => nk - Math.round((v * nk) / 255));
  const image = await decodeImage(jpeg, 'cmyk.jpg');
  t.same(pixel(image, 3, 5), expected, `CMYK (${c}, ${m}, ${y}, ${k}) → ${expected}`);
  const viaIcc = await sharp(jpeg).raw().toBuffer();
  t.notSame(Array.from(viaIcc.subarray(0, 3)), expected, 'differs from the ICC conversion');
});

t.test('decode: the EXIF orientation is not applied (PIL and transformers do not rotate)', async (t) => {
  const { data, info } = raw(4, 2, 3, (x) => x * 60);
  const jpeg = await sharp(data, info).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer();
  t.equal((await sharp(jpeg).metadata()).orientation, 6);
  const image = await decodeImage(jpeg);
  t.same([image.width, image.height], [4, 2]);
});

t.test('decode errors: VlmqError ERR_VLMQ_BAD_FILE whose message starts with the path or label and says why', async (t) => {
  const dir = t.testdir({ 'corrupt.png': 'this is not an image at all', 'empty.jpg': '' });
  const expectFail = async (source: string | Uint8Array, label: string | undefined, start: string, why: RegExp) => {
    const error = await decodeImage(source, label).then(() => undefined, (e: unknown) => e as Error & { code?: string });
    t.ok(error, `${start} fails`);
    t.equal(error?.name, 'VlmqError');
    t.equal(error?.code, 'ERR_VLMQ_BAD_FILE');
    t.ok(error?.message.startsWith(`${start}: `), `"${error?.message}" starts with ${start}`);
    t.match(error?.message ?? '', why);
  };
  await expectFail(join(dir, 'missing.png'), undefined, join(dir, 'missing.png'), /no such file/);
  await expectFail(join(dir, 'corrupt.png'), undefined, join(dir, 'corrupt.png'), /cannot be decoded/);
  await expectFail(join(dir, 'empty.jpg'), undefined, join(dir, 'empty.jpg'), /empty/);
  await expectFail(dir, undefined, dir, /directory/);
  await expectFail(join(dir, 'corrupt.png'), 'sample 7', 'sample 7', /cannot be decoded/);
  await expectFail(new Uint8Array([1, 2, 3]), 'upload.bin', 'upload.bin', /cannot be decoded/);
  const { data, info } = raw(64, 64, 3, (x, y) => (x * y) % 256);
  const png = await sharp(data, info).png().toBuffer();
  await mkdir(join(dir, 'cut'), { recursive: true });
  await writeFile(join(dir, 'cut', 'truncated.png'), png.subarray(0, png.length >> 1));
  await expectFail(join(dir, 'cut', 'truncated.png'), undefined, join(dir, 'cut', 'truncated.png'), /cannot be decoded/);
});

// --- Pillow's bicubic resize -------------------------------------------------------------------

/**
 * An independent re-implementation of Pillow's ImagingResample (BICUBIC, 8-bit) in a different
 * style: weights as {index → double} lists per output position, both passes over a plain
 * number[][][] image. Fixed point: weight·2^22 rounded half away from zero, sums start at 2^21,
 * result (sum >> 22) clipped to [0, 255]; a pass whose size does not change is skipped.
 */
function referenceResize(image: RgbImage, width: number, height: number): RgbImage {
  const cubic = (d: number) => {
    const x = Math.abs(d);
    if (x < 1) return 1.5 * x * x * x - 2.5 * x * x + 1;
    if (x < 2) return -0.5 * x * x * x + 2.5 * x * x - 4 * x + 2;
    return 0;
  };
  const taps = (inSize: number, outSize: number) =>
    Array.from({ length: outSize }, (_, o) => {
      const scale = inSize / outSize;
      const stretch = Math.max(1, scale);
      const center = (o + 0.5) * scale;
      const lo = Math.max(0, Math.trunc(center - 2 * stretch + 0.5));
      const hi = Math.min(inSize, Math.trunc(center + 2 * stretch + 0.5));
      const list: { index: number; w: number }[] = [];
      for (let i = lo; i < hi; i++) list.push({ index: i, w: cubic((i - center + 0.5) / stretch) });
      const total = list.reduce((s, e) => s + e.w, 0);
      return list.map(({ index, w }) => {
        const k = total === 0 ? w : w / total;
        return { index, fixed: k < 0 ? Math.ceil(k * 4194304 - 0.5) : Math.floor(k * 4194304 + 0.5) };
      });
    });
  const apply = (values: number[], list: { index: number; fixed: number }[]) => {
    const sum = list.reduce((s, { index, fixed }) => s + values[index] * fixed, 2097152);
    return Math.min(255, Math.max(0, Math.floor(sum / 4194304)));
  };
  let grid: number[][][] = Array.from({ length: image.height }, (_, y) => Array.from({ length: image.width }, (_, x) => pixel(image, x, y)));
  if (width !== image.width) {
    const xs = taps(image.width, width);
    grid = grid.map((row) => xs.map((list) => [0, 1, 2].map((c) => apply(row.map((p) => p[c]), list))));
  }
  if (height !== image.height) {
    const ys = taps(image.height, height);
    grid = ys.map((list) => Array.from({ length: width }, (_, x) => [0, 1, 2].map((c) => apply(grid.map((row) => row[x][c]), list))));
  }
  return { width, height, data: Uint8Array.from(grid.flat(2)) };
}

/** A reproducible pseudo-random image (xorshift). */
function noiseImage(width: number, height: number, seed: number, levels = 256): RgbImage {
  let s = seed | 1;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    data[i] = levels === 2 ? ((s >>> 0) & 1) * 255 : (s >>> 0) % 256;
  }
  return { width, height, data };
}

t.test('resize 4×1 → 2×1 (shrink, antialiased): hand-derived fixed-point weights', async (t) => {
  // scale 2 → filterscale 2, support 4. Output 0: center 1, taps x = 0..3 at (x − 1 + 0.5)/2 =
  // −0.25, 0.25, 0.75, 1.25 → bicubic 111/128, 111/128, 29/128, −9/128; sum 121/64; normalised
  // 111/242, 111/242, 29/242, −9/242; ·2^22 ± 0.5, truncated: 1923834, 1923834, 502623, −155987.
  // Output 1 (center 3) has the mirror image. R = [0, 100, 200, 255]:
  // (2^21 + 1923834·100 + 502623·200 − 155987·255) >> 22 = 255228467 >> 22 = 60;
  // (2^21 + 502623·100 + 1923834·200 + 1923834·255) >> 22 = 927703922 >> 22 = 221.
  // G constant 77 stays 77; B = [255, 0, 0, 0]: (2^21 + 1923834·255) >> 22 = 117, (2^21 − 155987·255) >> 22 = −9 → clipped to 0.
  const image: RgbImage = { width: 4, height: 1, data: Uint8Array.from([0, 77, 255, 100, 77, 0, 200, 77, 0, 255, 77, 0]) };
  const out = resizeBicubic(image, 2, 1);
  t.same([out.width, out.height], [2, 1]);
  t.same(Array.from(out.data), [60, 77, 117, 221, 77, 0]);
});

t.test('resize 2×2 → 5×3 (enlarge): hand-derived fixed-point weights, horizontal pass first', async (t) => {
  // 2 → 5 (scale 0.4, support 2, two taps each): centers 0.2, 0.6, 1.0, 1.4, 1.8;
  //   center 0.2: taps at 0.3, 1.3 → bicubic 0.8155, −0.0735; sum 0.742 → 233/212, −21/212 → 4609778, −415474
  //   center 0.6: taps at −0.1, 0.9 → 0.9765, 0.0685; sum 1.045 → 1953/2090, 137/2090 → 3919366, 274938
  //   center 1.0: taps at −0.5, 0.5 → 0.5625 each → 2097152, 2097152; 1.4 and 1.8 mirror 0.6 and 0.2.
  // 2 → 3 (scale 2/3): centers 1/3, 1, 5/3;
  //   center 1/3: taps at 1/6, 7/6 → 15/16, −25/432; sum 380/432 → 405/380, −25/380 → 4470245, −275941
  //   center 1: 2097152, 2097152; center 5/3 mirrors 1/3.
  const horizontal = [[4609778, -415474], [3919366, 274938], [2097152, 2097152], [274938, 3919366], [-415474, 4609778]];
  const vertical = [[4470245, -275941], [2097152, 2097152], [-275941, 4470245]];
  const pass = (a: number, b: number, [w0, w1]: number[]) => Math.min(255, Math.max(0, (2097152 + a * w0 + b * w1) >> 22));
  const source = [[[10, 250, 0], [200, 0, 255]], [[90, 30, 255], [255, 128, 0]]]; // [y][x][c]
  const rows = source.map((row) => horizontal.map((w) => [0, 1, 2].map((c) => pass(row[0][c], row[1][c], w))));
  const expected = vertical.map((w) => rows[0].map((_, x) => [0, 1, 2].map((c) => pass(rows[0][x][c], rows[1][x][c], w))));
  const image: RgbImage = { width: 2, height: 2, data: Uint8Array.from(source.flat(2)) };
  const out = resizeBicubic(image, 5, 3);
  t.same([out.width, out.height], [5, 3]);
  t.same(Array.from(out.data), expected.flat(2));
});

t.test('resize to the same size returns a copy of the same pixels', async (t) => {
  const image = noiseImage(7, 5, 3);
  const out = resizeBicubic(image, 7, 5);
  t.same(Array.from(out.data), Array.from(image.data));
  t.not(out.data, image.data, 'a new buffer');
});

t.test('resize keeps a constant image constant, up and down, one axis or both', async (t) => {
  for (const value of [0, 1, 77, 254, 255]) {
    const image: RgbImage = { width: 13, height: 9, data: new Uint8Array(13 * 9 * 3).fill(value) };
    for (const [w, h] of [[1, 1], [5, 9], [13, 2], [40, 31], [3, 100], [26, 18]]) {
      t.ok(resizeBicubic(image, w, h).data.every((v) => v === value), `${value}: 13×9 → ${w}×${h}`);
    }
  }
});

t.test('resize matches an independent implementation of Pillow bit for bit, up- and downscaling', async (t) => {
  let seed = 11;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return 1 + (seed % n);
  };
  const cases: [number, number, number, number][] = [[3, 3, 1, 1], [1, 1, 4, 6], [17, 5, 4, 23], [64, 48, 21, 16], [20, 20, 61, 7]];
  for (let i = 0; i < 40; i++) cases.push([next(40), next(40), next(60), next(60)]);
  for (const [w, h, ow, oh] of cases) {
    const image = noiseImage(w, h, w * 1000 + h, (w + h) % 3 === 0 ? 2 : 256); // every third: black/white only, to exercise clipping
    const got = resizeBicubic(image, ow, oh);
    const want = referenceResize(image, ow, oh);
    t.same(Array.from(got.data), Array.from(want.data), `${w}×${h} → ${ow}×${oh}`);
  }
});

t.test('resize rejects sizes that are not positive integers', async (t) => {
  const image = noiseImage(2, 2, 1);
  t.throws(() => resizeBicubic(image, 0, 2), { code: 'ERR_VLMQ_INVALID_ARG' });
  t.throws(() => resizeBicubic(image, 2, 1.5), { code: 'ERR_VLMQ_INVALID_ARG' });
  t.throws(() => resizeBicubic({ width: 2, height: 2, data: new Uint8Array(11) }, 1, 1), { code: 'ERR_VLMQ_INVALID_ARG' });
});

t.test('roundHalfEven is Python round(): ties go to the even integer', async (t) => {
  const cases: [number, number][] = [
    [0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, 0], [-1.5, -2], [-2.5, -2],
    [0.49999999999999994, 0], [2.5000000000000004, 3], [1.4999999999999998, 1], [7, 7], [-7.2, -7], [-7.7, -8],
    [42 / 28, 2], [70 / 28, 2], [98 / 28, 4], [4503599627370497, 4503599627370497],
  ];
  for (const [x, expected] of cases) t.equal(roundHalfEven(x), expected, `round(${x}) = ${expected}`);
  t.ok(Object.is(roundHalfEven(-0.4), 0), 'no negative zero');
});

t.test('readImageSize: the size decodeImage gives, from the header, with the same errors', async (t) => {
  const dir = t.testdir({ 'corrupt.png': 'this is not an image at all', 'empty.jpg': '' });
  const images = join(TRANSFORMERS_FIXTURES_DIR, 'images');
  for (const file of ['wide.png', 'small-alpha.png', 'tall-gray.png', 'photo.jpg']) {
    const decoded = await decodeImage(join(images, file));
    t.same(await readImageSize(join(images, file)), { width: decoded.width, height: decoded.height }, file);
  }
  // an EXIF orientation of 6 (rotate 90°) is not applied by either
  const { data, info } = raw(40, 10, 3, (x) => x * 6);
  const rotated = join(dir, 'rotated.jpg');
  await sharp(data, info).withMetadata({ orientation: 6 }).jpeg().toFile(rotated);
  t.same(await readImageSize(rotated), { width: 40, height: 10 }, 'EXIF orientation ignored');
  t.same([(await decodeImage(rotated)).width, (await decodeImage(rotated)).height], [40, 10]);
  for (const [file, why] of [['missing.png', /no such file/], ['corrupt.png', /cannot be decoded/], ['empty.jpg', /empty/]] as const) {
    await t.rejects(readImageSize(join(dir, file)), { code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`^${join(dir, file).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*${why.source}`) }, file);
  }
});
