// Inputs of decoder-fixtures.py: tiny checkpoints written by the test generator (the tests
// regenerate the same bytes from the same options). Run here, then on a GPU machine with
// transformers: `python3 scripts/device/decoder-fixtures.py` (carry .devcheck). The results go to
// test/fixtures/transformers/ with the options below.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeTinyCheckpoint } from '../../test/fixtures/checkpoints.js';
import { TRANSFORMERS_FIXTURES } from '../../test/fixtures/transformers/cases.js';

const root = '.devcheck/decoder-fixtures';
await rm(root, { recursive: true, force: true });
for (const fixture of TRANSFORMERS_FIXTURES) await writeTinyCheckpoint(join(root, fixture.name), fixture.checkpoint);
await writeFile(join(root, 'cases.json'), JSON.stringify(TRANSFORMERS_FIXTURES, null, 1));
