// Image–text calibration in the library: the length rule (a sample longer than maxTokens loses the
// end of its text, or is dropped when the cut would fall in an image), errors that name the image
// or record, bundle reuse by fingerprint, and quantize(model, Calibration) end to end on each
// architecture — the bundle checked against an assembly from the parts (tokenizer, image
// preprocessing, embedding table), the run exported and verified. That the parts equal
// transformers' is test/pipeline/calibration-transformers.test.ts.
import t from 'tap';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { CalibrationBundle, MODALITY } from '../../lib/data/bundle.js';
import { Calibration, buildCalibrationBundle, calibrationShortfall } from '../../lib/pipeline/calibration.js';
import { type CalibrationRecord, sampleRecords } from '../../lib/data/calibration-set.js';
import { decodeImage } from '../../lib/data/image.js';
import { llavaImageProcessorConfig, llavaImageTokens } from '../../lib/data/llava-image.js';
import { TextProcessor } from '../../lib/data/processor.js';
import { preprocessQwenImage, qwenImageProcessorConfig } from '../../lib/data/qwen-image.js';
import { verifyCheckpoint } from '../../lib/export/verify.js';
import { type Model, loadModel } from '../../lib/models/model.js';
import type { ArchitectureId } from '../../lib/models/types.js';
import { writeTinyCheckpoint } from '../../lib/demo/tiny-checkpoint.js';
import { quantize } from '../../lib/pipeline/quantize.js';
import { toFloat32 } from '../../lib/tensor.js';
import { TRANSFORMERS_FIXTURES_DIR } from '../fixtures/transformers/cases.js';

const images = join(TRANSFORMERS_FIXTURES_DIR, 'images');
const image = (file: string) => join(images, file);
const dir = t.testdir();

async function tinyModel(name: string, architecture: ArchitectureId, layers = 1): Promise<Model> {
  const checkpoint = await writeTinyCheckpoint(join(dir, name), { architecture, dtype: 'F32', seed: 7, layers, imageMaxPixels: 40 * 28 * 28 });
  const model = await loadModel(checkpoint.dir);
  t.teardown(() => model.close());
  return model;
}

const qwen = await tinyModel('qwen2_vl', 'qwen2_vl');
const record = (id: string, files: string[], prompt = 'What is shown here?', answer = 'A picture with a few coloured shapes on a gradient.'): CalibrationRecord => ({ id, images: files.map(image), prompt, answer });

/** The ids the record becomes with no length limit, from the tokenizer and the image preprocessing. */
async function fullIds(model: Model, r: CalibrationRecord): Promise<Int32Array> {
  const text = await TextProcessor.load(model);
  const tokens = await Promise.all(r.images.map(async (file) => imageTokens(model, file)));
  return text.conversationIds({ images: r.images.length, prompt: r.prompt, answer: r.answer }, tokens, r.id);
}

async function imageTokens(model: Model, file: string): Promise<number> {
  const pixels = await decodeImage(file);
  const json = JSON.parse(await readFile(join(model.dir, 'preprocessor_config.json'), 'utf8'));
  if (model.architecture.id !== 'llava_onevision') return preprocessQwenImage(pixels, qwenImageProcessorConfig(json, 'preprocessor_config.json')).tokens;
  const vision = model.config.raw.vision_config as { image_size: number; patch_size: number };
  const processor = JSON.parse(await readFile(join(model.dir, 'processor_config.json'), 'utf8'));
  return llavaImageTokens(pixels.height, pixels.width, llavaImageProcessorConfig(json, processor, model.config.raw, 'preprocessor_config.json'), vision.image_size / vision.patch_size);
}

t.test('maxTokens: a sample is cut at the end of its text, or dropped (and reported) when the cut would fall in an image', async (t) => {
  const withImage = record('with-image', ['wide.png']);
  const textOnly = record('text-only', [], 'Say something about quantization.', 'Fewer bits, same answers, if the Hessian is right.');
  const ids = await fullIds(qwen, withImage);
  const lastImage = ids.lastIndexOf((await TextProcessor.load(qwen)).imageTokenId);
  t.ok(lastImage > 10 && lastImage < ids.length - 5, `the image ends at ${lastImage} of ${ids.length} tokens`);

  const cut = join(dir, 'cut.safetensors');
  const truncated = await buildCalibrationBundle(qwen, [withImage], cut, { maxTokens: ids.length - 3 });
  t.match(truncated, { samples: 1, truncated: 1, dropped: [], tokens: ids.length - 3 });
  const whole = join(dir, 'whole.safetensors');
  await buildCalibrationBundle(qwen, [withImage], whole, { maxTokens: ids.length });
  const [a, b] = [await CalibrationBundle.open(cut), await CalibrationBundle.open(whole)];
  t.teardown(async () => { await a.close(); await b.close(); });
  const [short, long] = [await a.read(0), await b.read(0)];
  const H = qwen.config.text.hiddenSize;
  t.same(short.embeddings, long.embeddings.subarray(0, (ids.length - 3) * H), 'the cut sample is the prefix of the whole one');
  const [T, wholeLength] = [ids.length - 3, ids.length];
  const axes = (p: Int32Array, n: number, keep: number) => [0, 1, 2].map((a) => Array.from(p.subarray(a * n, a * n + keep)));
  t.same(axes(short.positions, T, T), axes(long.positions, wholeLength, T), 'and so are its M-RoPE positions ([3, T], each axis cut)');

  for (const maxTokens of [lastImage, lastImage - 7, 3]) {
    const report = await buildCalibrationBundle(qwen, [withImage, textOnly], join(dir, `drop-${maxTokens}.safetensors`), { maxTokens, seed: 1 });
    t.equal(report.samples, 1, `maxTokens ${maxTokens}: one sample kept`);
    t.match(report.dropped, [{ id: 'with-image', reason: new RegExp(`^${ids.length} tokens; cutting to ${maxTokens} would cut into an image`) }]);
    t.equal(report.imageTokens, 0, 'and it is the text-only one');
  }
  await t.rejects(buildCalibrationBundle(qwen, [withImage], join(dir, 'none.safetensors'), { maxTokens: lastImage }),
    { code: 'ERR_VLMQ_BAD_FILE', message: new RegExp(`no calibration sample fits in ${lastImage} tokens \\(1 dropped: `) });
  await t.rejects(buildCalibrationBundle(qwen, [withImage], join(dir, 'bad.safetensors'), { maxTokens: 0 }), { code: 'ERR_VLMQ_INVALID_ARG', message: /maxTokens/ });
});

t.test('errors name the image: missing, unreadable, not an image, an aspect ratio the processor rejects', async (t) => {
  const garbage = join(dir, 'garbage.png');
  await writeFile(garbage, Buffer.from('\x89PNG\r\n\x1a\n this is not really a png'));
  const empty = join(dir, 'empty.jpg');
  await writeFile(empty, '');
  const thin = join(dir, 'thin.png');
  await sharp({ create: { width: 5630, height: 28, channels: 3, background: '#808080' } }).png().toFile(thin);
  const cases: [string, string, RegExp][] = [
    ['missing', join(dir, 'nowhere.png'), /nowhere\.png.*no such file/],
    ['a directory', dir, /is a directory/],
    ['corrupt', garbage, /garbage\.png.*cannot be decoded/],
    ['empty', empty, /empty\.jpg.*empty/],
    ['aspect ratio 201', thin, /thin\.png.*aspect ratio/],
  ];
  for (const [what, file, message] of cases) {
    const r = { id: what, images: [image('wide.png'), file], prompt: 'p', answer: 'a' };
    await t.rejects(buildCalibrationBundle(qwen, [r], join(dir, `${what}.safetensors`)), { code: 'ERR_VLMQ_BAD_FILE', message }, what);
  }
});

t.test("smart_resize's aspect-ratio error names the architecture actually used, and the image", async (t) => {
  const thin = join(dir, 'thin-201.png');
  await sharp({ create: { width: 201 * 28, height: 28, channels: 3, background: '#808080' } }).png().toFile(thin);
  const r = { id: 'thin', images: [thin], prompt: 'p', answer: 'a' };
  for (const [architecture, name, other] of [['qwen2_vl', 'Qwen2-VL', 'Qwen2.5-VL'], ['qwen2_5_vl', 'Qwen2.5-VL', 'Qwen2-VL']] as const) {
    const model = architecture === 'qwen2_vl' ? qwen : await tinyModel(`${architecture}-aspect`, architecture);
    const error = await buildCalibrationBundle(model, [r], join(dir, `${architecture}-thin.safetensors`)).then(() => null, (e: Error) => e);
    t.ok(error?.message.startsWith(`${thin}: absolute aspect ratio must be at most 200 for the ${name} image processor, but 28×5628 (h×w) has 201`), `${architecture}: ${error?.message}`);
    t.notOk(error?.message.includes(other), `${architecture}: does not name ${other}`);
  }
});

t.test('the report says how many records were requested, how many the set has, and why fewer samples were written', async (t) => {
  const one = record('only', ['wide.png']);
  const report = await buildCalibrationBundle(qwen, [one], join(dir, 'one.safetensors'), { samples: 1_000_000_000 });
  t.match(report, { requested: 1_000_000_000, available: 1, samples: 1, dropped: [] });
  t.equal(calibrationShortfall(report), '1 calibration sample(s) of the 1000000000 requested: the calibration set has only 1 record(s)');

  const all = await buildCalibrationBundle(qwen, [one, record('text', [])], join(dir, 'all.safetensors'));
  t.match(all, { requested: 2, available: 2, samples: 2 }, 'without samples, every record is requested');
  t.equal(calibrationShortfall(all), null, 'nothing missing, nothing to say');

  const ids = await fullIds(qwen, one);
  const maxTokens = ids.lastIndexOf((await TextProcessor.load(qwen)).imageTokenId); // cuts into the image: dropped
  const short = await buildCalibrationBundle(qwen, [one, record('text', [])], join(dir, 'short.safetensors'), { samples: 5, maxTokens });
  t.match(short, { requested: 5, available: 2, samples: 1, dropped: [{ id: 'only' }] });
  t.match(calibrationShortfall(short), /^1 calibration sample\(s\) of the 5 requested: the calibration set has only 2 record\(s\); 1 record\(s\) dropped for length \(only: \d+ tokens; cutting to \d+ would cut into an image\)$/);
});

t.test("errors name the checkpoint's file: no preprocessor_config.json, a chat_template.json that is not JSON", async (t) => {
  const r = record('r', ['wide.png']);
  const noProcessor = await tinyModel('no-processor', 'qwen2_vl');
  await rm(join(noProcessor.dir, 'preprocessor_config.json'));
  await t.rejects(buildCalibrationBundle(noProcessor, [r], join(dir, 'np.safetensors')), { code: 'ERR_VLMQ_BAD_FILE', message: /preprocessor_config\.json: missing; vlmq needs the image processor settings/ });
  const badTemplate = await tinyModel('bad-template', 'llava_onevision');
  await writeFile(join(badTemplate.dir, 'chat_template.json'), '{"chat_template": ');
  await t.rejects(buildCalibrationBundle(badTemplate, [r], join(dir, 'bt.safetensors')), { code: 'ERR_VLMQ_BAD_FILE', message: /chat_template\.json: not valid JSON/ });
});

t.test('Calibration.bundle: reused when built from the same records, options and model; rebuilt when any changes', async (t) => {
  const records = [record('a', ['wide.png']), record('b', ['photo.jpg', 'tall-gray.png']), record('c', [])];
  const path = join(dir, 'reuse.safetensors');
  const calibration = Calibration.fromRecords(records, { samples: 2, seed: 3 });
  const first = await calibration.bundle(qwen, path);
  t.match(first.report, { samples: 2 });
  await first.bundle.close();
  const again = await Calibration.fromRecords(records, { samples: 2, seed: 3 }).bundle(qwen, path);
  t.equal(again.report, null, 'the same calibration reuses the bundle');
  await again.bundle.close();
  for (const other of [Calibration.fromRecords(records, { samples: 2, seed: 4 }), Calibration.fromRecords(records.slice(0, 2), { samples: 2, seed: 3 }), Calibration.fromRecords(records, { samples: 3, seed: 3 })]) {
    const rebuilt = await other.bundle(qwen, path);
    t.not(rebuilt.report, null, 'another calibration rebuilds it');
    await rebuilt.bundle.close();
  }
  const otherModel = await tinyModel('qwen2_vl-other', 'qwen2_vl', 2);
  t.not(await calibration.fingerprint(otherModel), await calibration.fingerprint(qwen), 'another model, another fingerprint');
});

for (const architecture of ['qwen2_vl', 'qwen2_5_vl', 'llava_onevision'] as const) {
  t.test(`${architecture}: quantize(model, Calibration.fromFile(jsonl)) end to end`, async (t) => {
    const model = architecture === 'qwen2_vl' ? qwen : await tinyModel(architecture, architecture);
    const jsonl = join(dir, `${architecture}.jsonl`);
    const lines = [
      { image: 'wide.png', prompt: 'Describe the picture.', answer: 'Shapes on a gradient.' },
      { image: ['small-alpha.png', 'photo.jpg'], prompt: 'Compare them.', answer: 'The second is a photo.' },
      { image: null, prompt: 'No picture this time.', answer: 'Then only text.' },
      { image: 'large.png', prompt: 'What colours?', answer: 'Red, green and blue.' },
    ];
    await writeFile(jsonl, lines.map((l) => JSON.stringify(l)).join('\n'));
    const calibration = await Calibration.fromFile(jsonl, { images, seed: 5 });
    const workDir = join(dir, `work-${architecture}`);
    const run = await quantize(model, calibration, { method: 'vlmq', bits: 4, groupSize: 16, workDir });

    // the bundle the run calibrated on, against an assembly from the parts
    const bundle = await CalibrationBundle.open(join(workDir, 'calibration.safetensors'));
    t.teardown(() => bundle.close());
    t.equal(bundle.samples, 4);
    const H = model.config.text.hiddenSize;
    const table = toFloat32(await model.checkpoint.read(`${model.architecture.languagePrefixes(model.layout).embedTokens}.weight`));
    const text = await TextProcessor.load(model);
    for (const [k, r] of sampleRecords(calibration.records, 4, 5).entries()) {
      const ids = await fullIds(model, r);
      const sample = await bundle.read(k);
      t.same(Array.from(sample.modality), Array.from(ids, (id) => (id === text.imageTokenId ? MODALITY.image : MODALITY.text)), `${r.id}: image tokens where the placeholders expand`);
      let textRowsEqual = true, imageRowsDiffer = true;
      for (let i = 0; i < ids.length; i++) {
        const row = sample.embeddings.subarray(i * H, (i + 1) * H);
        const own = table.subarray(ids[i] * H, (ids[i] + 1) * H);
        if (sample.modality[i] === MODALITY.text) textRowsEqual &&= row.every((v, j) => v === own[j]);
        else imageRowsDiffer &&= row.some((v, j) => v !== own[j]);
      }
      t.ok(textRowsEqual, `${r.id}: text rows are the embedding table's rows`);
      t.ok(imageRowsDiffer, `${r.id}: image rows hold vision features, not the placeholder's embedding`);
      if (model.config.text.mropeSection) t.equal(sample.positions.length, 3 * ids.length, `${r.id}: M-RoPE positions`);
      else t.same(Array.from(sample.positions), Array.from(ids, (_, i) => i), `${r.id}: 1-D positions`);
    }

    const gptq = join(dir, `${architecture}-gptq`), fake = join(dir, `${architecture}-fake`);
    await run.save(gptq, { format: 'gptq_v2' });
    await run.save(fake, { format: 'fake-quant', fakeQuantDtype: 'F32' });
    const verify = await verifyCheckpoint(gptq, { against: fake });
    t.same(verify.problems, [], 'the GPTQ export verifies against the fake-quant one');
    await run.discard();
  });
}
