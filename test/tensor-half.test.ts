import t from 'tap';
import { f32ToF16, f16ToF32, f32ToBf16, bf16ToF32, gatherRows, toFloat32 } from '../lib/tensor.js';

// Independent oracle: enumerate every finite f16 value and check the nearest-even choice.
const allF16 = Array.from({ length: 0x7c00 }, (_, bits) => f16ToF32(bits));

t.test('f16 decode matches the closed form on known patterns', async (t) => {
  t.equal(f16ToF32(0x3c00), 1);
  t.equal(f16ToF32(0xc000), -2);
  t.equal(f16ToF32(0x7bff), 65504);
  t.equal(f16ToF32(0x0001), 2 ** -24);
  t.equal(f16ToF32(0x0400), 2 ** -14);
  t.ok(Number.isNaN(f16ToF32(0x7e00)));
});

t.test('f32 → f16 rounds to the nearest f16, ties to even, for midpoints and random values', async (t) => {
  for (let bits = 0; bits < 0x7bff; bits += 7) {
    const lo = allF16[bits];
    const hi = allF16[bits + 1];
    const mid = Math.fround((lo + hi) / 2);
    if (mid !== (lo + hi) / 2) continue; // midpoint not representable in f32
    const expected = bits % 2 === 0 ? bits : bits + 1;
    t.equal(f32ToF16(mid), expected, `tie between ${bits} and ${bits + 1}`);
    t.equal(f32ToF16(-mid), expected | 0x8000);
  }
  let seed = 1;
  for (let i = 0; i < 2000; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const x = Math.fround((seed / 2 ** 31) * 70000 * (i % 2 ? 1 : 1e-4));
    const got = f32ToF16(x);
    if (x > 65520) { t.equal(got, 0x7c00); continue; }
    const back = f16ToF32(got);
    // no f16 value is strictly closer
    const err = Math.abs(back - x);
    t.ok(Math.abs(f16ToF32(got + 1) - x) >= err && (got === 0 || Math.abs(f16ToF32(got - 1) - x) >= err), `nearest for ${x}`);
  }
  t.equal(f32ToF16(65520), 0x7c00, 'halfway past the largest finite value overflows');
  t.equal(f32ToF16(2 ** -25), 0, 'half of the smallest subnormal ties to zero');
});

t.test('bf16 round trip and rounding', async (t) => {
  t.equal(bf16ToF32(0x3f80), 1);
  t.equal(f32ToBf16(1), 0x3f80);
  t.equal(f32ToBf16(bf16ToF32(0x3f81)), 0x3f81);
  // 1 + 2^-8 is exactly between 1 and 1 + 2^-7: ties to even (1)
  t.equal(f32ToBf16(1 + 2 ** -8), 0x3f80);
  t.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82);
  t.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
});

t.test('toFloat32 of a tensor whose data does not fill its shape is an error naming the dtype, shape and both lengths', async (t) => {
  for (const [dtype, data] of [['BF16', new Uint16Array(6)], ['F16', new Uint16Array(13)], ['F32', new Float32Array(0)], ['F64', new Float64Array(7)]] as const) {
    t.throws(() => toFloat32({ dtype, shape: [3, 4], data }), {
      name: 'VlmqError',
      code: 'ERR_VLMQ_INVALID_ARG',
      message: `Expected 12 elements (${dtype}, shape [3, 4]) for tensor.data but received ${data.constructor.name} of length ${data.length}`,
    }, dtype);
  }
  t.strictSame(Array.from(toFloat32({ dtype: 'BF16', shape: [2], data: new Uint16Array([0x3f80, 0xc000]) })), [1, -2], 'a full tensor decodes');
});

t.test('toFloat32 and gatherRows refuse a non-float dtype, data of the wrong array type, and rows outside the table', async (t) => {
  t.throws(() => toFloat32({ dtype: 'I32', shape: [2], data: new Int32Array(2) }), { code: 'ERR_VLMQ_INVALID_ARG', message: /for tensor\.dtype but received "I32"/ });
  t.throws(() => toFloat32({ dtype: 'BF16', shape: [2], data: new Float32Array(2) }), { code: 'ERR_VLMQ_INVALID_ARG', message: /Expected a Uint16Array for dtype BF16 for tensor\.data/ });
  t.throws(() => toFloat32({ dtype: 'F32', shape: [2], data: new Uint16Array(2) }), { message: /Expected a Float32Array for dtype F32/ });
  const table = { dtype: 'F16' as const, shape: [3, 2], data: new Uint16Array([0x3c00, 0, 0, 0x3c00, 0xc000, 0]) };
  t.strictSame(Array.from(gatherRows(table, [2, 0], 2)), [-2, 0, 1, 0], 'rows 2 and 0');
  t.throws(() => gatherRows(table, [3], 2), { code: 'ERR_VLMQ_INVALID_ARG', message: 'Expected a row index in [0, 3) for rows[0] but received 3' });
  t.throws(() => gatherRows({ ...table, data: new Uint16Array(4) }, [0], 2), { message: /Expected 6 elements \(F16, shape \[3, 2\]\) for tensor\.data/ });
});
