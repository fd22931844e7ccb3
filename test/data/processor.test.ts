// The text side of the processors: the checkpoint's chat template renders a calibration
// conversation as docs/formats.md §3.8 / §4.2 describe it, the tokenizer keeps special tokens
// whole, each image placeholder becomes exactly its image's token count, and a checkpoint without
// a template, tokenizer or image token id gets an error (or the documented fallback) that says so.
import t from 'tap';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TextProcessor } from '../../lib/data/processor.js';
import { loadModel } from '../../lib/models/model.js';
import { writeTinyCheckpoint } from '../../lib/demo/tiny-checkpoint.js';

const conversation = { images: 2, prompt: 'Describe the chart.', answer: 'Two bars.' };

const EXPECTED = {
  qwen2_vl: '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>Describe the chart.<|im_end|>\n<|im_start|>assistant\nTwo bars.<|im_end|>\n',
  llava_onevision: '<|im_start|>user\n<image>\n<image>\nDescribe the chart.<|im_end|>\n<|im_start|>assistant\nTwo bars.<|im_end|>\n',
} as const;

for (const architecture of ['qwen2_vl', 'llava_onevision'] as const) {
  t.test(`${architecture}: the chat template, the tokenizer and the placeholder expansion`, async (t) => {
    const dir = t.testdir();
    const checkpoint = await writeTinyCheckpoint(join(dir, 'model'), { architecture });
    const model = await loadModel(checkpoint.dir);
    t.teardown(() => model.close());
    const text = await TextProcessor.load(model);
    t.equal(text.templateSource, 'chat_template.json');
    t.equal(await text.render(conversation), EXPECTED[architecture], 'the conversation as the documented template writes it');
    const image = architecture === 'llava_onevision' ? '<image>' : '<|image_pad|>';
    t.equal(text.imageTokenId, checkpoint.specialTokens[image], `the image placeholder is ${image}`);

    const plain = text.encode(await text.render(conversation));
    t.equal(text.decode(plain), EXPECTED[architecture], 'tokens decode back to the text');
    t.equal(plain.filter((id) => id === text.imageTokenId).length, 2, 'each placeholder is one token');
    for (const special of ['<|im_start|>', '<|im_end|>']) t.ok(plain.includes(checkpoint.specialTokens[special]), `${special} is one token`);

    const ids = await text.conversationIds(conversation, [3, 5], 'record x');
    t.equal(ids.length, plain.length - 2 + 8, 'two placeholders become 3 + 5 tokens');
    const first = plain.indexOf(text.imageTokenId);
    t.same(Array.from(ids.subarray(0, first)), Array.from(plain.subarray(0, first)), 'the text before the first image is unchanged');
    t.same(Array.from(ids.subarray(first, first + 3)), [text.imageTokenId, text.imageTokenId, text.imageTokenId], 'then the first image');
    t.same(Array.from(ids.subarray(ids.length - (plain.length - plain.lastIndexOf(text.imageTokenId) - 1))), Array.from(plain.subarray(plain.lastIndexOf(text.imageTokenId) + 1)), 'the text after the last image is unchanged');
    await t.rejects(text.conversationIds(conversation, [3], 'record x'), { message: /record x: the chat template wrote 2 image placeholder\(s\) for 1 image\(s\)/ });
  });
}

t.test('without a chat template of its own the documented one is used; a broken one is an error naming the file', async (t) => {
  const dir = t.testdir();
  const checkpoint = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl' });
  await rm(join(checkpoint.dir, 'chat_template.json'));
  let model = await loadModel(checkpoint.dir);
  t.equal((await TextProcessor.load(model)).templateSource, 'tokenizer_config.json', 'next, the template in tokenizer_config.json');
  const configPath = join(checkpoint.dir, 'tokenizer_config.json');
  const { chat_template: _template, ...config } = JSON.parse(await readFile(configPath, 'utf8'));
  await writeFile(configPath, JSON.stringify(config));
  const fallback = await TextProcessor.load(model);
  t.match(fallback.templateSource, /fallback template \(docs\/formats\.md §3\.8\)/);
  t.equal(await fallback.render(conversation), EXPECTED.qwen2_vl);
  await model.close();

  await writeFile(join(checkpoint.dir, 'chat_template.jinja'), '{% for m in messages %}{{ m.role }}{% endfor %}');
  model = await loadModel(checkpoint.dir);
  t.equal((await TextProcessor.load(model)).templateSource, 'chat_template.jinja', 'chat_template.jinja comes before tokenizer_config.json');
  await model.close();

  await writeFile(join(checkpoint.dir, 'chat_template.jinja'), '{% for m in messages %}');
  model = await loadModel(checkpoint.dir);
  await t.rejects(TextProcessor.load(model), { code: 'ERR_VLMQ_BAD_FILE', message: /chat_template\.jinja: the chat template does not parse/ });
  await rm(join(checkpoint.dir, 'tokenizer.json'));
  await t.rejects(TextProcessor.load(model), { code: 'ERR_VLMQ_BAD_FILE', message: /tokenizer\.json: missing/ });
  await writeFile(join(checkpoint.dir, 'tokenizer.json'), '{"model": ');
  await t.rejects(TextProcessor.load(model), { code: 'ERR_VLMQ_BAD_FILE', message: /tokenizer\.json: not valid JSON/ });
  await model.close();
});

for (const [architecture, field, placeholder, wrong] of [
  ['qwen2_vl', 'image_token_id', '<|image_pad|>', '<|video_pad|>'],
  ['llava_onevision', 'image_token_index', '<image>', '<video>'],
] as const) {
  t.test(`${architecture}: a config.json ${field} that is not the tokenizer's id for ${placeholder} is blamed on config.json, not on the template`, async (t) => {
    const dir = t.testdir();
    const checkpoint = await writeTinyCheckpoint(join(dir, 'model'), { architecture });
    const configPath = join(checkpoint.dir, 'config.json');
    const config = JSON.parse(await readFile(configPath, 'utf8'));
    const right = checkpoint.specialTokens[placeholder];
    const wrongId = checkpoint.specialTokens[wrong];
    t.equal(config[field], right, `the generated config names ${placeholder}'s id`);
    await writeFile(configPath, JSON.stringify({ ...config, [field]: wrongId }));
    const model = await loadModel(checkpoint.dir);
    t.teardown(() => model.close());
    const text = await TextProcessor.load(model);
    const error = await text.conversationIds(conversation, [3, 5], 'record x').then(() => null, (e: Error & { code?: string }) => e);
    t.equal(error?.code, 'ERR_VLMQ_BAD_FILE');
    const message = error?.message ?? '';
    t.ok(message.startsWith(`${configPath}: ${field} ${wrongId} does not match the tokenizer's id for the image placeholder "${placeholder}"`), message);
    t.ok(message.includes(`${join(checkpoint.dir, 'tokenizer.json')} gives "${placeholder}" the id ${right}`), 'names the tokenizer file and its id');
    t.notMatch(message, /^record x: the chat template wrote/, 'not blamed on the template');
  });
}

t.test('a template that writes too few placeholders is still blamed on the template', async (t) => {
  const dir = t.testdir();
  const checkpoint = await writeTinyCheckpoint(join(dir, 'model'), { architecture: 'qwen2_vl' });
  await rm(join(checkpoint.dir, 'chat_template.json'));
  await writeFile(join(checkpoint.dir, 'chat_template.jinja'), '{% for m in messages %}{{ m.role }}{% endfor %}<|image_pad|>');
  const model = await loadModel(checkpoint.dir);
  t.teardown(() => model.close());
  const text = await TextProcessor.load(model);
  await t.rejects(text.conversationIds(conversation, [3, 5], 'record y'), { code: 'ERR_VLMQ_BAD_FILE', message: /^record y: the chat template wrote 1 image placeholder\(s\) for 2 image\(s\) \(template: chat_template\.jinja\)/ });
});
