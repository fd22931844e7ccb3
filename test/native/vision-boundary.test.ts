// The raw VisionTower re-checks what it is given: garbage that bypasses lib/pipeline/vision-tower.ts
// comes back as a TypeError naming the argument or a rejected Promise, never as a crash (a crash
// would fail this whole file).
import t from 'tap';
import type { NativeVisionDims, NativeVisionTower } from '../../lib/native/binding.js';
import { binding } from '../../lib/native/loader.js';

const raw = binding();
const qwen25: NativeVisionDims = {
  kind: 'qwen2_5_vl', width: 16, heads: 2, intermediate: 24, depth: 2, channels: 3, patch: 2, temporalPatch: 1, merge: 2,
  window: 8, fullatt: [1], imageSize: 0, outHidden: 8, eps: 1e-6, mlpAct: 'silu', headAct: 'gelu',
};
const siglipDims: NativeVisionDims = {
  kind: 'siglip', width: 16, heads: 2, intermediate: 24, depth: 1, channels: 3, patch: 2, temporalPatch: 1, merge: 1,
  window: 0, fullatt: [], imageSize: 4, outHidden: 8, eps: 1e-6, mlpAct: 'gelu_pytorch_tanh', headAct: 'gelu',
};
const make = (dims: unknown) => new (raw.VisionTower as unknown as new (d: unknown) => NativeVisionTower)(dims);
const F = 3 * 1 * 2 * 2;

t.test('the constructor rejects malformed dimensions with a TypeError naming the field', async (t) => {
  const cases: [unknown, RegExp][] = [
    [undefined, /object for dims/],
    [{ ...qwen25, kind: 'clip' }, /qwen2_vl, qwen2_5_vl or siglip for dims\.kind/],
    [{ ...qwen25, width: '16' }, /number for dims\.width/],
    [{ ...qwen25, heads: 1.5 }, /integer for dims\.heads/],
    [{ ...qwen25, eps: undefined }, /number for dims\.eps/],
    [{ ...qwen25, mlpAct: 'relu' }, /for dims\.mlpAct but received relu/],
    [{ ...qwen25, headAct: 7 }, /string for dims\.headAct/],
    [{ ...qwen25, fullatt: 1 }, /array of block indexes for dims\.fullatt/],
    [{ ...qwen25, fullatt: ['1'] }, /block indexes .* in dims\.fullatt/],
    [{ ...qwen25, fullatt: [-1] }, /block indexes .* in dims\.fullatt/],
    [{ ...qwen25, width: 0 }, /dims: vision dimensions out of range/],
    [{ ...qwen25, width: 2 ** 40 }, /dims: vision dimensions out of range/],
    [{ ...qwen25, heads: 3 }, /not a multiple of heads/],
    [{ ...qwen25, width: 12, heads: 2 }, /head dim 6 must be a multiple of 4/],
    [{ ...qwen25, mlpAct: 'gelu' }, /needs the silu activation/],
    [{ ...qwen25, window: 3 }, /window size 3 must be at least merge · patch/],
    [{ ...qwen25, fullatt: [2] }, /full-attention block 2 is not below depth 2/],
    [{ ...qwen25, eps: -1 }, /eps must be positive/],
    [{ ...qwen25, eps: Number.NaN }, /eps must be positive/],
    [{ ...siglipDims, imageSize: 1 }, /image size 1 must be in \[patch/],
  ];
  for (const [dims, message] of cases) t.throws(() => make(dims), { name: 'TypeError', message }, String(message));
});

t.test('setTensor rejects bad names, shapes, dtypes and values', async (t) => {
  const tower = make(qwen25);
  const matrix = (rows: number, cols: number, fill = 0.5) => ({ data: new Float32Array(rows * cols).fill(fill), dtype: 'F32', rows, cols });
  t.throws(() => tower.setTensor(3 as never, matrix(1, 16) as never), { name: 'TypeError', message: /tensor name/ });
  t.throws(() => tower.setTensor('blocks.0.norm1.weight', { ...matrix(1, 16), dtype: 'F64' } as never), /F32, F16 or BF16/);
  t.throws(() => tower.setTensor('blocks.0.norm1.weight', { ...matrix(1, 16), rows: 2 } as never), /do not make a \[2, 16\] matrix/);
  await t.rejects(tower.setTensor('blocks.9.norm1.weight', matrix(1, 16) as never), { code: 'ERR_VLMQ_INVALID_ARG', message: /unknown vision tensor 'blocks\.9\.norm1\.weight'/ });
  await t.rejects(tower.setTensor('blocks.0.norm1.bias', matrix(1, 16) as never), /unknown vision tensor/, 'Qwen2.5-VL norms have no bias');
  await t.rejects(tower.setTensor('blocks.0.attn.qkv.weight', matrix(16, 48) as never), /expected \[48, 16\], found \[16, 48\]/);
  await t.rejects(tower.setTensor('blocks.0.norm1.weight', matrix(1, 16, Number.NaN) as never), /NaN or infinite/);
  await t.resolves(tower.setTensor('blocks.0.norm1.weight', matrix(1, 16) as never));
  tower.dispose();
});

t.test('qwen() re-checks pixels and grids with a TypeError, and rejects an incomplete tower', async (t) => {
  const tower = make(qwen25);
  const x = new Float32Array(16 * F);
  const grid = Int32Array.from([1, 4, 4]);
  t.throws(() => tower.qwen(x, [1, 4, 4] as never), /Int32Array of \(t, h, w\) triples for grids/);
  t.throws(() => tower.qwen(x, Int32Array.from([1, 4])), /grids: expected 3 · images values/);
  t.throws(() => tower.qwen(x, new Int32Array(0)), /grids: expected 3 · images values/);
  t.throws(() => tower.qwen(x, Int32Array.from([0, 4, 4])), /grids\[0\]: expected positive/);
  t.throws(() => tower.qwen(x, Int32Array.from([1, 4, 3])), /grids\[0\]: h and w must be multiples of the merge size 2/);
  t.throws(() => tower.qwen(x, Int32Array.from([1, 2 ** 30, 2 ** 30])), /more than 2³¹ − 1 patches/);
  t.throws(() => tower.qwen(x, Int32Array.from([2 ** 30, 2 ** 15, 2 ** 15])), /more than 2³¹ − 1 patches/);
  t.throws(() => tower.qwen(new Float32Array(16 * F - 1), grid), /Expected 192 elements in pixelValues/);
  t.throws(() => tower.qwen(new Float64Array(16 * F) as never, grid), /Float32Array for pixelValues/);
  t.throws(() => tower.siglip(x, 1, 4), /this is a Qwen tower/);
  await t.rejects(tower.qwen(x, grid), { code: 'ERR_VLMQ_INVALID_ARG', message: /missing patch_embed\.proj\.weight/ });
  tower.dispose();
});

t.test('siglip() re-checks views, size and pixels', async (t) => {
  const tower = make(siglipDims);
  const x = new Float32Array(2 * 3 * 4 * 4);
  t.throws(() => tower.siglip(x, 0, 4), /integer in \[1, 1048576\] for views/);
  t.throws(() => tower.siglip(x, '2' as never, 4), /for views/);
  t.throws(() => tower.siglip(x, 2, 6), /size: views of 6 px give 3² patches/);
  t.throws(() => tower.siglip(x, 2, 0), /for size/);
  t.throws(() => tower.siglip(x, 3, 4), /Expected 144 elements in pixelValues/);
  t.throws(() => tower.qwen(x, Int32Array.from([1, 2, 2])), /this is a SigLIP tower/);
  t.throws(() => tower.windowIndex(Int32Array.from([1, 2, 2])), /window attention belongs to Qwen2\.5-VL/);
  await t.rejects(tower.siglip(x, 2, 4), /missing embeddings\.patch_embedding\.weight/);
  tower.dispose();
});

t.test('a disposed tower refuses calls; a job running when it is disposed finishes safely', async (t) => {
  const tower = make(qwen25);
  const pending = tower.setTensor('blocks.0.norm1.weight', { data: new Float32Array(16), dtype: 'F32', rows: 1, cols: 16 } as never);
  tower.dispose();
  await t.resolves(pending);
  t.throws(() => tower.qwen(new Float32Array(16 * F), Int32Array.from([1, 4, 4])), /disposed/);
  t.throws(() => tower.windowIndex(Int32Array.from([1, 4, 4])), /disposed/);
  tower.dispose(); // twice is harmless
});
