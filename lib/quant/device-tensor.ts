// A handle to an f32 matrix in a backend's memory: the activations the pipeline keeps between a
// layer's forward, its statistics and the next layer, without a round trip through JavaScript.
// dispose() frees the memory at once; the garbage collector frees forgotten ones (the native
// finalizer), but a run should not rely on it: tensors are large.
import { invalidParameterError } from '../errors.js';
import type { NativeTensor } from '../native/binding.js';
import { resolveDevice } from '../native/devices.js';
import { binding } from '../native/loader.js';
import { enqueue, runNative } from '../native/jobs.js';

export class DeviceTensor implements Disposable {
  /** @internal */
  constructor(readonly native: NativeTensor) {}

  /** A copy of `data` ([rows, cols], row-major) on `device` ('auto', 'cpu', 'cuda', 'cuda:N'). */
  static async fromHost(data: Float32Array, rows: number, cols: number, device = 'auto'): Promise<DeviceTensor> {
    const callSite = new Error();
    if (!(data instanceof Float32Array)) throw invalidParameterError('data', 'a Float32Array', data);
    for (const [name, value] of [['rows', rows], ['cols', cols]] as const) {
      if (!Number.isSafeInteger(value) || value < 1) throw invalidParameterError(name, 'a positive integer', value);
    }
    if (data.length !== rows * cols) throw invalidParameterError('data', `${rows} × ${cols} floats`, data);
    const backend = resolveDevice(device);
    const native = await enqueue(() => runNative(callSite, undefined, () => binding().tensorFromHost(data, rows, cols, backend)));
    return new DeviceTensor(native);
  }

  get rows(): number {
    return this.native.rows;
  }

  get cols(): number {
    return this.native.cols;
  }

  /** The registry name of the backend that holds it ('cpu', 'cuda:0', ...); null once disposed. */
  get device(): string | null {
    return this.native.device;
  }

  get disposed(): boolean {
    return this.native.disposed;
  }

  /** A host copy of the elements, row-major. */
  read(): Promise<Float32Array> {
    const callSite = new Error();
    if (this.disposed) throw invalidParameterError('DeviceTensor.read()', 'a live tensor', 'a disposed one');
    return enqueue(() => runNative(callSite, undefined, () => this.native.read()));
  }

  /**
   * Frees the memory now. Call it once the calls given this tensor have settled (a later call is
   * an error); a tensor that is only forgotten stays alive as long as a pending call needs it.
   */
  dispose(): void {
    this.native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
