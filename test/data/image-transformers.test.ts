// Image preprocessing against Hugging Face transformers 5.17 itself: the pixel values, grids and
// image sizes its slow (PIL) image processors made for the five drawn images of
// test/fixtures/transformers/vision-cases.ts with the tiny checkpoints' preprocessor_config.json
// (scripts/device/vision-fixtures.{mts,py}). vlmq reproduces the slow processor bit for bit.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeImage } from '../../lib/data/image.js';
import { llavaImageProcessorConfig, preprocessLlavaImage } from '../../lib/data/llava-image.js';
import { preprocessQwenImage, qwenImageProcessorConfig } from '../../lib/data/qwen-image.js';
import { loadSafetensors } from '../../lib/io/safetensors-reader.js';
import { writeTinyCheckpoint } from '../../lib/demo/tiny-checkpoint.js';
import { TRANSFORMERS_FIXTURES_DIR } from '../fixtures/transformers/cases.js';
import { VISION_FIXTURES } from '../fixtures/transformers/vision-cases.js';

const here = TRANSFORMERS_FIXTURES_DIR;

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
}

/** Index and values of the first element that differs, or null when the arrays are bit-identical. */
function firstDifference(ours: Float32Array, want: Float32Array): string | null {
  if (ours.length !== want.length) return `length ${ours.length} vs ${want.length}`;
  const i = ours.findIndex((v, k) => !Object.is(v, want[k]));
  return i < 0 ? null : `element ${i}: ${ours[i]} vs ${want[i]}`;
}

for (const fixture of VISION_FIXTURES.filter((f) => f.images.length > 0)) {
  t.test(`${fixture.name}: pixel values equal the slow processor's bit for bit`, async (t) => {
    const { tensors } = await loadSafetensors(join(here, `processor-${fixture.name}.safetensors`));
    const checkpoint = await writeTinyCheckpoint(join(t.testdir(), 'model'), fixture.checkpoint);
    const file = join(checkpoint.dir, 'preprocessor_config.json');
    const json = await readJson(file);
    const config = await readJson(join(checkpoint.dir, 'config.json'));
    for (const [i, image] of fixture.images.entries()) {
      const pixels = await decodeImage(join(here, 'images', image.file));
      t.same([pixels.width, pixels.height], [image.width, image.height], `${image.file}: decoded size`);
      const want = tensors.get(`image.${i}.pixel_values`)!.data as Float32Array;
      if (fixture.checkpoint.architecture === 'llava_onevision') {
        const vision = config.vision_config as { image_size: number; patch_size: number };
        const processor = await readJson(join(checkpoint.dir, 'processor_config.json'));
        const input = preprocessLlavaImage(pixels, llavaImageProcessorConfig(json, processor, config, file), vision.image_size / vision.patch_size, image.file);
        t.same(input.imageSize, Array.from(tensors.get(`image.${i}.image_size`)!.data as Int32Array), `${image.file}: image_sizes`);
        t.equal(input.views, tensors.get(`image.${i}.pixel_values`)!.shape[1], `${image.file}: ${input.views} views (base + tiles)`);
        t.equal(firstDifference(input.pixelValues, want), null, `${image.file}: pixel values bit-identical`);
      } else {
        const input = preprocessQwenImage(pixels, qwenImageProcessorConfig(json, file), image.file);
        t.same(input.grid, Array.from(tensors.get(`image.${i}.grid`)!.data as Int32Array), `${image.file}: image_grid_thw`);
        t.equal(firstDifference(input.pixelValues, want), null, `${image.file}: pixel values bit-identical`);
      }
    }
  });
}
