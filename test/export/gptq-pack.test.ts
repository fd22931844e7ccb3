import t from 'tap';
import { gptqShapes, packGptqLinear, type GptqFormat } from '../../lib/export/gptq-pack.js';
import { unpackGptqLinear } from '../../lib/export/gptq-unpack.js';
import { constantLayer, randomLayer, referenceDequant, type Bits, type QuantizedLayer } from '../helpers/gptq-vectors.js';

// Expected words are written as hex literals worked out by hand from docs/formats.md §2.3
// ("value k of each 32-value block at bit offset k·b, little-endian"); `| 0` turns a uint32
// literal into the signed bit pattern an Int32Array holds.
const i32 = (u: number): number => u | 0;

/** Codes of one row of a constant layer set to `values` (row-major [rows, cols]). */
function setRow(q: QuantizedLayer, row: number, values: readonly number[]): void {
  q.codes.set(values, row * q.cols);
}

/** qweight word `r` of output column `n` ([K·b/32, N] row-major). */
const qw = (qweight: Int32Array, rows: number, r: number, n: number): number => qweight[r * rows + n];

const shapeOf = (q: QuantizedLayer) => ({ rows: q.rows, cols: q.cols, groups: q.groups, bits: q.bits });

t.test('known answers: 2-, 4- and 8-bit put value j of a word at bits [j·b, j·b + b), first value lowest', async (t) => {
  t.test('4-bit: a column of codes 0..7 packs to 0x76543210; eight 15s to 0xFFFFFFFF, stored as -1', async (t) => {
    const q = constantLayer(8, 8, 4, 8);
    setRow(q, 0, [0, 1, 2, 3, 4, 5, 6, 7]);
    setRow(q, 1, [15, 15, 15, 15, 15, 15, 15, 15]);
    setRow(q, 2, [15, 0, 0, 0, 0, 0, 0, 1]);
    const p = packGptqLinear(q, 'gptq');
    t.same(gptqShapes(8, 8, 1, 4).qweight, [1, 8]);
    t.equal(qw(p.qweight, 8, 0, 0), 0x76543210);
    t.equal(qw(p.qweight, 8, 0, 1), -1);
    t.equal(qw(p.qweight, 8, 0, 2), 0x1000000f);
    for (let n = 3; n < 8; n++) t.equal(qw(p.qweight, 8, 0, n), 0, `all-zero column ${n}`);

    const u = unpackGptqLinear({ qweight: Int32Array.of(0x76543210, -1, 0x1000000f, 0, 0, 0, 0, 0), qzeros: Int32Array.of(0x77777777), scales: new Uint16Array(8).fill(0x3c00), gIdx: new Int32Array(8) }, shapeOf(q), 'gptq');
    t.same([...u.codes.subarray(0, 24)], [0, 1, 2, 3, 4, 5, 6, 7, 15, 15, 15, 15, 15, 15, 15, 15, 15, 0, 0, 0, 0, 0, 0, 1], 'the unpacker reads the same words back to the same codes');
    t.same([...u.zeros], [8, 8, 8, 8, 8, 8, 8, 8]);
  });

  t.test('4-bit words spanning several K rows: codes k of column n go to word ⌊k/8⌋, nibble k mod 8', async (t) => {
    const q = constantLayer(8, 16, 4, 8);
    setRow(q, 5, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0]);
    const p = packGptqLinear(q, 'gptq');
    t.equal(p.qweight.length, 2 * 8);
    t.equal(qw(p.qweight, 8, 0, 5), i32(0x87654321));
    t.equal(qw(p.qweight, 8, 1, 5), 0x0fedcba9);
  });

  t.test('2-bit: sixteen values per word', async (t) => {
    const q = constantLayer(16, 16, 2, 2);
    setRow(q, 0, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]); // 0b11_10_01_00 = 0xE4 per four values
    setRow(q, 1, [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]); // bits 0–1 and bit 30
    setRow(q, 2, new Array(16).fill(3));
    const p = packGptqLinear(q, 'gptq_v2');
    t.equal(qw(p.qweight, 16, 0, 0), i32(0xe4e4e4e4));
    t.equal(qw(p.qweight, 16, 0, 1), 0x40000003);
    t.equal(qw(p.qweight, 16, 0, 2), -1);
    const u = unpackGptqLinear(p, shapeOf(q), 'gptq_v2');
    t.same([...u.codes.subarray(0, 16)], [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
  });

  t.test('8-bit: [1, 2, 3, 4] packs to 0x04030201; [255, 0, 0, 128] to 0x800000FF', async (t) => {
    const q = constantLayer(4, 4, 8, 128);
    setRow(q, 0, [1, 2, 3, 4]);
    setRow(q, 1, [255, 0, 0, 128]);
    const p = packGptqLinear(q, 'gptq');
    t.equal(qw(p.qweight, 4, 0, 0), 0x04030201);
    t.equal(qw(p.qweight, 4, 0, 1), i32(0x800000ff));
    const u = unpackGptqLinear({ ...p, qweight: Int32Array.of(0x04030201, i32(0x800000ff), 0, 0) }, shapeOf(q), 'gptq');
    t.same([...u.codes.subarray(0, 8)], [1, 2, 3, 4, 255, 0, 0, 128]);
  });
});

t.test('known answers: 3-bit packs 32 values into three words with values 10 and 21 straddling word boundaries', async (t) => {
  // Rule (§2.3): word0 = values 0–9 at bits 3k, low 2 bits of value 10 at bits 30–31;
  // word1 = bit 2 of value 10 at bit 0, values 11–20 at bits 1–30, low bit of value 21 at bit 31;
  // word2 = bits 1–2 of value 21 at bits 0–1, values 22–31 at bits 2–31.
  const vectors: { name: string; values: number[]; words: [number, number, number] }[] = [
    {
      // k mod 8 = 0,1,…,7,0,1,…: value 10 = 2 (0b010) → bits 30–31 = 0b10, bit 0 of word1 = 0;
      // value 21 = 5 (0b101) → bit 31 of word1 = 1, bits 0–1 of word2 = 0b10.
      // word0 bits set: 3 (v1), 7 (v2), 9 10 (v3), 14 (v4), 15 17 (v5), 19 20 (v6), 21 22 23 (v7),
      //   27 (v9 = 1), 31 (v10 low bits 0b10) → nibbles 8 8 6 C A F 8 8 → 0x88FAC688
      name: 'k mod 8',
      values: Array.from({ length: 32 }, (_, k) => k % 8),
      words: [i32(0x88fac688), i32(0xc688fac6), i32(0xfac688fa)],
    },
    {
      // only value 10 = 7 and value 21 = 5: word0 = 0b11 << 30; word1 = 1 (bit 2 of 7) | 1 << 31
      // (low bit of 5); word2 = 0b10 (bits 1–2 of 5)
      name: 'value 10 = 7, value 21 = 5, others 0',
      values: Array.from({ length: 32 }, (_, k) => (k === 10 ? 7 : k === 21 ? 5 : 0)),
      words: [i32(0xc0000000), i32(0x80000001), 0x00000002],
    },
    {
      // value 10 = 4 (only its high bit, which lives in word1) and value 21 = 6 (high bits only, in word2)
      name: 'value 10 = 4, value 21 = 6, others 0',
      values: Array.from({ length: 32 }, (_, k) => (k === 10 ? 4 : k === 21 ? 6 : 0)),
      words: [0, 0x00000001, 0x00000003],
    },
    {
      // value 9 = 7 (bits 27–29), value 11 = 7 (bits 1–3 of word1), value 20 = 7 (bits 28–30),
      // value 22 = 7 (bits 2–4 of word2), value 31 = 7 (bits 29–31 of word2)
      name: 'neighbours of the straddling values',
      values: Array.from({ length: 32 }, (_, k) => ([9, 11, 20, 22, 31].includes(k) ? 7 : 0)),
      words: [0x38000000, 0x7000000e, i32(0xe000001c)],
    },
    { name: 'all 7', values: new Array(32).fill(7), words: [-1, -1, -1] },
  ];
  const q = constantLayer(32, 32, 3, 4);
  vectors.forEach((v, row) => setRow(q, row, v.values));
  for (const format of ['gptq', 'gptq_v2'] as const) {
    const p = packGptqLinear(q, format);
    t.same(gptqShapes(32, 32, 1, 3).qweight, [3, 32]);
    vectors.forEach((v, n) => {
      t.same([qw(p.qweight, 32, 0, n), qw(p.qweight, 32, 1, n), qw(p.qweight, 32, 2, n)], v.words, `${format} packs ${v.name}`);
    });
  }
  // the unpacker reads hand-written words, not the packer's output
  const qweight = new Int32Array(3 * 32);
  vectors.forEach((v, n) => v.words.forEach((w, r) => { qweight[r * 32 + n] = w; }));
  const u = unpackGptqLinear(
    { qweight, qzeros: new Int32Array(3), scales: new Uint16Array(32).fill(0x3c00), gIdx: new Int32Array(32) }, shapeOf(q), 'gptq_v2');
  vectors.forEach((v, n) => t.same([...u.codes.subarray(n * 32, n * 32 + 32)], v.values, `unpacks ${v.name}`));
});

t.test('known answers: v1 stores zero − 1 and v2 the zero itself in qzeros, packed across N (§2.4)', async (t) => {
  const cases: { bits: Bits; rows: number; zero: number; v1: number[]; v2: number[] }[] = [
    { bits: 4, rows: 8, zero: 8, v1: [0x77777777], v2: [i32(0x88888888)] },
    { bits: 2, rows: 16, zero: 2, v1: [0x55555555], v2: [i32(0xaaaaaaaa)] },
    { bits: 8, rows: 4, zero: 128, v1: [0x7f7f7f7f], v2: [i32(0x80808080)] },
    // 3-bit sym zero 4 = 0b100 repeated: bit i of the 96-bit stream is set iff i mod 3 = 2
    // → word0 bits 2,5,…,29; word1 bits 0,3,…,30; word2 bits 1,4,…,31. v1 stores 3 = 0b011: the complement.
    { bits: 3, rows: 32, zero: 4, v1: [i32(0xdb6db6db), i32(0xb6db6db6), 0x6db6db6d], v2: [0x24924924, 0x49249249, i32(0x92492492)] },
  ];
  for (const c of cases) {
    const q = constantLayer(c.rows, 32, c.bits, c.zero);
    t.same([...packGptqLinear(q, 'gptq').qzeros], c.v1, `${c.bits}-bit v1`);
    t.same([...packGptqLinear(q, 'gptq_v2').qzeros], c.v2, `${c.bits}-bit v2`);
    const back1 = unpackGptqLinear({ ...packGptqLinear(q, 'gptq'), qzeros: Int32Array.from(c.v1) }, shapeOf(q), 'gptq');
    const back2 = unpackGptqLinear({ ...packGptqLinear(q, 'gptq'), qzeros: Int32Array.from(c.v2) }, shapeOf(q), 'gptq_v2');
    t.ok(back1.zeros.every((z) => z === c.zero), `${c.bits}-bit v1 words unpack to zero ${c.zero}`);
    t.ok(back2.zeros.every((z) => z === c.zero), `${c.bits}-bit v2 words unpack to zero ${c.zero}`);
  }

  t.test('zeros of different groups land in different qzeros rows; zero n of a group in field n', async (t) => {
    const q = constantLayer(8, 16, 4, 1);
    q.groups = 2;
    q.zeros = Int32Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? 1 + (i >> 1) : 15 - (i >> 1))); // [n, g]
    q.scales = new Float32Array(16).fill(0.5);
    q.gIdx = Int32Array.from({ length: 16 }, (_, k) => k >> 3);
    const p = packGptqLinear(q, 'gptq_v2');
    t.same([...p.qzeros], [i32(0x87654321), i32(0x89abcdef)]);
    t.same([...packGptqLinear(q, 'gptq').qzeros], [0x76543210, i32(0x789abcde)]);
    t.same([...p.scales], new Array(16).fill(0x3800), 'scales [G, N] as f16 bits of 0.5');
  });

  t.test('v1 and v2 qzeros words differ by GPTQModel\'s conversion constants for 2, 4 and 8 bits', async (t) => {
    const constants: Record<2 | 4 | 8, number> = { 2: 0x55555555, 4: 0x11111111, 8: 0x01010101 };
    for (const bits of [2, 4, 8] as const) {
      const q = randomLayer({ rows: 64, cols: 64, groups: 4, bits, seed: bits });
      const v1 = packGptqLinear(q, 'gptq').qzeros;
      const v2 = packGptqLinear(q, 'gptq_v2').qzeros;
      t.ok(v1.every((w, i) => ((w + constants[bits]) | 0) === v2[i]), `${bits}-bit: v2 = v1 + 0x${constants[bits].toString(16)}`);
    }
  });
});

t.test('gptqShapes gives [K·b/32, N], [G, N·b/32], [G, N] and [K]', async (t) => {
  t.same(gptqShapes(4096, 11008, 86, 4), { qweight: [1376, 4096], qzeros: [86, 512], scales: [86, 4096], gIdx: [11008] });
  t.same(gptqShapes(64, 96, 3, 3), { qweight: [9, 64], qzeros: [3, 6], scales: [3, 64], gIdx: [96] });
  t.same(gptqShapes(32, 32, 1, 2), { qweight: [2, 32], qzeros: [1, 2], scales: [1, 32], gIdx: [32] });
  t.same(gptqShapes(4, 4, 1, 8), { qweight: [1, 4], qzeros: [1, 1], scales: [1, 4], gIdx: [4] });
  t.throws(() => gptqShapes(32, 40, 1, 3), /multiple of 32 for 3-bit GPTQ.*for cols \(K, input features\) but received 40/);
});

t.test('round trips: unpack(pack(layer)) returns the codes, zeros, scales and g_idx, for every width and format', async (t) => {
  const layouts: { name: string; rows: number; cols: number; groups: number; actOrder?: boolean; codes?: 'zero' | 'max' }[] = [
    { name: 'grouped', rows: 96, cols: 256, groups: 4 },
    { name: 'act-order g_idx', rows: 64, cols: 192, groups: 6, actOrder: true },
    { name: 'per channel (G = 1)', rows: 32, cols: 96, groups: 1 },
    { name: 'uneven last group (G = 3 over K = 64)', rows: 32, cols: 64, groups: 3, actOrder: true },
    { name: 'group size 1 (G = K)', rows: 32, cols: 32, groups: 32 },
    { name: 'all-zero codes', rows: 32, cols: 64, groups: 2, codes: 'zero' },
    { name: 'all-max codes', rows: 32, cols: 64, groups: 2, codes: 'max' },
  ];
  let seed = 100;
  for (const bits of [2, 3, 4, 8] as const) {
    const minimal = bits === 3 ? 32 : 32 / bits;
    const all = [...layouts, { name: `divisibility limit K = N = ${minimal}`, rows: minimal, cols: minimal, groups: 1 }];
    for (const layout of all) {
      for (const format of ['gptq', 'gptq_v2'] as const) {
        const q = randomLayer({ ...layout, bits, seed: seed++, minZero: format === 'gptq' ? 1 : 0 });
        const before = structuredClone(q);
        const p = packGptqLinear(q, format);
        const shapes = gptqShapes(q.rows, q.cols, q.groups, bits);
        t.same(
          [p.qweight.length, p.qzeros.length, p.scales.length, p.gIdx.length],
          [shapes.qweight[0] * shapes.qweight[1], shapes.qzeros[0] * shapes.qzeros[1], shapes.scales[0] * shapes.scales[1], shapes.gIdx[0]],
          `${bits}-bit ${format} ${layout.name}: tensor sizes match gptqShapes`,
        );
        const u = unpackGptqLinear(p, shapeOf(q), format);
        t.ok(u.codes.every((c, i) => c === q.codes[i]), `${bits}-bit ${format} ${layout.name}: codes`);
        t.ok(u.zeros.every((z, i) => z === q.zeros[i]), `${bits}-bit ${format} ${layout.name}: zeros`);
        t.ok(u.scales.every((s, i) => s === q.scales[i]), `${bits}-bit ${format} ${layout.name}: scales`);
        t.ok(u.gIdx.every((g, i) => g === q.gIdx[i]), `${bits}-bit ${format} ${layout.name}: g_idx`);
        const expected = referenceDequant(q);
        const got = u.dequantize();
        t.ok(got.every((x, i) => Object.is(x, expected[i]) || (x === 0 && expected[i] === 0)), `${bits}-bit ${format} ${layout.name}: dequantize = fround(scale·(code − zero))`);
        t.same(q, before, 'the input is not modified');
        t.not(p.gIdx, q.gIdx, 'g_idx is copied, not aliased');
      }
    }
  }
  t.test('act-order g_idx is actually non-monotonic in the test data', async (t) => {
    const q = randomLayer({ rows: 32, cols: 192, groups: 6, bits: 4, actOrder: true });
    t.ok(q.gIdx.some((g, k) => k > 0 && g < q.gIdx[k - 1]));
  });
  t.test('zeros given as Float32Array or Uint8Array pack the same as Int32Array', async (t) => {
    const q = randomLayer({ rows: 32, cols: 64, groups: 2, bits: 4 });
    const ref = packGptqLinear(q, 'gptq');
    t.same(packGptqLinear({ ...q, zeros: Float32Array.from(q.zeros) }, 'gptq'), ref);
    t.same(packGptqLinear({ ...q, zeros: Uint8Array.from(q.zeros) }, 'gptq'), ref);
  });
});

t.test('rejections name what is wrong', async (t) => {
  const base = (bits: Bits = 4) => randomLayer({ rows: 32, cols: 64, groups: 2, bits, seed: 7 });

  t.test('a code outside [0, 2^bits − 1], with its row and column', async (t) => {
    const q = base(4);
    q.codes[1 * 64 + 3] = 16;
    t.throws(() => packGptqLinear(q, 'gptq_v2'), { code: 'ERR_VLMQ_INVALID_ARG', message: /\[0, 15\] for 4-bit for codes\[67\] \(row 1, column 3\) but received 16/ });
    const q3 = base(3);
    q3.codes[5] = 8;
    t.throws(() => packGptqLinear(q3, 'gptq'), { message: /\[0, 7\] for 3-bit for codes\[5\] \(row 0, column 5\) but received 8/ });
    const q2 = base(2);
    q2.codes[0] = 4;
    t.throws(() => packGptqLinear(q2, 'gptq'), { message: /\[0, 3\] for 2-bit for codes\[0\]/ });
  });

  t.test('a zero point of 0 in v1, naming row and group and pointing to gptq_v2 (v2 packs it)', async (t) => {
    const q = base(2);
    q.zeros[3 * 2 + 1] = 0;
    t.throws(() => packGptqLinear(q, 'gptq'), {
      code: 'ERR_VLMQ_INVALID_ARG',
      message: /zero − 1.*"gptq_v2".*zeros\[7\] \(row 3, group 1\) but received 0/,
    });
    const u = unpackGptqLinear(packGptqLinear(q, 'gptq_v2'), shapeOf(q), 'gptq_v2');
    t.equal(u.zeros[7], 0, 'gptq_v2 keeps a zero of 0');
  });

  t.test('a zero point outside [0, maxq] or not an integer', async (t) => {
    const q = base(4);
    q.zeros[0] = 16;
    t.throws(() => packGptqLinear(q, 'gptq_v2'), { message: /\[0, 15\] for 4-bit for zeros\[0\] \(row 0, group 0\) but received 16/ });
    q.zeros[0] = -1;
    t.throws(() => packGptqLinear(q, 'gptq_v2'), { message: /zeros\[0\].*received -1/ });
    const f = { ...base(4), zeros: Float32Array.of(...base(4).zeros) };
    f.zeros[2] = 2.5;
    t.throws(() => packGptqLinear(f, 'gptq_v2'), { message: /zeros\[2\] \(row 1, group 0\) but received 2.5/ });
    f.zeros[2] = NaN;
    t.throws(() => packGptqLinear(f, 'gptq_v2'), { message: /zeros\[2\].*NaN/ });
  });

  t.test('a scale that is not exactly a finite float16 value, with its position', async (t) => {
    for (const bad of [Math.fround(0.1), NaN, Infinity, 65520, Math.fround(1 + 2 ** -11)]) {
      const q = base(4);
      q.scales[2 * 2 + 1] = bad;
      t.throws(() => packGptqLinear(q, 'gptq'), { message: /float16.*scales\[5\] \(row 2, group 1\)/ }, `scale ${bad}`);
    }
    const q = base(4);
    q.scales[0] = 65504;
    q.scales[1] = 2 ** -24;
    q.scales[2] = -0.5;
    t.doesNotThrow(() => packGptqLinear(q, 'gptq'), 'the largest, the smallest subnormal and a negative f16 value pass');
  });

  t.test('K or N that does not fill whole int32 words, for each width', async (t) => {
    const multiples: Record<Bits, number> = { 2: 16, 3: 32, 4: 8, 8: 4 };
    for (const bits of [2, 3, 4, 8] as const) {
      const m = multiples[bits];
      const goodCols = Math.max(m, 32);
      for (const badCols of [m / 2, m + (bits === 8 ? 2 : 4), 3 * m + 1]) {
        const q = { ...randomLayer({ rows: m, cols: 2 * m, groups: 1, bits }), cols: badCols };
        const re = new RegExp(`multiple of ${m} for ${bits}-bit GPTQ.* for cols \\(K, input features\\) but received ${badCols}`);
        t.throws(() => packGptqLinear(q, 'gptq'), { message: re }, `${bits}-bit K = ${badCols}`);
        t.throws(() => gptqShapes(m, badCols, 1, bits), { message: re });
        t.throws(() => unpackGptqLinear(packGptqLinear(randomLayer({ rows: m, cols: goodCols, groups: 1, bits }), 'gptq'), { rows: m, cols: badCols, groups: 1, bits }, 'gptq'),
          { message: new RegExp(`multiple of ${m} for ${bits}-bit.*shape.cols \\(K\\)`) });
      }
      for (const badRows of [m / 2, m + (bits === 8 ? 2 : 4)]) {
        const q = randomLayer({ rows: badRows, cols: goodCols, groups: 1, bits });
        t.throws(() => packGptqLinear(q, 'gptq'), { message: new RegExp(`multiple of ${m} for ${bits}-bit GPTQ.* for rows \\(N, output features\\) but received ${badRows}`) }, `${bits}-bit N = ${badRows}`);
        t.throws(() => unpackGptqLinear(packGptqLinear(randomLayer({ rows: m, cols: goodCols, groups: 1, bits }), 'gptq'), { rows: badRows, cols: goodCols, groups: 1, bits }, 'gptq'),
          { message: new RegExp(`multiple of ${m} for ${bits}-bit.*shape.rows \\(N\\)`) });
      }
    }
  });

  t.test('arrays whose lengths do not match the shape, naming the array and the expected shape', async (t) => {
    const q = base(4);
    t.throws(() => packGptqLinear({ ...q, codes: q.codes.subarray(1) }, 'gptq'), { message: /2048 elements \(\[rows 32, cols 64\]\) for codes but received Uint8Array of length 2047/ });
    t.throws(() => packGptqLinear({ ...q, scales: new Float32Array(32) }, 'gptq'), { message: /64 elements \(\[rows 32, groups 2\]\) for scales/ });
    t.throws(() => packGptqLinear({ ...q, zeros: new Int32Array(65).fill(1) }, 'gptq'), { message: /64 elements .* for zeros but received Int32Array of length 65/ });
    t.throws(() => packGptqLinear({ ...q, gIdx: new Int32Array(63) }, 'gptq'), { message: /64 elements \(\[cols 64\]\) for gIdx/ });
    t.throws(() => packGptqLinear({ ...q, codes: Array.from(q.codes) as unknown as Uint8Array }, 'gptq'), { message: /a Uint8Array for codes but received array/ });
    t.throws(() => packGptqLinear({ ...q, groups: 3 }, 'gptq'), { message: /96 elements \(\[rows 32, groups 3\]\) for scales/ });
    t.throws(() => packGptqLinear({ ...q, groups: 0 }, 'gptq'), { message: /groups/ });
    const badG = { ...q, gIdx: Int32Array.from(q.gIdx) };
    badG.gIdx[10] = 2;
    t.throws(() => packGptqLinear(badG, 'gptq'), { message: /group index in \[0, 1\] for gIdx\[10\] but received 2/ });
  });

  t.test('the unpacker names the tensor whose length is wrong', async (t) => {
    const q = base(3);
    const p = packGptqLinear(q, 'gptq');
    const s = shapeOf(q);
    t.throws(() => unpackGptqLinear({ ...p, qweight: p.qweight.subarray(32) }, s, 'gptq'), { message: /192 elements \(\[6, 32\]\) for qweight but received Int32Array of length 160/ });
    t.throws(() => unpackGptqLinear({ ...p, qzeros: new Int32Array(3) }, s, 'gptq'), { message: /6 elements \(\[2, 3\]\) for qzeros/ });
    t.throws(() => unpackGptqLinear({ ...p, scales: new Uint16Array(32) }, s, 'gptq'), { message: /64 elements \(\[2, 32\]\) for scales/ });
    t.throws(() => unpackGptqLinear({ ...p, gIdx: new Int32Array(65) }, s, 'gptq'), { message: /64 elements \(\[64\]\) for g_idx/ });
    t.throws(() => unpackGptqLinear({ ...p, scales: new Float32Array(64) as unknown as Uint16Array }, s, 'gptq'), { message: /Uint16Array of 64 elements \[2, 32\] for scales but received Float32Array/ });
    const badG = Int32Array.from(p.gIdx);
    badG[3] = -1;
    t.throws(() => unpackGptqLinear({ ...p, gIdx: badG }, s, 'gptq'), { message: /g_idx\[3\] but received -1/ });
    t.throws(() => unpackGptqLinear(p, { ...s, bits: 5 as Bits }, 'gptq'), { message: /one of 2, 3, 4, 8 for shape.bits but received 5/ });
  });

  t.test('a format other than "gptq" or "gptq_v2", and a width other than 2, 3, 4, 8', async (t) => {
    const q = base(4);
    for (const bad of ['gptq_v3', 'GPTQ', 'marlin', '', undefined]) {
      t.throws(() => packGptqLinear(q, bad as GptqFormat), { code: 'ERR_VLMQ_INVALID_ARG', message: /"gptq" \(v1\) or "gptq_v2" for format/ }, `pack ${String(bad)}`);
      t.throws(() => unpackGptqLinear(packGptqLinear(q, 'gptq'), shapeOf(q), bad as GptqFormat), { message: /"gptq" \(v1\) or "gptq_v2" for format/ }, `unpack ${String(bad)}`);
    }
    t.throws(() => packGptqLinear({ ...q, bits: 5 as Bits }, 'gptq'), { message: /one of 2, 3, 4, 8 for bits but received 5/ });
    t.throws(() => packGptqLinear({ ...q, bits: 6 as Bits }, 'gptq'), { message: /for bits but received 6/ });
  });
});
