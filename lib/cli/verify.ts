// vlmq verify: a GPTQ checkpoint checked on its own terms (configs, the tensor set the
// architecture implies, every packed linear unpacked independently of the packer) and, with
// --against, against the fake-quant export of the same run, which must match bit for bit
// (verifyCheckpoint). What was checked goes to stdout with every problem found; a checkpoint that
// does not verify is a runtime failure (exit 1), not a usage error.
import { VlmqError } from '../errors.js';
import { type VerifyReport, verifyCheckpoint } from '../export/verify.js';
import { type FlagTable, checkInputDirectory, formatHelp, parseFlags, stringFlag } from './args.js';
import type { Command, CommandContext } from './command.js';
import { formatFields } from './output.js';

const NAME = 'verify';

const FLAGS: FlagTable = {
  against: { type: 'string', value: 'FAKEQUANT_DIR', description: 'fake-quant export of the same run (same model and settings): every unpacked linear and every other tensor (as F16) must match it exactly', group: 'Checks' },
  'keep-unknown-tensors': { type: 'boolean', description: 'accept (and list) tensors the architecture does not account for, as quantize --keep-unknown-tensors carries them over; without it each is a problem', group: 'Checks' },
  json: { type: 'boolean', description: 'print one JSON result object (the report, with ok true or false); a failure is followed by an error object', group: 'Other' },
};

export const verifyCommand: Command = {
  name: NAME,
  summary: 'check a GPTQ checkpoint, optionally against its fake-quant export',
  help: () => formatHelp({
    usage: [`vlmq ${NAME} DIR [--against FAKEQUANT_DIR] [--keep-unknown-tensors] [--json]`],
    description: [
      'Checks the GPTQ checkpoint in DIR: quantization_config (and quantize_config.json, which must equal it), the',
      'tensor set the architecture and settings imply (names, dtypes, shapes), and every packed linear, unpacked',
      'by a loader-style implementation independent of the packer (zero points in range, g_idx as the settings',
      'imply). With --against, the unpacked weights and every other tensor must equal the fake-quant export of',
      'the same run. Prints what was checked and every problem found.',
    ].join('\n'),
    flags: FLAGS,
    arguments: [['DIR', 'GPTQ checkpoint directory (as `vlmq quantize` writes it)']],
    notes: [
      'Exit status: 0 when no problem is found; 1 when DIR (or --against) does not verify, including files',
      'that cannot be read as a checkpoint at all; 2 for bad flags or a DIR or --against that does not exist.',
    ],
    examples: [`vlmq ${NAME} Qwen2-VL-2B-Instruct-GPTQ-Int4`, `vlmq ${NAME} qwen2-vl-gptq --against qwen2-vl-fq --json`],
  }),
  run,
};

async function run(argv: readonly string[], { out }: CommandContext): Promise<void> {
  const { values, positionals } = parseFlags(NAME, FLAGS, argv, { names: ['DIR'], required: 1 });
  const [dir] = positionals;
  const against = stringFlag(NAME, values, 'against');
  await checkInputDirectory('DIR', dir);
  if (against !== undefined) await checkInputDirectory('--against', against);
  // Anything wrong inside the files is the verdict: the library's errors end the command with exit 1.
  const unknownTensors = values['keep-unknown-tensors'] === true ? 'keep' : 'error';
  const report = await verifyCheckpoint(dir, against === undefined ? { unknownTensors } : { against, unknownTensors });
  const ok = report.problems.length === 0;
  out.result({ command: NAME, ok, ...report }, formatFields(lines(report)) + problemLines(report.problems));
  if (!ok) {
    const count = report.problemCount;
    throw new VlmqError('ERR_VLMQ_VERIFY_FAILED', `${dir}: verification failed: ${count} problem${count === 1 ? '' : 's'}${out.json ? '' : ` (${count > report.problems.length ? `the first ${report.problems.length} ` : ''}listed above)`}`);
  }
}

function lines(r: VerifyReport): [string, string][] {
  const s = r.settings;
  const settings = s === null
    ? 'none (no quantization_config)'
    : `${s.format}, ${s.bits}-bit, group size ${s.groupSize}, sym ${s.sym}, desc_act ${s.descAct}, static groups ${s.staticGroups}`;
  const comparison = r.comparison === null
    ? 'not requested (--against)'
    : `${r.comparison.tensors} tensors compared with ${r.comparison.against}, ${r.comparison.mismatched} mismatched`;
  const problems = r.problemCount;
  return [
    ['directory', r.dir],
    ['architecture', r.architecture],
    ['layout', r.layout],
    ['settings', settings],
    ['linears', `${r.linears} quantized linears unpacked and checked`],
    ['tensors', String(r.tensors)],
    ['comparison', comparison],
    ...(r.unknownTensors.length > 0 ? [['unknown tensors', `${r.unknownTensors.length} carried over unquantized (${r.unknownTensors.slice(0, 3).join(', ')}${r.unknownTensors.length > 3 ? ', …' : ''})`] as [string, string]] : []),
    ['result', problems === 0 ? 'ok, no problems found' : `FAILED, ${problems} problem${problems === 1 ? '' : 's'}${problems > r.problems.length ? ` (the first ${r.problems.length} listed)` : ''}`],
  ];
}

function problemLines(problems: readonly string[]): string {
  return problems.length === 0 ? '' : `\nproblems:\n${problems.map((p) => `  - ${p}`).join('\n')}`;
}
