// vlmq quantize: a whole model directory (Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision) through
// loadModel → quantize → QuantizationRun.save, written as a GPTQ checkpoint (v1 or v2 zero points)
// or a fake-quant one. The command adds nothing to the files: they are what the library writes
// for the settings given. This release quantizes data-free (RTN); the calibrated methods arrive
// with the calibration pipeline and are refused here as usage errors.
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type LoaderSupport, formatCompatibility, gptqCompatibility } from '../io/compat.js';
import { EXPORT_FORMATS, type ExportFormat, type ExportReport, type QuantizationSettings } from '../io/export.js';
import { type Model, loadModel } from '../models/model.js';
import { type QuantizationRun, type SaveOptions, quantize } from '../pipeline/quantize.js';
import type { QuantizeLinearOptions } from '../quant/options.js';
import {
  type FlagTable, type FlagValues, UsageError, asInputError, checkInputDirectory, formatHelp, helpHint, parseFlags,
  quantizerFlagTable, quantizerOptionsFromFlags, stringFlag,
} from './args.js';
import { type Command, type CommandContext, packageVersion } from './command.js';
import { type Output, formatBytes, formatFields, formatSeconds } from './output.js';
import { Progress } from './progress.js';

const NAME = 'quantize';

/** Methods the library knows; only rtn runs without calibration data. */
const METHODS = ['rtn', 'gptq', 'gptaq', 'vlmq'] as const;
type Method = (typeof METHODS)[number];

const FAKE_QUANT_DTYPES = { original: 'original', bf16: 'BF16', f16: 'F16', f32: 'F32' } as const;
type FakeQuantDtype = (typeof FAKE_QUANT_DTYPES)[keyof typeof FAKE_QUANT_DTYPES];

const DEFAULT_MAX_SHARD_SIZE = '5GB';

const QUANTIZER = quantizerFlagTable('Quantizer');

const FLAGS: FlagTable = {
  model: { type: 'string', value: 'DIR', description: 'checkpoint directory to quantize: config.json and model.safetensors, or shards with model.safetensors.index.json (Qwen2-VL, Qwen2.5-VL or LLaVA-OneVision, either tensor layout)', group: 'Files' },
  out: { type: 'string', value: 'DIR', description: 'directory to write; it is assembled under a temporary name beside DIR and renamed into place only when complete', group: 'Files' },
  overwrite: { type: 'boolean', description: 'replace --out when it exists and is not empty (the old directory is removed only after the new one is in place)', group: 'Files' },
  method: { type: 'string', value: METHODS.join('|'), description: 'rtn: round to nearest, data-free (the only method of this release); gptq, gptaq and vlmq need calibration data, which arrives with the calibration pipeline', default: 'rtn', group: 'Quantizer' },
  bits: QUANTIZER.bits,
  'group-size': QUANTIZER['group-size'],
  sym: QUANTIZER.sym,
  format: { type: 'string', value: EXPORT_FORMATS.join('|'), description: 'gptq: GPTQ with v1 zero points (stored minus one); gptq_v2: zero points as they are; fake-quant: the dequantized weights in the original layout, for evaluation', default: 'gptq with --sym, gptq_v2 otherwise', group: 'Output' },
  'fake-quant-dtype': { type: 'string', value: Object.keys(FAKE_QUANT_DTYPES).join('|'), description: 'fake-quant: dtype of the dequantized linears (the other tensors keep theirs)', default: 'original', group: 'Output' },
  'max-shard-size': { type: 'string', value: 'SIZE', description: 'largest shard of tensor data: bytes, or a number with a unit: 500MB, 5GB (powers of 1000, as Hugging Face counts), 4GiB (powers of 1024)', default: DEFAULT_MAX_SHARD_SIZE, group: 'Output' },
  json: { type: 'boolean', description: 'print JSON lines on stdout: the loader table, progress events, then one result object with the export report', group: 'Other' },
};

export const quantizeCommand: Command = {
  name: NAME,
  summary: 'quantize a VLM checkpoint (RTN) and save it as GPTQ or fake-quant',
  help: () => formatHelp({
    usage: [`vlmq ${NAME} --model DIR --out DIR [options]`],
    description: [
      'Loads the model in --model (every tensor checked against config.json first), quantizes the seven linears',
      'of every decoder layer and writes --out: a GPTQ checkpoint (qweight, qzeros, scales, g_idx per linear;',
      'the other tensors as F16; quantization_config in config.json and quantize_config.json) or a fake-quant',
      'checkpoint (the dequantized weights in the original layout). Tokenizer, processor, chat-template and',
      'generation files are copied. Which loaders accept the GPTQ settings is printed before writing, progress',
      'goes to stderr and a summary to stdout.',
    ].join('\n'),
    flags: FLAGS,
    notes: [
      'This release quantizes without calibration data (--method rtn). Exit status 2 for bad flags and for a',
      '--model that is missing or malformed (the message names the file, tensor or config field).',
    ],
    examples: [
      `vlmq ${NAME} --model Qwen2-VL-2B-Instruct --out Qwen2-VL-2B-Instruct-GPTQ-Int4 --bits 4 --group-size 128 --sym`,
      `vlmq ${NAME} --model llava-onevision-qwen2-0.5b-ov-hf --out llava-fq --bits 3 --group-size 64 --format fake-quant`,
      `vlmq verify Qwen2-VL-2B-Instruct-GPTQ-Int4 --against qwen2-vl-fq`,
    ],
  }),
  run,
};

interface Arguments {
  modelDir: string;
  outDir: string;
  overwrite: boolean;
  method: Method;
  options: Omit<QuantizeLinearOptions, 'method'>;
  format: ExportFormat | undefined;
  fakeQuantDtype: FakeQuantDtype | undefined;
  maxShardBytes: number;
}

async function run(argv: readonly string[], { out, signal }: CommandContext): Promise<void> {
  const started = performance.now();
  const args = parseArguments(argv);
  await checkInputDirectory('--model', args.modelDir);
  await checkOutputDirectory(args);

  const model = await loadModel(args.modelDir).catch((error: unknown) => {
    throw asInputError(error);
  });
  try {
    const quantization = await quantizeOrExplain(model, args);
    const settings = quantization.settings;
    const format = args.format ?? (settings.sym ? 'gptq' : 'gptq_v2');
    if (args.fakeQuantDtype !== undefined && format !== 'fake-quant') out.warn(`--fake-quant-dtype has no effect with --format ${format}`);
    const loadSeconds = (performance.now() - started) / 1000;
    const linears = model.linears().length;
    out.log(`${model.dir}: ${describeModel(model, linears)}`);
    announceLoaders(out, model, format, settings);
    signal.throwIfAborted();

    const exportStarted = performance.now();
    const progress = new Progress(out, 'export', { unit: 'tensors' });
    const saveOptions: SaveOptions = {
      overwrite: args.overwrite,
      maxShardBytes: args.maxShardBytes,
      signal,
      onProgress: (done, total) => progress.update(done, total),
    };
    if (args.format !== undefined) saveOptions.format = args.format;
    if (args.fakeQuantDtype !== undefined) saveOptions.fakeQuantDtype = args.fakeQuantDtype;
    const report = await quantization.save(args.outDir, saveOptions);
    progress.finish();
    const exportSeconds = (performance.now() - exportStarted) / 1000;
    const diskBytes = await directoryBytes(report.dir);
    const seconds = { load: loadSeconds, export: exportSeconds, total: (performance.now() - started) / 1000 };
    out.result({
      command: NAME,
      model: { dir: model.dir, architecture: model.architecture.displayName, layout: model.layout, layers: model.config.text.numLayers, linears },
      settings,
      export: report,
      diskBytes,
      seconds,
      vlmqVersion: packageVersion(),
    }, summary(model, linears, settings, report, args, diskBytes, seconds));
  } finally {
    await model.close();
  }
}

// --- arguments -----------------------------------------------------------------------------

function parseArguments(argv: readonly string[]): Arguments {
  const { values } = parseFlags(NAME, FLAGS, argv, { names: [], required: 0 });
  const modelDir = stringFlag(NAME, values, 'model', true);
  const outDir = stringFlag(NAME, values, 'out', true);
  const method = choice('--method', stringFlag(NAME, values, 'method') ?? 'rtn', METHODS);
  // bits, group size and sym are checked by the layer quantizer's own validation, naming the flag.
  const quantizerValues: FlagValues = { method: 'rtn', bits: values.bits, 'group-size': values['group-size'], sym: values.sym };
  const { options } = quantizerOptionsFromFlags(NAME, quantizerValues);
  const { method: _rtn, ...linearOptions } = options;
  const formatText = stringFlag(NAME, values, 'format');
  const format = formatText === undefined ? undefined : choice('--format', formatText, EXPORT_FORMATS);
  const dtypeText = stringFlag(NAME, values, 'fake-quant-dtype');
  const fakeQuantDtype = dtypeText === undefined
    ? undefined
    : FAKE_QUANT_DTYPES[choice('--fake-quant-dtype', dtypeText.toLowerCase(), Object.keys(FAKE_QUANT_DTYPES) as (keyof typeof FAKE_QUANT_DTYPES)[])];
  const maxShardBytes = parseByteSize('--max-shard-size', stringFlag(NAME, values, 'max-shard-size') ?? DEFAULT_MAX_SHARD_SIZE);
  return { modelDir, outDir, overwrite: values.overwrite === true, method, options: linearOptions, format, fakeQuantDtype, maxShardBytes };
}

function choice<T extends string>(flag: string, text: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(text)) return text as T;
  throw new UsageError(`${flag}: expected one of ${allowed.join(', ')} but received ${JSON.stringify(text)}`, helpHint(NAME));
}

const BYTE_UNITS: Readonly<Record<string, number>> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

/** "5GB" → 5e9, "500MB" → 5e8, "4GiB" → 2³², "123" → 123 bytes; the result is a positive integer. */
export function parseByteSize(flag: string, text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match ? BYTE_UNITS[(match[2] || 'b').toLowerCase()] : undefined;
  if (!match || unit === undefined) {
    throw new UsageError(`${flag}: expected a size such as 500MB, 5GB, 4GiB or a number of bytes but received ${JSON.stringify(text)}`, helpHint(NAME));
  }
  const bytes = Math.floor(Number(match[1]) * unit);
  if (!(bytes >= 1) || !Number.isSafeInteger(bytes)) throw new UsageError(`${flag}: expected a size of at least 1 byte but received ${JSON.stringify(text)}`, helpHint(NAME));
  return bytes;
}

/** --out: not the model, its parent exists, and it is absent, empty, or replaced with --overwrite. */
async function checkOutputDirectory({ modelDir, outDir, overwrite }: Arguments): Promise<void> {
  const destination = resolve(outDir);
  if (destination === resolve(modelDir)) throw new UsageError('--out: must name a different directory than --model', helpHint(NAME));
  const existing = await stat(destination).catch(() => null);
  if (existing === null) {
    const parent = resolve(destination, '..');
    const parentInfo = await stat(parent).catch(() => null);
    if (!parentInfo?.isDirectory()) throw new UsageError(`--out: directory ${parent} does not exist (create it first)`);
    return;
  }
  if (!existing.isDirectory()) throw new UsageError(`--out: ${outDir} exists and is not a directory`);
  if (!overwrite && (await readdir(destination)).length > 0) {
    throw new UsageError(`--out: ${outDir} exists and is not empty; pass --overwrite to replace it`);
  }
}

/** quantize(), with the calibrated methods of later releases reported as a usage error naming --method. */
async function quantizeOrExplain(model: Model, args: Arguments): Promise<QuantizationRun> {
  try {
    return await quantize(model, null, { ...args.options, method: args.method });
  } catch (error) {
    if ((error as { code?: unknown })?.code === 'ERR_VLMQ_UNSUPPORTED') {
      throw new UsageError(
        `--method ${args.method}: needs calibration data, which arrives with the calibration pipeline (not in this release); use --method rtn (data-free round to nearest)`,
        helpHint(NAME),
        { cause: error },
      );
    }
    throw error;
  }
}

// --- output --------------------------------------------------------------------------------

function describeModel(model: Model, linears: number): string {
  const layers = model.config.text.numLayers;
  return `${model.architecture.displayName}, ${model.layout} layout, ${layers} layer${layers === 1 ? '' : 's'}, ${linears} linears to quantize`;
}

function describeSettings(s: QuantizationSettings): string {
  return [s.method, `${s.bits}-bit`, s.sym ? 'symmetric' : 'asymmetric', s.groupSize === -1 ? 'per channel' : `group size ${s.groupSize}`].join(', ');
}

/** The loader table for a GPTQ format (stderr, or a `compatibility` event with --json). */
function announceLoaders(out: Output, model: Model, format: ExportFormat, s: QuantizationSettings): void {
  if (format === 'fake-quant') {
    out.event('compatibility', { format, loaders: null });
    out.log('fake-quant: dequantized weights in the original layout; loads wherever the original model loads');
    return;
  }
  const loaders: LoaderSupport[] = gptqCompatibility({ bits: s.bits, groupSize: s.groupSize, sym: s.sym, format, inFeatures: model.linears().map((l) => l.inFeatures) });
  if (out.json) {
    out.event('compatibility', { format, loaders });
    return;
  }
  out.log(`${format}, ${s.bits}-bit, ${s.sym ? 'sym' : 'asym'}, group size ${s.groupSize}: loaders`);
  out.log(formatCompatibility(loaders));
  if (!loaders[0].ok) out.warn('current vLLM will not load this checkpoint; 4- or 8-bit --sym with --group-size -1, 32, 64 or 128 loads everywhere');
}

/** Shard names, with long runs shortened to "first … last (N shards)". */
function describeFiles(report: ExportReport): string {
  const shards = report.files.filter((f) => f.endsWith('.safetensors'));
  const others = report.files.filter((f) => !f.endsWith('.safetensors'));
  const weights = shards.length > 2 ? [`${shards[0]} … ${shards[shards.length - 1]} (${shards.length} shards)`] : shards;
  const configs = report.format === 'fake-quant' ? ['config.json'] : ['config.json', 'quantize_config.json'];
  return [...weights, ...others, ...configs].join(', ');
}

function describeFormat(report: ExportReport, args: Arguments): string {
  if (report.format !== 'fake-quant') return `${report.format} (non-quantized tensors F16, torch_dtype float16)`;
  const dtype = args.fakeQuantDtype ?? 'original';
  return `fake-quant (${dtype === 'original' ? 'original dtype' : dtype})`;
}

function summary(model: Model, linears: number, settings: QuantizationSettings, report: ExportReport, args: Arguments, diskBytes: number, s: Record<string, number>): string {
  return formatFields([
    ['model', `${model.dir} (${describeModel(model, linears)})`],
    ['settings', describeSettings(settings)],
    ['format', describeFormat(report, args)],
    ['output', report.dir],
    ['files', describeFiles(report)],
    ['size', `${formatBytes(report.tensorBytes)} of tensors, ${formatBytes(diskBytes)} on disk`],
    ['copied', report.copied.length ? report.copied.join(', ') : 'none (no tokenizer or processor files in --model)'],
    ['seconds', `load ${formatSeconds(s.load)}, export ${formatSeconds(s.export)}; total ${formatSeconds(s.total)}`],
  ]);
}

async function directoryBytes(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true });
  const sizes = await Promise.all(entries.filter((e) => e.isFile()).map(async (e) => (await stat(join(dir, e.name))).size));
  return sizes.reduce((a, b) => a + b, 0);
}
