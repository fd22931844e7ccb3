// scripts/check-layers.mjs (`npm run lint:layers`): the floors of lib/ written as rules, on the
// real tree and on small trees made to break each rule once.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';

const repoRoot = join(import.meta.dirname, '..', '..');
const script = join(repoRoot, 'scripts', 'check-layers.mjs');

function check(root?: string): { code: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [script, ...(root === undefined ? [] : ['--root', root])], { encoding: 'utf8' });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

t.test('lib/ keeps its layering: no import upward, sideways or in a cycle', async (t) => {
  const run = check();
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^layers: \d+ files, \d+ imports within lib\/, no import upward, sideways or in a cycle\n$/);
});

t.test('a tree that keeps the rules passes, with every kind of import', async (t) => {
  const root = t.testdir({
    lib: {
      'errors.ts': 'export const e = 1;\n',
      native: { 'loader.ts': "import { e } from '../errors.js';\nexport const n = e;\n" },
      quant: { 'jobs.ts': "export { n } from '../native/loader.js';\nimport type { e } from '../errors.js';\n" },
      cli: { 'main.ts': "// import('../demo/x.js') in a comment is no import\nconst q = await import('../quant/jobs.js');\nexport const s = 'from \\'../demo/x.js\\'';\n" },
    },
  });
  const run = check(root);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^layers: 4 files, 4 imports within lib\/, no import upward/);
});

t.test('an import from a lower floor to a higher one fails, naming both files and the rule', async (t) => {
  const root = t.testdir({
    lib: {
      native: { 'info.ts': "import { enqueue } from '../quant/jobs.js';\nexport const i = enqueue;\n" },
      quant: { 'jobs.ts': 'export const enqueue = 1;\n' },
      pipeline: { 'tower.ts': 'export const tower = 1;\n' },
      data: { 'calibration.ts': "\nexport const c = async () => import('../pipeline/tower.js');\n" },
    },
  });
  const run = check(root);
  t.equal(run.code, 1);
  t.match(run.stderr, /^lib\/native\/info\.ts:1 imports lib\/quant\/jobs\.ts: lib\/native\/ \(floor native\) may not import lib\/quant\/ \(floor quant\), which is above it$/m);
  t.match(run.stderr, /^lib\/data\/calibration\.ts:2 imports lib\/pipeline\/tower\.ts: lib\/data\/ \(floor data, export\) may not import lib\/pipeline\/ \(floor pipeline\), which is above it$/m, 'a dynamic import counts');
  t.match(run.stderr, /^layers: 2 problem\(s\) in 4 files\./m);
  t.match(run.stderr, /entry → demo → pipeline → data, export → models → io → quant → native → base/);
});

t.test('the base files import only each other', async (t) => {
  const root = t.testdir({ lib: { 'version.ts': "import { x } from './native/loader.js';\nexport const v = x;\n", native: { 'loader.ts': 'export const x = 1;\n' } } });
  const run = check(root);
  t.equal(run.code, 1);
  t.match(run.stderr, /^lib\/version\.ts:1 imports lib\/native\/loader\.ts: the base files \(floor base\) may not import lib\/native\/ \(floor native\), which is above it$/m);
});

t.test('siblings on one floor do not import each other', async (t) => {
  const root = t.testdir({ lib: { data: { 'a.ts': "import type { B } from '../export/b.js';\nexport type A = B;\n" }, export: { 'b.ts': 'export type B = number;\n' } } });
  const run = check(root);
  t.equal(run.code, 1);
  t.match(run.stderr, /^lib\/data\/a\.ts:1 imports lib\/export\/b\.ts: lib\/data\/ \(floor data, export\) may not import lib\/export\/ \(floor data, export\), its sibling on the same floor$/m);
});

t.test('a circular import fails, showing the cycle', async (t) => {
  const root = t.testdir({
    lib: {
      io: {
        'a.ts': "import { b } from './b.js';\nexport const a = () => b;\n",
        'b.ts': "import { c } from './c.js';\nexport const b = () => c;\n",
        'c.ts': "export { a as c } from './a.js';\n",
        'd.ts': "import { a } from './a.js';\nexport const d = a;\n",
      },
      models: { 'self.ts': "export * from './self.js';\n" },
    },
  });
  const run = check(root);
  t.equal(run.code, 1);
  t.match(run.stderr, /^import cycle: lib\/io\/a\.ts → lib\/io\/b\.ts → lib\/io\/c\.ts → lib\/io\/a\.ts$/m);
  t.match(run.stderr, /^import cycle: lib\/models\/self\.ts → lib\/models\/self\.ts$/m);
  t.notMatch(run.stderr, /d\.ts/, 'a file that only leads into a cycle is not part of it');
  t.match(run.stderr, /^layers: 2 problem\(s\)/m);
});

t.test('a folder on no floor, an import leaving lib/ and one naming no file are reported', async (t) => {
  const root = t.testdir({
    lib: {
      extras: { 'x.ts': 'export const x = 1;\n' },
      io: { 'y.ts': "import '../../package.json';\nimport { z } from './missing.js';\nexport const y = z;\n" },
    },
  });
  const run = check(root);
  t.equal(run.code, 1);
  t.match(run.stderr, /^lib\/extras\/x\.ts: folder lib\/extras\/ is on no floor; give it one in FLOORS/m);
  t.match(run.stderr, /^lib\/io\/y\.ts:1 imports \.\.\/\.\.\/package\.json, outside lib\//m);
  t.match(run.stderr, /^lib\/io\/y\.ts:2 imports \.\/missing\.js, which is no file of lib\/$/m);
});
