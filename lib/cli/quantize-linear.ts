// vlmq quantize-linear: one linear layer from a safetensors file (weight, hessian, optional dxxt)
// through quantizeLinear, written back as a safetensors file. The command adds nothing to the
// numbers: the output holds exactly what quantizeLinear returned for the options given.
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SafetensorsFile, type TensorInfo } from '../io/safetensors-reader.js';
import { type WritableTensor, writeSafetensors } from '../io/safetensors-writer.js';
import { setThreads } from '../native/info.js';
import type { NativeLinearOptions } from '../native/binding.js';
import { type LinearQuantization, type LinearStatistics, quantizeLinear } from '../quant/quantize-linear.js';
import type { DType, Tensor } from '../tensor.js';
import { DEVICE_FLAG, deviceFromFlag, logDevice } from './device.js';
import { type FlagTable, UsageError, asInputError, checkInputFile, checkOutputPath, formatHelp, helpHint, integerInRange, parseFlags, quantizerFlagTable, quantizerOptionsFromFlags, stringFlag } from './args.js';
import { type Command, type CommandContext, packageVersion } from './command.js';
import { formatBytes, formatFields, formatSeconds } from './output.js';
import { Progress } from './progress.js';

const NAME = 'quantize-linear';

const FLAGS: FlagTable = {
  in: { type: 'string', value: 'FILE', description: 'safetensors file with weight [out, in] (F32, F16 or BF16), hessian [in, in] F32 and, for gptaq, dxxt [in, in] F32 (rtn needs only weight)', group: 'Files' },
  out: { type: 'string', value: 'FILE', description: 'safetensors file to write: dequantized, codes, scales, zeros, g_idx and, with --act-order, perm (replaced atomically)', group: 'Files' },
  ...quantizerFlagTable('Quantizer'),
  device: DEVICE_FLAG,
  threads: { type: 'string', value: 'N', description: 'threads of the CPU backend and OpenBLAS (default: as `vlmq doctor` reports)', group: 'Other' },
  json: { type: 'boolean', description: 'print JSON lines on stdout: progress events, then one result object', group: 'Other' },
};

const FLOAT_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16'];

export const quantizeLinearCommand: Command = {
  name: NAME,
  summary: 'quantize one linear layer (weight, hessian, dxxt) with RTN, GPTQ or GPTAQ',
  help: () => formatHelp({
    usage: [`vlmq ${NAME} --in IN.safetensors --out OUT.safetensors [options]`],
    description: [
      'Quantizes the layer `weight` [out, in] of IN with its calibration statistics `hessian` (and `dxxt`',
      'for gptaq) and writes OUT with `dequantized` [out, in] F32, `codes` [out, in] U8, `scales`',
      '[out, groups] F32, `zeros` [out, groups] I32, `g_idx` [in] I32 and, with --act-order, `perm` [in] I32;',
      'dequantized = scales[g_idx] · (codes − zeros). The metadata records the options, method, loss,',
      'damping and vlmq version. A summary goes to stdout, progress to stderr.',
    ].join('\n'),
    flags: FLAGS,
    examples: [
      'vlmq example-linear layer.safetensors',
      `vlmq ${NAME} --in layer.safetensors --out layer-q.safetensors --method gptaq --bits 4 --group-size 128 --act-order`,
      `vlmq ${NAME} --in layer.safetensors --out layer-q.safetensors --method rtn --bits 8 --json`,
    ],
  }),
  run,
};

async function run(argv: readonly string[], { out, signal }: CommandContext): Promise<void> {
  const started = performance.now();
  const { values } = parseFlags(NAME, FLAGS, argv, { names: [], required: 0 });
  const inPath = stringFlag(NAME, values, 'in', true);
  const outPath = stringFlag(NAME, values, 'out', true);
  const { options, resolved, ignored } = quantizerOptionsFromFlags(NAME, values);
  const device = deviceFromFlag(NAME, values);
  const threads = values.threads === undefined ? undefined : integerInRange('--threads', String(values.threads), 1, 1024);
  if (resolve(outPath) === resolve(inPath)) throw new UsageError('--out: must name a different file than --in', helpHint(NAME));
  await checkInputFile('--in', inPath);
  await checkOutputPath('--out', outPath);
  for (const flag of ignored) out.warn(`${flag} has no effect with --method ${resolved.method}`);
  if (threads !== undefined) await setThreads(threads);

  const readStarted = performance.now();
  const inputs = await readInputs(inPath, resolved.method);
  const readSeconds = (performance.now() - readStarted) / 1000;
  out.log(`read ${inPath}: ${inputs.described}`);

  logDevice(out, device);
  const progress = new Progress(out, resolved.method, { unit: 'columns' });
  const result = await quantizeLinear(inputs.weight, inputs.statistics, {
    ...options,
    device: device.device,
    signal,
    onProgress: (done, total) => progress.update(done, total),
  });
  progress.finish(result.cols);
  signal.throwIfAborted();
  if (result.fallback) out.warn(`${describeFallback(result)}; the layer was quantized with RTN instead`);

  const writeStarted = performance.now();
  await writeSafetensors(outPath, outputTensors(result), { metadata: outputMetadata(result, resolved, inputs.weight.dtype) });
  const writeSeconds = (performance.now() - writeStarted) / 1000;
  const { size } = await stat(outPath);
  out.log(`wrote ${outPath} (${formatBytes(size)})`);

  const seconds = { read: readSeconds, ...result.seconds, write: writeSeconds, total: (performance.now() - started) / 1000 };
  out.result({
    command: NAME,
    in: inPath,
    out: outPath,
    bytes: size,
    method: result.method,
    options: resolved,
    weightDtype: inputs.weight.dtype,
    rows: result.rows,
    cols: result.cols,
    groups: result.groups,
    loss: result.loss,
    damping: result.damping,
    fallback: result.fallback,
    deadColumns: result.deadColumns,
    seconds,
    vlmqVersion: packageVersion(),
  }, summary(result, resolved, inputs.weight.dtype, outPath, size, seconds));
}

// --- inputs --------------------------------------------------------------------------------

interface Inputs {
  weight: Tensor;
  statistics: LinearStatistics | null;
  described: string;
}

/** Reads and checks IN; every problem is a UsageError naming the file and the tensor. */
async function readInputs(path: string, method: NativeLinearOptions['method']): Promise<Inputs> {
  const file = await openInput(path);
  try {
    const weightInfo = requireTensor(file, 'weight', `the layer weight [out, in] (${FLOAT_DTYPES.join(', ')})`);
    if (!FLOAT_DTYPES.includes(weightInfo.dtype)) throw inputError(path, `tensor 'weight': expected dtype ${FLOAT_DTYPES.join(', ')}, found ${weightInfo.dtype}`);
    if (weightInfo.shape.length !== 2 || weightInfo.shape[0] === 0 || weightInfo.shape[1] === 0) {
      throw inputError(path, `tensor 'weight': expected a 2-D shape [out, in] with out, in ≥ 1, found [${weightInfo.shape.join(', ')}]`);
    }
    const n = weightInfo.shape[1];
    const needed = method === 'rtn' ? [] : method === 'gptaq' ? ['hessian', 'dxxt'] : ['hessian'];
    for (const name of needed) {
      const what = name === 'hessian' ? 'the Hessian' : "GPTAQ's cross term";
      const info = requireTensor(file, name, `--method ${method} needs ${what} [${n}, ${n}] F32`);
      if (info.dtype !== 'F32') throw inputError(path, `tensor '${name}': expected dtype F32, found ${info.dtype}`);
      if (info.shape.length !== 2 || info.shape[0] !== n || info.shape[1] !== n) {
        throw inputError(path, `tensor '${name}': expected shape [${n}, ${n}] (weight has ${n} input columns), found [${info.shape.join(', ')}]`);
      }
    }
    const weight = await file.read('weight');
    const described = [`weight ${weight.dtype} [${weight.shape.join(', ')}]`, ...needed.map((name) => `${name} F32 [${n}, ${n}]`)].join(', ');
    if (method === 'rtn') return { weight, statistics: null, described };
    const hessian = await file.read('hessian');
    const dxxt = method === 'gptaq' ? await file.read('dxxt') : undefined;
    return { weight, statistics: dxxt ? { hessian, dxxt } : { hessian }, described };
  } finally {
    await file.close();
  }
}

async function openInput(path: string): Promise<SafetensorsFile> {
  // A malformed or unreadable file: the reader's message names the file and what is wrong.
  return SafetensorsFile.open(path).catch((error: unknown) => {
    throw asInputError(error);
  });
}

function requireTensor(file: SafetensorsFile, name: string, purpose: string): TensorInfo {
  const info = file.tensors.get(name);
  if (info !== undefined) return info;
  const names = file.names();
  const found = names.length === 0 ? 'the file holds no tensors' : `it holds ${names.slice(0, 6).map((n) => `'${n}'`).join(', ')}${names.length > 6 ? ` and ${names.length - 6} more` : ''}`;
  const tip = name === 'weight' ? '' : '; `vlmq example-linear` writes a complete example, and --method rtn needs no statistics';
  throw inputError(file.path, `tensor '${name}' is missing: ${purpose} (${found})${tip}`);
}

function inputError(path: string, message: string): UsageError {
  return new UsageError(`${path}: ${message}`);
}

// --- output --------------------------------------------------------------------------------

function outputTensors(r: LinearQuantization): WritableTensor[] {
  const tensors: WritableTensor[] = [
    { name: 'dequantized', dtype: 'F32', shape: [r.rows, r.cols], data: r.dequantized },
    { name: 'codes', dtype: 'U8', shape: [r.rows, r.cols], data: r.codes },
    { name: 'scales', dtype: 'F32', shape: [r.rows, r.groups], data: r.scales },
    { name: 'zeros', dtype: 'I32', shape: [r.rows, r.groups], data: r.zeros },
    { name: 'g_idx', dtype: 'I32', shape: [r.cols], data: r.gIdx },
  ];
  if (r.perm) tensors.push({ name: 'perm', dtype: 'I32', shape: [r.cols], data: r.perm });
  return tensors;
}

/** Everything needed to tell how OUT was made, as the strings safetensors metadata allows. */
function outputMetadata(r: LinearQuantization, resolved: NativeLinearOptions, weightDtype: DType): Record<string, string> {
  const metadata: Record<string, string> = {
    vlmq_version: packageVersion(),
    command: NAME,
    method: r.method,
    options: JSON.stringify(resolved),
    loss: String(r.loss),
    damping: JSON.stringify(r.damping),
    dead_columns: String(r.deadColumns),
    weight_dtype: weightDtype,
  };
  if (r.fallback) metadata.fallback = JSON.stringify(r.fallback);
  return metadata;
}

function summary(r: LinearQuantization, o: NativeLinearOptions, weightDtype: DType, outPath: string, bytes: number, s: Record<string, number>): string {
  const traits = [
    `${o.bits}-bit`,
    o.sym ? 'symmetric' : 'asymmetric',
    o.groupSize === -1 ? 'per channel' : `group size ${o.groupSize}`,
    ...(o.actOrder ? ['act-order'] : []),
    ...(o.staticGroups ? ['static groups'] : []),
    ...(o.mse ? ['mse'] : []),
    ...(o.fp32Scales ? ['fp32 scales'] : []),
    ...(r.method === 'gptaq' ? [`alpha ${o.alpha}`, `${o.gptaqVariant} variant`] : []),
  ];
  const damping = r.method === 'rtn'
    ? 'none (rtn)'
    : `percdamp ${formatNumber(r.damping.percdamp)}, λ ${formatNumber(r.damping.lambda)}${r.damping.tried.length > 1 ? ` (${describeTries(r.damping.tried)})` : ''}`;
  const phases = ['read', 'prepare', 'factor', 'sweep', 'correction', 'write'].map((k) => `${k} ${formatSeconds(s[k])}`).join(', ');
  return formatFields([
    ['method', `${r.method} (${traits.join(', ')})`],
    ['layer', `${r.rows} × ${r.cols} ${weightDtype}, ${r.groups} group${r.groups === 1 ? '' : 's'} per row`],
    ['loss', formatNumber(r.loss)],
    ['damping', damping],
    ['fallback', r.fallback ? `rtn: ${describeFallback(r)}` : 'none'],
    ['dead columns', String(r.deadColumns)],
    ['seconds', `${phases}; total ${formatSeconds(s.total)}`],
    ['output', `${outPath} (${formatBytes(bytes)})`],
  ]);
}

/** "tried 0.01, 0.0125" or, for many, "tried 37 values from 0.01 to 0.1". */
function describeTries(tried: readonly number[]): string {
  if (tried.length <= 4) return `tried ${tried.map(formatNumber).join(', ')}`;
  return `tried ${tried.length} values from ${formatNumber(tried[0])} to ${formatNumber(tried[tried.length - 1])}`;
}

/** The fallback in one short line (the library's full reason is kept in the metadata and --json). */
function describeFallback(r: LinearQuantization): string {
  return `the damped Hessian is not positive definite at any damping tried (${describeTries(r.damping.tried)})`;
}

/** Six significant digits, exponent form for very small or large values. */
function formatNumber(x: number): string {
  if (x === 0 || !Number.isFinite(x)) return String(x);
  const magnitude = Math.abs(x);
  return magnitude < 1e-3 || magnitude >= 1e6 ? x.toExponential(4) : String(Number(x.toPrecision(6)));
}
