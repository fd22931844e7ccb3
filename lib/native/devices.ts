// The registry of backends as the library shows it, and the one place a device name is checked
// and resolved: 'auto' (CUDA when usable, else the CPU), 'cpu', 'cuda' (= 'cuda:0'), 'cuda:N'.
import { VlmqError, invalidParameterError } from '../errors.js';
import type { NativeBackendInfo } from './binding.js';
import { binding } from './loader.js';

export type BackendInfo = NativeBackendInfo;

/** A device name as options take it. */
export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;

const DEVICE_NAME = /^(auto|cpu|cuda|cuda:\d{1,4})$/;

/** Every backend compiled into the loaded binary or known to it, the CPU first, with why one is not usable. */
export function backends(): BackendInfo[] {
  return binding().backends();
}

/**
 * The registry name of the backend `device` selects ('cpu', 'cuda:0', ...). An explicit device that
 * is not usable is an error with the reason (ERR_VLMQ_DEVICE_UNAVAILABLE), never a fallback.
 */
export function resolveDevice(device: unknown = 'auto'): Device {
  if (typeof device !== 'string' || !DEVICE_NAME.test(device)) throw invalidParameterError('device', "'auto', 'cpu', 'cuda' or 'cuda:N'", device);
  try {
    return binding().resolveDevice(device) as Device;
  } catch (error) {
    // The registry's message names the device and says why: "device 'cuda' is not usable: …".
    throw new VlmqError('ERR_VLMQ_DEVICE_UNAVAILABLE', (error as Error).message, { cause: error });
  }
}

/** What a run says about its device: the backend, and for 'auto' on the CPU why no GPU was taken. */
export function describeDevice(requested: string, device: Device): string {
  if (requested !== 'auto' || device !== 'cpu') return device;
  return `cpu (auto; no GPU: ${whyNotCuda()})`;
}

/** Why 'auto' did not choose a GPU, for the log: the first CUDA entry's reason, or null when one is usable. */
export function whyNotCuda(): string | null {
  const cuda = backends().filter((b) => b.kind === 'cuda');
  if (cuda.some((b) => b.usable)) return null;
  return cuda[0]?.reason || 'no CUDA backend in this binary';
}
