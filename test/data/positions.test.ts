// Position ids: M-RoPE as get_rope_index computes them for images (docs/formats.md §3.5), checked
// against hand-computed answers, the worked example of §3.5, and a line-by-line port of the
// transformers algorithm running on token ids; and 1-D positions.
import t from 'tap';
import { modalityMask, mropePositions, partTokens, sequentialPositions, type PositionPart } from '../../lib/data/positions.js';

const rows = (positions: Int32Array) => {
  const T = positions.length / 3;
  return [0, 1, 2].map((c) => Array.from(positions.subarray(c * T, (c + 1) * T)));
};

t.test('text 3, image 2×3, text 2: hand-computed', async (t) => {
  const { positions, nextPosition } = mropePositions([
    { kind: 'text', length: 3 },
    { kind: 'image', gridH: 2, gridW: 3 },
    { kind: 'text', length: 2 },
  ]);
  t.equal(positions.length, 3 * 11);
  const [temporal, height, width] = rows(positions);
  // Image starts at s = 3; raster order: rows 0..1, columns 0..2; the next text starts at 3 + max(1, 2, 3) = 6.
  t.same(temporal, [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7]);
  t.same(height, [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7]);
  t.same(width, [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7]);
  t.equal(nextPosition, 8);
});

t.test('tall image: the next text continues after the largest height', async (t) => {
  const { positions, nextPosition } = mropePositions([{ kind: 'text', length: 1 }, { kind: 'image', gridH: 3, gridW: 1 }, { kind: 'text', length: 1 }]);
  const [temporal, height, width] = rows(positions);
  t.same(temporal, [0, 1, 1, 1, 4]);
  t.same(height, [0, 1, 2, 3, 4]);
  t.same(width, [0, 1, 1, 1, 4]);
  t.equal(nextPosition, 5);
});

t.test('gridT = 2: t outermost, then rows, then columns; next = s + max(t, h, w)', async (t) => {
  const { positions, nextPosition } = mropePositions([{ kind: 'text', length: 1 }, { kind: 'image', gridT: 2, gridH: 2, gridW: 2 }, { kind: 'text', length: 1 }]);
  const [temporal, height, width] = rows(positions);
  t.same(temporal, [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]);
  t.same(height, [0, 1, 1, 2, 2, 1, 1, 2, 2, 3]);
  t.same(width, [0, 1, 2, 1, 2, 1, 2, 1, 2, 3]);
  t.equal(nextPosition, 4);
});

t.test('worked example of §3.5: a 448×448 image is a 16×16 merged grid of 256 tokens', async (t) => {
  // "<|im_start|>user\n<|vision_start|>" as 5 text tokens, so the first <|image_pad|> is at p = 5.
  const p = 5;
  const parts: PositionPart[] = [{ kind: 'text', length: p }, { kind: 'image', gridH: 448 / 14 / 2, gridW: 448 / 14 / 2 }, { kind: 'text', length: 4 }];
  t.equal(partTokens(parts[1]), 256);
  const { positions, nextPosition } = mropePositions(parts);
  const T = p + 256 + 4;
  t.equal(positions.length, 3 * T);
  const [temporal, height, width] = rows(positions);
  const image = (row: number[]) => row.slice(p, p + 256);
  t.ok(image(temporal).every((v) => v === p), 'every image token has t = p');
  t.equal(Math.min(...image(height)), p);
  t.equal(Math.max(...image(height)), p + 15);
  t.equal(Math.min(...image(width)), p);
  t.equal(Math.max(...image(width)), p + 15);
  t.same([temporal[p], height[p], width[p]], [p, p, p], 'first image token');
  t.same([temporal[p + 16], height[p + 16], width[p + 16]], [p, p + 1, p], 'first token of the second row');
  t.same([temporal[p + 255], height[p + 255], width[p + 255]], [p, p + 15, p + 15], 'last image token');
  // <|vision_end|> and the rest of the text.
  for (let k = 0; k < 4; k++) t.same([temporal[p + 256 + k], height[p + 256 + k], width[p + 256 + k]], [p + 16 + k, p + 16 + k, p + 16 + k]);
  t.equal(nextPosition, p + 20);
});

/**
 * A port of transformers' Qwen2-VL `get_rope_index` for one unpadded row with images only:
 * input ids with <|image_pad|> runs and the unmerged `image_grid_thw` of each image.
 */
function referenceRopeIndex(ids: number[], grids: [number, number, number][]): number[][] {
  const IMAGE_PAD = 151655;
  const merge = 2;
  const out: number[][] = [[], [], []];
  const max = () => (out[0].length === 0 ? -1 : Math.max(...out[0], ...out[1], ...out[2]));
  let st = 0;
  for (const [gt, gh, gw] of grids) {
    const ed = ids.indexOf(IMAGE_PAD, st);
    const [t, h, w] = [gt, gh / merge, gw / merge];
    const textLength = ed - st;
    const stIdx = max() + 1;
    for (let k = 0; k < textLength; k++) for (const row of out) row.push(stIdx + k);
    for (let ti = 0; ti < t; ti++) {
      for (let hi = 0; hi < h; hi++) {
        for (let wi = 0; wi < w; wi++) {
          out[0].push(ti + textLength + stIdx);
          out[1].push(hi + textLength + stIdx);
          out[2].push(wi + textLength + stIdx);
        }
      }
    }
    st = ed + t * h * w;
  }
  if (st < ids.length) {
    const stIdx = max() + 1;
    for (let k = 0; k < ids.length - st; k++) for (const row of out) row.push(stIdx + k);
  }
  return out;
}

t.test('matches a port of transformers get_rope_index on random text/image layouts', async (t) => {
  let seed = 12345;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  for (let trial = 0; trial < 40; trial++) {
    const parts: PositionPart[] = [];
    const ids: number[] = [];
    const grids: [number, number, number][] = [];
    const images = 1 + rand(3);
    for (let k = 0; k <= images; k++) {
      // Text may be empty between images except before the first, as a template could produce.
      const length = k === 0 ? 1 + rand(6) : rand(6);
      parts.push({ kind: 'text', length });
      for (let j = 0; j < length; j++) ids.push(100 + rand(1000));
      if (k === images) break;
      const [h, w] = [1 + rand(7), 1 + rand(7)];
      parts.push({ kind: 'image', gridH: h, gridW: w });
      grids.push([1, 2 * h, 2 * w]);
      for (let j = 0; j < h * w; j++) ids.push(151655);
    }
    const expected = referenceRopeIndex(ids, grids);
    const { positions, nextPosition } = mropePositions(parts);
    t.same(rows(positions), expected, `trial ${trial}`);
    t.equal(nextPosition, Math.max(...expected.flat()) + 1);
  }
});

t.test('text only: M-RoPE reduces to 1-D positions in all three rows; start offsets everything', async (t) => {
  const { positions, nextPosition } = mropePositions([{ kind: 'text', length: 4 }], 10);
  t.same(rows(positions), [[10, 11, 12, 13], [10, 11, 12, 13], [10, 11, 12, 13]]);
  t.equal(nextPosition, 14);
  const empty = mropePositions([]);
  t.equal(empty.positions.length, 0);
  t.equal(empty.nextPosition, 0);
});

t.test('sequentialPositions', async (t) => {
  t.same(Array.from(sequentialPositions(4)), [0, 1, 2, 3]);
  t.same(Array.from(sequentialPositions(3, 7)), [7, 8, 9]);
  t.equal(sequentialPositions(0).length, 0);
  t.ok(sequentialPositions(2) instanceof Int32Array);
  t.throws(() => sequentialPositions(-1), { message: /for T but received -1/ });
  t.throws(() => sequentialPositions(1.5), { message: /for T but received 1\.5/ });
  t.throws(() => sequentialPositions(2, -1), { message: /for start but received -1/ });
  t.throws(() => sequentialPositions(2, 2 ** 31 - 1), { message: /int32/ });
});

t.test('modalityMask marks image tokens', async (t) => {
  t.same(Array.from(modalityMask([{ kind: 'text', length: 2 }, { kind: 'image', gridH: 1, gridW: 2 }, { kind: 'text', length: 1 }])), [0, 0, 1, 1, 0]);
});

t.test('invalid parts are rejected with the part named', async (t) => {
  t.throws(() => mropePositions([{ kind: 'text', length: -1 }]), { message: /for length of parts\[0\]/ });
  t.throws(() => mropePositions([{ kind: 'text', length: 1 }, { kind: 'image', gridH: 0, gridW: 2 }]), { message: /for gridH of parts\[1\]/ });
  t.throws(() => mropePositions([{ kind: 'image', gridT: 1.5, gridH: 1, gridW: 2 }]), { message: /for gridT of parts\[0\]/ });
  t.throws(() => mropePositions([{ kind: 'video', length: 1 } as unknown as PositionPart]), { message: /for kind of parts\[0\]/ });
  t.throws(() => mropePositions('x' as unknown as PositionPart[]), { message: /for parts/ });
  t.throws(() => mropePositions([{ kind: 'text', length: 1 }], -2), { message: /for start/ });
});
