// Inputs of vision-fixtures.py: the tiny checkpoints and the images of
// test/fixtures/transformers/vision-cases.ts, written here (the tests regenerate the same bytes).
// Then, on a GPU machine with transformers: `python3 scripts/device/vision-fixtures.py` (carry
// .devcheck); it writes processor-<name>.safetensors to $OUT, which go to test/fixtures/transformers/.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeTinyCheckpoint } from '../../lib/demo/tiny-checkpoint.js';
import { FIXTURE_IMAGES, VISION_FIXTURES } from '../../test/fixtures/transformers/vision-cases.js';
import { writeFixtureImages } from '../../test/fixtures/images.js';

const root = '.devcheck/vision-fixtures';
await rm(root, { recursive: true, force: true });
await mkdir(root, { recursive: true });
for (const fixture of VISION_FIXTURES) await writeTinyCheckpoint(join(root, fixture.name), fixture.checkpoint);
await writeFixtureImages(join(root, 'images'), FIXTURE_IMAGES);
await writeFile(join(root, 'cases.json'), JSON.stringify({ images: FIXTURE_IMAGES, cases: VISION_FIXTURES }, null, 1));
