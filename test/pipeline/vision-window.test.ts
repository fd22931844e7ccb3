// Qwen2.5-VL's window order on its own (native windowIndex, transformers' get_window_index):
// a permutation of the merged tokens, windows contiguous rectangles of one frame, boundaries in
// patches without empty windows, the argsort restoring raster order, and equal to the oracle's
// padded computation.
import t from 'tap';
import { type ImageGrid, VisionTower, type VisionDims } from '../../lib/pipeline/vision-tower.js';
import * as ref from '../reference/vision.js';

function tower(window: number): VisionTower {
  const dims: VisionDims = {
    kind: 'qwen2_5_vl', width: 32, heads: 2, intermediate: 48, depth: 2, channels: 3, patch: 14, temporalPatch: 2, merge: 2,
    window, fullatt: [1], imageSize: 0, outHidden: 64, eps: 1e-6, mlpAct: 'silu', headAct: 'gelu',
  };
  return VisionTower.empty(dims);
}

// window 112 px = 4 merged tokens per side, 84 px = 3; grids in patches (merged = half).
const cases: { name: string; window: number; grids: ImageGrid[] }[] = [
  { name: 'partial windows at the right and bottom', window: 112, grids: [[1, 10, 14]] },
  { name: 'sides that are multiples of the window', window: 112, grids: [[1, 16, 8]] },
  { name: 'two frames and three images', window: 112, grids: [[2, 8, 8], [1, 18, 2], [1, 2, 2]] },
  { name: 'windows of 3 merged tokens', window: 84, grids: [[1, 14, 10], [3, 6, 4]] },
];

for (const c of cases) {
  const v = tower(c.window);
  const { index, windows } = v.windowIndex(c.grids);
  const side = c.window / 2 / 14;
  const tokens = c.grids.reduce((n, [a, h, w]) => n + (a * h * w) / 4, 0);

  t.test(`the window index is a permutation of the merged tokens: ${c.name}`, async (t) => {
    t.equal(index.length, tokens);
    t.same([...index].sort((a, b) => a - b), Array.from({ length: tokens }, (_, i) => i));
  });

  t.test(`windows are contiguous runs covering rectangles of at most ${side} × ${side} merged tokens of one frame: ${c.name}`, async (t) => {
    t.equal(windows[0], 0, 'the first window starts at 0');
    t.equal(windows[windows.length - 1], 4 * tokens, 'the last ends at the patch count');
    // merged token id → (frame key, row, column)
    const where: [string, number, number][] = [];
    c.grids.forEach(([frames, h, w], image) => {
      for (let f = 0; f < frames; f++) for (let y = 0; y < h / 2; y++) for (let x = 0; x < w / 2; x++) where.push([`${image}.${f}`, y, x]);
    });
    for (let k = 0; k + 1 < windows.length; k++) {
      t.ok(windows[k + 1] > windows[k] && (windows[k + 1] - windows[k]) % 4 === 0, `window ${k} is non-empty and whole merge groups`);
      const members = Array.from(index.subarray(windows[k] / 4, windows[k + 1] / 4), (g) => where[g]);
      const frames = new Set(members.map((m) => m[0]));
      const ys = members.map((m) => m[1]), xs = members.map((m) => m[2]);
      const [y0, y1, x0, x1] = [Math.min(...ys), Math.max(...ys), Math.min(...xs), Math.max(...xs)];
      t.ok(frames.size === 1 && y1 - y0 < side && x1 - x0 < side && members.length === (y1 - y0 + 1) * (x1 - x0 + 1),
        `window ${k} is one full rectangle of one frame`);
      t.ok(y0 % side === 0 && x0 % side === 0, `window ${k} starts on the window grid`);
    }
  });

  t.test(`the argsort of the window index restores raster order: ${c.name}`, async (t) => {
    const inverse = Array.from(index, (_, g) => g).sort((a, b) => index[a] - index[b]);
    t.same(inverse.map((g) => index[g]), Array.from({ length: tokens }, (_, i) => i));
  });

  t.test(`the native window index equals transformers' padded get_window_index: ${c.name}`, async (t) => {
    const want = ref.qwenWindowIndex(c.grids, 2, c.window, 14);
    t.same(Array.from(index), want.windowIndex, 'window_index');
    t.same(Array.from(windows), want.cuWindowSeqlens, 'cu_window_seqlens (duplicates removed)');
    v.dispose();
  });
}

t.test('a hand-worked window order: 6 × 10 patches = 3 × 5 merged tokens in windows of 2', async (t) => {
  const v = tower(56); // 56 / 2 / 14 = 2 merged tokens per side
  const { index, windows } = v.windowIndex([[1, 6, 10]]);
  // merged raster ids:  0  1  2  3  4 /  5  6  7  8  9 / 10 11 12 13 14
  t.same(Array.from(index), [0, 1, 5, 6, 2, 3, 7, 8, 4, 9, 10, 11, 12, 13, 14]);
  t.same(Array.from(windows), [0, 16, 32, 40, 48, 56, 60]);
  v.dispose();
});
