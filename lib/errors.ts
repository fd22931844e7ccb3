// One place builds every user-facing error message, so that they all read the same way:
// what was expected, for which option/tensor/file, and what was found instead.

/** Error raised by vlmq for bad input; `code` is stable for programmatic handling. */
export class VlmqError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VlmqError';
    this.code = code;
  }
}

/** Short, printable description of a received value for error messages. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) {
    // short lists of numbers (shapes) are clearer printed than counted
    return value.length <= 8 && value.every((v) => typeof v === 'number') ? `[${value.join(', ')}]` : `array of length ${value.length}`;
  }
  if (ArrayBuffer.isView(value)) return `${value.constructor.name} of length ${(value as { length?: number }).length ?? value.byteLength}`;
  if (typeof value === 'function') return 'a function';
  return `an object of type ${(value as object).constructor?.name ?? 'Object'}`;
}

/** "Expected integer in [2, 8] for bits but received 9" */
export function invalidParameterError(name: string, expected: string, actual: unknown): VlmqError {
  return new VlmqError('ERR_VLMQ_INVALID_ARG', `Expected ${expected} for ${name} but received ${describeValue(actual)}`);
}

/** "model.safetensors: tensor 'w': expected ..., found ..." — a problem inside a file. */
export function fileError(file: string, message: string, options?: { cause?: unknown }): VlmqError {
  return new VlmqError('ERR_VLMQ_BAD_FILE', `${file}: ${message}`, options);
}

/**
 * An error raised by native code, re-homed onto a stack captured when the call was made, so the
 * trace points at the caller instead of an empty async frame (the pattern of sharp's nativeError).
 */
export function nativeError(native: unknown, callSite: Error): VlmqError {
  const message = native instanceof Error ? native.message : String(native);
  const error = new VlmqError('ERR_VLMQ_NATIVE', message, { cause: native });
  error.stack = `VlmqError: ${message}\n${callSite.stack?.split('\n').slice(1).join('\n') ?? ''}`;
  return error;
}
