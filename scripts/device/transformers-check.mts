import { rm } from 'node:fs/promises';
import { join } from 'node:path';
// Writes the inputs of transformers-check.py into .devcheck/models: a tiny checkpoint of each
// architecture and layout, with its RTN fake-quant and GPTQ exports. Then, on a GPU machine with
// transformers: `python3 scripts/device/transformers-check.py` (carry .devcheck).
import { loadModel, quantize } from '../../lib/index.js';
import { writeTinyCheckpoint } from '../../test/fixtures/checkpoints.js';
const root = '.devcheck/models';
await rm(root, { recursive: true, force: true });
for (const architecture of ['qwen2_vl', 'qwen2_5_vl', 'llava_onevision'] as const) for (const layout of ['original', 'transformers-4.52'] as const) {
  const name = `${architecture}-${layout}`;
  const ck = await writeTinyCheckpoint(join(root, name), { architecture, layout, shards: 2 });
  const model = await loadModel(ck.dir);
  const run = await quantize(model, null, { bits: 4, groupSize: 32, sym: true });
  await run.save(join(root, `${name}-fq`), { format: 'fake-quant' });
  await run.save(join(root, `${name}-gptq`), { format: 'gptq' });
  await model.close();
}
