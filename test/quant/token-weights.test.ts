// VLMQ's token weights enter only through the statistics (docs/algorithm.md §4.1, §8.3): the
// quantizer must ignore a global rescale of them, reduce to the plain method with all-ones
// weights, and respond to per-sample reweighting by protecting the up-weighted tokens.
import t from 'tap';
import { HessianAccumulator, quantizeLinear, type QuantizeLinearOptions } from '../../lib/index.js';
import { layerProblem } from '../helpers/problems.js';

const p = layerProblem({ m: 32, n: 96, tokens: 768, seed: 21 });
const half = (p.tokens / 2) * p.n;
const sampleA = p.X.subarray(0, half), sampleB = p.X.subarray(half);
const weight = { dtype: 'F32' as const, shape: [p.m, p.n], data: p.W };
const options: QuantizeLinearOptions = { method: 'gptq', bits: 3, groupSize: 32, actOrder: true };

async function quantizeWith(weightA: number, weightB: number, opts = options) {
  const acc = new HessianAccumulator(p.n);
  await acc.add(sampleA, { tokenWeights: new Float32Array(p.tokens / 2).fill(weightA) });
  await acc.add(sampleB, { tokenWeights: new Float32Array(p.tokens / 2).fill(weightB) });
  const result = await quantizeLinear(weight, acc, opts);
  acc.dispose();
  return result;
}

/** Σ over the tokens of ‖(W − Q) x‖², in float64: the output error the statistics stand for. */
function outputError(Q: Float32Array, tokens: Float32Array): number {
  let total = 0;
  for (let t0 = 0; t0 < tokens.length; t0 += p.n) {
    for (let r = 0; r < p.m; r++) {
      let dot = 0;
      for (let j = 0; j < p.n; j++) dot += (p.W[r * p.n + j] - Q[r * p.n + j]) * tokens[t0 + j];
      total += dot * dot;
    }
  }
  return total;
}

t.test('all-ones token weights give exactly the unweighted result', async (t) => {
  const acc = new HessianAccumulator(p.n);
  await acc.add(sampleA);
  await acc.add(sampleB);
  const plain = await quantizeLinear(weight, acc, options);
  const ones = await quantizeWith(1, 1);
  t.same(ones.codes, plain.codes);
  t.same(ones.scales, plain.scales);
  t.equal(ones.loss, plain.loss);
});

t.test('scaling every token weight by one constant leaves the quantized layer unchanged', async (t) => {
  const base = await quantizeWith(1, 1);
  for (const c of [4, 0.25, 1024]) {  // powers of two: the statistics scale exactly
    const scaled = await quantizeWith(c, c);
    t.same(scaled.codes, base.codes, `weights × ${c}: same codes`);
    t.same(scaled.dequantized, base.dequantized, `weights × ${c}: same dequantized weights`);
    t.equal(scaled.damping.lambda, base.damping.lambda * c, 'λ scales with H');
  }
});

t.test('up-weighting one sample changes the result and lowers the output error on that sample', async (t) => {
  const even = await quantizeWith(1, 1);
  const favourA = await quantizeWith(16, 1);
  t.not(favourA.codes.join(), even.codes.join(), 'per-sample reweighting is not a global rescale');
  const errorEven = outputError(even.dequantized, sampleA);
  const errorFavoured = outputError(favourA.dequantized, sampleA);
  t.ok(errorFavoured < errorEven, `error on the up-weighted sample: ${errorFavoured.toFixed(4)} < ${errorEven.toFixed(4)}`);
  const otherEven = outputError(even.dequantized, sampleB);
  const otherFavoured = outputError(favourA.dequantized, sampleB);
  t.ok(otherFavoured > otherEven, 'and the other sample pays for it: the trade VLMQ makes');
});

t.test('token weights work the same through GPTAQ statistics', async (t) => {
  const make = async (c: number) => {
    const acc = new HessianAccumulator(p.n, { crossTerm: true });
    await acc.add(p.X, { xFull: p.Xfull, tokenWeights: new Float32Array(p.tokens).fill(c) });
    const r = await quantizeLinear(weight, acc, { ...options, method: 'gptaq' });
    acc.dispose();
    return r;
  };
  const one = await make(1), four = await make(4);
  t.same(four.codes, one.codes, 'a global rescale of the weights scales H and dXXT alike: P and the result are unchanged');
});
