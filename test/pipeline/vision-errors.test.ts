// Bad inputs to the vision towers are rejected before any native work, with errors naming the
// argument: pixel values of the wrong length or type, grids that are empty, zero-sized, not
// integers or not multiples of the merge size, views that are not positive integers, and calls
// meant for the other kind of tower.
import t from 'tap';
import { VisionTower } from '../../lib/pipeline/vision-tower.js';
import { pixels, tinyModel } from '../helpers/vision.js';

const dir = t.testdir({});
const { model: qwenModel } = await tinyModel(dir, { architecture: 'qwen2_vl', vision: { patchSize: 4 } });
const { model: llavaModel } = await tinyModel(dir, { architecture: 'llava_onevision', vision: { patchSize: 4, imageSize: 16 } });
const qwen = await VisionTower.load(qwenModel);
const siglip = await VisionTower.load(llavaModel);
const F = 3 * 2 * 4 * 4;
t.teardown(async () => {
  qwen.dispose();
  siglip.dispose();
  await qwenModel.close();
  await llavaModel.close();
});

const invalid = (name: string) => ({ code: 'ERR_VLMQ_INVALID_ARG', message: new RegExp(`for ${name.replace(/[[\]]/g, '\\$&')} but received`) });

t.test('qwen() rejects pixel values whose length does not match the grids, naming pixelValues', async (t) => {
  t.throws(() => qwen.qwen(pixels(16 * F - 1, 1), [[1, 4, 4]]), invalid('pixelValues'));
  t.throws(() => qwen.qwen(pixels(16 * F, 1), [[1, 4, 8]]), invalid('pixelValues'));
  t.throws(() => qwen.qwen(Array.from(pixels(16 * F, 1)) as unknown as Float32Array, [[1, 4, 4]]), invalid('pixelValues'));
  t.throws(() => qwen.qwen(Float64Array.from(pixels(16 * F, 1)) as unknown as Float32Array, [[1, 4, 4]]), invalid('pixelValues'));
});

t.test('qwen() rejects grids whose h or w is not a multiple of the merge size, naming the grid', async (t) => {
  t.throws(() => qwen.qwen(pixels(12 * F, 1), [[1, 3, 4]]), invalid('grids[0]'));
  t.throws(() => qwen.qwen(pixels(28 * F, 1), [[1, 4, 4], [1, 4, 3]]), invalid('grids[1]'));
});

t.test('qwen() rejects zero-sized, negative, fractional and malformed grids, naming the grid', async (t) => {
  for (const grid of [[0, 4, 4], [1, 0, 4], [1, 4, 0], [-1, 4, 4], [1, 2.5, 4], [1, 4], [1, 4, 4, 1], 'grid', null]) {
    t.throws(() => qwen.qwen(pixels(16 * F, 1), [grid as never]), invalid('grids[0]'), JSON.stringify(grid));
  }
});

t.test('qwen() rejects an empty or missing grid list, naming grids', async (t) => {
  t.throws(() => qwen.qwen(new Float32Array(0), []), invalid('grids'));
  t.throws(() => qwen.qwen(new Float32Array(0), undefined as never), invalid('grids'));
});

t.test('siglip() rejects views that are not positive integers, naming views', async (t) => {
  for (const views of [0, -1, 1.5, Number.NaN, '2']) t.throws(() => siglip.siglip(pixels(3 * 256, 1), views as never), invalid('views'), String(views));
});

t.test('siglip() rejects pixel values that are not whole square views of the model size, naming pixelValues', async (t) => {
  t.throws(() => siglip.siglip(pixels(3 * 256 - 1, 1), 1), invalid('pixelValues'), 'not whole views');
  t.throws(() => siglip.siglip(pixels(3 * 256, 1), 2), invalid('pixelValues'), 'more views than values');
  t.throws(() => siglip.siglip(pixels(3 * 12 * 12, 1), 1), invalid('pixelValues'), '12 px: 3 × 3 patches, the model has 4 × 4');
  t.throws(() => siglip.siglip(pixels(3 * 20 * 20, 1), 1), invalid('pixelValues'), '20 px: 5 × 5 patches');
  t.throws(() => siglip.siglip(new Float64Array(3 * 256) as never, 1), invalid('pixelValues'), 'a Float64Array');
});

t.test('each tower rejects the other kind\'s call and windowIndex() needs Qwen2.5-VL', async (t) => {
  t.throws(() => siglip.qwen(pixels(16 * F, 1), [[1, 4, 4]]), { code: 'ERR_VLMQ_INVALID_ARG', message: /qwen\(\) needs a Qwen2-VL or Qwen2\.5-VL tower/ });
  t.throws(() => qwen.siglip(pixels(3 * 256, 1), 1), { code: 'ERR_VLMQ_INVALID_ARG', message: /siglip\(\) needs a SigLIP tower/ });
  t.throws(() => qwen.windowIndex([[1, 4, 4]]), { code: 'ERR_VLMQ_INVALID_ARG', message: /windowIndex\(\) needs a Qwen2\.5-VL tower/ });
});

t.test('a valid call after rejected ones still works', async (t) => {
  const out = await qwen.qwen(pixels(16 * F, 1), [[1, 4, 4]]);
  t.equal(out.length, 4 * qwenModel.config.text.hiddenSize);
  t.ok(out.every(Number.isFinite), 'finite features');
});
