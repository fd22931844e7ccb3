// Inputs of tower-fixtures.py: the tiny checkpoints and pixel values of
// test/fixtures/transformers/tower-cases.ts (the tests regenerate the same bytes from the same
// options and seeds). Run here, then on a GPU machine with transformers:
// `python3 scripts/device/tower-fixtures.py` (carry .devcheck/tower-fixtures). The results go to
// test/fixtures/transformers/tower-<name>.safetensors.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensors } from '../../lib/io/safetensors-writer.js';
import { writeTinyCheckpoint } from '../../test/fixtures/checkpoints.js';
import { TOWER_FIXTURES, patchFeatures, pixelCount } from '../../test/fixtures/transformers/tower-cases.js';
import { pixels } from '../../test/helpers/vision.js';

const root = '.devcheck/tower-fixtures';
await rm(root, { recursive: true, force: true });
await mkdir(root, { recursive: true });
for (const fixture of TOWER_FIXTURES) {
  await writeTinyCheckpoint(join(root, fixture.name), fixture.checkpoint);
  const x = pixels(pixelCount(fixture), fixture.pixelSeed);
  const tensors = fixture.grids
    ? [
      { name: 'pixel_values', dtype: 'F32' as const, shape: [x.length / patchFeatures(fixture), patchFeatures(fixture)], data: x },
      { name: 'grid_thw', dtype: 'I32' as const, shape: [fixture.grids.length, 3], data: Int32Array.from(fixture.grids.flat()) },
    ]
    : [{ name: 'pixel_values', dtype: 'F32' as const, shape: [fixture.views!, 3, fixture.size!, fixture.size!], data: x }];
  await writeSafetensors(join(root, `${fixture.name}-inputs.safetensors`), tensors);
}
await writeFile(join(root, 'cases.json'), JSON.stringify(TOWER_FIXTURES, null, 1));
