// The progress reporter: a redrawn line on a terminal, throttled plain lines elsewhere, JSON
// events with --json. Driven in-process with a fake clock and fake streams.
import t from 'tap';
import { Output } from '../../lib/cli/output.js';
import { Progress } from '../../lib/cli/progress.js';

function setup(options: { json?: boolean; interactive?: boolean }) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const out = new Output({ write: (s: string) => stdout.push(s) }, { write: (s: string) => stderr.push(s), columns: 120 }, { json: options.json ?? false, interactive: options.interactive ?? false });
  let now = 0;
  const clock = { advance: (ms: number) => (now += ms) };
  const progress = new Progress(out, 'gptq', { unit: 'columns', now: () => now });
  return { out, progress, clock, stdout, stderr };
}

t.test('plain lines: at most every 10 %, or after 2 s without one, then a final line', async (t) => {
  const { progress, clock, stderr, stdout } = setup({});
  for (let done = 1; done <= 100; done++) {
    clock.advance(10);
    progress.update(done, 100);
  }
  progress.finish();
  const lines = stderr.join('').trimEnd().split('\n');
  t.equal(lines.length, 10, '10 %, 20 %, ..., 90 %, then done');
  t.match(lines[0], /^gptq:  10% \(10\/100 columns\), 0\.10s elapsed, ETA 0\.90s$/);
  t.match(lines[8], /^gptq:  90% /);
  t.equal(lines[9], 'gptq: done (100 columns) in 1.00s');
  t.same(stdout, [], 'nothing on stdout');

  const slow = setup({});
  slow.clock.advance(2500);
  slow.progress.update(1, 1000);
  slow.clock.advance(500);
  slow.progress.update(2, 1000);
  slow.clock.advance(2000);
  slow.progress.update(3, 1000);
  t.equal(slow.stderr.length, 2, 'a line after 2 s even below the next 10 %');
});

t.test('on a terminal: one line redrawn in place, kept when done', async (t) => {
  const { progress, clock, stderr } = setup({ interactive: true });
  for (let done = 16; done <= 64; done += 16) {
    clock.advance(150);
    progress.update(done, 64);
  }
  progress.finish();
  const text = stderr.join('');
  t.notMatch(text.slice(0, -1), /\n/, 'no new line until the end');
  t.match(text, /\r\x1b\[2Kgptq \[#####\.{15}\]  25% 16\/64 columns  ETA 0\.45s/);
  t.match(text, /\r\x1b\[2Kgptq: done \(64 columns\) in 0\.60s\n$/);
});

t.test('a log line while a bar is drawn goes above it', async (t) => {
  const { out, progress, clock, stderr } = setup({ interactive: true });
  clock.advance(200);
  progress.update(1, 4);
  stderr.length = 0;
  out.log('hello');
  t.match(stderr.join(''), /^\r\x1b\[2Khello\ngptq \[/);
});

t.test('--json: progress events on stdout, each whole percent at most once, a final one', async (t) => {
  const { progress, clock, stdout, stderr } = setup({ json: true });
  for (const done of [10, 10, 20, 64]) {
    clock.advance(100);
    progress.update(done, 64);
  }
  progress.finish();
  const events = stdout.map((line) => JSON.parse(line));
  t.same(events.map((e) => e.done), [10, 20, 64]);
  t.match(events[0], { type: 'progress', task: 'gptq', total: 64, unit: 'columns', percent: 15, finished: false, elapsedSeconds: 0.1 });
  t.match(events[2], { percent: 100, etaSeconds: 0, finished: true });
  t.same(stderr, []);
});

t.test('finish(total) reports the total when no update arrived; later updates are ignored', async (t) => {
  const { progress, stderr } = setup({});
  progress.finish(512);
  progress.update(128, 512);
  t.same(stderr, ['gptq: done (512 columns) in 0.00s\n']);
});

t.test('the ETA is measured from the first update, so set-up work before it does not inflate it', async (t) => {
  const { progress, clock, stderr } = setup({});
  clock.advance(5000);
  progress.update(10, 100);
  clock.advance(100);
  progress.update(20, 100);
  t.match(stderr[0], /10% .*ETA 45\.0s/, 'one update: from the start');
  t.match(stderr[1], /20% .*ETA 0\.80s/, 'then: from the rate since the first update');
});
