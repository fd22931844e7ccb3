// --device for the commands that run native work, and how the choice is said: "device: cpu
// (auto; no GPU: …)" on stderr, a `device` event with --json.
import { type Device, describeDevice, resolveDevice } from '../native/devices.js';
import { type FlagSpec, type FlagValues, asFlagError, helpHint, stringFlag } from './args.js';
import type { Output } from './output.js';

export const DEVICE_FLAG: FlagSpec = {
  type: 'string',
  value: 'auto|cpu|cuda|cuda:N',
  description: 'where the work runs: auto takes a usable GPU, else the CPU (the log says which and why); a device that is not usable is an error with the reason',
  default: 'auto',
  group: 'Run',
};

export interface DeviceChoice {
  requested: string;
  device: Device;
  description: string;
}

/** --device resolved against the registry: a bad name is a usage error naming the flag. */
export function deviceFromFlag(command: string, values: FlagValues): DeviceChoice {
  const requested = stringFlag(command, values, 'device') ?? 'auto';
  try {
    const device = resolveDevice(requested);
    return { requested, device, description: describeDevice(requested, device) };
  } catch (error) {
    throw asFlagError(error, { device: '--device' }, helpHint(command));
  }
}

export function logDevice(out: Output, choice: DeviceChoice): void {
  out.event('device', { ...choice });
  if (!out.json) out.log(`device: ${choice.description}`);
}
