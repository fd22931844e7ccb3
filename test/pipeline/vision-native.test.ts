// The native vision towers against the float64 oracle (test/reference/vision.ts) on tiny
// checkpoints of every architecture: several images (or views) per call, of different sizes.
// Tolerance: max |native − oracle| ≤ 1e-5 · max |oracle| (the native towers compute in f32).
import t from 'tap';
import { VisionTower } from '../../lib/pipeline/vision-tower.js';
import { toFloat32 } from '../../lib/tensor.js';
import { maxRelativeError } from '../helpers/problems.js';
import { oracleWeights, pixels, qwenSpec, siglipSpec, tinyModel } from '../helpers/vision.js';
import * as ref from '../reference/vision.js';

const TOLERANCE = 1e-5;
const dir = t.testdir({});

t.test('Qwen2-VL tower matches the float64 reference: three images of different sizes, one of two frames', async (t) => {
  const { checkpoint, model } = await tinyModel(dir, {
    architecture: 'qwen2_vl', dtype: 'F32', seed: 31,
    vision: { depth: 3, width: 32, heads: 2, mlpRatio: 4, patchSize: 4 },
  });
  const spec = qwenSpec(checkpoint);
  const grids = [[1, 4, 6], [2, 2, 4], [1, 6, 2]] as const;
  const F = spec.channels * spec.temporalPatch * spec.patch ** 2;
  const N = grids.reduce((n, [a, b, c]) => n + a * b * c, 0);
  const x = pixels(N * F, 1);
  const tower = await VisionTower.load(model);
  const got = await tower.qwen(x, grids);
  const want = ref.qwenVision(Float64Array.from(x), grids, spec, await oracleWeights(checkpoint, model));
  t.equal(got.length, (N / 4) * spec.outHidden, 'one merged token per 2 × 2 patches, of the LLM width');
  const err = maxRelativeError(got, want);
  t.ok(err < TOLERANCE, `within ${TOLERANCE} of the reference (${err.toExponential(1)})`);
  t.equal(tower.imageNewline, null, 'Qwen has no image_newline');
  tower.dispose();
  await model.close();
});

t.test('Qwen2.5-VL tower matches the float64 reference: windowed and full-attention blocks, partial windows, three images', async (t) => {
  // window_size 112 px = 4 merged tokens per side with 14-px patches; fullatt [1, 3] leaves 0 and 2 windowed.
  const { checkpoint, model } = await tinyModel(dir, {
    architecture: 'qwen2_5_vl', dtype: 'BF16', seed: 32,
    vision: { depth: 4, width: 32, heads: 2, intermediate: 48, fullattBlockIndexes: [1, 3] },
  });
  const spec = qwenSpec(checkpoint);
  t.same([spec.windowSize, spec.patch, spec.fullattBlockIndexes], [112, 14, [1, 3]], 'the checkpoint has the windows this test means');
  // 5 × 7 merged: 2 × 2 windows, three partial; 4 × 4 in two frames: one whole window each;
  // 9 × 1 merged: windows of 4, 4 and 1 rows.
  const grids = [[1, 10, 14], [2, 8, 8], [1, 18, 2]] as const;
  const F = spec.channels * spec.temporalPatch * spec.patch ** 2;
  const N = grids.reduce((n, [a, b, c]) => n + a * b * c, 0);
  const x = pixels(N * F, 2);
  const tower = await VisionTower.load(model);
  const got = await tower.qwen(x, grids);
  const want = ref.qwenVision(Float64Array.from(x), grids, spec, await oracleWeights(checkpoint, model));
  t.equal(got.length, (N / 4) * spec.outHidden, 'one merged token per 2 × 2 patches, in raster order');
  const err = maxRelativeError(got, want);
  t.ok(err < TOLERANCE, `within ${TOLERANCE} of the reference (${err.toExponential(1)})`);

  // The windows matter: the same tower with every block attending to the whole image differs.
  const fullSpec = { ...spec, fullattBlockIndexes: [0, 1, 2, 3] };
  const full = ref.qwenVision(Float64Array.from(x), grids, fullSpec, await oracleWeights(checkpoint, model));
  t.ok(maxRelativeError(full, want) > 100 * TOLERANCE, 'and window attention is not a no-op at this tolerance');
  tower.dispose();
  await model.close();
});

t.test('Qwen2.5-VL tower: each image is computed as if it were alone in the call', async (t) => {
  const { model } = await tinyModel(dir, { architecture: 'qwen2_5_vl', seed: 33, vision: { depth: 2, width: 32, heads: 2 } });
  const spec = model.config.vision;
  const F = spec.inChannels * 2 * 14 * 14;
  const a = pixels(10 * 6 * F, 3), b = pixels(4 * 12 * F, 4);
  const tower = await VisionTower.load(model);
  const both = await tower.qwen(Float32Array.from([...a, ...b]), [[1, 10, 6], [1, 4, 12]]);
  const alone = [...await tower.qwen(a, [[1, 10, 6]]), ...await tower.qwen(b, [[1, 4, 12]])];
  t.ok(maxRelativeError(both, alone) < 1e-6, `batched equals one by one (${maxRelativeError(both, alone).toExponential(1)})`);
  tower.dispose();
  await model.close();
});

t.test('LLaVA-OneVision SigLIP tower and projector match the float64 reference: three views', async (t) => {
  const { checkpoint, model } = await tinyModel(dir, {
    architecture: 'llava_onevision', dtype: 'F16', seed: 34,
    vision: { depth: 3, width: 32, heads: 2, intermediate: 48, patchSize: 4, imageSize: 24 },
  });
  const spec = siglipSpec(checkpoint);
  const S = 24, views = 3, P2 = (S / 4) ** 2;
  const x = pixels(views * 3 * S * S, 5);
  const tower = await VisionTower.load(model);
  const got = await tower.siglip(x, views);
  const want = ref.siglipVision(Float64Array.from(x), views, S, spec, await oracleWeights(checkpoint, model));
  t.equal(got.length, views * P2 * spec.outHidden, 'P² features of the text width per view');
  const err = maxRelativeError(got, want);
  t.ok(err < TOLERANCE, `within ${TOLERANCE} of the reference (${err.toExponential(1)})`);
  const newline = toFloat32(await model.checkpoint.read(`${checkpoint.prefixes.imageNewline}`));
  t.same(tower.imageNewline, newline, 'image_newline is exposed as f32');
  tower.dispose();
  await model.close();
});

t.test('SigLIP views a few pixels larger than P · patch drop the remainder, as Conv2d without padding does', async (t) => {
  const { checkpoint, model } = await tinyModel(dir, {
    architecture: 'llava_onevision', seed: 35, vision: { depth: 2, width: 32, heads: 2, patchSize: 4, imageSize: 24 },
  });
  const S = 27, views = 2; // ⌊27 / 4⌋ = 6 patches per side, as for 24 px
  const x = pixels(views * 3 * S * S, 6);
  const tower = await VisionTower.load(model);
  const got = await tower.siglip(x, views);
  const want = ref.siglipVision(Float64Array.from(x), views, S, siglipSpec(checkpoint), await oracleWeights(checkpoint, model));
  const err = maxRelativeError(got, want);
  t.ok(err < TOLERANCE, `within ${TOLERANCE} of the reference (${err.toExponential(1)})`);
  tower.dispose();
  await model.close();
});

t.test('vision_feature_layer −2 takes the output of the second-to-last encoder layer', async (t) => {
  const { checkpoint } = await tinyModel(dir, {
    architecture: 'llava_onevision', seed: 36, vision: { depth: 3, width: 32, heads: 2, patchSize: 4, imageSize: 16 },
  });
  const { readFile, writeFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { loadModel } = await import('../../lib/index.js');
  const file = join(checkpoint.dir, 'config.json');
  const config = JSON.parse(await readFile(file, 'utf8'));
  config.vision_feature_layer = -2;
  await writeFile(file, JSON.stringify(config));
  const model = await loadModel(checkpoint.dir);
  const tower = await VisionTower.load(model);
  t.equal(tower.dims.depth, 2, 'two of the three encoder layers run');
  const x = pixels(2 * 3 * 16 * 16, 7);
  const got = await tower.siglip(x, 2);
  const spec = { ...siglipSpec({ ...checkpoint, config }), layers: 2 };
  const want = ref.siglipVision(Float64Array.from(x), 2, 16, spec, await oracleWeights(checkpoint, model));
  const err = maxRelativeError(got, want);
  t.ok(err < TOLERANCE, `within ${TOLERANCE} of the reference with two layers (${err.toExponential(1)})`);
  tower.dispose();
  await model.close();
});
