// A checkpoint's chat template and tokenizer files are untrusted input, and vlmq must never hang on
// them: a template that loops over range(100000000), one that writes a huge string in a few
// doublings, and one that simply runs too long each fail with an error naming the template's file
// within the bounds (time, memory, output); a fresh rendering process serves the next render; a long but
// legitimate conversation still renders; and a FIFO, a directory or a device given as
// chat_template.jinja or tokenizer.json is refused by kind without being read, by the processor and
// by the calibration's fingerprint.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Calibration } from '../../lib/pipeline/calibration.js';
import { TextProcessor } from '../../lib/data/processor.js';
import { TEMPLATE_HEAP_LIMIT_MB, TEMPLATE_OUTPUT_LIMIT, TEMPLATE_TIME_LIMIT_MS } from '../../lib/data/template-renderer.js';
import { loadModel } from '../../lib/models/model.js';
import { writeTinyCheckpoint } from '../../lib/demo/tiny-checkpoint.js';

const conversation = { images: 1, prompt: 'Describe it.', answer: 'A square.' };
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A tiny Qwen2-VL checkpoint whose chat template is `template`, in chat_template.jinja. */
async function withTemplate(t: Test, template: string) {
  const checkpoint = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_vl' });
  await rm(join(checkpoint.dir, 'chat_template.json')); // it comes before chat_template.jinja
  const jinja = join(checkpoint.dir, 'chat_template.jinja');
  await writeFile(jinja, template);
  const model = await loadModel(checkpoint.dir);
  t.teardown(() => model.close());
  return { model, jinja, dir: checkpoint.dir };
}

/** How long `promise` takes to settle, and its error. */
async function timed(promise: Promise<unknown>): Promise<{ error: (Error & { code?: string }) | null; seconds: number }> {
  const start = performance.now();
  const error = await promise.then(() => null, (e: Error & { code?: string }) => e);
  return { error, seconds: (performance.now() - start) / 1000 };
}

t.test('the limits are the documented ones', async (t) => {
  t.equal(TEMPLATE_TIME_LIMIT_MS, 10_000);
  t.equal(TEMPLATE_OUTPUT_LIMIT, 1024 * 1024);
  t.equal(TEMPLATE_HEAP_LIMIT_MB, 256);
});

t.test('range(100000000) fails within the time or memory bound, naming chat_template.jinja', { timeout: 60_000 }, async (t) => {
  const { model, jinja } = await withTemplate(t, '{% for i in range(100000000) %}x{% endfor %}');
  const text = await TextProcessor.load(model);
  const { error, seconds } = await timed(text.render(conversation));
  t.equal(error?.code, 'ERR_VLMQ_BAD_FILE');
  t.match(error?.message, new RegExp(`^${escape(jinja)}: rendering the chat template exceeded (10 s|256 MB of memory)`), error?.message ?? 'no error');
  t.ok(seconds < 10 + 5, `stopped after ${seconds.toFixed(1)} s (the bound is 10 s)`);
});

t.test('a template that runs too long is stopped at the time limit, and the next render works', { timeout: 60_000 }, async (t) => {
  // 9·10^8 empty iterations: many minutes of work for @huggingface/jinja, and almost no memory
  const { model, jinja } = await withTemplate(t, '{% for i in range(30000) %}{% for j in range(30000) %}{% endfor %}{% endfor %}');
  const text = await TextProcessor.load(model, { templateLimits: { timeMs: 300 } });
  const { error, seconds } = await timed(text.render(conversation));
  t.match(error?.message, new RegExp(`^${escape(jinja)}: rendering the chat template exceeded 0\\.3 s`));
  t.ok(seconds < 8, `stopped after ${seconds.toFixed(2)} s (0.3 s of rendering, after the rendering process started)`);

  await writeFile(jinja, '{% for m in messages %}[{{ m.role }}]{% endfor %}');
  const healthy = await TextProcessor.load(model, { templateLimits: { timeMs: 300 } });
  t.equal(await healthy.render(conversation), '[user][assistant]', 'a fresh rendering process renders the next template');
});

t.test('a huge string written in a few doublings is refused by its length, naming the file', { timeout: 60_000 }, async (t) => {
  // 16 characters doubled 20 times: 16·2^20 = 16,777,216 characters, in milliseconds
  const doubling = (times: number) => `{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(${times}) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}`;
  const { model, jinja } = await withTemplate(t, doubling(20));
  const text = await TextProcessor.load(model);
  const limit = 1024 * 1024 + 4 * (conversation.prompt.length + conversation.answer.length);
  const { error, seconds } = await timed(text.render(conversation));
  t.equal(error?.code, 'ERR_VLMQ_BAD_FILE');
  t.equal(error?.message.startsWith(`${jinja}: rendering the chat template exceeded ${limit} characters of output (it wrote 16777216 characters`), true, error?.message ?? "no error");
  t.ok(seconds < 5, `refused after ${seconds.toFixed(2)} s`);

  // 30 doublings pass V8's longest string: the same error, without a length
  await writeFile(jinja, doubling(30));
  const past = await TextProcessor.load(model);
  await t.rejects(past.render(conversation), { message: new RegExp(`^${escape(jinja)}: rendering the chat template exceeded ${limit} characters of output \\(it wrote more than JavaScript's longest string`) });

  // a smaller output limit applies to a small output
  await writeFile(jinja, doubling(4)); // 256 characters
  const strict = await TextProcessor.load(model, { templateLimits: { outputChars: 100 } });
  await t.rejects(strict.render({ images: 0, prompt: '', answer: '' }), { message: /exceeded 100 characters of output \(it wrote 256 characters/ });
});

t.test("a long conversation is legitimate: the output limit is on top of the conversation's own text", async (t) => {
  const { model } = await withTemplate(t, '{% for m in messages %}{% for c in m.content %}{% if c.type == "text" %}{{ c.text }}{% endif %}{% endfor %}{% endfor %}');
  const text = await TextProcessor.load(model);
  const answer = 'y'.repeat(3 * 1024 * 1024);
  t.equal((await text.render({ images: 0, prompt: 'p', answer })).length, 1 + answer.length, 'a 3 Mi-character answer renders whole');
});

t.test('renders in flight together each get their own answer', async (t) => {
  const { model } = await withTemplate(t, '{% for m in messages %}{{ m.content[-1].text }}|{% endfor %}');
  const text = await TextProcessor.load(model);
  const outputs = await Promise.all(Array.from({ length: 20 }, (_, i) => text.render({ images: 0, prompt: `p${i}`, answer: `a${i}` })));
  t.same(outputs, Array.from({ length: 20 }, (_, i) => `p${i}|a${i}|`));
});

t.test('templateLimits are checked', async (t) => {
  const { model } = await withTemplate(t, 'x');
  for (const timeMs of [0, -1, NaN, Infinity]) {
    await t.rejects(TextProcessor.load(model, { templateLimits: { timeMs } }), { code: 'ERR_VLMQ_INVALID_ARG', message: /templateLimits\.timeMs/ }, `timeMs ${timeMs}`);
  }
  for (const outputChars of [0, 1.5, -3]) {
    await t.rejects(TextProcessor.load(model, { templateLimits: { outputChars } }), { code: 'ERR_VLMQ_INVALID_ARG', message: /templateLimits\.outputChars/ }, `outputChars ${outputChars}`);
  }
});

t.test('chat_template.jinja or tokenizer.json that is a FIFO, a directory or a device is refused by kind, without blocking', { timeout: 20_000 }, async (t) => {
  const cases = [
    ['chat_template.jinja', 'a FIFO', (path: string) => execFileSync('mkfifo', [path]), /is a FIFO \(named pipe\), not a regular file/],
    ['chat_template.jinja', 'a directory', (path: string) => mkdir(path), /is a directory, not a regular file/],
    ['chat_template.jinja', '/dev/null', (path: string) => symlink('/dev/null', path), /is a character device, not a regular file/],
    ['tokenizer.json', 'a FIFO', (path: string) => execFileSync('mkfifo', [path]), /is a FIFO \(named pipe\), not a regular (JSON )?file/],
    ['tokenizer.json', 'a directory', (path: string) => mkdir(path), /is a directory, not a regular (JSON )?file/],
    ['tokenizer_config.json', 'a FIFO', (path: string) => execFileSync('mkfifo', [path]), /is a FIFO \(named pipe\), not a regular (JSON )?file/],
  ] as const;
  for (const [file, kind, make, why] of cases) {
    const { model, dir } = await withTemplate(t, 'x');
    const path = join(dir, file);
    await rm(path, { force: true });
    await make(path);
    const { error, seconds } = await timed(TextProcessor.load(model));
    t.equal(error?.code, 'ERR_VLMQ_BAD_FILE', `${file} as ${kind}`);
    t.match(error?.message, new RegExp(`^${escape(path)}: .*${why.source}`), `${file} as ${kind}: named, with its kind`);
    t.ok(seconds < 2, `${file} as ${kind}: refused in ${seconds.toFixed(2)} s`);
    const fingerprint = await timed(Calibration.fromRecords([]).fingerprint(model));
    t.match(fingerprint.error?.message, new RegExp(`^${escape(path)}: .*${why.source}`), `${file} as ${kind}: the calibration fingerprint refuses it too`);
    t.ok(fingerprint.seconds < 2, `${file} as ${kind}: fingerprint refused in ${fingerprint.seconds.toFixed(2)} s`);
  }
});
