// LLaVA-OneVision anyres preprocessing (lib/data/llava-image.ts, docs/formats.md §4.2):
// select_best_resolution choices and <image> token counts worked out by hand, config parsing from
// the three llava-hf files, where the zero padding lands in the tiles, and pack_image_features
// checked with features whose values encode (view, row, column).
import t from 'tap';
import type { RgbImage } from '../../lib/data/image.js';
import {
  llavaImageProcessorConfig, llavaImageTokens, packLlavaFeatures, preprocessLlavaImage, pythonFloorDiv, selectBestResolution,
  type LlavaImageInput, type LlavaImageProcessorConfig,
} from '../../lib/data/llava-image.js';

const P = 27; // floor(384 / 14)
const PINPOINTS: [number, number][] = [];
for (let h = 1; h <= 6; h++) for (let w = 1; w <= 6; w++) PINPOINTS.push([384 * h, 384 * w]);

// llava-hf/llava-onevision-qwen2-*-hf: preprocessor_config.json (SigLIP's processor), processor_config.json, config.json
const PREPROCESSOR = {
  do_convert_rgb: true, do_normalize: true, do_pad: true, do_rescale: true, do_resize: true,
  image_grid_pinpoints: PINPOINTS, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5],
  image_processor_type: 'LlavaOnevisionImageProcessor', processor_class: 'LlavaOnevisionProcessor',
  resample: 3, rescale_factor: 0.00392156862745098, size: { height: 384, width: 384 },
};
const PROCESSOR = { num_image_tokens: 729, processor_class: 'LlavaOnevisionProcessor', vision_feature_select_strategy: 'full' };
const MODEL = {
  model_type: 'llava_onevision', image_grid_pinpoints: PINPOINTS, vision_aspect_ratio: 'anyres_max_9',
  vision_feature_select_strategy: 'full', vision_feature_layer: -1, vision_config: { image_size: 384, patch_size: 14 },
};
const CONFIG: LlavaImageProcessorConfig = llavaImageProcessorConfig(PREPROCESSOR, PROCESSOR, MODEL, 'model/preprocessor_config.json');

t.test('config: the llava-hf files read as written', async (t) => {
  t.same(CONFIG, { size: 384, imageMean: [0.5, 0.5, 0.5], imageStd: [0.5, 0.5, 0.5], rescaleFactor: 1 / 255, gridPinpoints: PINPOINTS, maxTiles: 9 });
});

t.test('config: missing fields take the transformers defaults (384, CLIP mean/std, the 36 pinpoints, anyres_max_9)', async (t) => {
  const config = llavaImageProcessorConfig({}, null, {}, 'p.json');
  t.same(config, {
    size: 384, imageMean: [0.48145466, 0.4578275, 0.40821073], imageStd: [0.26862954, 0.26130258, 0.27577711],
    rescaleFactor: 1 / 255, gridPinpoints: PINPOINTS, maxTiles: 9,
  });
  t.equal(llavaImageProcessorConfig({ size: { shortest_edge: 384 } }, null, { vision_aspect_ratio: 'anyres_max_4' }, 'p.json').maxTiles, 4);
});

t.test('config: disagreements and unimplemented settings are errors naming the file and field', async (t) => {
  const bad = (pre: Record<string, unknown>, proc: Record<string, unknown> | null, model: Record<string, unknown>, message: RegExp) =>
    t.throws(() => llavaImageProcessorConfig(pre, proc, model, 'm/preprocessor_config.json'), { code: 'ERR_VLMQ_BAD_FILE', message });
  bad({ ...PREPROCESSOR, image_grid_pinpoints: [[384, 384]] }, PROCESSOR, MODEL, /^m\/preprocessor_config\.json: image_grid_pinpoints differ from those of m\/config\.json/);
  bad(PREPROCESSOR, { ...PROCESSOR, vision_aspect_ratio: 'anyres_max_4' }, MODEL, /^m\/processor_config\.json: vision_aspect_ratio anyres_max_4 differs/);
  bad(PREPROCESSOR, PROCESSOR, { ...MODEL, vision_aspect_ratio: 'anyres' }, /^m\/config\.json: .*"vision_aspect_ratio".*"anyres"/);
  bad(PREPROCESSOR, { ...PROCESSOR, vision_feature_select_strategy: 'default' }, MODEL, /^m\/processor_config\.json: .*"vision_feature_select_strategy"/);
  bad({ ...PREPROCESSOR, size: { height: 384, width: 336 } }, PROCESSOR, MODEL, /"size"/);
  bad({ ...PREPROCESSOR, image_grid_pinpoints: [[384, 500]] }, PROCESSOR, {}, /multiples.*"image_grid_pinpoints"/);
  bad(PREPROCESSOR, PROCESSOR, { ...MODEL, vision_config: { image_size: 336 } }, /^m\/config\.json: expected vision_config\.image_size 384/);
  bad({ ...PREPROCESSOR, resample: 2 }, PROCESSOR, MODEL, /"resample"/);
  bad({ ...PREPROCESSOR, image_std: [0.5, 0.5] }, PROCESSOR, MODEL, /"image_std"/);
});

t.test('select_best_resolution: the largest effective resolution, then the least waste, then the first', async (t) => {
  // 899×1024 (h×w): every pinpoint with h ≥ 899 and w ≥ 1024 keeps all 920576 pixels; the
  // smallest of them, 1152×1152, wastes least. Anything smaller loses pixels (768×1152: s = 0.854 → 874×767).
  t.same(selectBestResolution(899, 1024, PINPOINTS), [1152, 1152]);
  // 384×384 fits 384×384 exactly: no waste
  t.same(selectBestResolution(384, 384, PINPOINTS), [384, 384]);
  // 500×1500: 768×1536 has s = 1.024 → keeps all 750000 pixels and wastes 1179648 − 750000; 768×1920 wastes more
  t.same(selectBestResolution(500, 1500, PINPOINTS), [768, 1536]);
  // 1000×3000: no pinpoint holds 3000 columns; s ≤ 2304/3000 = 0.768, reached by 768×2304 (2304·768 kept, no waste) and
  // by 1152×2304 (same pixels kept, more waste)
  t.same(selectBestResolution(1000, 3000, PINPOINTS), [768, 2304]);
  // an exact tie (same pixels kept, same waste) goes to the earlier pinpoint
  t.same(selectBestResolution(100, 100, [[768, 384], [384, 768]]), [768, 384]);
  t.same(selectBestResolution(100, 100, [[384, 768], [768, 384]]), [384, 768]);
  // 1×10000: every pinpoint keeps 0 rows (s ≤ 2304/10000), so all tie at 0 pixels and the least waste, 384×384, wins
  t.same(selectBestResolution(1, 10000, PINPOINTS), [384, 384]);
  t.throws(() => selectBestResolution(10, 10, []), { code: 'ERR_VLMQ_INVALID_ARG' });
});

/**
 * _get_number_of_features re-derived: P² base tokens, then the rows·P × cols·P map with the padded
 * axis cropped by (current − int(round(h0·current_w/w0, 7))) // 2 at each end, shrunk by
 * ratio = sqrt(h·w/(9·P²)) when above 1.1, plus one newline per row. Python's round(x, 7) is taken
 * as "x within 5e-8 of an integer counts as that integer"; int(a // r) as floor(a / r) (exact for the sizes used).
 */
function handTokens(h0: number, w0: number): number {
  const [bh, bw] = selectBestResolution(h0, w0, PINPOINTS);
  let [h, w] = [(bh / 384) * P, (bw / 384) * P];
  const round7 = (x: number) => (Math.abs(x - Math.round(x)) < 5e-8 ? Math.round(x) : Math.floor(x));
  if (w0 / h0 > w / h) h -= 2 * Math.floor((h - round7(h0 * (w / w0))) / 2);
  else w -= 2 * Math.floor((w - round7(w0 * (h / h0))) / 2);
  const ratio = Math.sqrt((h * w) / (9 * P * P));
  if (ratio > 1.1) [h, w] = [Math.floor(h / ratio), Math.floor(w / ratio)];
  return P * P + h * w + h;
}

t.test('token counts match a hand derivation of _get_number_of_features', async (t) => {
  // 899×1024 → 3×3 tiles, 81×81; wider than square: new_h = int(round(899·81/1024, 7)) = int(71.112) = 71,
  // crop (81 − 71)//2 = 5 rows each side → 71×81; ratio sqrt(5751/6561) = 0.94 → 729 + 5751 + 71 = 6551
  t.equal(llavaImageTokens(899, 1024, CONFIG, P), 6551);
  // 480×640 → 768×768, 2×2 tiles, 54×54; new_h = int(480·54/640 = 40.5) = 40, crop 7 → 40×54 → 729 + 2160 + 40 = 2929
  t.equal(llavaImageTokens(480, 640, CONFIG, P), 2929);
  // 2304×2304 → 6×6 tiles, 162×162, no crop; ratio sqrt(26244/6561) = 2 → 81×81 → 729 + 6561 + 81 = 7371
  t.equal(llavaImageTokens(2304, 2304, CONFIG, P), 7371);
  // 1000×3000 → 768×2304, 2×6 tiles, 54×162, same aspect, no crop; ratio sqrt(8748/6561) = 1.1547
  // → 54 // 1.1547 = 46, 162 // 1.1547 = 140 → 729 + 6440 + 46 = 7215
  t.equal(llavaImageTokens(1000, 3000, CONFIG, P), 7215);
  // 369×820 → 384×1152, 1×3 tiles, 27×81; taller than 1:3: new_w = 820·(27/369) = 59.99999999999999,
  // round(·, 7) = 60 (plain int() would give 59 and 2349 tokens), crop (81 − 60)//2 = 10 → 27×61 → 729 + 1647 + 27 = 2403
  t.equal(llavaImageTokens(369, 820, CONFIG, P), 2403);
  for (const [h, w] of [[1, 1], [100, 101], [224, 224], [333, 500], [600, 600], [768, 1366], [1080, 1920], [2000, 1500], [3024, 4032], [200, 2600], [4000, 300]]) {
    t.equal(llavaImageTokens(h, w, CONFIG, P), handTokens(h, w), `${h}×${w}`);
  }
});

t.test("Python's float floor division", async (t) => {
  t.equal(pythonFloorDiv(1, 0.1), 9, '1 // 0.1 is 9.0 in Python (floor(1 / 0.1) would be 10)');
  t.equal(pythonFloorDiv(162, 2), 81);
  t.equal(pythonFloorDiv(54, Math.sqrt(8748 / 6561)), 46);
  t.equal(pythonFloorDiv(-7, 2), -4);
});

const white = (height: number, width: number): RgbImage => ({ width, height, data: new Uint8Array(width * height * 3).fill(255) });
const S = 384;
/** Value of view v, channel c, row y, column x of pixelValues [views, 3, S, S]. */
const at = (input: LlavaImageInput, v: number, c: number, y: number, x: number) => input.pixelValues[((v * 3 + c) * S + y) * S + x];

t.test('padding: zeros on the uint8 canvas before normalisation (→ −1), centred, the odd row at the bottom', async (t) => {
  // 100×101 → 384×384; fitted 381×384 (ceil(100·384/101) = 381); 3 rows of padding: 1 above, 2 below
  const input = preprocessLlavaImage(white(100, 101), CONFIG, P);
  t.same([input.views, input.bestResolution, input.tileGrid, input.imageSize], [2, [384, 384], [1, 1], [100, 101]]);
  t.equal(input.pixelValues.length, 2 * 3 * S * S);
  for (let c = 0; c < 3; c++) {
    t.same([0, 1, 381, 382, 383].map((y) => at(input, 1, c, y, 200)), [-1, 1, 1, -1, -1], `channel ${c}: rows 0, 1, 381, 382, 383 of the tile`);
    t.same([0, 383].map((x) => at(input, 1, c, 0, x)), [-1, -1]);
    t.same([0, 383].map((x) => at(input, 1, c, 5, x)), [1, 1], 'content spans every column');
  }
  t.ok(input.pixelValues.subarray(0, 3 * S * S).every((v) => v === 1), 'the base view is the whole (white) image, no padding');
  // 101×100: the same on columns
  const wide = preprocessLlavaImage(white(101, 100), CONFIG, P);
  t.same([0, 1, 381, 382, 383].map((x) => at(wide, 1, 0, 100, x)), [-1, 1, 1, -1, -1]);
});

t.test('padding across tiles: 480×640 → 768×768 canvas, 576 rows of image centred (96 above, 96 below)', async (t) => {
  const input = preprocessLlavaImage(white(480, 640), CONFIG, P);
  t.same([input.views, input.tileGrid, input.tokens], [5, [2, 2], 2929]);
  // tiles row-major: view 1 = top-left, 2 = top-right, 3 = bottom-left, 4 = bottom-right
  for (const v of [1, 2]) t.same([0, 95, 96, 383].map((y) => at(input, v, 1, y, 10)), [-1, -1, 1, 1], `view ${v}: canvas rows 0, 95, 96, 383`);
  for (const v of [3, 4]) t.same([0, 287, 288, 383].map((y) => at(input, v, 2, y, 300)), [1, 1, -1, -1], `view ${v}: canvas rows 384, 671, 672, 767`);
});

t.test('pixel values: the tiles are the padded canvas cut row-major (a gradient image)', async (t) => {
  // 384×768 fits 384×768 exactly (no resize: PIL returns a copy): tile 1 = columns 0..383, tile 2 = columns 384..767
  const [h, w] = [384, 768];
  const data = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set([x % 256, Math.floor(x / 256) * 100, y % 256], (y * w + x) * 3);
  const input = preprocessLlavaImage({ width: w, height: h, data }, CONFIG, P);
  t.same([input.bestResolution, input.tileGrid], [[384, 768], [1, 2]]);
  const norm = (byte: number) => Math.fround(Math.fround(byte / 255) - 0.5) / 0.5;
  for (const [y, x] of [[0, 0], [10, 383], [200, 384], [383, 767], [77, 500]]) {
    const [v, tx] = [1 + Math.floor(x / 384), x % 384];
    t.same([0, 1, 2].map((c) => at(input, v, c, y, tx)), [x % 256, Math.floor(x / 256) * 100, y % 256].map(norm), `canvas (${y}, ${x})`);
  }
});

/** Features [views, P², 3] with value (view, row in tile, column in tile). */
function coordinateFeatures(views: number): Float32Array {
  const features = new Float32Array(views * P * P * 3);
  for (let v = 0; v < views; v++) for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) features.set([v, i, j], ((v * P + i) * P + j) * 3);
  return features;
}

const inputFor = (h: number, w: number): LlavaImageInput => {
  const bestResolution = selectBestResolution(h, w, PINPOINTS);
  const tileGrid: [number, number] = [bestResolution[0] / 384, bestResolution[1] / 384];
  return { pixelValues: new Float32Array(0), views: 1 + tileGrid[0] * tileGrid[1], imageSize: [h, w], bestResolution, tileGrid, maxTiles: 9, tokens: handTokens(h, w) };
};

t.test('pack: base view first, then the unpadded tile map row by row, a newline after every row', async (t) => {
  // 480×640: 2×2 tiles → 54×54 map; rows 7..46 kept (crop 7 above and below), all 54 columns
  const input = inputFor(480, 640);
  const newline = Float32Array.of(-1, -2, -3);
  const packed = packLlavaFeatures(coordinateFeatures(input.views), input, P, newline, 3);
  t.equal(packed.length, 2929 * 3);
  const row = (r: number) => Array.from(packed.subarray(r * 3, r * 3 + 3));
  t.same(row(0), [0, 0, 0]);
  t.same(row(728), [0, 26, 26], 'the base view is copied in order, no newline');
  let r = 729;
  let wrong = 0;
  for (let y = 0; y < 40; y++) {
    for (let x = 0; x < 54; x++, r++) {
      const Y = 7 + y; // row of the stitched map
      const expected = [1 + Math.floor(Y / P) * 2 + Math.floor(x / P), Y % P, x % P];
      if (row(r).some((v, c) => v !== expected[c])) wrong++;
    }
    if (row(r++).some((v, c) => v !== newline[c])) wrong++;
  }
  t.equal(wrong, 0, 'every map position and newline in place');
  t.equal(r, 2929);
  t.same(row(729), [1, 7, 0], 'first map token: tile (0, 0), row 7');
  t.same(row(729 + 55 * 20), [3, 0, 0], 'map row 20 = stitched row 27: first row of the lower tiles');
});

t.test('pack: a map shrunk by exactly 2 (2304×2304 → 162×162 → 81×81) averages 2×2 blocks', async (t) => {
  // ratio 2: src = (o + 0.5)·2 − 0.5 = 2o + 0.5 → λ = 1/2 between 2o and 2o + 1 in both axes
  const input = inputFor(2304, 2304);
  t.same([input.views, input.tokens], [37, 7371]);
  const features = new Float32Array(37 * P * P * 3);
  for (let v = 1; v < 37; v++) {
    const [tr, tc] = [Math.floor((v - 1) / 6), (v - 1) % 6];
    for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) features.set([7, tr * P + i, tc * P + j], ((v * P + i) * P + j) * 3);
  }
  const packed = packLlavaFeatures(features, input, P, Float32Array.of(9, 9, 9), 3);
  let wrong = 0;
  for (let y = 0; y < 81; y++) {
    for (let x = 0; x < 82; x++) {
      const got = Array.from(packed.subarray((729 + y * 82 + x) * 3, (729 + y * 82 + x) * 3 + 3));
      const expected = x === 81 ? [9, 9, 9] : [7, 2 * y + 0.5, 2 * x + 0.5];
      if (got.some((v, c) => v !== expected[c])) wrong++;
    }
  }
  t.equal(wrong, 0);
});

t.test('pack: a non-integer shrink (1536×1920: 108×135 → 72×90) is bilinear with align_corners=False', async (t) => {
  const input = inputFor(1536, 1920);
  t.same([input.tileGrid, input.tokens], [[4, 5], 729 + 72 * 90 + 72]);
  const value = (Y: number, X: number) => Math.sin(Y * 0.37) + Math.cos(X * 0.21) + (Y * X) / 5000;
  const features = new Float32Array(input.views * P * P);
  for (let Y = 0; Y < 108; Y++) for (let X = 0; X < 135; X++) features[(1 + Math.floor(Y / P) * 5 + Math.floor(X / P)) * P * P + (Y % P) * P + (X % P)] = value(Y, X);
  const packed = packLlavaFeatures(features, input, P, Float32Array.of(0), 1);
  // float64 reference: source (o + 0.5)·in/out − 0.5, clamped at 0, linear between floor and floor + 1 (clamped to the edge)
  const tap = (o: number, inSize: number, outSize: number) => {
    const src = Math.max(0, ((o + 0.5) * inSize) / outSize - 0.5);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    return [i0, Math.min(i0 + 1, inSize - 1), src - i0];
  };
  let worst = 0;
  for (let y = 0; y < 72; y++) {
    const [y0, y1, ly] = tap(y, 108, 72);
    for (let x = 0; x < 90; x++) {
      const [x0, x1, lx] = tap(x, 135, 90);
      const expected = (1 - ly) * ((1 - lx) * value(y0, x0) + lx * value(y0, x1)) + ly * ((1 - lx) * value(y1, x0) + lx * value(y1, x1));
      worst = Math.max(worst, Math.abs(packed[729 + y * 91 + x] - expected));
    }
    t.equal(packed[729 + y * 91 + 90], 0, `newline after row ${y}`);
  }
  t.ok(worst < 2e-5, `largest difference from float64 ${worst}`);
});

t.test('pack returns input.tokens rows for many image sizes', async (t) => {
  const sizes = [[1, 1], [37, 2000], [100, 101], [224, 224], [333, 500], [369, 820], [480, 640], [600, 600], [899, 1024], [768, 1366], [1000, 3000], [1080, 1920], [2000, 1500], [2304, 2304], [3024, 4032], [200, 2600], [4000, 300], [1537, 385]];
  for (const [h, w] of sizes) {
    const input = inputFor(h, w);
    const packed = packLlavaFeatures(new Float32Array(input.views * P * P), input, P, new Float32Array(1), 1);
    t.equal(packed.length, input.tokens, `${h}×${w}: ${input.tokens} rows`);
    t.equal(llavaImageTokens(h, w, CONFIG, P), input.tokens, `${h}×${w}: llavaImageTokens agrees`);
  }
});

t.test('preprocess and pack agree: the preprocessed input packs to exactly its token count', async (t) => {
  for (const [h, w] of [[50, 700], [300, 200], [899, 1024]]) {
    const input = preprocessLlavaImage(white(h, w), CONFIG, P);
    t.equal(input.tokens, handTokens(h, w), `${h}×${w}`);
    t.equal(packLlavaFeatures(new Float32Array(input.views * P * P), input, P, new Float32Array(1), 1).length, input.tokens);
  }
});

t.test('pack rejects features of the wrong size and an input made for another P', async (t) => {
  const input = inputFor(480, 640);
  t.throws(() => packLlavaFeatures(new Float32Array(10), input, P, new Float32Array(1), 1), { code: 'ERR_VLMQ_INVALID_ARG', message: /features/ });
  t.throws(() => packLlavaFeatures(new Float32Array(5 * P * P), input, P, new Float32Array(2), 1), { code: 'ERR_VLMQ_INVALID_ARG', message: /newline/ });
  t.throws(() => packLlavaFeatures(new Float32Array(5 * 26 * 26), input, 26, new Float32Array(1), 1), { code: 'ERR_VLMQ_INVALID_ARG', message: /tokens/ });
});
