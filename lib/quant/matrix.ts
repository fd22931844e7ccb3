// Turning user tensors into the native boundary's matrix type, with every check done here so
// that a wrong argument fails with a message naming it before anything crosses into C++.
import { invalidParameterError } from '../errors.js';
import { type Tensor, numel } from '../tensor.js';
import type { NativeMatrix } from '../native/binding.js';

/** A matrix argument: a Tensor (F32/F16/BF16; leading dimensions fold into rows), or a Float32Array of row-major data. */
export type MatrixInput = Tensor | Float32Array;

const FLOAT_DTYPES = ['F32', 'F16', 'BF16'] as const;

/**
 * The native view of `input`. `cols` is required for a bare Float32Array (its length must be a
 * multiple of it) and checked against the tensor's last dimension otherwise.
 */
export function toNativeMatrix(input: unknown, name: string, cols?: number): NativeMatrix {
  if (input instanceof Float32Array) {
    if (cols === undefined) throw invalidParameterError(name, 'a Tensor with a shape (a bare Float32Array has no column count)', input);
    if (cols <= 0 || input.length % cols !== 0) throw invalidParameterError(name, `a Float32Array whose length is a multiple of ${cols}`, input);
    return { data: input, dtype: 'F32', rows: input.length / cols, cols };
  }
  const tensor = input as Tensor;
  if (!tensor || typeof tensor !== 'object' || !Array.isArray(tensor.shape) || !ArrayBuffer.isView(tensor.data)) {
    throw invalidParameterError(name, 'a Tensor ({ dtype, shape, data }) or a Float32Array', input);
  }
  const dtype = tensor.dtype as (typeof FLOAT_DTYPES)[number];
  if (!FLOAT_DTYPES.includes(dtype)) throw invalidParameterError(`${name}.dtype`, 'F32, F16 or BF16', tensor.dtype);
  const shape = tensor.shape;
  if (shape.length < 1 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw invalidParameterError(`${name}.shape`, 'a non-empty array of non-negative integers', shape);
  }
  const expectedArray = dtype === 'F32' ? Float32Array : Uint16Array;
  if (!(tensor.data instanceof expectedArray)) {
    throw invalidParameterError(`${name}.data`, `a ${expectedArray.name} for dtype ${dtype}`, tensor.data);
  }
  if (tensor.data.length !== numel(shape)) {
    throw invalidParameterError(`${name}.data`, `${numel(shape)} elements for shape [${shape.join(', ')}]`, tensor.data);
  }
  const last = shape[shape.length - 1];
  if (cols !== undefined && last !== cols) throw invalidParameterError(`${name}.shape`, `a last dimension of ${cols}`, `[${shape.join(', ')}]`);
  return { data: tensor.data as Float32Array | Uint16Array, dtype, rows: numel(shape) / Math.max(last, 1), cols: last };
}

/** A square f32 matrix argument (a Hessian or a cross term) as a Float32Array of n·n elements. */
export function toSquareFloats(input: unknown, name: string, n: number): Float32Array {
  if (input instanceof Float32Array) {
    if (input.length !== n * n) throw invalidParameterError(name, `${n * n} elements ([${n}, ${n}])`, input);
    return input;
  }
  const tensor = input as Tensor;
  if (!tensor || typeof tensor !== 'object' || tensor.dtype !== 'F32' || !(tensor.data instanceof Float32Array)) {
    throw invalidParameterError(name, `an F32 Tensor or Float32Array of shape [${n}, ${n}]`, input);
  }
  if (tensor.shape.length !== 2 || tensor.shape[0] !== n || tensor.shape[1] !== n || tensor.data.length !== n * n) {
    throw invalidParameterError(`${name}.shape`, `[${n}, ${n}]`, `[${tensor.shape.join(', ')}]`);
  }
  return tensor.data;
}
