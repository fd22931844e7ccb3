// Checking a checkpoint's tensors against what its config implies: presence, dtype and shape of
// every expected tensor, and no tensor the architecture does not account for. Every problem is
// collected (vlmq inspect lists them all); loadModel throws one error listing them.
import { VlmqError } from '../errors.js';
import type { Checkpoint } from '../io/checkpoint.js';
import type { DType } from '../tensor.js';
import type { ExpectedTensor, TextConfig } from './types.js';

/** What loadModel does with tensors the architecture does not account for. */
export type UnknownTensorPolicy = 'error' | 'keep';
export const UNKNOWN_TENSOR_POLICIES: readonly UnknownTensorPolicy[] = ['error', 'keep'];

export const FLOAT_DTYPES: readonly DType[] = ['BF16', 'F16', 'F32'];

/** One tensor the checkpoint must hold: its name, shape and the dtypes it may have. */
export interface TensorRule {
  name: string;
  shape: readonly number[];
  dtypes: readonly DType[];
  /** May be absent (lm_head with tied embeddings, SigLIP's post_layernorm). */
  optional?: boolean;
}

export interface TensorProblem {
  kind: 'missing-tensors' | 'unknown-tensors' | 'dtype' | 'shape';
  /** One line naming the tensor(s), the file(s), what was expected and what was found. */
  message: string;
  /** Every tensor concerned (the message shows the first few of a long list). */
  tensors: string[];
  /** The shards that hold them (none for missing tensors). */
  files: string[];
}

export interface TensorCheck {
  problems: TensorProblem[];
  /** Tensors of the checkpoint that no rule names, in the checkpoint's order. */
  unknownTensors: string[];
}

/** How the decoder layers are named, for the hint when config.json declares fewer than there are. */
export interface LayerNaming {
  layers: string;
  text: Pick<TextConfig, 'numLayers'>;
}

const SHOWN = 5;

/** The floating-point rules of a model's expected tensors (what loadModel and quantize need). */
export function floatRules(expected: readonly ExpectedTensor[]): TensorRule[] {
  return expected.map((t) => ({ name: t.name, shape: t.shape, dtypes: FLOAT_DTYPES, optional: t.optional }));
}

/** Every problem of `checkpoint` against `rules`, in the order: dtypes and shapes, missing, unknown. */
export function checkTensors(checkpoint: Checkpoint, rules: readonly TensorRule[], naming?: LayerNaming): TensorCheck {
  const problems: TensorProblem[] = [];
  const missing: TensorRule[] = [];
  for (const rule of rules) {
    const found = checkpoint.tensors.get(rule.name);
    if (!found) {
      if (!rule.optional) missing.push(rule);
      continue;
    }
    const where = `${rule.name} (${found.file})`;
    const one = { tensors: [rule.name], files: [found.file] };
    if (!rule.dtypes.includes(found.dtype)) {
      problems.push({ kind: 'dtype', message: `${where}: expected ${orList(rule.dtypes)}, found ${found.dtype}`, ...one });
    }
    if (!sameShape(found.shape, rule.shape)) {
      problems.push({ kind: 'shape', message: `${where}: expected [${rule.shape.join(', ')}], found [${found.shape.join(', ')}] (config.json and the tensors disagree)`, ...one });
    }
  }
  if (missing.length) problems.push(missingProblem(missing));
  const known = new Set(rules.map((r) => r.name));
  const unknownTensors = [...checkpoint.tensors.keys()].filter((name) => !known.has(name));
  if (unknownTensors.length) problems.push(unknownProblem(checkpoint, unknownTensors, naming));
  return { problems, unknownTensors };
}

/** One error for every problem found (the first few listed), naming the checkpoint directory. */
export function tensorProblemsError(dir: string, problems: readonly TensorProblem[]): VlmqError {
  if (problems.length === 1) return new VlmqError('ERR_VLMQ_BAD_FILE', `${dir}: ${problems[0].message}`);
  const shown = problems.slice(0, 10).map((p) => `\n  - ${p.message}`).join('');
  const more = problems.length > 10 ? `\n  - and ${problems.length - 10} more ('vlmq inspect' lists them all)` : '';
  return new VlmqError('ERR_VLMQ_BAD_FILE', `${dir}: ${problems.length} problems with the tensors:${shown}${more}`);
}

function missingProblem(missing: readonly TensorRule[]): TensorProblem {
  const names = missing.map((r) => `${r.name} [${r.shape.join(', ')}]`);
  return {
    kind: 'missing-tensors',
    message: `${missing.length} tensor(s) the config implies are missing: ${firstFew(names)}`,
    tensors: missing.map((r) => r.name),
    files: [],
  };
}

function unknownProblem(checkpoint: Checkpoint, names: string[], naming?: LayerNaming): TensorProblem {
  const files = [...new Set(names.map((name) => checkpoint.tensors.get(name)!.file))].sort();
  const layers = naming ? extraLayersHint(names, naming) : '';
  return {
    kind: 'unknown-tensors',
    message: `${names.length} tensor(s) in ${files.join(', ')} that the architecture and config.json do not account for: ${firstFew(names)}${layers}`
      + ' (to carry them over unquantized: --keep-unknown-tensors, or loadModel(dir, { unknownTensors: \'keep\' }))',
    tensors: names,
    files,
  };
}

/** "; config.json's num_hidden_layers is 1, but the checkpoint holds decoder layers up to model.layers.1". */
function extraLayersHint(names: readonly string[], naming: LayerNaming): string {
  const prefix = `${naming.layers}.`;
  let highest = -1;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const index = Number.parseInt(name.slice(prefix.length), 10);
    if (index >= naming.text.numLayers && index > highest) highest = index;
  }
  return highest < 0 ? '' : `; config.json's num_hidden_layers is ${naming.text.numLayers}, but the checkpoint holds decoder layers up to ${prefix}${highest}`;
}

function firstFew(items: readonly string[]): string {
  return items.slice(0, SHOWN).join(', ') + (items.length > SHOWN ? `, and ${items.length - SHOWN} more` : '');
}

function orList(items: readonly string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
