// Hessian statistics at the shapes of Qwen2-VL-2B (n = 1536 and 8960, 4096 tokens): our
// HessianAccumulator.add (plain, with per-token weights, and with the GPTAQ cross term) against
// OpenBLAS SSYRK (plus SGEMM for the cross term) on the same sizes. Target: ≥ 0.9 of the baseline.
import { HessianAccumulator } from '../lib/index.js';
import { type BenchOptions, type Row, baseline, bestOf, gflops, randomFloats } from './util.js';

export async function hessianBenchmarks(o: BenchOptions): Promise<Row[]> {
  const tokens = o.quick ? 256 : 4096;
  const rows: Row[] = [];
  for (const n of o.quick ? [64, 192] : [1536, 8960]) {
    const x = randomFloats(tokens * n, 1);
    const xFull = randomFloats(tokens * n, 2);
    const weights = randomFloats(tokens, 3).map((v) => v + 0.5);
    const syrk = await baseline('ssyrk', { n, k: tokens }, o.repeats);
    const cross = await baseline('sgemm-cross', { n, k: tokens }, o.repeats);
    const cases = [
      { name: 'plain', crossTerm: false, add: (a: HessianAccumulator) => a.add(x), base: syrk.seconds, flops: syrk.flops, what: 'SSYRK' },
      { name: 'token weights', crossTerm: false, add: (a: HessianAccumulator) => a.add(x, { tokenWeights: weights }), base: syrk.seconds, flops: syrk.flops, what: 'SSYRK' },
      { name: 'cross term', crossTerm: true, add: (a: HessianAccumulator) => a.add(x, { xFull }), base: syrk.seconds + cross.seconds, flops: syrk.flops + cross.flops, what: 'SSYRK+SGEMM' },
    ];
    for (const c of cases) {
      const acc = new HessianAccumulator(n, { crossTerm: c.crossTerm, device: o.device });
      const ours = await bestOf(o.repeats, () => c.add(acc));
      acc.dispose();
      const ratio = c.base / ours;
      rows.push({
        benchmark: 'hessian', case: `n=${n}, ${tokens} tokens, ${c.name}`,
        ours: `${gflops(c.flops, ours)} GFLOP/s`, baseline: `${gflops(c.flops, c.base)} GFLOP/s ${c.what}`,
        ratio: `${ratio.toFixed(2)}×`, target: '≥ 0.90×', met: o.quick ? undefined : ratio >= 0.9,
      });
    }
  }
  return rows;
}
