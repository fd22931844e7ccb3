// Qwen2-VL image preprocessing (lib/data/qwen-image.ts, docs/formats.md §3.7): smart_resize known
// answers worked out by hand from the transformers formula (banker's rounding, min/max clamping,
// the aspect-ratio error, images smaller than the factor), config parsing, the patch order checked
// against §3.7's permutation decoded independently here, NumPy float32 normalisation values, the
// temporal repeat and the token count.
import t from 'tap';
import { qwenImageProcessorConfig, qwenImageTokens, preprocessQwenImage, smartResize, type QwenImageProcessorConfig } from '../../lib/data/qwen-image.js';
import type { RgbImage } from '../../lib/data/image.js';

const QWEN = { factor: 28, minPixels: 3136, maxPixels: 12845056 }; // shipped Qwen2-VL / Qwen2.5-VL preprocessor_config.json
const CLASS_DEFAULT = { factor: 28, minPixels: 56 * 56, maxPixels: 28 * 28 * 1280 };

t.test('smart_resize: multiples of 28 already inside the bounds are kept', async (t) => {
  t.same(smartResize(224, 224, QWEN), [224, 224]);
  t.same(smartResize(56, 56, QWEN), [56, 56]);
});

t.test("smart_resize rounds h/28 and w/28 half to even (Python round), not half up", async (t) => {
  // 42/28 = 1.5 → 2 → 56; 70/28 = 2.5 → 2 (JS Math.round would give 3 → 84) → 56
  t.same(smartResize(42, 70, QWEN), [56, 56]);
  // 98/28 = 3.5 → 4 → 112; 126/28 = 4.5 → 4 → 112
  t.same(smartResize(98, 126, QWEN), [112, 112]);
  // 480/28 = 17.14 → 17 → 476; 640/28 = 22.86 → 23 → 644
  t.same(smartResize(480, 640, QWEN), [476, 644]);
});

t.test('smart_resize above max_pixels: β = sqrt(h·w/max), sides floor(side/β/28)·28', async (t) => {
  // 1000×2000, max 1003520: 36·28 × 71·28 = 2003904 > max; β = sqrt(2e6/1003520) = 1.41173;
  // 1000/β/28 = 25.30 → 700; 2000/β/28 = 50.60 → 1400 (980000 ≤ max)
  t.same(smartResize(1000, 2000, CLASS_DEFAULT), [700, 1400]);
  // 2000×3000 with the shipped max 12845056: 71·28 × 107·28 = 1988 × 2996 = 5956048 ≤ max → rounding only
  t.same(smartResize(2000, 3000, QWEN), [1988, 2996]);
});

t.test('smart_resize below min_pixels: β = sqrt(min/(h·w)), sides ceil(side·β/28)·28', async (t) => {
  // 30×40: 28 × 28 = 784 < 3136; β = sqrt(3136/1200) = 1.6166; 30·β/28 = 1.73 → 56; 40·β/28 = 2.31 → 84
  t.same(smartResize(30, 40, QWEN), [56, 84]);
});

t.test('smart_resize of images smaller than the factor: no error (current transformers), scaled up to min_pixels', async (t) => {
  // 1×1: both round to 0 → area 0 < 3136; β = sqrt(3136) = 56; ceil(56/28) = 2 → 56×56
  t.same(smartResize(1, 1, QWEN), [56, 56]);
  // 4×16: round(4/28) = 0, round(16/28) = 1; β = sqrt(3136/64) = 7; ceil(28/28) = 1 → 28; ceil(112/28) = 4 → 112
  t.same(smartResize(4, 16, QWEN), [28, 112]);
  // the max branch keeps a side at least 28: 20×3000 with max 3136: β = sqrt(60000/3136) = 4.374;
  // 20/β/28 = 0.16 → 0 → max(28, 0) = 28; 3000/β/28 = 24.49 → 672
  t.same(smartResize(20, 3000, { factor: 28, minPixels: 3136, maxPixels: 3136 }), [28, 672]);
});

t.test('smart_resize: aspect ratio 200 is allowed, above 200 is a VlmqError naming the image and its size', async (t) => {
  // 1×200: round(1/28) = 0, round(200/28) = 7; area 0 < 3136; β = sqrt(3136/200) = 3.9598; ceil(0.141) = 1 → 28; ceil(28.28) = 29 → 812
  t.same(smartResize(1, 200, QWEN), [28, 812]);
  t.throws(() => smartResize(1, 201, QWEN, 'coco/0001.jpg'), { name: 'VlmqError', code: 'ERR_VLMQ_BAD_FILE', message: /^coco\/0001\.jpg: .*aspect ratio.*1×201/ });
  t.throws(() => smartResize(3000, 14, QWEN), { message: /^image: .*3000×14/ });
  t.throws(() => smartResize(0, 10, QWEN), { code: 'ERR_VLMQ_INVALID_ARG' });
});

t.test('the aspect-ratio error names the architecture the config was read for, or both when it is not known', async (t) => {
  for (const name of ['Qwen2-VL', 'Qwen2.5-VL']) {
    const config = qwenImageProcessorConfig({}, 'preprocessor_config.json', name);
    t.equal(config.modelName, name);
    t.throws(() => qwenImageTokens(1, 201, config, 'a.png'), { message: new RegExp(`^a\\.png: absolute aspect ratio must be at most 200 for the ${name.replace('.', '\\.')} image processor, but 1×201`) });
  }
  t.throws(() => smartResize(1, 201, QWEN, 'b.png'), { message: /^b\.png: absolute aspect ratio must be at most 200 for the Qwen2-VL\/Qwen2\.5-VL image processor/ });
});

t.test('config: a shipped Qwen2-VL preprocessor_config.json reads as written', async (t) => {
  const config = qwenImageProcessorConfig({
    do_convert_rgb: true, do_normalize: true, do_rescale: true, do_resize: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
    image_processor_type: 'Qwen2VLImageProcessor', max_pixels: 12845056, merge_size: 2, min_pixels: 3136,
    patch_size: 14, processor_class: 'Qwen2VLProcessor', resample: 3, rescale_factor: 0.00392156862745098, temporal_patch_size: 2,
  }, 'preprocessor_config.json');
  t.same(config, {
    patchSize: 14, temporalPatchSize: 2, mergeSize: 2, minPixels: 3136, maxPixels: 12845056,
    imageMean: [0.48145466, 0.4578275, 0.40821073], imageStd: [0.26862954, 0.26130258, 0.27577711], rescaleFactor: 1 / 255,
  });
});

t.test('config: missing fields take the class defaults (min 3136, max 1003520, CLIP mean/std)', async (t) => {
  const config = qwenImageProcessorConfig({}, 'p.json');
  t.same(config, {
    patchSize: 14, temporalPatchSize: 2, mergeSize: 2, minPixels: 3136, maxPixels: 1003520,
    imageMean: [0.48145466, 0.4578275, 0.40821073], imageStd: [0.26862954, 0.26130258, 0.27577711], rescaleFactor: 1 / 255,
  });
});

t.test('config: size {shortest_edge, longest_edge} means min/max pixels; top-level min_pixels/max_pixels win', async (t) => {
  const fromSize = qwenImageProcessorConfig({ size: { shortest_edge: 1000, longest_edge: 200000 } }, 'p.json');
  t.same([fromSize.minPixels, fromSize.maxPixels], [1000, 200000]);
  const both = qwenImageProcessorConfig({ size: { shortest_edge: 1000, longest_edge: 200000 }, min_pixels: 3136, max_pixels: 12845056 }, 'p.json');
  t.same([both.minPixels, both.maxPixels], [3136, 12845056]);
  const oldSave = qwenImageProcessorConfig({ size: { min_pixels: 784, max_pixels: 50176 } }, 'p.json');
  t.same([oldSave.minPixels, oldSave.maxPixels], [784, 50176]);
});

t.test('config: a bad field is an error naming the file and the field', async (t) => {
  const bad = (json: Record<string, unknown>, field: RegExp) =>
    t.throws(() => qwenImageProcessorConfig(json, 'model/preprocessor_config.json'), { code: 'ERR_VLMQ_BAD_FILE', message: field });
  bad({ patch_size: 0 }, /^model\/preprocessor_config\.json: .*"patch_size".*0/);
  bad({ merge_size: '2' }, /"merge_size"/);
  bad({ image_mean: [0.5, 0.5] }, /"image_mean"/);
  bad({ image_std: [0.5, 0, 0.5] }, /"image_std"/);
  bad({ size: { longest_edge: -5 } }, /"size\.longest_edge"/);
  bad({ resample: 2 }, /bicubic.*"resample".*2/);
  bad({ do_normalize: false }, /"do_normalize"/);
  bad({ min_pixels: 5000, max_pixels: 4000 }, /min_pixels ≤ max_pixels/);
});

// A tiny processor whose normalisation is the identity, so pixel values are the bytes themselves.
const IDENTITY: QwenImageProcessorConfig = {
  patchSize: 2, temporalPatchSize: 2, mergeSize: 2, minPixels: 16, maxPixels: 10000,
  imageMean: [0, 0, 0], imageStd: [1, 1, 1], rescaleFactor: 1,
};

/** An h×w image whose channels encode the pixel's coordinates: R = y·w + x, G = 100 + y, B = 200 + x. */
function coordinateImage(height: number, width: number): RgbImage {
  const data = new Uint8Array(height * width * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([y * width + x, 100 + y, 200 + x], (y * width + x) * 3);
  return { width, height, data };
}

t.test('patch order is the reshape/permute of formats.md §3.7, decoded independently', async (t) => {
  // 8×12 is a multiple of factor 4 inside [16, 10000], so smart_resize keeps it and the resize is a copy.
  const [H, W, P, m, T] = [8, 12, 2, 2, 2];
  const { pixelValues, grid, tokens } = preprocessQwenImage(coordinateImage(H, W), IDENTITY);
  const [gh, gw] = [H / P, W / P];
  t.same(grid, [1, gh, gw]);
  t.equal(pixelValues.length, gh * gw * 3 * T * P * P);
  // §3.7: frames reshaped to (t, T, C, gh/m, m, P, gw/m, m, P), permuted to
  // (t, gh/m, gw/m, m(row in block), m(col in block), C, T, P, P), flattened. Decode every flat
  // output index in that order (mixed radix, last axis fastest) and look the value up at its source.
  const radices = [1, gh / m, gw / m, m, m, 3, T, P, P];
  let mismatches = 0;
  for (let index = 0; index < pixelValues.length; index++) {
    const digits: number[] = [];
    let rest = index;
    for (let a = radices.length - 1; a >= 0; a--) {
      digits[a] = rest % radices[a];
      rest = Math.floor(rest / radices[a]);
    }
    const [, bh, bw, mh, mw, c, , ph, pw] = digits;
    const y = (bh * m + mh) * P + ph;
    const x = (bw * m + mw) * P + pw;
    const expected = [y * W + x, 100 + y, 200 + x][c];
    if (pixelValues[index] !== expected) mismatches++;
  }
  t.equal(mismatches, 0, 'every value comes from the pixel the permutation names');
  // spot check by hand: row 5 is block (0, 1), position (0, 1) → patch row 0, patch column 3 → pixels x = 6..7, y = 0..1
  const row5 = Array.from(pixelValues.subarray(5 * 24, 5 * 24 + 4));
  t.same(row5, [6, 7, 18, 19], 'R of frame 0: (0,6) (0,7) (1,6) (1,7)');
  t.equal(tokens, (1 * gh * gw) / 4);
});

t.test('temporal duplication: both frames of every patch row hold the same values', async (t) => {
  const { pixelValues } = preprocessQwenImage(coordinateImage(8, 12), IDENTITY);
  const P2 = 4;
  for (let row = 0; row < pixelValues.length / 24; row++) {
    for (let c = 0; c < 3; c++) {
      const frame0 = pixelValues.subarray(row * 24 + (c * 2 + 0) * P2, row * 24 + (c * 2 + 0) * P2 + P2);
      const frame1 = pixelValues.subarray(row * 24 + (c * 2 + 1) * P2, row * 24 + (c * 2 + 1) * P2 + P2);
      if (!frame0.every((v, i) => v === frame1[i])) t.fail(`row ${row} channel ${c}`);
    }
  }
  t.pass('all rows checked');
});

t.test('normalisation is NumPy float32 (x·(1/255) → float32, − mean, / std) with the CLIP constants', async (t) => {
  // Values computed with NumPy 1.24: ((uint8 → float64) · (1/255)).astype(float32), then float32 (x − mean) / std.
  const expected: Record<number, [number, number, number]> = {
    0: [-1.7922625541687012, -1.7520971298217773, -1.480219841003418],
    128: [0.07633614540100098, 0.16889731585979462, 0.33994877338409424],
    255: [1.9303361177444458, 2.0748836994171143, 2.1458969116210938],
  };
  const config = qwenImageProcessorConfig({ patch_size: 2, merge_size: 2, min_pixels: 16, max_pixels: 10000 }, 'p.json');
  for (const value of [0, 128, 255]) {
    const image: RgbImage = { width: 4, height: 4, data: new Uint8Array(4 * 4 * 3).fill(value) };
    const { pixelValues } = preprocessQwenImage(image, config);
    for (let c = 0; c < 3; c++) t.equal(pixelValues[c * 2 * 4], expected[value][c], `byte ${value}, channel ${c}`);
  }
});

t.test('tokens = t·h·w / merge² and the grid follows smart_resize for a real-sized image', async (t) => {
  const config = qwenImageProcessorConfig({ min_pixels: 3136, max_pixels: 12845056 }, 'p.json');
  const image: RgbImage = { width: 640, height: 480, data: new Uint8Array(640 * 480 * 3).fill(90) };
  const { grid, tokens, pixelValues } = preprocessQwenImage(image, config);
  // smart_resize(480, 640) = 476 × 644 → grid 34 × 46 → 1564 patches → 391 tokens
  t.same(grid, [1, 34, 46]);
  t.equal(tokens, 391);
  t.equal(pixelValues.length, 1564 * 1176);
});
