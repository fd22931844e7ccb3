#!/usr/bin/env node
// The layering of lib/, checked (ARCHITECTURE.md, "The layers"). Every file of lib/ belongs to a
// floor; a file may import files of its own folder and of the floors below its own, never a floor
// above it nor a sibling folder on the same floor, and no chain of imports among lib/ files may come
// back to where it started. Every import counts: `import … from`, `export … from`, `import type`
// and `import('…')` (TypeScript's own scanner finds them, so comments and strings do not).
//
//   node scripts/check-layers.mjs [--root DIR]     exit 0: the layering holds; 1: it lists every breach
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The floors, top first. A floor holds folders of lib/ (by name) or single files of lib/ (by file
 * name); `base` is the files at lib/'s top that every floor may use.
 */
export const FLOORS = [
  { name: 'entry', units: ['cli', 'index.ts'] },
  { name: 'demo', units: ['demo'] },
  { name: 'pipeline', units: ['pipeline'] },
  { name: 'data, export', units: ['data', 'export'] },
  { name: 'models', units: ['models'] },
  { name: 'io', units: ['io'] },
  { name: 'quant', units: ['quant'] },
  { name: 'native', units: ['native'] },
  { name: 'base', units: ['errors.ts', 'json.ts', 'random.ts', 'tensor.ts', 'version.ts'] },
];

const BASE = 'base';

/** lib/<folder>/… → the folder; lib/<file> → the file, or `base` for the base files. */
function unitOf(path) {
  const [first, ...rest] = path.split('/');
  if (rest.length > 0) return first;
  return FLOORS.at(-1).units.includes(first) ? BASE : first;
}

function floorOf(unit) {
  if (unit === BASE) return FLOORS.length - 1;
  return FLOORS.findIndex((floor) => floor.units.includes(unit));
}

function listTypeScript(dir, root = dir) {
  return readdirSync(dir).sort().flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return listTypeScript(path, root);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [relative(root, path).split(sep).join('/')] : [];
  });
}

/** './x.js' from lib/a/b.ts → 'a/x.ts' (NodeNext: the .js of a .ts source), or null when it leaves lib/ or names no file. */
function resolveImport(lib, from, specifier, files) {
  const target = relative(lib, resolve(lib, dirname(from), specifier)).split(sep).join('/');
  if (target.startsWith('../')) return { outside: true };
  for (const candidate of [target.replace(/\.js$/, '.ts'), target, `${target}.ts`, `${target}/index.ts`]) {
    if (files.has(candidate)) return { path: candidate };
  }
  return { path: null };
}

function lineOf(text, pos) {
  let line = 1;
  for (let i = 0; i < pos; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** One cycle through the strongly connected component `members` (Tarjan), as a list of files ending where it began. */
function cycleIn(members, edges) {
  const inside = new Set(members);
  const start = members[0];
  const parent = new Map([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift();
    for (const next of edges.get(node) ?? []) {
      if (!inside.has(next)) continue;
      if (next === start) {
        const path = [node];
        while (parent.get(path[0]) !== null) path.unshift(parent.get(path[0]));
        return [...path, start];
      }
      if (!parent.has(next)) {
        parent.set(next, node);
        queue.push(next);
      }
    }
  }
  return [...members, start];
}

function stronglyConnected(nodes, edges) {
  let index = 0;
  const order = new Map(), low = new Map(), stack = [], onStack = new Set(), components = [];
  const visit = (v) => {
    order.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!order.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), order.get(w)));
    }
    if (low.get(v) === order.get(v)) {
      const component = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      components.push(component.reverse());
    }
  };
  for (const v of nodes) if (!order.has(v)) visit(v);
  return components;
}

/** Every breach of the layering in `root`/lib, as messages; `files` and `imports` count what was read. */
export function checkLayers(root) {
  const lib = join(root, 'lib');
  const files = listTypeScript(lib);
  const known = new Set(files);
  const problems = [];
  const edges = new Map();
  let imports = 0;
  const floorName = (unit) => `${unit === BASE ? 'the base files' : unit.endsWith('.ts') ? `lib/${unit}` : `lib/${unit}/`} (floor ${FLOORS[floorOf(unit)].name})`;
  for (const file of files) {
    const unit = unitOf(file);
    if (floorOf(unit) < 0) problems.push(`lib/${file}: ${unit.endsWith('.ts') ? 'this file' : `folder lib/${unit}/`} is on no floor; give it one in FLOORS (scripts/check-layers.mjs) and in ARCHITECTURE.md`);
  }
  for (const file of files) {
    const text = readFileSync(join(lib, file), 'utf8');
    const targets = new Set();
    for (const { fileName, pos } of ts.preProcessFile(text, true, true).importedFiles) {
      if (!fileName.startsWith('.')) continue; // node: built-ins and packages
      imports++;
      const at = `lib/${file}:${lineOf(text, pos)}`;
      const { path, outside } = resolveImport(lib, file, fileName, known);
      if (outside) {
        problems.push(`${at} imports ${fileName}, outside lib/: lib/ compiles on its own into dist/`);
        continue;
      }
      if (path === null) {
        problems.push(`${at} imports ${fileName}, which is no file of lib/`);
        continue;
      }
      targets.add(path);
      const from = unitOf(file), to = unitOf(path);
      if (from === to) continue;
      const a = floorOf(from), b = floorOf(to);
      if (a < 0 || b < 0) continue; // said above
      if (b < a) problems.push(`${at} imports lib/${path}: ${floorName(from)} may not import ${floorName(to)}, which is above it`);
      else if (b === a) problems.push(`${at} imports lib/${path}: ${floorName(from)} may not import ${floorName(to)}, its sibling on the same floor`);
    }
    edges.set(file, [...targets].sort());
  }
  for (const component of stronglyConnected(files, edges)) {
    const selfLoop = component.length === 1 && edges.get(component[0]).includes(component[0]);
    if (component.length > 1 || selfLoop) problems.push(`import cycle: ${cycleIn(component, edges).map((f) => `lib/${f}`).join(' → ')}`);
  }
  return { files: files.length, imports, problems };
}

function main(argv) {
  const at = argv.indexOf('--root');
  const root = at >= 0 ? resolve(argv[at + 1] ?? '.') : resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const { files, imports, problems } = checkLayers(root);
  if (problems.length === 0) {
    console.log(`layers: ${files} files, ${imports} imports within lib/, no import upward, sideways or in a cycle`);
    return 0;
  }
  for (const problem of problems) console.error(problem);
  console.error(`layers: ${problems.length} problem(s) in ${files} files. A file imports its own folder and the floors below`);
  console.error(`its own: ${FLOORS.map((f) => f.name).join(' → ')} (ARCHITECTURE.md, "The layers")`);
  return 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
