// Native jobs run one at a time: each already uses every core (OpenBLAS and the backend's
// thread pool), and a queue keeps long jobs from occupying several libuv threads at once.
// This module also wires AbortSignal to the native cancel flag and re-homes native errors
// onto the caller's stack.
import { VlmqError, nativeError } from '../errors.js';
import type { NativeCancelToken } from './binding.js';
import { binding } from './loader.js';

let tail: Promise<unknown> = Promise.resolve();

/** Runs `job` after every job queued before it has settled. */
export function enqueue<T>(job: () => Promise<T>): Promise<T> {
  const run = tail.then(job, job);
  tail = run.catch(() => undefined);
  return run;
}

/**
 * Runs a native call with cancellation: a CancelToken is raised when `signal` aborts, and a
 * native "cancelled" rejection becomes `signal.reason`. Other native errors keep their message
 * and code but get the stack of the caller (captured in `callSite` before any await).
 */
export async function runNative<T>(
  callSite: Error,
  signal: AbortSignal | undefined,
  call: (cancel: NativeCancelToken | null) => Promise<T>,
): Promise<T> {
  signal?.throwIfAborted();
  const token = signal ? new (binding().CancelToken)() : null;
  const onAbort = () => token?.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await call(token);
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_VLMQ_CANCELLED' && signal?.aborted) throw signal.reason;
    if (error instanceof VlmqError) throw error;
    const wrapped = nativeError(error, callSite);
    const code = (error as { code?: string }).code;
    if (code) Object.defineProperty(wrapped, 'code', { value: code });
    throw wrapped;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
