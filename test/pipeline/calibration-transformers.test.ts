// Image–text calibration against Hugging Face transformers 5.17 itself (fixtures made in float64
// on a GPU machine by scripts/device/vision-fixtures.{mts,py}, from the tiny checkpoints and
// images of test/fixtures/transformers/vision-cases.ts): the chat-template text, the token ids
// with every image placeholder expanded, the M-RoPE position ids, and the layer-0 input of the
// language model (token embeddings with the vision tower's features scattered in) of a two-image
// sample — what vlmq's calibration bundle holds.
import t from 'tap';
import { join } from 'node:path';
import { CalibrationBundle } from '../../lib/data/bundle.js';
import { buildCalibrationBundle } from '../../lib/pipeline/calibration.js';
import { TextProcessor } from '../../lib/data/processor.js';
import { loadSafetensors } from '../../lib/io/safetensors-reader.js';
import { loadModel } from '../../lib/models/model.js';
import { writeTinyCheckpoint } from '../../lib/demo/tiny-checkpoint.js';
import { TRANSFORMERS_FIXTURES_DIR } from '../fixtures/transformers/cases.js';
import { FIXTURE_IMAGES, VISION_FIXTURES } from '../fixtures/transformers/vision-cases.js';
import { maxRelativeError } from '../helpers/problems.js';

const here = TRANSFORMERS_FIXTURES_DIR;

for (const fixture of VISION_FIXTURES) {
  t.test(`${fixture.name}: the calibration sample equals transformers' (text, ids, positions, layer-0 input)`, async (t) => {
    const { tensors, metadata } = await loadSafetensors(join(here, `processor-${fixture.name}.safetensors`));
    t.match(metadata, { computed_in: 'float64' });
    const dir = t.testdir();
    const checkpoint = await writeTinyCheckpoint(join(dir, 'model'), fixture.checkpoint);
    const model = await loadModel(checkpoint.dir);
    t.teardown(() => model.close());
    const { sample } = fixture;
    const conversation = { images: sample.images.length, prompt: sample.prompt, answer: sample.answer };

    const text = await TextProcessor.load(model);
    t.equal(await text.render(conversation), metadata!.text, 'the chat template writes what the processor wrote');

    const record = { id: 'fixture', images: sample.images.map((i) => join(here, 'images', FIXTURE_IMAGES[i].file)), prompt: sample.prompt, answer: sample.answer };
    const path = join(dir, 'bundle.safetensors');
    const report = await buildCalibrationBundle(model, [record], path, { maxTokens: 100_000 });
    const bundle = await CalibrationBundle.open(path);
    t.teardown(() => bundle.close());
    const ours = await bundle.read(0);
    const ids = tensors.get('sample.input_ids')!.data as Int32Array;
    t.equal(report.tokens, ids.length, `${ids.length} tokens, as transformers' input_ids`);
    const imageToken = text.imageTokenId;
    const expectedModality = Array.from(ids, (id) => (id === imageToken ? 1 : 0));
    t.same(Array.from(ours.modality), expectedModality, 'image tokens exactly where transformers put its image placeholders');
    t.same(Array.from(await text.conversationIds(conversation, tokensPerImage(ids, imageToken, report.imageTokens, sample.images.length), record.id)), Array.from(ids), 'token ids equal');

    const want = tensors.get('sample.embeddings')!.data as Float32Array;
    const error = maxRelativeError(ours.embeddings, want);
    t.ok(error < 1e-5, `embeddings (vision features in place) within 1e-5 of transformers' float64 (${error.toExponential(1)})`);
    const positions = tensors.get('sample.positions');
    if (positions) t.same(Array.from(ours.positions), Array.from(positions.data as Int32Array), 'M-RoPE position ids equal get_rope_index');
    else t.same(Array.from(ours.positions), Array.from({ length: ids.length }, (_, i) => i), '1-D positions 0 … T−1');
  });
}

/** Each image's token count, read off transformers' ids (consecutive placeholder runs, split by the vision_start/end tokens). */
function tokensPerImage(ids: Int32Array, imageToken: number, total: number, images: number): number[] {
  const runs: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] !== imageToken) continue;
    let j = i;
    while (j < ids.length && ids[j] === imageToken) j++;
    runs.push(j - i);
    i = j;
  }
  if (runs.length !== images || runs.reduce((a, b) => a + b, 0) !== total) throw new Error(`placeholder runs ${runs} do not add up to ${total} for ${images} images`);
  return runs;
}
