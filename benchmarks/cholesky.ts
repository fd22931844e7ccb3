// The damped inverse-Cholesky factor at n = 1536 and 8960: our one-factorisation chain
// (potrf + trtri) against the reference's three LAPACK calls (potrf, potri, potrf) and against a
// single SPOTRF. Target: at most 0.6 of the reference chain's time.
import { type BenchOptions, type Row, baseline, gflops, secs } from './util.js';

export async function choleskyBenchmarks(o: BenchOptions): Promise<Row[]> {
  const rows: Row[] = [];
  for (const n of o.quick ? [64, 256] : [1536, 8960]) {
    const repeats = n > 4096 ? Math.min(o.repeats, 2) : o.repeats;
    const ours = await baseline('chain-vlmq', { n }, repeats);
    const reference = await baseline('chain-reference', { n }, repeats);
    const potrf = await baseline('spotrf', { n }, repeats);
    const ratio = ours.seconds / reference.seconds;
    rows.push({
      benchmark: 'cholesky', case: `n=${n}, U with H⁻¹ = UᵀU`,
      ours: `${secs(ours.seconds)} (${gflops(ours.flops, ours.seconds)} GFLOP/s)`,
      baseline: `${secs(reference.seconds)} potrf+potri+potrf`,
      ratio: `${ratio.toFixed(2)}× time`, target: '≤ 0.60×', met: o.quick ? undefined : ratio <= 0.6,
    });
    rows.push({
      benchmark: 'cholesky', case: `n=${n}, one SPOTRF for scale`,
      ours: secs(ours.seconds), baseline: `${secs(potrf.seconds)} (${gflops(potrf.flops, potrf.seconds)} GFLOP/s)`,
      ratio: `${(ours.seconds / potrf.seconds).toFixed(2)}× time`, target: '-',
    });
  }
  return rows;
}
