// What the loaded binary is and can do (the facts behind `vlmq doctor`).
import { invalidParameterError } from '../errors.js';
import type { NativeInfo } from './binding.js';
import { enqueue } from './jobs.js';
import { loadBinding } from './loader.js';

export interface VlmqNativeInfo extends NativeInfo {
  /** The .node file that was loaded. */
  path: string;
}

export function nativeInfo(): VlmqNativeInfo {
  const { binding, path } = loadBinding();
  return { ...binding.info(), path };
}

/**
 * Threads for the CPU backend's kernels and OpenBLAS. Applied between native jobs (OpenBLAS may
 * not be reconfigured while it runs), so it resolves once the jobs queued before it are done.
 */
export async function setThreads(threads: number): Promise<void> {
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024) throw invalidParameterError('threads', 'an integer in [1, 1024]', threads);
  const { binding } = loadBinding();
  await enqueue(async () => binding.setThreads(threads));
}
