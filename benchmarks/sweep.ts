// GPTQ and GPTAQ sweeps given the inverse factor, for the [out, in] shapes of Qwen2-VL-2B's MLP
// ([1536, 8960] down_proj and [8960, 1536] gate/up), 4-bit, group 128, act-order. The floor is
// the GEMM work of the lazy updates, m·n² flops at the SGEMM rate measured in the same run.
// Target: at most 0.8 s for the [1536, 8960] GPTQ sweep.
import { HessianAccumulator, quantizeLinear } from '../lib/index.js';
import { type BenchOptions, type Row, baseline, randomFloats, secs } from './util.js';

export async function sweepBenchmarks(o: BenchOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const sgemm = await baseline('sgemm', o.quick ? { m: 64, n: 256, k: 256 } : { m: 1536, n: 2048, k: 2048 }, o.repeats);
  const rate = sgemm.flops / sgemm.seconds;
  const shapes = o.quick ? [[48, 256], [256, 48]] : [[1536, 8960], [8960, 1536]];
  for (const [m, n] of shapes) {
    const tokens = o.quick ? 512 : 4096;
    const acc = new HessianAccumulator(n, { crossTerm: true, device: o.device });
    const x = randomFloats(tokens * n, 11);
    await acc.add(x, { xFull: x.map((v, i) => v + 0.01 * Math.sin(i)) });
    const weight = { dtype: 'F32' as const, shape: [m, n], data: randomFloats(m * n, 12) };
    const floor = (m * n * n) / rate;
    for (const method of ['gptq', 'gptaq'] as const) {
      let best = { sweep: Infinity, correction: 0, factor: 0 };
      for (let r = 0; r < Math.min(o.repeats, 2); r++) {
        const { seconds } = await quantizeLinear(weight, acc, { method, bits: 4, groupSize: 128, actOrder: true });
        const sweep = seconds.sweep - seconds.correction;
        if (sweep < best.sweep) best = { sweep, correction: seconds.correction, factor: seconds.factor };
      }
      const target = method === 'gptq' && m === 1536 && n === 8960;
      rows.push({
        benchmark: 'sweep', case: `${method} [${m}, ${n}] g128 act-order`,
        ours: secs(best.sweep) + (method === 'gptaq' ? ` (+ P ${secs(best.correction)})` : ''),
        baseline: `${secs(floor)} GEMM floor`,
        ratio: `${(best.sweep / floor).toFixed(2)}× floor`,
        target: target ? '≤ 0.80 s' : '-', met: target && !o.quick ? best.sweep <= 0.8 : undefined,
      });
    }
    acc.dispose();
  }
  return rows;
}
