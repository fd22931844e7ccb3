// The native vision towers against Hugging Face transformers itself: outputs computed by
// transformers 5.17 in float64 (eager attention) on tiny checkpoints and pixel values that the
// tests regenerate byte for byte (fixtures and the script that made them:
// test/fixtures/transformers/tower-cases.ts, scripts/device/tower-fixtures.{mts,py}).
// Tolerance: max |native − transformers| ≤ 1e-5 · max |transformers|.
import t from 'tap';
import { join } from 'node:path';
import { loadModel } from '../../lib/index.js';
import { loadSafetensors } from '../../lib/io/safetensors-reader.js';
import { VisionTower } from '../../lib/pipeline/vision-tower.js';
import { writeTinyCheckpoint } from '../fixtures/checkpoints.js';
import { TRANSFORMERS_FIXTURES_DIR } from '../fixtures/transformers/cases.js';
import { TOWER_FIXTURES, pixelCount } from '../fixtures/transformers/tower-cases.js';
import { maxRelativeError } from '../helpers/problems.js';
import { oracleWeights, pixels, qwenSpec, siglipSpec } from '../helpers/vision.js';
import * as ref from '../reference/vision.js';

const TOLERANCE = 1e-5;
const here = TRANSFORMERS_FIXTURES_DIR;

for (const fixture of TOWER_FIXTURES) {
  t.test(`${fixture.name}: the native tower's output matches transformers' image features`, async (t) => {
    const { tensors, metadata } = await loadSafetensors(join(here, `tower-${fixture.name}.safetensors`));
    t.match(metadata, { computed_in: 'float64' }, 'computed by transformers in float64');
    const checkpoint = await writeTinyCheckpoint(join(t.testdir(), 'model'), fixture.checkpoint);
    const model = await loadModel(checkpoint.dir);
    const tower = await VisionTower.load(model);
    const x = pixels(pixelCount(fixture), fixture.pixelSeed);
    const got = fixture.grids ? await tower.qwen(x, fixture.grids) : await tower.siglip(x, fixture.views!);
    const want = tensors.get('features')!.data as Float32Array;
    t.equal(got.length, want.length, 'as many features');
    const err = maxRelativeError(got, want);
    t.ok(err < TOLERANCE, `within ${TOLERANCE} of transformers (${err.toExponential(1)})`);
    const weights = await oracleWeights(checkpoint, model);
    const oracle = fixture.grids
      ? ref.qwenVision(Float64Array.from(x), fixture.grids, qwenSpec(checkpoint), weights)
      : ref.siglipVision(Float64Array.from(x), fixture.views!, fixture.size!, siglipSpec(checkpoint), weights);
    const oracleErr = maxRelativeError(oracle, want);
    t.ok(oracleErr < 1e-6, `and so is the float64 oracle of test/reference/vision.ts (${oracleErr.toExponential(1)})`);

    if (!fixture.grids) {
      const post = tensors.get('post_layernorm')!.data as Float32Array;
      t.ok(maxRelativeError(got, post) > 1e-2, 'and not the projection of the post_layernorm output');
      // transformers' get_image_features for several images of one sample: each view's features, then image_newline
      const packed = tensors.get('packed')!.data as Float32Array;
      const H = model.config.text.hiddenSize, L = got.length / H / fixture.views!;
      const ours = new Float32Array(packed.length);
      for (let v = 0; v < fixture.views!; v++) {
        ours.set(got.subarray(v * L * H, (v + 1) * L * H), v * (L + 1) * H);
        ours.set(tower.imageNewline!, (v * (L + 1) + L) * H);
      }
      const packedErr = maxRelativeError(ours, packed);
      t.ok(packedErr < TOLERANCE, `views followed by imageNewline equal transformers' get_image_features (${packedErr.toExponential(1)})`);
    }
    tower.dispose();
    await model.close();
  });
}
