// Half-precision encoders/decoders for tests, written from the IEEE-754 definitions with plain
// float64 arithmetic. Deliberately independent of lib/tensor.ts (which is code under test): the
// oracle must see exactly the values that the F16/BF16 bit patterns handed to native code mean.

interface HalfFormat {
  /** explicit mantissa bits */
  mantissa: number;
  /** exponent field bits */
  exponent: number;
}

const F16: HalfFormat = { mantissa: 10, exponent: 5 };
const BF16: HalfFormat = { mantissa: 7, exponent: 8 };

function roundHalfToEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** floor(log2(a)) for a > 0, exact (Math.log2 can be off by one near powers of two). */
function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  return e;
}

function decode(bits: number, f: HalfFormat): number {
  const bias = (1 << (f.exponent - 1)) - 1;
  const sign = bits & (1 << (f.mantissa + f.exponent)) ? -1 : 1;
  const e = (bits >> f.mantissa) & ((1 << f.exponent) - 1);
  const m = bits & ((1 << f.mantissa) - 1);
  if (e === 0) return sign * m * 2 ** (1 - bias - f.mantissa);
  if (e === (1 << f.exponent) - 1) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 2 ** f.mantissa) * 2 ** (e - bias);
}

/** Nearest value of the format (ties to even), as its bit pattern. Finite inputs only; overflow gives ±Inf. */
function encode(x: number, f: HalfFormat): number {
  if (!Number.isFinite(x)) throw new RangeError(`test half encoder: finite values only, got ${x}`);
  const bias = (1 << (f.exponent - 1)) - 1;
  const signBit = x < 0 || Object.is(x, -0) ? 1 << (f.mantissa + f.exponent) : 0;
  const a = Math.abs(x);
  if (a === 0) return signBit;
  const minExp = 1 - bias; // exponent of the smallest normal; subnormals share its ulp
  const e = Math.max(exponentOf(a), minExp);
  const ulp = 2 ** (e - f.mantissa);
  let m = roundHalfToEven(a / ulp); // integer significand, implicit bit included for normals
  let exp = e;
  if (m === 2 ** (f.mantissa + 1)) {
    m /= 2;
    exp += 1;
  }
  const infField = (1 << f.exponent) - 1;
  if (m < 2 ** f.mantissa) return signBit | m; // subnormal (exp === minExp) or rounded to zero
  const field = exp + bias;
  if (field >= infField) return signBit | (infField << f.mantissa);
  return signBit | (field << f.mantissa) | (m - 2 ** f.mantissa);
}

export function decodeF16(bits: number): number {
  return decode(bits, F16);
}
export function encodeF16(x: number): number {
  return encode(x, F16);
}
export function decodeBf16(bits: number): number {
  return decode(bits, BF16);
}
export function encodeBf16(x: number): number {
  return encode(x, BF16);
}

/** Bit patterns of `values` in F16 or BF16, and the float64 values those patterns represent. */
export function toHalf(values: ArrayLike<number>, dtype: 'F16' | 'BF16'): { bits: Uint16Array; values: Float64Array } {
  const enc = dtype === 'F16' ? encodeF16 : encodeBf16;
  const dec = dtype === 'F16' ? decodeF16 : decodeBf16;
  const bits = new Uint16Array(values.length);
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    bits[i] = enc(values[i]);
    out[i] = dec(bits[i]);
  }
  return { bits, values: out };
}

/**
 * True when x is exactly a finite float16 value: |x| ≤ 65504 and x is an integer multiple of the
 * float16 ulp at its binade (2^-24 for subnormals), with at most 11 significant bits.
 */
export function isExactF16(x: number): boolean {
  if (!Number.isFinite(x)) return false;
  const a = Math.abs(x);
  if (a === 0) return true;
  if (a > 65504) return false;
  const e = Math.max(exponentOf(a), -14);
  return Number.isInteger(a / 2 ** (e - 10));
}
