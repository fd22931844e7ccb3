// The two activation streams of a calibrated run (full precision F and quantized U): one tensor
// [tokens of the batch, hidden] per batch, in the backend's memory, from the layer forward through
// the statistics to the next layer. Batches stay there up to a byte budget; the others live in a
// file, and their bytes cross into JavaScript only to be written there and read back, so a run over
// more activations than memory still completes.
import { open, rm, type FileHandle } from 'node:fs/promises';
import { writeError } from '../io/files.js';
import { DeviceTensor } from '../quant/device-tensor.js';

export class BatchStream {
  readonly #resident: (DeviceTensor | null)[];
  #file: FileHandle | null = null;

  private constructor(
    readonly name: string,
    /** Tokens of each batch. */
    readonly tokens: readonly number[],
    readonly hidden: number,
    readonly device: string,
    /** Byte offset of each batch in the spill file, −1 for a resident batch. */
    private readonly offsets: readonly number[],
    private readonly spillPath: string,
  ) {
    this.#resident = tokens.map(() => null);
  }

  /**
   * Batches are resident in order until `memoryBytes` is used up; the others go to `spillPath`,
   * created only if needed. Every batch must then be given its rows with `initialize`.
   */
  static async create(name: string, tokens: readonly number[], hidden: number, memoryBytes: number, spillPath: string, device: string): Promise<BatchStream> {
    let used = 0, end = 0;
    const offsets = tokens.map((t) => {
      const bytes = t * hidden * 4;
      if (used + bytes <= memoryBytes) {
        used += bytes;
        return -1;
      }
      end += bytes;
      return end - bytes;
    });
    const stream = new BatchStream(name, tokens, hidden, device, offsets, spillPath);
    if (end > 0) {
      stream.#file = await open(spillPath, 'w+').catch((error: unknown) => {
        throw writeError(spillPath, error);
      });
    }
    return stream;
  }

  /** Whether batch b lives in the spill file. */
  spilled(b: number): boolean {
    return this.offsets[b] >= 0;
  }

  /** Batch b's first rows, from host memory (the calibration embeddings). */
  async initialize(b: number, rows: Float32Array): Promise<void> {
    this.#checkLength(b, rows.length);
    if (this.spilled(b)) return this.#write(b, rows);
    this.#resident[b]?.dispose();
    this.#resident[b] = await DeviceTensor.fromHost(rows, this.tokens[b], this.hidden, this.device);
  }

  /** Runs `work` on batch b's rows on the device (a spilled batch is uploaded for it, then freed). */
  async use<T>(b: number, work: (rows: DeviceTensor) => Promise<T>): Promise<T> {
    const resident = this.#resident[b];
    if (resident) return work(resident);
    const rows = await this.#read(b);
    try {
      return await work(rows);
    } finally {
      rows.dispose();
    }
  }

  /** Replaces batch b's rows by `rows`, which the stream now owns. */
  async replace(b: number, rows: DeviceTensor): Promise<void> {
    this.#checkLength(b, rows.rows * rows.cols);
    if (!this.spilled(b)) {
      this.#resident[b]?.dispose();
      this.#resident[b] = rows;
      return;
    }
    try {
      await this.#write(b, await rows.read());
    } finally {
      rows.dispose();
    }
  }

  async dispose(): Promise<void> {
    for (const [b, rows] of this.#resident.entries()) {
      rows?.dispose();
      this.#resident[b] = null;
    }
    if (this.#file) {
      await this.#file.close();
      this.#file = null;
      await rm(this.spillPath, { force: true });
    }
  }

  async #read(b: number): Promise<DeviceTensor> {
    const data = new Float32Array(this.tokens[b] * this.hidden);
    await this.#file!.read(new Uint8Array(data.buffer), 0, data.byteLength, this.offsets[b]);
    return DeviceTensor.fromHost(data, this.tokens[b], this.hidden, this.device);
  }

  async #write(b: number, data: Float32Array): Promise<void> {
    await this.#file!.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 0, data.byteLength, this.offsets[b]).catch((error: unknown) => {
      throw writeError(this.spillPath, error);
    });
  }

  #checkLength(b: number, length: number): void {
    const want = this.tokens[b] * this.hidden;
    if (length !== want) throw new RangeError(`${this.name}: batch ${b} needs ${want} floats, got ${length}`);
  }
}
