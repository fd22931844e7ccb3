// vlmq inspect: what a checkpoint directory holds, from config.json and the safetensors headers
// (inspectCheckpoint): architecture, dimensions, vision tower, parameter counts, dtypes, files and,
// for a GPTQ checkpoint, its quantization settings — and every problem `vlmq quantize` would
// refuse the checkpoint for, after which it exits 2. It reads no tensor data.
import type { InspectReport } from '../export/inspect.js';
import { inspectCheckpoint } from '../export/inspect.js';
import { type FlagTable, UsageError, asInputError, checkInputDirectory, formatHelp, parseFlags } from './args.js';
import type { Command, CommandContext } from './command.js';
import { formatBytes, formatFields } from './output.js';

const NAME = 'inspect';

const FLAGS: FlagTable = {
  'keep-unknown-tensors': { type: 'boolean', description: 'list tensors the architecture does not account for without counting them as a problem (as quantize --keep-unknown-tensors carries them over)', group: 'Checks' },
  json: { type: 'boolean', description: 'print one JSON object: the whole report, problems included', group: 'Other' },
};

export const inspectCommand: Command = {
  name: NAME,
  summary: 'show a checkpoint: architecture, sizes, parameters, dtypes, files, GPTQ settings',
  help: () => formatHelp({
    usage: [`vlmq ${NAME} DIR [--keep-unknown-tensors] [--json]`],
    description: [
      'Reads config.json and the safetensors headers of DIR (an original model, a GPTQ or a fake-quant export)',
      'and prints aligned "key: value" lines: architecture, tensor layout, decoder dimensions, M-RoPE sections,',
      'the vision tower, parameter counts (a packed GPTQ linear counts its unpacked weights), dtypes, files and',
      'size on disk and, for a GPTQ checkpoint, its quantization settings. No tensor data is read.',
      'Then every problem `vlmq quantize` would refuse DIR for: tensors missing, of the wrong dtype or shape',
      'for config.json, or not accounted for by the architecture (a GPTQ checkpoint: its packed tensors).',
    ].join('\n'),
    flags: FLAGS,
    arguments: [['DIR', 'checkpoint directory: config.json and model.safetensors, or shards with model.safetensors.index.json']],
    notes: [
      '"vision" parameters are everything outside the language model: the vision tower and the projector',
      '(Qwen merger; LLaVA-OneVision multi_modal_projector and image_newline).',
      'Exit status 2 when DIR is missing or malformed, or has problems (each named with its tensor and file).',
    ],
    examples: [`vlmq ${NAME} Qwen2-VL-2B-Instruct`, `vlmq ${NAME} Qwen2-VL-2B-Instruct-GPTQ-Int4 --json`],
  }),
  run,
};

async function run(argv: readonly string[], { out }: CommandContext): Promise<void> {
  const { values, positionals } = parseFlags(NAME, FLAGS, argv, { names: ['DIR'], required: 1 });
  const [dir] = positionals;
  await checkInputDirectory('DIR', dir);
  const unknownTensors = values['keep-unknown-tensors'] === true ? 'keep' : 'error';
  const report = await inspectCheckpoint(dir, { unknownTensors }).catch((error: unknown) => {
    throw asInputError(error);
  });
  out.result({ command: NAME, ...report }, formatFields(lines(report)) + problemLines(report));
  const count = report.problems.length;
  // What can be described is printed first; the problems then end the command as bad input.
  if (count > 0) throw new UsageError(`${dir}: ${count} problem${count === 1 ? '' : 's'} that \`vlmq quantize\` would refuse${out.json ? '' : ' (listed above)'}`);
}

function lines(r: InspectReport): [string, string][] {
  const { text, vision } = r.config;
  const { language, vision: visual } = r.parameters;
  const shards = r.files.filter((f) => f.name.endsWith('.safetensors')).length;
  const indexed = r.files.some((f) => f.name === 'model.safetensors.index.json');
  const fields: [string, string][] = [
    ['directory', r.dir],
    ['architecture', r.architecture],
    ['layout', r.layout],
    ['layers', String(text.numLayers)],
    ['hidden', String(text.hiddenSize)],
    ['intermediate', String(text.intermediateSize)],
    ['heads', String(text.numHeads)],
    ['kv heads', String(text.numKvHeads)],
    ['head dim', String(text.headDim)],
    ['vocab', String(text.vocabSize)],
    ['tied embeddings', text.tieWordEmbeddings ? 'yes' : 'no'],
    ['m-rope sections', text.mropeSection ? `[${text.mropeSection.join(', ')}]` : 'none (1-D RoPE)'],
    ['vision tower', `${vision.kind}, depth ${vision.depth}, width ${vision.width}, ${vision.numHeads} heads`],
    ['parameters', countWithUnit(language + visual)],
    ['  language', countWithUnit(language)],
    ['  vision', countWithUnit(visual)],
    ['dtypes', Object.entries(r.dtypes).map(([dtype, d]) => `${dtype} ${d.tensors} tensor${d.tensors === 1 ? '' : 's'} ${formatBytes(d.bytes)}`).join(', ')],
    ['files', `${r.files.length} (${shards === 1 ? '1 safetensors file' : `${shards} shards`}${indexed ? ' + index' : ''}), ${formatBytes(r.diskBytes)} on disk`],
  ];
  const unknown = r.unknownTensors.length;
  if (unknown > 0) fields.push(['unknown tensors', `${unknown} (${r.unknownTensors.slice(0, 3).join(', ')}${unknown > 3 ? ', …' : ''})`]);
  fields.push(['problems', r.problems.length === 0 ? 'none' : `${r.problems.length} (listed below)`]);
  const q = r.quantization;
  if (q === null) {
    fields.push(['quantization', 'none']);
    return fields;
  }
  fields.push(
    ['quantization', 'GPTQ'],
    ['bits', String(q.bits)],
    ['group size', String(q.groupSize)],
    ['desc_act', String(q.descAct)],
    ['sym', String(q.sym)],
    ['format', q.format],
    ['static groups', String(q.staticGroups)],
    ['quantized linears', String(q.quantizedLinears)],
    ['producer', q.producer ?? 'unknown'],
  );
  return fields;
}

function problemLines(r: InspectReport): string {
  return r.problems.length === 0 ? '' : `\nproblems:\n${r.problems.map((p) => `  - ${p.message}`).join('\n')}`;
}

/** 1543714304 → "1,543,714,304 (1.54 B)"; below a thousand, just the number. */
export function countWithUnit(count: number): string {
  const exact = count.toLocaleString('en-US');
  return count < 1000 ? exact : `${exact} (${humanCount(count)})`;
}

/** Three significant digits with K, M, B or T: 675000000 → "675 M", 1543714304 → "1.54 B". */
export function humanCount(count: number): string {
  const units = ['', 'K', 'M', 'B', 'T'];
  let unit = 0;
  let value = count;
  while (unit < units.length - 1 && Number(value.toPrecision(3)) >= 1000) {
    value /= 1000;
    unit++;
  }
  const rounded = Number(value.toPrecision(3));
  const text = rounded >= 100 ? rounded.toFixed(0) : rounded >= 10 ? rounded.toFixed(1) : rounded.toFixed(2);
  return unit === 0 ? String(count) : `${text} ${units[unit]}`;
}
