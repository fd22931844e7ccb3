// Shared pieces of the benchmark suite: timing, seeded data, the machine line, and a table that
// prints every figure next to its baseline measured in the same run.
import { cpus, totalmem } from 'node:os';
import { nativeInfo } from '../lib/index.js';
import type { BenchKernel } from '../lib/native/binding.js';
import { binding } from '../lib/native/loader.js';
import type { Device } from '../lib/native/devices.js';

export interface BenchOptions {
  /** Small sizes for a smoke run (tests use it); the figures then mean nothing. */
  quick: boolean;
  repeats: number;
  /** The backend every benchmark runs on ('auto' by default; --device). */
  device: Device;
}

export interface Row {
  benchmark: string;
  case: string;
  /** Our figure, e.g. seconds or GFLOP/s, already formatted. */
  ours: string;
  baseline: string;
  /** ours relative to the baseline, as the target states it (e.g. "0.93× of SSYRK"). */
  ratio: string;
  target: string;
  /** Whether the target is met (undefined when there is none). */
  met?: boolean;
}

/** Best wall time of `repeats` runs of an async body, in seconds. */
export async function bestOf(repeats: number, body: () => Promise<unknown>): Promise<number> {
  let best = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    await body();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

/** A native baseline kernel (OpenBLAS / LAPACK / our chain), best of `repeats`. */
export function baseline(kernel: BenchKernel, sizes: { m?: number; n: number; k?: number }, repeats: number) {
  return binding().benchmark(kernel, { m: sizes.m ?? 0, n: sizes.n, k: sizes.k ?? 0, repeats });
}

/** Seeded uniform values in [-0.5, 0.5): cheap enough for hundreds of millions of elements. */
export function randomFloats(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 4294967296 - 0.5;
  }
  return out;
}

export const gflops = (flops: number, seconds: number) => (flops / seconds / 1e9).toFixed(1);
export const secs = (s: number) => `${s.toFixed(3)} s`;

export function machine(): string {
  const info = nativeInfo();
  const cpu = cpus();
  return `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} threads, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ` +
    `${info.cpu.blas.split(' ').slice(0, 2).join(' ')} (${info.cpu.blasCore}, ${info.cpu.blasThreads} threads); ` +
    `vlmq ${info.version} (${info.buildSystem}); CUDA: ${info.cuda.usable ? info.cuda.deviceName : 'not used'}`;
}

export function printTable(rows: Row[]): void {
  const headers: (keyof Row)[] = ['benchmark', 'case', 'ours', 'baseline', 'ratio', 'target'];
  const cell = (r: Row, h: keyof Row) => (h === 'target' && r.met !== undefined ? `${r.target} ${r.met ? 'ok' : 'MISSED'}` : String(r[h]));
  const widths = headers.map((h) => Math.max(h.length, ...rows.map((r) => cell(r, h).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(headers));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(headers.map((h) => cell(r, h))));
}
