// vlmq example-linear: writes a realistic, seeded example layer for `vlmq quantize-linear`.
// The weight is random; the calibration tokens have correlated channels whose scales span two
// decades, a few outlier channels and non-zero means, as real activations do; the full-precision
// tokens (GPTAQ's x̃) are the same tokens slightly perturbed. The statistics go through the real
// HessianAccumulator (crossTerm: true), one 128-token sequence per sample, so the example also
// exercises the statistics code. Sequences are generated while the previous one accumulates.
import { stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { writeSafetensors } from '../io/safetensors-writer.js';
import { mulberry32 } from '../random.js';
import { HessianAccumulator } from '../quant/hessian-accumulator.js';
import { type DType, f32ToBf16, f32ToF16 } from '../tensor.js';
import { type FlagTable, UsageError, checkOutputPath, formatHelp, helpHint, integerInRange, parseFlags } from './args.js';
import { type Command, type CommandContext, packageVersion } from './command.js';
import { formatBytes, formatFields, formatSeconds } from './output.js';
import { Progress } from './progress.js';

const NAME = 'example-linear';

/** Small enough to finish in a few seconds on two cores. */
const DEFAULTS = { outFeatures: 256, inFeatures: 512, tokens: 2048, seed: 1, dtype: 'bf16' } as const;
const LIMITS = { features: 16384, tokens: 10_000_000 } as const;
/** Tokens per calibration sample (a "sequence"); H is averaged over samples (docs/algorithm.md §1.2). */
const SEQUENCE_LENGTH = 128;
/** Latent factors shared by the channels: the source of their correlations. */
const MAX_FACTORS = 64;
/** Relative size of the full-precision perturbation x̃ = x · (1 + ε), as in the tests' problems. */
const FULL_NOISE = 0.05;
const WEIGHT_DTYPES: Readonly<Record<string, DType>> = { bf16: 'BF16', f16: 'F16', f32: 'F32' };

const FLAGS: FlagTable = {
  'out-features': { type: 'string', value: 'N', description: 'rows of the weight (output channels)', default: String(DEFAULTS.outFeatures), group: 'Layer' },
  'in-features': { type: 'string', value: 'N', description: 'columns of the weight (input channels); H and dxxt are [N, N]', default: String(DEFAULTS.inFeatures), group: 'Layer' },
  tokens: { type: 'string', value: 'N', description: `calibration tokens, in samples of ${SEQUENCE_LENGTH}`, default: String(DEFAULTS.tokens), group: 'Layer' },
  seed: { type: 'string', value: 'S', description: 'seed of the generator (the same seed gives the same file)', default: String(DEFAULTS.seed), group: 'Layer' },
  dtype: { type: 'string', value: Object.keys(WEIGHT_DTYPES).join('|'), description: 'dtype of the weight', default: DEFAULTS.dtype, group: 'Layer' },
  json: { type: 'boolean', description: 'print JSON lines on stdout: progress events, then one result object', group: 'Other' },
};

export const exampleLinearCommand: Command = {
  name: NAME,
  summary: 'write a seeded example layer with its statistics to try quantize-linear on',
  help: () => formatHelp({
    usage: [`vlmq ${NAME} OUT.safetensors [options]`],
    description: [
      'Writes OUT with a random `weight` [out, in] and the calibration statistics `hessian` [in, in] and',
      '`dxxt` [in, in] (F32) of seeded synthetic tokens with correlated channels, computed by',
      "vlmq's HessianAccumulator with the GPTAQ cross term. OUT is the input `vlmq quantize-linear` expects.",
    ].join('\n'),
    arguments: [['OUT.safetensors', 'file to write (replaced atomically)']],
    flags: FLAGS,
    examples: [
      `vlmq ${NAME} layer.safetensors`,
      `vlmq ${NAME} layer.safetensors --in-features 1024 --out-features 512 --tokens 4096 --seed 7 --dtype f16`,
    ],
  }),
  run,
};

async function run(argv: readonly string[], { out, signal }: CommandContext): Promise<void> {
  const started = performance.now();
  const { values, positionals } = parseFlags(NAME, FLAGS, argv, { names: ['OUT.safetensors'], required: 1 });
  const outPath = positionals[0];
  const m = integerInRange('--out-features', String(values['out-features'] ?? DEFAULTS.outFeatures), 1, LIMITS.features);
  const n = integerInRange('--in-features', String(values['in-features'] ?? DEFAULTS.inFeatures), 1, LIMITS.features);
  const tokens = integerInRange('--tokens', String(values.tokens ?? DEFAULTS.tokens), 1, LIMITS.tokens);
  const seed = integerInRange('--seed', String(values.seed ?? DEFAULTS.seed), 0, 2 ** 32 - 1);
  const dtypeText = String(values.dtype ?? DEFAULTS.dtype);
  const dtype = WEIGHT_DTYPES[dtypeText.toLowerCase()];
  if (dtype === undefined) throw new UsageError(`--dtype: expected one of ${Object.keys(WEIGHT_DTYPES).join(', ')} but received ${JSON.stringify(dtypeText)}`, helpHint(NAME));
  await checkOutputPath('OUT', outPath);

  const rng = mulberry32(seed);
  const source = tokenSource(rng, n);
  const weight = randomWeight(rng, m, n, dtype);

  const progress = new Progress(out, 'statistics', { unit: 'tokens' });
  const accumulator = new HessianAccumulator(n, { crossTerm: true });
  let hessian: Float32Array;
  let dxxt: Float32Array;
  try {
    let pending: Promise<void> = Promise.resolve();
    for (let done = 0; done < tokens;) {
      const count = Math.min(SEQUENCE_LENGTH, tokens - done);
      const { x, xFull } = source(count);
      await pending;
      pending = accumulator.add({ dtype: 'F32', shape: [count, n], data: x }, { xFull: { dtype: 'F32', shape: [count, n], data: xFull }, samples: 1, signal });
      done += count;
      const reached = done;
      void pending.then(() => progress.update(reached, tokens), () => undefined);
    }
    await pending;
    hessian = await accumulator.hessian();
    dxxt = await accumulator.dxxt();
  } finally {
    accumulator.dispose();
  }
  progress.finish(tokens);
  signal.throwIfAborted();

  const writeStarted = performance.now();
  await writeSafetensors(outPath, [
    { name: 'weight', dtype, shape: [m, n], data: weight },
    { name: 'hessian', dtype: 'F32', shape: [n, n], data: hessian },
    { name: 'dxxt', dtype: 'F32', shape: [n, n], data: dxxt },
  ], {
    metadata: {
      vlmq_version: packageVersion(),
      command: NAME,
      out_features: String(m),
      in_features: String(n),
      tokens: String(tokens),
      sequence_length: String(SEQUENCE_LENGTH),
      samples: String(Math.ceil(tokens / SEQUENCE_LENGTH)),
      seed: String(seed),
      description: 'synthetic layer: random weight; hessian = (2/samples) Σ x xᵀ and dxxt = (2/samples) Σ (x̃ − x) xᵀ over seeded correlated tokens',
    },
  });
  const seconds = { statistics: progress.elapsed, write: (performance.now() - writeStarted) / 1000, total: (performance.now() - started) / 1000 };
  const { size } = await stat(outPath);
  out.result({
    command: NAME,
    out: outPath,
    bytes: size,
    outFeatures: m,
    inFeatures: n,
    tokens,
    samples: Math.ceil(tokens / SEQUENCE_LENGTH),
    seed,
    dtype,
    seconds,
    vlmqVersion: packageVersion(),
  }, formatFields([
    ['wrote', `${outPath} (${formatBytes(size)})`],
    ['weight', `[${m}, ${n}] ${dtype}, seed ${seed}`],
    ['hessian', `[${n}, ${n}] F32 from ${tokens} tokens (${Math.ceil(tokens / SEQUENCE_LENGTH)} samples of up to ${SEQUENCE_LENGTH})`],
    ['dxxt', `[${n}, ${n}] F32`],
    ['seconds', `statistics ${formatSeconds(seconds.statistics)}, write ${formatSeconds(seconds.write)}; total ${formatSeconds(seconds.total)}`],
    ['next', `vlmq quantize-linear --in ${outPath} --out ${suggestedOutput(outPath)} --method gptaq --act-order --group-size ${suggestedGroupSize(n)}`],
  ]));
}

// --- generator -----------------------------------------------------------------------------

/**
 * A function returning `count` more tokens x [count, n] and their full-precision counterparts:
 * x_j = s_j · (μ_j + Σ_k z_k B_kj + 0.5 e_j) with per-channel scales s_j log-uniform over two
 * decades (in random order, so act-order has work to do), every 128th channel an outlier (× 10),
 * channel means μ, and shared factors z (k = min(n, 64)) that correlate the channels.
 */
function tokenSource(rng: () => number, n: number): (count: number) => { x: Float32Array; xFull: Float32Array } {
  const k = Math.min(n, MAX_FACTORS);
  const loadings = new Float64Array(k * n);
  for (let i = 0; i < loadings.length; i++) loadings[i] = randn(rng) / Math.sqrt(k);
  const scale = Float64Array.from({ length: n }, () => 10 ** (-1 + 2 * rng()));
  for (let j = Math.floor(rng() * Math.min(n, 128)); j < n; j += 128) scale[j] *= 10;
  const mean = Float64Array.from({ length: n }, () => 0.3 * randn(rng));
  const z = new Float64Array(k);
  const row = new Float64Array(n);
  return (count) => {
    const x = new Float32Array(count * n);
    const xFull = new Float32Array(count * n);
    for (let t = 0; t < count; t++) {
      for (let f = 0; f < k; f++) z[f] = randn(rng);
      for (let j = 0; j < n; j++) row[j] = mean[j] + 0.5 * randn(rng);
      for (let f = 0; f < k; f++) {
        const zf = z[f];
        const b = f * n;
        for (let j = 0; j < n; j++) row[j] += zf * loadings[b + j];
      }
      for (let j = 0; j < n; j++) {
        const value = Math.fround(row[j] * scale[j]);
        x[t * n + j] = value;
        xFull[t * n + j] = value * (1 + FULL_NOISE * randn(rng));
      }
    }
    return { x, xFull };
  };
}

/** W [m, n] with entries N(0, 1/n) and row norms that vary (e^N(0, 0.3²)), encoded as `dtype`. */
function randomWeight(rng: () => number, m: number, n: number, dtype: DType): Float32Array | Uint16Array {
  const values = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    const rowScale = Math.exp(0.3 * randn(rng)) / Math.sqrt(n);
    for (let j = 0; j < n; j++) values[i * n + j] = randn(rng) * rowScale;
  }
  if (dtype === 'F32') return values;
  const encode = dtype === 'F16' ? f32ToF16 : f32ToBf16;
  return Uint16Array.from(values, (v) => encode(v));
}

/** A standard normal sample (Box–Muller). */
function randn(rng: () => number): number {
  let u = rng();
  while (u <= 0) u = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

function suggestedOutput(path: string): string {
  return path.endsWith('.safetensors') ? `${path.slice(0, -'.safetensors'.length)}-q.safetensors` : `${path}-q.safetensors`;
}

function suggestedGroupSize(n: number): number {
  return n >= 256 ? 128 : Math.max(1, 2 ** Math.floor(Math.log2(n / 2)));
}
