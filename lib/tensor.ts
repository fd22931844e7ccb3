// Tensors as plain data: a dtype name (the safetensors vocabulary), a shape, and a TypedArray
// view over the elements in row-major order. Half-precision values travel as their raw 16-bit
// patterns (Uint16Array), so a bf16 checkpoint tensor reaches native code without conversion.
import { invalidParameterError } from './errors.js';

/** Every dtype of the safetensors format (docs/formats.md §1.3), in its enum order. */
export const DTYPES = [
  'BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F8_E4M3FNUZ',
  'F8_E5M2FNUZ', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64',
] as const;
export type DType = (typeof DTYPES)[number];

/** Bits per element of each dtype. */
export const DTYPE_BITS: Readonly<Record<DType, number>> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32,
  C64: 64, F64: 64, I64: 64, U64: 64,
};

export type TypedArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

type TypedArrayConstructor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray; BYTES_PER_ELEMENT: number };

/** The TypedArray class that views each dtype's bytes (sub-byte and fp8 types as raw bytes). */
export const DTYPE_ARRAY: Readonly<Record<DType, TypedArrayConstructor>> = {
  BOOL: Uint8Array, F4: Uint8Array, F6_E2M3: Uint8Array, F6_E3M2: Uint8Array, U8: Uint8Array,
  I8: Int8Array, F8_E5M2: Uint8Array, F8_E4M3: Uint8Array, F8_E8M0: Uint8Array,
  F8_E4M3FNUZ: Uint8Array, F8_E5M2FNUZ: Uint8Array, I16: Int16Array, U16: Uint16Array,
  F16: Uint16Array, BF16: Uint16Array, I32: Int32Array, U32: Uint32Array, F32: Float32Array,
  C64: Float32Array, F64: Float64Array, I64: BigInt64Array, U64: BigUint64Array,
};

export function isDType(name: unknown): name is DType {
  return typeof name === 'string' && (DTYPES as readonly string[]).includes(name);
}

export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TypedArray;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Bytes of a tensor of this dtype and shape; sub-byte dtypes must fill whole bytes. */
export function byteSize(dtype: DType, shape: readonly number[]): number {
  const bits = numel(shape) * DTYPE_BITS[dtype];
  if (bits % 8 !== 0) throw new RangeError(`${dtype} tensor of shape [${shape.join(', ')}] does not fill whole bytes`);
  return bits / 8;
}

/**
 * A view of `bytes` as the dtype's TypedArray. Zero-copy when the bytes are suitably aligned,
 * otherwise one aligned copy (files from other writers may hold unaligned tensors).
 */
export function viewAs(dtype: DType, bytes: Uint8Array): TypedArray {
  const Ctor = DTYPE_ARRAY[dtype];
  const size = Ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) throw new RangeError(`${bytes.byteLength} bytes do not hold whole ${dtype} elements`);
  const source = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return new Ctor(source.buffer, source.byteOffset, source.byteLength / size);
}

// --- half precision -----------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bf16 bits → number (exact). */
export function bf16ToF32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

/** number → bf16 bits, rounding the f32 value half to even; NaN stays NaN. */
export function f32ToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f16 bits → number (exact). */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** number → f16 bits, rounding the f32 value half to even (overflow gives ±Infinity). */
export function f32ToF16(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal f16 (or zero): shift the full significand and round half to even
    if (e < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = significand & ((1 << shift) - 1);
    let result = significand >>> shift;
    if (rest > half || (rest === half && (result & 1))) result += 1;
    return sign | result;
  }
  let result = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (result & 1))) result += 1; // may carry into the exponent: correct
  return sign | result;
}

/** Decode any floating tensor (F32, F16, BF16, F64) into a fresh Float32Array. */
export function toFloat32(tensor: Tensor): Float32Array {
  const { dtype, data } = checkFloatTensor(tensor, 'tensor');
  if (dtype === 'F32' || dtype === 'F64') return Float32Array.from(data as Float32Array | Float64Array);
  const decode = dtype === 'F16' ? f16ToF32 : bf16ToF32;
  const src = data as Uint16Array;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = decode(src[i]);
  return out;
}

/** Rows `rows` of a floating [N, width] tensor (an embedding table), decoded into one [rows.length, width] Float32Array. */
export function gatherRows(tensor: Tensor, rows: ArrayLike<number>, width: number): Float32Array {
  const { dtype, data } = checkFloatTensor(tensor, 'tensor');
  const out = new Float32Array(rows.length * width);
  const decode = dtype === 'F16' ? f16ToF32 : dtype === 'BF16' ? bf16ToF32 : null;
  const count = data.length / width;
  for (let r = 0; r < rows.length; r++) {
    if (!Number.isInteger(rows[r]) || rows[r] < 0 || rows[r] >= count) throw invalidParameterError(`rows[${r}]`, `a row index in [0, ${count})`, rows[r]);
    const from = rows[r] * width;
    if (decode) for (let c = 0; c < width; c++) out[r * width + c] = decode((data as Uint16Array)[from + c]);
    else out.set((data as Float32Array | Float64Array).subarray(from, from + width), r * width);
  }
  return out;
}

const FLOAT_ARRAYS: Readonly<Partial<Record<DType, TypedArrayConstructor>>> = { F32: Float32Array, F64: Float64Array, F16: Uint16Array, BF16: Uint16Array };

/**
 * A floating tensor whose data is the dtype's TypedArray with exactly as many elements as its
 * shape holds: a short array would otherwise decode into a short result without a word.
 */
function checkFloatTensor(tensor: Tensor, name: string): Tensor {
  if (tensor === null || typeof tensor !== 'object' || !Array.isArray(tensor.shape)) throw invalidParameterError(name, 'a Tensor ({ dtype, shape, data })', tensor);
  const { dtype, shape, data } = tensor;
  const Array_ = FLOAT_ARRAYS[dtype];
  if (Array_ === undefined) throw invalidParameterError(`${name}.dtype`, 'a floating dtype (F32, F16, BF16 or F64)', dtype);
  if (!(data instanceof Array_)) throw invalidParameterError(`${name}.data`, `a ${Array_.name} for dtype ${dtype}`, data);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw invalidParameterError(`${name}.shape`, 'an array of non-negative integers', shape);
  const expected = numel(shape);
  if (data.length !== expected) throw invalidParameterError(`${name}.data`, `${expected} elements (${dtype}, shape [${shape.join(', ')}])`, data);
  return tensor;
}

/**
 * Where a floating tensor holds NaN or ±Infinity: how many and the flat index of the first, or
 * null when every value is finite (any other dtype is never reported). Read from the bits: an
 * all-ones exponent field.
 */
export function findNonFinite(tensor: Tensor): { count: number; first: number } | null {
  const { dtype, data } = tensor;
  let bits: Uint16Array | Uint32Array;
  let mask: number;
  if (dtype === 'BF16' || dtype === 'F16') [bits, mask] = [data as Uint16Array, dtype === 'BF16' ? 0x7f80 : 0x7c00];
  else if (dtype === 'F32') [bits, mask] = [new Uint32Array(data.buffer, data.byteOffset, data.length), 0x7f800000];
  else if (dtype === 'F64') return findNonFiniteNumbers(data as Float64Array);
  else return null;
  let count = 0;
  let first = -1;
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i] & mask) >>> 0 !== mask) continue;
    if (count++ === 0) first = i;
  }
  return count === 0 ? null : { count, first };
}

function findNonFiniteNumbers(values: Float64Array): { count: number; first: number } | null {
  let count = 0;
  let first = -1;
  for (let i = 0; i < values.length; i++) {
    if (Number.isFinite(values[i])) continue;
    if (count++ === 0) first = i;
  }
  return count === 0 ? null : { count, first };
}

/** A flat row-major index as coordinates of `shape`: 5 in [2, 3] → [1, 2]. */
export function unravelIndex(index: number, shape: readonly number[]): number[] {
  const coordinates = new Array<number>(shape.length);
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    coordinates[axis] = shape[axis] > 0 ? index % shape[axis] : 0;
    index = shape[axis] > 0 ? Math.floor(index / shape[axis]) : index;
  }
  return coordinates;
}
