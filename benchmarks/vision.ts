// Calibration's own costs: the vision towers at the dimensions of real checkpoints, and image
// preprocessing. Each tower runs 2 of its blocks (a real tower is about depth/2 times the blocks'
// share of that) plus its patch embedding and merger or projector on one image, and its FLOP rate
// (of the matrix products and attention) is compared with OpenBLAS SGEMM at the
// shape of the blocks' projections, measured in the same run; the towers are GEMM-bound, so that
// ratio is how close to the hardware they run. Preprocessing (decode, Pillow-exact bicubic resize,
// normalisation, patch order) is timed against sharp/libvips resizing the same image to the same
// size, a fast native resize that does not match PIL.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { type TinyCheckpointOptions, writeTinyCheckpoint } from '../lib/demo/index.js';
import { VisionTower, decodeImage, loadModel, preprocessQwenImage, qwenImageProcessorConfig } from '../lib/index.js';
import { type BenchOptions, type Row, baseline, bestOf, gflops, randomFloats, secs } from './util.js';

interface TowerCase {
  name: string;
  checkpoint: TinyCheckpointOptions;
  /** Patches of the image the case runs on. */
  patches: number;
  flops: number;
  run: (tower: VisionTower) => Promise<unknown>;
}

const DEPTH = 2;

/** FLOPs of DEPTH ViT blocks over N tokens of width W (projections 4W², MLP `mlpFlopsPerToken`, attention over `span` tokens). */
function blockFlops(N: number, W: number, mlpFlopsPerToken: number, span: number): number {
  return DEPTH * (2 * N * 4 * W * W + N * mlpFlopsPerToken + 4 * N * span * W);
}

/** FLOPs of the patch embedding (N patches of `patchValues` values) and the head: merger or projector, `tokens` rows through [in → mid → out]. */
function endFlops(N: number, patchValues: number, W: number, tokens: number, head: [number, number, number]): number {
  return 2 * N * patchValues * W + 2 * tokens * (head[0] * head[1] + head[1] * head[2]);
}

function towerCases(quick: boolean): TowerCase[] {
  // a 448×448 image: 32×32 patches of 14 px (Qwen); one 384×384 view: 27×27 (SigLIP)
  const side = quick ? 8 : 32;
  const N = side * side;
  const grid = [1, side, side] as const;
  const qwenPixels = randomFloats(N * 3 * 2 * 14 * 14, 1);
  const W = quick ? 64 : 1280;
  const qwen2: TinyCheckpointOptions = { architecture: 'qwen2_vl', dtype: 'F32', layers: 1, hidden: quick ? 64 : 1536, heads: 2, kvHeads: 1, vision: { depth: DEPTH, width: W, heads: quick ? 2 : 16, mlpRatio: 4 } };
  const qwen25: TinyCheckpointOptions = { architecture: 'qwen2_5_vl', dtype: 'F32', layers: 1, hidden: quick ? 64 : 2048, heads: 2, kvHeads: 1, vision: { depth: DEPTH, width: W, heads: quick ? 2 : 16, intermediate: quick ? 128 : 3420, fullattBlockIndexes: [1] } };
  // 378 px: the 27×27 patches of so400m's 384 px (the generator wants a multiple of the patch)
  const S = quick ? 28 : 378;
  const P = Math.floor(S / 14);
  const Ws = quick ? 64 : 1152;
  const siglip: TinyCheckpointOptions = { architecture: 'llava_onevision', dtype: 'F32', layers: 1, hidden: quick ? 64 : 896, heads: 2, kvHeads: 1, vision: { depth: DEPTH, width: Ws, heads: quick ? 2 : 16, intermediate: quick ? 128 : 4304, imageSize: S } };
  const sigPixels = randomFloats(3 * S * S, 2);
  // Qwen2.5-VL: one full-attention block, one block with 112-px windows (8×8 patches)
  const window = Math.min(64, N);
  return [
    {
      name: `Qwen2-VL-2B tower, ${DEPTH} of 32 blocks, ${side * 14}² image (${N} patches)`, checkpoint: qwen2, patches: N,
      flops: blockFlops(N, W, 2 * 2 * W * 4 * W, N) + endFlops(N, 1176, W, N / 4, [4 * W, 4 * W, qwen2.hidden!]), run: (t) => t.qwen(qwenPixels, [grid]),
    },
    {
      name: `Qwen2.5-VL-3B tower, ${DEPTH} of 32 blocks (1 windowed), ${side * 14}² image`, checkpoint: qwen25, patches: N,
      flops: blockFlops(N, W, 3 * 2 * W * qwen25.vision!.intermediate!, (N + window) / 2) + endFlops(N, 1176, W, N / 4, [4 * W, 4 * W, qwen25.hidden!]), run: (t) => t.qwen(qwenPixels, [grid]),
    },
    {
      name: `SigLIP-so400m + projector, ${DEPTH} of 26 layers, one view of ${P}×${P} patches`, checkpoint: siglip, patches: P * P,
      flops: blockFlops(P * P, Ws, 2 * 2 * Ws * siglip.vision!.intermediate!, P * P) + endFlops(P * P, 588, Ws, P * P, [Ws, siglip.hidden!, siglip.hidden!]), run: (t) => t.siglip(sigPixels, 1),
    },
  ];
}

export async function visionBenchmarks(o: BenchOptions): Promise<Row[]> {
  const dir = await mkdtemp(join(tmpdir(), 'vlmq-bench-vision-'));
  const rows: Row[] = [];
  try {
    for (const [k, c] of towerCases(o.quick).entries()) {
      const checkpoint = await writeTinyCheckpoint(join(dir, `tower-${k}`), { ...c.checkpoint, extraFiles: false });
      const model = await loadModel(checkpoint.dir);
      const tower = await VisionTower.load(model, o.device);
      try {
        await c.run(tower);  // warm-up: first-touch of the weights and workspaces
        const seconds = await bestOf(o.repeats, () => c.run(tower));
        const W = tower.dims.width;
        const gemm = await baseline('sgemm', { m: c.patches, n: W, k: W }, o.repeats);
        const ours = c.flops / seconds / 1e9, floor = gemm.flops / gemm.seconds / 1e9;
        rows.push({
          benchmark: 'vision', case: c.name,
          ours: `${secs(seconds)}, ${ours.toFixed(1)} GFLOP/s`,
          baseline: `SGEMM ${c.patches}×${W}×${W}: ${gflops(gemm.flops, gemm.seconds)} GFLOP/s`,
          ratio: `${(ours / floor).toFixed(2)}× of SGEMM`, target: '≥ 0.7×', met: o.quick ? undefined : ours / floor >= 0.7,
        });
      } finally {
        tower.dispose();
        await model.close();
      }
    }
    rows.push(await preprocessingRow(dir, o));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

/** A 1600×1200 noisy PNG → Qwen2-VL's 1148×840 (under the default max_pixels): ours vs libvips. */
async function preprocessingRow(dir: string, o: BenchOptions): Promise<Row> {
  const [w, h] = o.quick ? [160, 120] : [1600, 1200];
  const path = join(dir, 'photo.png');
  const noise = randomFloats(w * h * 3, 3);
  const pixels = Uint8Array.from(noise, (v, i) => Math.round(((i % (w * 3)) / (w * 3)) * 200 + 55 * (v + 0.5)));
  await sharp(pixels, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path);
  const config = qwenImageProcessorConfig({}, 'defaults');
  let grid: readonly number[] = [];
  const ours = await bestOf(o.repeats, async () => (grid = preprocessQwenImage(await decodeImage(path), config).grid));
  const [height, width] = [grid[1] * 14, grid[2] * 14];
  const libvips = await bestOf(o.repeats, () => sharp(path).resize(width, height, { kernel: 'cubic', fit: 'fill' }).raw().toBuffer());
  return {
    benchmark: 'vision', case: `preprocess ${w}×${h} PNG → ${width}×${height} (Qwen2-VL, decode + PIL bicubic + normalise + patches)`,
    ours: secs(ours), baseline: `sharp decode + cubic resize: ${secs(libvips)}`, ratio: `${(ours / libvips).toFixed(2)}× its time`, target: '-',
  };
}
