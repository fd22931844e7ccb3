// vlmq quantize: a whole model directory (Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision) through
// loadModel → quantize → QuantizationRun.save, written as a GPTQ checkpoint (v1 or v2 zero points)
// or a fake-quant one. The command adds nothing to the files: they are what the library writes
// for the settings given. RTN needs no data; GPTQ, GPTAQ and VLMQ calibrate on a bundle (--calib)
// in a work directory that outlives an interruption, so the same command with --resume continues.
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CalibrationBundle } from '../data/bundle.js';
import { MAX_IMAGE_PIXELS } from '../data/image.js';
import { type LoaderSupport, formatCompatibility, gptqCompatibility } from '../export/compat.js';
import {
  DEFAULT_MAX_SHARD_BYTES, EXPORT_FORMATS, type ExportFormat, type ExportReport, type QuantizationSettings, describeEntries, exportDestinationProblem, exportFormat,
} from '../export/export.js';
import { CONFIG_FILE } from '../io/checkpoint.js';
import { describeKind } from '../io/files.js';
import type { Device } from '../native/devices.js';
import { type Model, loadModel } from '../models/model.js';
import { Calibration, type CalibrationReport, DEFAULT_MAX_TOKENS, calibrationShortfall } from '../pipeline/calibration.js';
import type { ImportanceOptions } from '../pipeline/importance.js';
import {
  DEFAULT_BATCH_TOKENS, DEFAULT_IMPORTANCE, DEFAULT_MEMORY_BYTES, IMPORTANCE_CHOICES, MODEL_METHODS, type ModelMethod, type QuantizationRun, type QuantizeEvent, type QuantizeModelOptions, type ResolvedQuantizeOptions, type SaveOptions,
  VLMQ_BASES, quantize, resolveQuantizeOptions,
} from '../pipeline/quantize.js';
import { checkWorkDir } from '../pipeline/work-dir.js';
import {
  type FlagTable, type FlagValues, QUANTIZER_FLAGS, UsageError, asFlagError, asInputError, checkInputDirectory, checkInputFile, formatHelp, helpHint,
  optionFlags, parseFlags, parseInteger, parseQuantizerFlags, quantizerFlagTable, stringFlag,
} from './args.js';
import { type Command, type CommandContext, packageVersion } from './command.js';
import { DEVICE_FLAG, logDevice } from './device.js';
import { type Output, formatBytes, formatFields, formatSeconds } from './output.js';
import { Progress } from './progress.js';
import { RunLog } from './run-log.js';

const NAME = 'quantize';

const FAKE_QUANT_DTYPES = { original: 'original', bf16: 'BF16', f16: 'F16', f32: 'F32' } as const;
type FakeQuantDtype = (typeof FAKE_QUANT_DTYPES)[keyof typeof FAKE_QUANT_DTYPES];

const { method: _layerMethod, ...QUANTIZER } = quantizerFlagTable('Quantizer');

/** Library option → the flag that sets it, for error messages. */
const OPTION_FLAGS: Readonly<Record<string, string>> = {
  ...optionFlags(), method: '--method', base: '--base', calibration: '--calib', batchTokens: '--batch-tokens', memory: '--memory',
  device: '--device', 'importance.norm': '--importance-norm', 'importance.power': '--importance-power', 'importance.fallback': '--importance-fallback', format: '--format',
};
/** Flags that only the calibrated methods use. */
const CALIBRATION_FLAGS = ['images', 'samples', 'max-tokens', 'seed', 'max-image-pixels', 'base', 'importance-norm', 'importance-power', 'importance-fallback', 'memory', 'batch-tokens', 'work-dir', 'resume', 'keep-work'];

const FLAGS: FlagTable = {
  model: { type: 'string', value: 'DIR', description: 'checkpoint directory to quantize: config.json and model.safetensors, or shards with model.safetensors.index.json (Qwen2-VL, Qwen2.5-VL or LLaVA-OneVision, either tensor layout)', group: 'Files' },
  calib: { type: 'string', value: 'FILE', description: 'calibration data for gptq, gptaq and vlmq: image-text pairs as ShareGPT4V JSON (.json) or JSONL {image, prompt, answer} (.jsonl), or a calibration bundle (.safetensors: per-sample input embeddings, position ids, modality mask; see README)', group: 'Calibration' },
  images: { type: 'string', value: 'DIR', description: 'folder the image paths of --calib are relative to', default: "the --calib file's folder", group: 'Calibration' },
  samples: { type: 'string', value: 'N', description: 'records of --calib to use, chosen with --seed', default: 'all', group: 'Calibration' },
  'max-tokens': { type: 'string', value: 'N', description: 'longest sample; longer ones lose the end of their text, or are dropped (and reported) when the cut would fall in an image', default: `${DEFAULT_MAX_TOKENS.qwen} (Qwen2-VL, Qwen2.5-VL), ${DEFAULT_MAX_TOKENS.llava} (LLaVA-OneVision)`, group: 'Calibration' },
  seed: { type: 'string', value: 'S', description: 'seed of the choice of records', default: '0', group: 'Calibration' },
  'max-image-pixels': { type: 'string', value: 'N|none', description: "largest image, in pixels, read from its header before decoding; larger ones are refused (PIL's decompression-bomb guard). 'none' lifts the limit for trusted images", default: String(MAX_IMAGE_PIXELS), group: 'Calibration' },
  out: { type: 'string', value: 'DIR', description: 'directory to write; it is assembled under a temporary name beside DIR and renamed into place only when complete', group: 'Files' },
  'keep-unknown-tensors': { type: 'boolean', description: 'copy tensors the architecture does not account for (a config that declares fewer layers than the files hold, extra heads…) unquantized into the output, and list them; without it they are an error', group: 'Files' },
  overwrite: { type: 'boolean', description: 'replace --out when it exists and is not empty (the old directory is removed only after the new one is in place)', group: 'Files' },
  method: { type: 'string', value: MODEL_METHODS.join('|'), description: 'rtn: round to nearest, data-free; gptq; gptaq: gptq with the asymmetric term; vlmq: importance-weighted statistics on a gptq or gptaq base', default: 'vlmq with --calib, rtn without', group: 'Quantizer' },
  ...QUANTIZER,
  base: { type: 'string', value: VLMQ_BASES.join('|'), description: "vlmq: the sweep it runs on (the paper's choice: gptq for 2 bits, gptaq otherwise)", default: 'gptaq, gptq for --bits 2', group: 'VLMQ' },
  'importance-norm': { type: 'string', value: IMPORTANCE_CHOICES.norm.join('|'), description: "vlmq: a token's factor is the mean |∂L/∂Z| over the projection's outputs (l1, the paper's) or its root mean square (l2)", default: DEFAULT_IMPORTANCE.norm, group: 'VLMQ' },
  'importance-power': { type: 'string', value: IMPORTANCE_CHOICES.power.join('|'), description: 'vlmq: weight of a token in the statistics, g (1, v1 of the paper) or g² (2, v2)', default: String(DEFAULT_IMPORTANCE.power), group: 'VLMQ' },
  'importance-fallback': { type: 'string', value: IMPORTANCE_CHOICES.fallback.join('|'), description: 'vlmq: factors of a layer whose block loss is zero (layer 0): all equal (uniform), or from the block with its attention weights round-to-nearest quantized (rtn-probe)', default: DEFAULT_IMPORTANCE.fallback, group: 'VLMQ' },
  memory: { type: 'string', value: 'SIZE', description: 'RAM for the two activation streams (full precision and quantized); samples beyond it are kept in a file in the work directory', default: `${DEFAULT_MEMORY_BYTES / 2 ** 30}GiB`, group: 'Run' },
  'batch-tokens': { type: 'string', value: 'N', description: 'tokens per forward batch (whole samples are packed up to it)', default: String(DEFAULT_BATCH_TOKENS), group: 'Run' },
  'work-dir': { type: 'string', value: 'DIR', description: 'where finished layers are kept until the export: an interrupted run continues from it with --resume', default: 'OUT.vlmq-work beside --out', group: 'Run' },
  resume: { type: 'boolean', description: 'continue the unfinished run in the work directory (same model, calibration set and options)', group: 'Run' },
  'keep-work': { type: 'boolean', description: 'keep the work directory after a successful export', group: 'Run' },
  device: DEVICE_FLAG,
  format: { type: 'string', value: EXPORT_FORMATS.join('|'), description: 'gptq: GPTQ with v1 zero points (stored minus one); gptq_v2: zero points as they are; fake-quant: the dequantized weights in the original layout, for evaluation', default: 'gptq with --sym, gptq_v2 otherwise', group: 'Output' },
  'fake-quant-dtype': { type: 'string', value: Object.keys(FAKE_QUANT_DTYPES).join('|'), description: 'fake-quant: dtype of the dequantized linears (the other tensors keep theirs)', default: 'original', group: 'Output' },
  'max-shard-size': { type: 'string', value: 'SIZE', description: 'largest shard of tensor data: bytes, or a number with a unit: 500MB, 5GB (powers of 1000, as Hugging Face counts), 4GiB (powers of 1024)', default: `${DEFAULT_MAX_SHARD_BYTES / 1e9}GB`, group: 'Output' },
  json: { type: 'boolean', description: 'print JSON lines on stdout: the loader table, the calibration events (each with etaSeconds), export progress, then one result object', group: 'Other' },
};

export const quantizeCommand: Command = {
  name: NAME,
  summary: 'quantize a VLM checkpoint (RTN, GPTQ, GPTAQ, VLMQ) and save it as GPTQ or fake-quant',
  help: () => formatHelp({
    usage: [`vlmq ${NAME} --model DIR --out DIR [options]`],
    description: [
      'Loads the model in --model (every tensor checked against config.json first), quantizes the seven linears',
      'of every decoder layer (with --calib: layer by layer, true-sequential, on the calibration set) and writes',
      '--out: a GPTQ checkpoint (qweight, qzeros, scales, g_idx per linear;',
      'the other tensors as F16; quantization_config in config.json and quantize_config.json) or a fake-quant',
      'checkpoint (the dequantized weights in the original layout). Tokenizer, processor, chat-template and',
      'generation files are copied. Which loaders accept the GPTQ settings is printed before writing, progress',
      'goes to stderr and a summary to stdout.',
    ].join('\n'),
    flags: FLAGS,
    notes: [
      'Ctrl-C stops a calibrated run after the current module; the finished layers stay in the work directory and',
      'the same command with --resume continues, producing exactly the files an uninterrupted run writes.',
      'Exit status 2 for bad flags and for a --model or --calib that is missing or malformed (the message names',
      'the file, tensor or config field), 130 after Ctrl-C.',
    ],
    examples: [
      `vlmq ${NAME} --model Qwen2-VL-2B-Instruct --calib calib.safetensors --method vlmq --bits 3 --group-size -1 --act-order --out qwen2-vl-vlmq-w3`,
      `vlmq ${NAME} --model Qwen2-VL-2B-Instruct --out Qwen2-VL-2B-Instruct-RTN-Int4 --bits 4 --group-size 128 --sym`,
      `vlmq ${NAME} --model llava-onevision-qwen2-0.5b-ov-hf --out llava-fq --bits 3 --group-size 64 --format fake-quant`,
      `vlmq verify Qwen2-VL-2B-Instruct-GPTQ-Int4 --against qwen2-vl-fq`,
    ],
  }),
  run,
};

interface Arguments {
  modelDir: string;
  outDir: string;
  calib: string | undefined;
  images: string | undefined;
  calibration: { samples?: number; maxTokens?: number; seed?: number; maxImagePixels?: number | null };
  overwrite: boolean;
  keepUnknownTensors: boolean;
  /** The library's options as the flags set them (workDir, resume included), and as resolveQuantizeOptions resolves them. */
  options: QuantizeModelOptions;
  resolved: ResolvedQuantizeOptions;
  workDir: string;
  keepWork: boolean;
  /** --format, or the default for the settings. */
  format: ExportFormat;
  fakeQuantDtype: FakeQuantDtype | undefined;
  maxShardBytes: number | undefined;
}

async function run(argv: readonly string[], { out, signal }: CommandContext): Promise<void> {
  const started = performance.now();
  const args = parseArguments(argv, out);
  await checkInputDirectory('--model', args.modelDir);
  if (args.calib !== undefined) await checkInputFile('--calib', args.calib);
  await checkOutputDirectory(args);
  if (calibrated(args)) await checkWorkDirectory(args);

  const model = await loadModel(args.modelDir, { unknownTensors: args.keepUnknownTensors ? 'keep' : 'error' }).catch((error: unknown) => {
    throw asInputError(error);
  });
  let calibration: CalibrationBundle | Calibration | null = null;
  let quantization: QuantizationRun | null = null;
  try {
    const { settings } = args.resolved;
    const { format } = args;
    if (args.fakeQuantDtype !== undefined && format !== 'fake-quant') out.warn(`--fake-quant-dtype has no effect with --format ${format}`);
    const linears = model.linears().length;
    out.log(`${model.dir}: ${describeModel(model, linears)}`);
    const unknown = model.unknownTensors;
    if (unknown.length > 0) out.warn(`${unknown.length} tensor(s) the architecture does not account for are copied unquantized: ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ', …' : ''} (verify the output with --keep-unknown-tensors)`);
    announceLoaders(out, model, format, settings);
    const loadSeconds = (performance.now() - started) / 1000;
    if (calibrated(args)) calibration = await openCalibration(args);

    const calibrationStarted = performance.now();
    const events = new EventLog(out, args.workDir);
    quantization = await quantize(model, calibration, { ...args.options, signal, onEvent: (e) => events.handle(e) }).catch((error: unknown) => {
      throw explainRunError(error, args, out, signal);
    });
    const calibrateSeconds = (performance.now() - calibrationStarted) / 1000;
    signal.throwIfAborted();

    const exportStarted = performance.now();
    const progress = new Progress(out, 'export', { unit: 'tensors' });
    const saveOptions: SaveOptions = {
      format,
      overwrite: args.overwrite,
      signal,
      onProgress: (done, total) => progress.update(done, total),
    };
    if (args.maxShardBytes !== undefined) saveOptions.maxShardBytes = args.maxShardBytes;
    if (args.fakeQuantDtype !== undefined) saveOptions.fakeQuantDtype = args.fakeQuantDtype;
    // A broken tensor met while writing (NaN in a weight the export reads) is the input's fault: exit 2.
    const report = await quantization.save(args.outDir, saveOptions).catch((error: unknown) => {
      throw asInputError(error);
    });
    progress.finish();
    for (const stale of report.removedStale) out.log(`removed ${stale.path}, left by process ${stale.pid} (no longer running) from an export that did not finish`);
    const keptWork = quantization.workDir !== null && args.keepWork ? quantization.workDir : null;
    if (!args.keepWork) await quantization.discard();
    const exportSeconds = (performance.now() - exportStarted) / 1000;
    const diskBytes = await directoryBytes(report.dir);
    const seconds = { load: loadSeconds, calibrate: calibrateSeconds, export: exportSeconds, total: (performance.now() - started) / 1000 };
    const used = events.calibration === null ? null : { bundle: args.calib!, ...events.calibration };
    out.result({
      command: NAME,
      model: { dir: model.dir, architecture: model.architecture.displayName, layout: model.layout, layers: model.config.text.numLayers, linears },
      settings,
      ...(args.resolved.base === null ? {} : { base: args.resolved.base, importance: args.resolved.importance }),
      calibration: used,
      workDir: keptWork,
      export: report,
      diskBytes,
      seconds,
      vlmqVersion: packageVersion(),
    }, summary(model, linears, args, report, used, keptWork, diskBytes, seconds));
  } finally {
    await quantization?.close();
    if (calibration instanceof CalibrationBundle) await calibration.close();
    await model.close();
  }
}

const calibrated = (args: Arguments) => args.calib !== undefined && args.resolved.method !== 'rtn';

/** --calib: a calibration bundle (.safetensors) as it is, or image–text pairs, which quantize() turns into one in the work directory. */
async function openCalibration(args: Arguments): Promise<CalibrationBundle | Calibration> {
  const calib = args.calib!;
  const opened = calib.endsWith('.safetensors') ? CalibrationBundle.open(calib) : Calibration.fromFile(calib, { images: args.images, ...args.calibration });
  return opened.catch((error: unknown) => {
    throw asInputError(error);
  });
}

/**
 * The run's events on stderr (or as JSON lines): the calibration set's progress and report, the
 * layer loop's lines (RunLog), notices; it remembers the samples and tokens the run used.
 */
class EventLog {
  calibration: { samples: number; tokens: number } | null = null;
  readonly #log: RunLog;
  readonly #progress: Progress;

  constructor(private readonly out: Output, private readonly workDir: string) {
    this.#log = new RunLog(out);
    this.#progress = new Progress(out, 'calibration set', { unit: 'samples' });
  }

  handle(event: QuantizeEvent): void {
    if (event.type === 'notice') this.out.warn(event.message);
    else if (event.type === 'device') logDevice(this.out, { requested: event.requested, device: event.device, description: event.description });
    else if (event.type === 'calibration-progress') this.#progress.update(event.done, event.total);
    else if (event.type === 'calibration-set') this.#calibrationSet(event.report, event.samples);
    else {
      if (event.type === 'start') this.calibration = { samples: event.samples, tokens: event.tokens };
      this.#log.handle(event);
    }
  }

  #calibrationSet(report: CalibrationReport | null, samples: number): void {
    this.#progress.finish();
    if (report === null) {
      this.out.log(`calibration set: reusing the bundle built earlier in ${this.workDir} (${samples} samples)`);
      return;
    }
    this.out.event('calibration-set', { ...report });
    this.out.log(`calibration set: ${report.samples} samples, ${report.tokens} tokens (${report.imageTokens} image tokens)${report.truncated ? `; ${report.truncated} cut to --max-tokens` : ''}`);
    if (report.dropped.length > 0) {
      this.out.warn(`${report.dropped.length} record(s) dropped: ${report.dropped.slice(0, 5).map((d) => `${d.id} (${d.reason})`).join('; ')}${report.dropped.length > 5 ? '; …' : ''}`);
    }
    const shortfall = calibrationShortfall(report);
    if (shortfall !== null) this.out.warn(shortfall);
  }
}

/** Work-directory and lock errors → the flag to name and a hint. */
const WORK_DIR_ERRORS: Readonly<Record<string, [flag: string, hint: string | null]>> = {
  ERR_VLMQ_WORK_EXISTS: ['--work-dir', 'Add --resume to continue it.'],
  ERR_VLMQ_WORK_DIR: ['--work-dir', null],
  ERR_VLMQ_LOCKED: ['--work-dir', null],
  ERR_VLMQ_RESUME_MISMATCH: ['--resume', null],
};

/** A work directory in the way, in use or from another run, as a usage error (exit 2) naming the flag; other errors unchanged. */
function asWorkDirError(error: unknown): unknown {
  const code = (error as { code?: unknown })?.code;
  const known = typeof code === 'string' && Object.hasOwn(WORK_DIR_ERRORS, code) ? WORK_DIR_ERRORS[code] : undefined;
  return known ? new UsageError(`${known[0]}: ${(error as Error).message}`, known[1], { cause: error }) : error;
}

/** A run that could not start or did not finish, said in terms of the command line; an interruption says what was kept and how to go on. */
function explainRunError(error: unknown, args: Arguments, out: Output, signal: AbortSignal): unknown {
  const explained = asWorkDirError(error);
  if (explained !== error) return explained;
  if (signal.aborted) out.log(`stopped: the finished layers are kept in ${args.workDir}; run the same command with --resume to continue`);
  else if ((error as { code?: unknown })?.code === 'ERR_VLMQ_WRITE_FAILED') out.log(`the finished layers are kept in ${args.workDir}; once the problem is fixed, run the same command with --resume to continue`);
  return asInputError(error);
}

/** --work-dir: apart from --model and --out, and new, empty or a vlmq work directory, before any work. */
async function checkWorkDirectory(args: Arguments): Promise<void> {
  await checkWorkDir(args.workDir, { model: args.modelDir, out: args.outDir }).catch((error: unknown) => {
    throw asWorkDirError(asInputError(error));
  });
}

// --- arguments -----------------------------------------------------------------------------

function parseArguments(argv: readonly string[], out: Output): Arguments {
  const { values } = parseFlags(NAME, FLAGS, argv, { names: [], required: 0 });
  const modelDir = stringFlag(NAME, values, 'model', true);
  const outDir = stringFlag(NAME, values, 'out', true);
  const calib = stringFlag(NAME, values, 'calib');
  const workDir = stringFlag(NAME, values, 'work-dir') ?? `${resolve(outDir)}.vlmq-work`;
  const given = <T>(name: string, parse: (text: string) => T): T | undefined => {
    const text = stringFlag(NAME, values, name);
    return text === undefined ? undefined : parse(text);
  };
  // The flags as the library's options, parsed (numbers, sizes) but not checked: resolveQuantizeOptions
  // checks every one and fills in the defaults, and its messages are put in terms of the flags.
  const options: QuantizeModelOptions = {
    ...parseQuantizerFlags({ ...values, method: undefined }),
    method: stringFlag(NAME, values, 'method') as ModelMethod | undefined,
    base: stringFlag(NAME, values, 'base') as QuantizeModelOptions['base'],
    importance: {
      norm: stringFlag(NAME, values, 'importance-norm') as ImportanceOptions['norm'] | undefined,
      power: given('importance-power', (text) => parseInteger('--importance-power', text)) as ImportanceOptions['power'] | undefined,
      fallback: stringFlag(NAME, values, 'importance-fallback') as ImportanceOptions['fallback'] | undefined,
    },
    memory: given('memory', (text) => parseByteSize('--memory', text, 0)),
    batchTokens: given('batch-tokens', (text) => parseInteger('--batch-tokens', text)),
    workDir,
    resume: values.resume === true,
    device: stringFlag(NAME, values, 'device') as Device | undefined,
  };
  const resolved = inFlagTerms(() => resolveQuantizeOptions(options, calib !== undefined));
  checkMethodFlags(resolved.method, calib, values, out);
  const format = inFlagTerms(() => exportFormat(resolved.settings, stringFlag(NAME, values, 'format') as ExportFormat | undefined));
  const dtypeText = stringFlag(NAME, values, 'fake-quant-dtype');
  const fakeQuantDtype = dtypeText === undefined
    ? undefined
    : FAKE_QUANT_DTYPES[choice('--fake-quant-dtype', dtypeText.toLowerCase(), Object.keys(FAKE_QUANT_DTYPES) as (keyof typeof FAKE_QUANT_DTYPES)[])];
  const maxShardBytes = given('max-shard-size', (text) => parseByteSize('--max-shard-size', text));
  const calibration = {
    samples: optionalInteger('--samples', stringFlag(NAME, values, 'samples'), 1),
    maxTokens: optionalInteger('--max-tokens', stringFlag(NAME, values, 'max-tokens'), 1),
    seed: optionalInteger('--seed', stringFlag(NAME, values, 'seed'), 0),
    ...imageLimit(stringFlag(NAME, values, 'max-image-pixels')),
  };
  return { modelDir, outDir, calib, images: stringFlag(NAME, values, 'images'), calibration, overwrite: values.overwrite === true, keepUnknownTensors: values['keep-unknown-tensors'] === true, options, resolved, workDir, keepWork: values['keep-work'] === true, format, fakeQuantDtype, maxShardBytes };
}

/** A library call whose "Expected … for option" errors are re-worded to name the flag (exit 2). */
function inFlagTerms<T>(call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw asFlagError(error, OPTION_FLAGS, helpHint(NAME));
  }
}

/** --max-image-pixels: an integer ≥ 1, or 'none'. */
function imageLimit(text: string | undefined): { maxImagePixels?: number | null } {
  if (text === undefined) return {};
  return { maxImagePixels: text.trim().toLowerCase() === 'none' ? null : optionalInteger('--max-image-pixels', text, 1) };
}

function optionalInteger(flag: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const value = parseInteger(flag, text);
  if (value < min) throw new UsageError(`${flag}: expected an integer ≥ ${min} but received ${value}`, helpHint(NAME));
  return value;
}

/** A calibrated method needs --calib; flags that do nothing for the method chosen are warned about. */
function checkMethodFlags(method: ModelMethod, calib: string | undefined, values: FlagValues, out: Output): void {
  if (method !== 'rtn' && calib === undefined) {
    throw new UsageError(`--method ${method}: needs calibration data: --calib FILE (image-text pairs or a calibration bundle; see the README), or --method rtn for data-free round to nearest`, helpHint(NAME));
  }
  const ignored = [
    ...(method === 'rtn' ? ['calib', ...CALIBRATION_FLAGS] : []),
    ...(method === 'gptq' || method === 'gptaq' ? CALIBRATION_FLAGS.filter((f) => f === 'base' || f.startsWith('importance-')) : []),
    ...Object.entries(QUANTIZER_FLAGS).filter(([, f]) => f.only !== undefined && method === 'rtn').map(([name]) => name),
    ...(method !== 'gptaq' && method !== 'vlmq' ? ['alpha', 'gptaq-variant'] : []),
  ].filter((name, i, all) => values[name] !== undefined && all.indexOf(name) === i);
  for (const name of ignored) out.warn(`--${name} has no effect with --method ${method}`);
}

function choice<T extends string>(flag: string, text: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(text)) return text as T;
  throw new UsageError(`${flag}: expected one of ${allowed.join(', ')} but received ${JSON.stringify(text)}`, helpHint(NAME));
}

const BYTE_UNITS: Readonly<Record<string, number>> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

/** "5GB" → 5e9, "500MB" → 5e8, "4GiB" → 2³², "123" → 123 bytes; the result is an integer ≥ `min`. */
export function parseByteSize(flag: string, text: string, min = 1): number {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match ? BYTE_UNITS[(match[2] || 'b').toLowerCase()] : undefined;
  if (!match || unit === undefined) {
    throw new UsageError(`${flag}: expected a size such as 500MB, 5GB, 4GiB or a number of bytes but received ${JSON.stringify(text)}`, helpHint(NAME));
  }
  const bytes = Math.floor(Number(match[1]) * unit);
  if (!(bytes >= min) || !Number.isSafeInteger(bytes)) throw new UsageError(`${flag}: expected a size of at least ${min} byte${min === 1 ? '' : 's'} but received ${JSON.stringify(text)}`, helpHint(NAME));
  return bytes;
}

/** --out: where the export may go (the export's own rules), said in the flags' words, before any work. */
async function checkOutputDirectory({ modelDir, outDir, overwrite }: Arguments): Promise<void> {
  const found = await exportDestinationProblem(resolve(outDir), overwrite, modelDir);
  if (found === null) return;
  switch (found.problem) {
    case 'model':
      throw new UsageError('--out: must name a different directory than --model, and not one that contains it', helpHint(NAME));
    case 'no-parent':
      throw new UsageError(`--out: directory ${found.parent} does not exist (create it first)`);
    case 'not-directory':
      throw new UsageError(`--out: ${outDir} exists and is ${found.found.isFile() ? 'a file' : describeKind(found.found)}, not a directory`);
    case 'not-empty':
      throw new UsageError(`--out: ${outDir} exists and is not empty; pass --overwrite to replace it`);
    case 'not-checkpoint':
      throw new UsageError(`--out: ${outDir} is not a checkpoint directory (no ${CONFIG_FILE}; it holds ${describeEntries(found.entries)}); --overwrite replaces only a checkpoint, since the old directory is deleted`);
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

interface CalibrationSummary {
  bundle: string;
  samples: number;
  tokens: number;
}

function summary(model: Model, linears: number, args: Arguments, report: ExportReport, calibration: CalibrationSummary | null, workDir: string | null, diskBytes: number, s: Record<string, number>): string {
  const { settings, base, importance } = args.resolved;
  const method = base === null || settings.method !== 'vlmq' ? '' : ` on ${base}; factors ${importance!.norm}, weight g${importance!.power === 2 ? '²' : ''}, ${importance!.fallback} fallback`;
  return formatFields([
    ['model', `${model.dir} (${describeModel(model, linears)})`],
    ['settings', `${describeSettings(settings)}${settings.actOrder ? ', act-order' : ''}${method}`],
    ...(calibration ? [['calibration', `${calibration.bundle} (${calibration.samples} samples, ${calibration.tokens} tokens)`] as const] : []),
    ...(workDir ? [['work dir', `${workDir} (kept)`] as const] : []),
    ['format', describeFormat(report, args)],
    ['output', report.dir],
    ['files', describeFiles(report)],
    ['size', `${formatBytes(report.tensorBytes)} of tensors, ${formatBytes(diskBytes)} on disk`],
    ['copied', report.copied.length ? report.copied.join(', ') : 'none (no tokenizer or processor files in --model)'],
    ['seconds', `load ${formatSeconds(s.load)}, ${calibration ? `calibrate ${formatSeconds(s.calibrate)}, ` : ''}export ${formatSeconds(s.export)}; total ${formatSeconds(s.total)}`],
  ]);
}

async function directoryBytes(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true });
  const sizes = await Promise.all(entries.filter((e) => e.isFile()).map(async (e) => (await stat(join(dir, e.name))).size));
  return sizes.reduce((a, b) => a + b, 0);
}
