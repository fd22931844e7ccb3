// The two activation streams of a calibrated run (full precision F and quantized U): one f32
// array [T_i, hidden] per sample. Samples stay in memory up to a byte budget; the rest live in a
// file, read and written in place, so a run over more activations than RAM still completes.
import { open, rm, type FileHandle } from 'node:fs/promises';
import { writeError } from '../io/files.js';

export class SampleStore {
  #memory = new Map<number, Float32Array>();
  #offsets: number[] = [];
  #file: FileHandle | null = null;

  private constructor(readonly name: string, readonly tokens: readonly number[], readonly hidden: number, private readonly spillPath: string) {}

  /**
   * `tokens[i]` rows of `hidden` floats for sample i. Samples are kept in memory in order until
   * `memoryBytes` is used up; the others go to `spillPath`, created only if needed.
   */
  static async create(name: string, tokens: readonly number[], hidden: number, memoryBytes: number, spillPath: string): Promise<SampleStore> {
    const store = new SampleStore(name, tokens, hidden, spillPath);
    let used = 0, offset = 0;
    for (const [i, t] of tokens.entries()) {
      const bytes = t * hidden * 4;
      if (used + bytes <= memoryBytes) {
        store.#memory.set(i, new Float32Array(t * hidden));
        used += bytes;
        store.#offsets.push(-1);
      } else {
        store.#offsets.push(offset);
        offset += bytes;
      }
    }
    if (offset > 0) {
      store.#file = await open(spillPath, 'w+').catch((error: unknown) => {
        throw writeError(spillPath, error);
      });
    }
    return store;
  }

  /** Samples that live in the spill file. */
  get spilled(): number {
    return this.#offsets.filter((o) => o >= 0).length;
  }

  async get(i: number): Promise<Float32Array> {
    const inMemory = this.#memory.get(i);
    if (inMemory) return inMemory;
    const data = new Float32Array(this.tokens[i] * this.hidden);
    await this.#file!.read(new Uint8Array(data.buffer), 0, data.byteLength, this.#offsets[i]);
    return data;
  }

  async set(i: number, data: Float32Array): Promise<void> {
    if (data.length !== this.tokens[i] * this.hidden) throw new RangeError(`${this.name}: sample ${i} needs ${this.tokens[i] * this.hidden} floats, got ${data.length}`);
    const inMemory = this.#memory.get(i);
    if (inMemory) {
      inMemory.set(data);
      return;
    }
    await this.#file!.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 0, data.byteLength, this.#offsets[i]).catch((error: unknown) => {
      throw writeError(this.spillPath, error);
    });
  }

  async dispose(): Promise<void> {
    this.#memory.clear();
    if (this.#file) {
      await this.#file.close();
      this.#file = null;
      await rm(this.spillPath, { force: true });
    }
  }
}
