// `npm run bench [-- --quick] [-- --json FILE] [-- --device D] [hessian|cholesky|sweep|pipeline|modality|vision ...]`:
// runs the benchmarks on one device (auto, cpu, cuda, cuda:N) and prints each figure with its
// baseline and target. Record results in RESULTS.md.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { choleskyBenchmarks } from './cholesky.js';
import { hessianBenchmarks } from './hessian.js';
import { modalityBenchmarks } from './modality.js';
import { pipelineBenchmarks } from './pipeline.js';
import { sweepBenchmarks } from './sweep.js';
import { visionBenchmarks } from './vision.js';
import { type BenchOptions, type Row, machine, printTable } from './util.js';
import { describeDevice, resolveDevice } from '../lib/native/devices.js';

const suites: Record<string, (o: BenchOptions) => Promise<Row[]>> = {
  hessian: hessianBenchmarks,
  cholesky: choleskyBenchmarks,
  sweep: sweepBenchmarks,
  pipeline: pipelineBenchmarks,
  modality: modalityBenchmarks,
  vision: visionBenchmarks,
};

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { quick: { type: 'boolean', default: false }, json: { type: 'string' }, repeats: { type: 'string', default: '3' }, device: { type: 'string', default: 'auto' } },
});
const names = positionals.length ? positionals : Object.keys(suites);
for (const name of names) if (!suites[name]) throw new Error(`unknown benchmark "${name}"; choose from ${Object.keys(suites).join(', ')}`);
const device = resolveDevice(values.device);
const options: BenchOptions = { quick: values.quick ?? false, repeats: Math.max(1, Number(values.repeats)), device };

console.log(`machine: ${machine()}`);
console.log(`device: ${describeDevice(values.device ?? 'auto', device)}`);
const rows: Row[] = [];
for (const name of names) rows.push(...(await suites[name](options)));
printTable(rows);
if (values.json) writeFileSync(values.json, JSON.stringify({ machine: machine(), date: new Date().toISOString(), rows }, null, 2));
const missed = rows.filter((r) => r.met === false);
if (missed.length) console.log(`${missed.length} target(s) missed`);
