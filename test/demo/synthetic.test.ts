// Synthetic calibration data: seeded determinism, token counts and layout, positions and masks
// from positions.ts, and the statistics that matter for VLMQ — image tokens dominate the count but
// span few directions (checked with the eigenvalues of their covariance), text tokens are isotropic.
import t from 'tap';
import { join } from 'node:path';
import { CalibrationBundle, writeCalibrationBundle } from '../../lib/data/bundle.js';
import { mropePositions, sequentialPositions } from '../../lib/data/positions.js';
import { describeSamples, syntheticSamples, type SyntheticOptions } from '../../lib/demo/synthetic.js';

const BASE: SyntheticOptions = { samples: 3, hidden: 32, textTokens: 7, imageGrid: [4, 5], mrope: true, seed: 42 };

/** Rows j of a [T, H] matrix where keep(j). */
function rowsWhere(data: Float32Array, H: number, keep: (j: number) => boolean): Float64Array[] {
  const out: Float64Array[] = [];
  for (let j = 0; j < data.length / H; j++) if (keep(j)) out.push(Float64Array.from(data.subarray(j * H, (j + 1) * H)));
  return out;
}

/** Σ (x − mean)(x − mean)ᵀ over the rows, H×H row-major. */
function scatter(rows: Float64Array[], H: number, centre = true): Float64Array {
  const mean = new Float64Array(H);
  if (centre) for (const row of rows) for (let c = 0; c < H; c++) mean[c] += row[c] / rows.length;
  const s = new Float64Array(H * H);
  for (const row of rows) {
    for (let a = 0; a < H; a++) {
      const da = row[a] - mean[a];
      for (let b = 0; b < H; b++) s[a * H + b] += da * (row[b] - mean[b]);
    }
  }
  return s;
}

/** Eigenvalues of a symmetric matrix (cyclic Jacobi rotations), descending. */
function eigenvalues(input: Float64Array, n: number): number[] {
  const a = Float64Array.from(input);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    let diagonal = 0;
    for (let p = 0; p < n; p++) diagonal += a[p * n + p] ** 2;
    if (off <= 1e-22 * diagonal) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const tan = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const cos = 1 / Math.sqrt(tan * tan + 1);
        const sin = tan * cos;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = cos * akp - sin * akq;
          a[k * n + q] = sin * akp + cos * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = cos * apk - sin * aqk;
          a[q * n + k] = sin * apk + cos * aqk;
        }
      }
    }
  }
  return Array.from({ length: n }, (_, k) => a[k * n + k]).sort((x, y) => y - x);
}

/** Share of the trace in the top k eigen-directions. */
function topShare(values: number[], k: number): number {
  const total = values.reduce((s, v) => s + v, 0);
  return values.slice(0, k).reduce((s, v) => s + v, 0) / total;
}

t.test('eigenvalue helper: known spectrum', async (t) => {
  // [[2, 1], [1, 2]] has eigenvalues 3 and 1; diag(5, 0, 1) has 5, 1, 0.
  t.same(eigenvalues(Float64Array.of(2, 1, 1, 2), 2).map((v) => Math.round(v * 1e9) / 1e9), [3, 1]);
  t.same(eigenvalues(Float64Array.of(5, 0, 0, 0, 0, 0, 0, 0, 1), 3), [5, 1, 0]);
});

t.test('seeded: equal options give identical samples, another seed different ones', async (t) => {
  const a = syntheticSamples(BASE);
  const b = syntheticSamples(BASE);
  const c = syntheticSamples({ ...BASE, seed: 43 });
  t.equal(a.length, 3);
  for (let i = 0; i < a.length; i++) {
    t.same(a[i].embeddings.data, b[i].embeddings.data, `sample ${i} embeddings`);
    t.same(a[i].positions, b[i].positions);
    t.same(a[i].modality, b[i].modality);
    t.notSame(a[i].embeddings.data, c[i].embeddings.data, `sample ${i} differs with another seed`);
  }
  t.notSame(a[0].embeddings.data, a[1].embeddings.data, 'samples differ from each other');
  // Large seeds are distinct too (the high 32 bits count).
  t.notSame(syntheticSamples({ ...BASE, seed: 2 ** 40 }), syntheticSamples({ ...BASE, seed: 0 }));
});

t.test('layout: ⌈text/2⌉ text, h·w image tokens, ⌊text/2⌋ text; positions from positions.ts', async (t) => {
  for (const mrope of [true, false]) {
    const samples = syntheticSamples({ ...BASE, mrope });
    for (const sample of samples) {
      t.equal(sample.embeddings.dtype, 'F32');
      t.same(sample.embeddings.shape, [27, 32]);
      t.equal(sample.embeddings.data.length, 27 * 32);
      t.same(Array.from(sample.modality), [...Array(4).fill(0), ...Array(20).fill(1), ...Array(3).fill(0)]);
      const expected = mrope
        ? mropePositions([{ kind: 'text', length: 4 }, { kind: 'image', gridH: 4, gridW: 5 }, { kind: 'text', length: 3 }]).positions
        : sequentialPositions(27);
      t.same(sample.positions, expected);
    }
    t.not(samples[0].positions, samples[1].positions, 'each sample owns its arrays');
  }
  const described = describeSamples(syntheticSamples(BASE));
  t.same({ ...described, perSample: undefined }, { samples: 3, tokens: 81, text: 21, image: 60, video: 0, imageFraction: 60 / 81, perSample: undefined });
  t.same(described.perSample, Array(3).fill({ tokens: 27, text: 7, image: 20, video: 0 }));
  t.same(describeSamples([]), { samples: 0, tokens: 0, text: 0, image: 0, video: 0, imageFraction: 0, perSample: [] });
  // No text at all: the image alone.
  t.same(Array.from(syntheticSamples({ ...BASE, textTokens: 0, samples: 1 })[0].modality), Array(20).fill(1));
});

t.test('a realistic setting: image tokens dominate the count (448×448 image, a short prompt)', async (t) => {
  const samples = syntheticSamples({ samples: 4, hidden: 16, textTokens: 40, imageGrid: [16, 16], mrope: true, seed: 1 });
  const d = describeSamples(samples);
  t.equal(d.image, 4 * 256);
  t.equal(d.text, 4 * 40);
  t.ok(d.imageFraction > 0.85, `image fraction ${d.imageFraction}`);
});

t.test('image tokens of a sample span ≤ visionRank directions up to noise; text tokens span all', async (t) => {
  const H = 32;
  for (const visionRank of [1, 3, 4, 6]) {
    const samples = syntheticSamples({ samples: 2, hidden: H, textTokens: 200, imageGrid: [8, 8], mrope: true, seed: 7 + visionRank, visionRank });
    for (const [i, sample] of samples.entries()) {
      const data = sample.embeddings.data as Float32Array;
      const image = rowsWhere(data, H, (j) => sample.modality[j] === 1);
      const text = rowsWhere(data, H, (j) => sample.modality[j] === 0);
      const imageValues = eigenvalues(scatter(image, H), H);
      if (visionRank > 1) {
        // (With one base vector the centred tokens are pure noise: the tail check below covers it.)
        const imageShare = topShare(imageValues, visionRank + 1);
        t.ok(imageShare > 0.98, `visionRank ${visionRank}, sample ${i}: top ${visionRank + 1} directions hold ${imageShare.toFixed(4)} of the centred image tokens' trace`);
      }
      const rawShare = topShare(eigenvalues(scatter(image, H, false), H), visionRank);
      t.ok(rawShare > 0.98, `visionRank ${visionRank}, sample ${i}: top ${visionRank} directions hold ${rawShare.toFixed(4)} of the (uncentred) image tokens' energy`);
      // What is left is noise: per-coordinate variance ≈ visionNoise² = 0.0025.
      const tail = imageValues.slice(visionRank).reduce((s, v) => s + v, 0) / ((image.length - 1) * (H - visionRank));
      t.ok(tail > 0.0025 / 2 && tail < 0.0025 * 2, `residual variance ${tail.toExponential(2)} is noise-level`);
      const textShare = topShare(eigenvalues(scatter(text, H), H), visionRank + 1);
      t.ok(textShare < 0.5, `text tokens are isotropic: top ${visionRank + 1} of ${H} directions hold only ${textShare.toFixed(3)}`);
    }
  }
});

t.test('all samples\' image tokens together lie in the visionSubspace; text coordinates have variance scale²', async (t) => {
  const H = 24;
  const scale = 0.5;
  const samples = syntheticSamples({ samples: 8, hidden: H, textTokens: 60, imageGrid: [6, 6], mrope: false, seed: 3, visionRank: 3, visionSubspace: 6, visionNoise: 0.02, scale });
  const image: Float64Array[] = [];
  const text: Float64Array[] = [];
  for (const sample of samples) {
    const data = sample.embeddings.data as Float32Array;
    image.push(...rowsWhere(data, H, (j) => sample.modality[j] === 1));
    text.push(...rowsWhere(data, H, (j) => sample.modality[j] === 0));
  }
  const values = eigenvalues(scatter(image, H, false), H);
  t.ok(topShare(values, 6) > 0.99, `6 directions hold ${topShare(values, 6).toFixed(4)} of all image tokens' energy`);
  t.ok(topShare(values, 3) < 0.95, 'but different samples use different directions of it');
  let sum = 0;
  let squares = 0;
  for (const row of text) for (const v of row) { sum += v; squares += v * v; }
  const count = text.length * H;
  const variance = squares / count - (sum / count) ** 2;
  t.ok(Math.abs(variance / (scale * scale) - 1) < 0.1, `text variance ${variance.toFixed(4)} ≈ scale² = ${scale * scale}`);
  // Image tokens have the same expected squared norm as text tokens: H·scale².
  const meanSquare = image.reduce((s, row) => s + row.reduce((q, v) => q + v * v, 0), 0) / image.length;
  t.ok(meanSquare > 0.3 * H * scale * scale && meanSquare < 3 * H * scale * scale, `image token mean square norm ${meanSquare.toFixed(2)}`);
});

t.test('visionRank above h·w is capped; visionNoise 0 gives exact duplicates', async (t) => {
  const [sample] = syntheticSamples({ samples: 1, hidden: 8, textTokens: 2, imageGrid: [2, 2], mrope: true, seed: 5, visionRank: 9, visionNoise: 0 });
  const data = sample.embeddings.data as Float32Array;
  const image = rowsWhere(data, 8, (j) => sample.modality[j] === 1).map((row) => Array.from(row).join(','));
  t.equal(new Set(image).size, 4, 'four tokens, four regions');
  const [dup] = syntheticSamples({ samples: 1, hidden: 8, textTokens: 0, imageGrid: [5, 5], mrope: true, seed: 5, visionRank: 2, visionNoise: 0 });
  t.equal(new Set(rowsWhere(dup.embeddings.data as Float32Array, 8, () => true).map((row) => Array.from(row).join(','))).size, 2, '25 tokens, 2 distinct vectors');
});

t.test('synthetic samples round-trip through a bundle', async (t) => {
  const path = join(t.testdir(), 'synthetic.safetensors');
  const samples = syntheticSamples({ ...BASE, samples: 5 });
  await writeCalibrationBundle(path, samples, { metadata: { source: 'synthetic', seed: String(BASE.seed) } });
  await using bundle = await CalibrationBundle.open(path);
  t.equal(bundle.samples, 5);
  t.equal(bundle.positionRows, 3);
  t.equal(bundle.totalTokens, 5 * 27);
  const read = await bundle.read(4);
  t.same(read.embeddings, samples[4].embeddings.data);
  t.same(read.positions, samples[4].positions);
});

t.test('options are validated', async (t) => {
  const bad: [Partial<Record<keyof SyntheticOptions, unknown>>, RegExp][] = [
    [{ samples: 0 }, /for samples but received 0/],
    [{ hidden: 1.5 }, /for hidden/],
    [{ textTokens: -1 }, /for textTokens/],
    [{ imageGrid: [4] }, /for imageGrid/],
    [{ imageGrid: [0, 4] }, /for imageGrid/],
    [{ mrope: 'yes' }, /for mrope/],
    [{ seed: 0.5 }, /for seed/],
    [{ visionRank: 0 }, /for visionRank/],
    [{ visionNoise: -1 }, /for visionNoise/],
    [{ scale: 0 }, /for scale/],
    [{ visionSubspace: 33 }, /Expected an integer in \[1, 32\] \(at most hidden\) for visionSubspace/],
  ];
  for (const [change, message] of bad) t.throws(() => syntheticSamples({ ...BASE, ...change } as SyntheticOptions), { message }, JSON.stringify(change));
  t.throws(() => describeSamples([{ ...syntheticSamples(BASE)[0], modality: Uint8Array.of(4) }]), { message: /modality of sample 0/ });
});
