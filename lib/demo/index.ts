// `vlmq/demo`: the generators behind `vlmq demo`, the tests and the benchmarks, for those who want
// a model or calibration data without downloading any: a seeded tiny checkpoint of each
// architecture (real tensor names, config fields, tokenizer and chat template), vlmq's built-in
// image–text set, seeded synthetic calibration samples, and the demo itself.
export { writeTinyCheckpoint } from './tiny-checkpoint.js';
export type { TinyCheckpoint, TinyCheckpointOptions } from './tiny-checkpoint.js';
export { BUILTIN_DEFAULTS, builtinRecords, generateBuiltinItems, writeBuiltinSet } from './builtin-set.js';
export type { BuiltinItem, BuiltinSetOptions } from './builtin-set.js';
export { describeSamples, syntheticSamples } from './synthetic.js';
export type { SyntheticOptions } from './synthetic.js';
export { runDemo } from './run.js';
export type { DemoEvent, DemoResult } from './run.js';
