/**
 * Independent naive reference ("oracle") of the three vision towers as Hugging Face transformers
 * computes them, in float64:
 * - Qwen2-VL: Qwen2VisionTransformerPretrainedModel (modeling_qwen2_vl.py): PatchEmbed (Conv3d,
 *   kernel = stride, no bias), rot_pos_emb + VisionRotaryEmbedding(head_dim / 2, θ = 10000),
 *   Qwen2VLVisionBlock (LayerNorm eps 1e-6, fused qkv, bidirectional attention per frame
 *   (cu_seqlens), MLP fc1 → hidden_act → fc2), PatchMerger (ln_q, groups of merge² rows,
 *   mlp.0 → nn.GELU → mlp.2).
 * - Qwen2.5-VL: Qwen2_5_VisionTransformerPretrainedModel (modular_qwen2_5_vl.py): RMSNorm,
 *   gated SiLU MLP with biases, get_window_index (written below the way transformers writes it:
 *   pad with −100, cut into windows, drop the padding), blocks outside fullatt_block_indexes
 *   attend within windows, then argsort(window_index) restores the order after the merger.
 * - LLaVA-OneVision: SiglipVisionEmbeddings (Conv2d, kernel = stride, with bias, plus the
 *   position embedding), SiglipEncoderLayer (LayerNorm, q/k/v/out_proj, MLP fc1 → hidden_act →
 *   fc2), hidden_states[depth] (no post_layernorm), LlavaOnevisionMultiModalProjector
 *   (linear_1 → projector_hidden_act → linear_2).
 *
 * Deliberately imports NOTHING from lib/ and shares no code with native/: tests use it to check
 * the native towers. Clarity over speed: plain loops over Float64Arrays, float64 throughout
 * (transformers' fp32 rotary tables and softmax included), so comparisons need tolerances.
 *
 * Weights are looked up by their names relative to the tower as the checkpoint spells them
 * (`blocks.0.attn.qkv.weight`, `encoder.layers.0.self_attn.q_proj.bias`,
 * `multi_modal_projector.linear_1.weight`, ...), each a flat row-major Float64Array.
 */

export type Activation = 'gelu' | 'gelu_pytorch_tanh' | 'quick_gelu' | 'silu';

export type Weights = (name: string) => Float64Array;

export interface QwenVisionSpec {
  kind: 'qwen2_vl' | 'qwen2_5_vl';
  width: number;
  heads: number;
  depth: number;
  channels: number;
  patch: number;
  temporalPatch: number;
  merge: number;
  outHidden: number;
  /** Qwen2-VL: config hidden_act (quick_gelu); Qwen2.5-VL: always silu (gated). */
  hiddenAct: Activation;
  /** Qwen2.5-VL only. */
  windowSize?: number;
  fullattBlockIndexes?: number[];
}

export interface SiglipSpec {
  width: number;
  heads: number;
  /** Encoder layers applied (the feature layer). */
  layers: number;
  channels: number;
  patch: number;
  layerNormEps: number;
  hiddenAct: Activation;
  projectorAct: Activation;
  outHidden: number;
}

// ---------------------------------------------------------------------------
// Scalar functions
// ---------------------------------------------------------------------------

/** erf(x) to about 1e-14: its Maclaurin series below |x| = 3, the continued fraction of erfc above. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = x, sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const next = term / (2 * n + 1);
      sum += next;
      if (Math.abs(next) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
  let fraction = ax;
  for (let k = 80; k >= 1; k--) fraction = ax + k / 2 / fraction;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / fraction;
  return Math.sign(x) * (1 - erfc);
}

export function activate(act: Activation, x: number): number {
  switch (act) {
    case 'gelu': return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'gelu_pytorch_tanh': return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    case 'quick_gelu': return x / (1 + Math.exp(-1.702 * x));
    case 'silu': return x / (1 + Math.exp(-x));
  }
}

// ---------------------------------------------------------------------------
// Building blocks on [rows, cols] row-major matrices
// ---------------------------------------------------------------------------

/** torch.nn.Linear: y = x·Wᵀ + b with W [out, in]. */
function linear(x: Float64Array, rows: number, W: Float64Array, bias: Float64Array | null, out: number, inp: number): Float64Array {
  if (W.length !== out * inp) throw new Error(`linear: weight of ${W.length} values is not [${out}, ${inp}]`);
  const y = new Float64Array(rows * out);
  for (let i = 0; i < rows; i++) {
    for (let o = 0; o < out; o++) {
      let s = bias ? bias[o] : 0;
      for (let k = 0; k < inp; k++) s += x[i * inp + k] * W[o * inp + k];
      y[i * out + o] = s;
    }
  }
  return y;
}

function layerNorm(x: Float64Array, rows: number, cols: number, w: Float64Array, b: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    let mean = 0;
    for (let j = 0; j < cols; j++) mean += x[i * cols + j] / cols;
    let variance = 0;
    for (let j = 0; j < cols; j++) variance += (x[i * cols + j] - mean) ** 2 / cols;
    for (let j = 0; j < cols; j++) y[i * cols + j] = ((x[i * cols + j] - mean) / Math.sqrt(variance + eps)) * w[j] + b[j];
  }
  return y;
}

function rmsNorm(x: Float64Array, rows: number, cols: number, w: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    let ms = 0;
    for (let j = 0; j < cols; j++) ms += x[i * cols + j] ** 2 / cols;
    for (let j = 0; j < cols; j++) y[i * cols + j] = w[j] * (x[i * cols + j] / Math.sqrt(ms + eps));
  }
  return y;
}

function addInPlace(a: Float64Array, b: Float64Array): void {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
}

/**
 * Bidirectional softmax attention inside each segment [cu[s], cu[s+1]); q, k, v, out [T, heads·d]
 * (head h of token t at t·heads·d + h·d), scale 1/√d.
 */
function attention(q: Float64Array, k: Float64Array, v: Float64Array, T: number, heads: number, d: number, cu: number[]): Float64Array {
  const width = heads * d;
  const out = new Float64Array(T * width);
  for (let s = 0; s + 1 < cu.length; s++) {
    const start = cu[s], end = cu[s + 1];
    for (let h = 0; h < heads; h++) {
      for (let i = start; i < end; i++) {
        const scores: number[] = [];
        for (let j = start; j < end; j++) {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[i * width + h * d + c] * k[j * width + h * d + c];
          scores.push(dot / Math.sqrt(d));
        }
        const max = Math.max(...scores);
        const e = scores.map((x) => Math.exp(x - max));
        const total = e.reduce((a, b) => a + b, 0);
        for (let j = start; j < end; j++) {
          const p = e[j - start] / total;
          for (let c = 0; c < d; c++) out[i * width + h * d + c] += p * v[j * width + h * d + c];
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Qwen2-VL / Qwen2.5-VL
// ---------------------------------------------------------------------------

/** (row, col) of each patch as rot_pos_emb enumerates them: reshape (h/m, m, w/m, m), permute (0, 2, 1, 3), repeat t times. */
export function qwenPositionIds(grids: readonly (readonly number[])[], merge: number): [number, number][] {
  const ids: [number, number][] = [];
  for (const [t, h, w] of grids) {
    const frame: [number, number][] = [];
    for (let i0 = 0; i0 < h / merge; i0++) {
      for (let i2 = 0; i2 < w / merge; i2++) {
        for (let i1 = 0; i1 < merge; i1++) {
          for (let i3 = 0; i3 < merge; i3++) frame.push([i0 * merge + i1, i2 * merge + i3]);
        }
      }
    }
    for (let f = 0; f < t; f++) ids.push(...frame);
  }
  return ids;
}

/** cu_seqlens: every frame (h·w patches) of every image is its own attention segment. */
export function qwenFrameSegments(grids: readonly (readonly number[])[]): number[] {
  const cu = [0];
  for (const [t, h, w] of grids) for (let f = 0; f < t; f++) cu.push(cu[cu.length - 1] + h * w);
  return cu;
}

/**
 * get_window_index as transformers writes it: per image, the merged-token indices laid out
 * [t, h/m, w/m], padded with −100 at the bottom and right to whole windows of
 * vit_merger_window_size = window_size // merge // patch (a whole extra window when the side is
 * already a multiple), cut into windows in raster order, the padding dropped; cu_window_seqlens
 * counts patches (merged tokens × merge²); consecutive duplicates (empty windows) are removed.
 */
export function qwenWindowIndex(
  grids: readonly (readonly number[])[], merge: number, windowSize: number, patch: number,
): { windowIndex: number[]; cuWindowSeqlens: number[] } {
  const vw = Math.floor(Math.floor(windowSize / merge) / patch);
  const windowIndex: number[] = [];
  let cu = [0];
  let offset = 0;
  for (const [t, gh, gw] of grids) {
    const lh = gh / merge, lw = gw / merge;
    const padH = vw - (lh % vw), padW = vw - (lw % vw);
    const H = lh + padH, W = lw + padW;
    // index_padded[t][y][x]
    const padded: number[][][] = [];
    for (let f = 0; f < t; f++) {
      padded.push([]);
      for (let y = 0; y < H; y++) {
        padded[f].push([]);
        for (let x = 0; x < W; x++) padded[f][y].push(y < lh && x < lw ? f * lh * lw + y * lw + x : -100);
      }
    }
    for (let f = 0; f < t; f++) {
      for (let wy = 0; wy < H / vw; wy++) {
        for (let wx = 0; wx < W / vw; wx++) {
          let seqlen = 0;
          for (let y = 0; y < vw; y++) {
            for (let x = 0; x < vw; x++) {
              const value = padded[f][wy * vw + y][wx * vw + x];
              if (value !== -100) {
                windowIndex.push(value + offset);
                seqlen++;
              }
            }
          }
          cu.push(cu[cu.length - 1] + seqlen * merge * merge);
        }
      }
    }
    offset += t * lh * lw;
  }
  cu = cu.filter((value, i) => i === 0 || value !== cu[i - 1]);
  return { windowIndex, cuWindowSeqlens: cu };
}

/**
 * The Qwen vision tower: pixels [N, C·T·P·P] (rows in the processor's order) → merged tokens
 * [N / merge², outHidden].
 */
export function qwenVision(pixels: Float64Array, grids: readonly (readonly number[])[], spec: QwenVisionSpec, weight: Weights): Float64Array {
  const { width: D, heads, merge } = spec;
  const qwen25 = spec.kind === 'qwen2_5_vl';
  const headDim = D / heads;
  const unit = merge * merge;
  const F = spec.channels * spec.temporalPatch * spec.patch * spec.patch;
  const N = grids.reduce((n, [t, h, w]) => n + t * h * w, 0);
  if (pixels.length !== N * F) throw new Error(`qwenVision: ${pixels.length} pixel values are not [${N}, ${F}]`);

  // PatchEmbed: Conv3d over each row viewed as [C, T, P, P] with a kernel of the same size.
  let x = linear(pixels, N, weight('patch_embed.proj.weight'), null, D, F);

  // rot_pos_emb: freqs[p] = p · inv_freq with inv_freq[j] = 1 / 10000^(2j / (headDim/2)).
  const rotaryDim = headDim / 2;
  const invFreq: number[] = [];
  for (let j = 0; j < rotaryDim; j += 2) invFreq.push(1 / 10000 ** (j / rotaryDim));
  let ids = qwenPositionIds(grids, merge);
  const cuSeqlens = qwenFrameSegments(grids);

  let windowIndex: number[] = [];
  let cuWindowSeqlens: number[] = [];
  if (qwen25) {
    ({ windowIndex, cuWindowSeqlens } = qwenWindowIndex(grids, merge, spec.windowSize!, spec.patch));
    // hidden_states.reshape(N / unit, unit, D)[window_index] and the same for the rotary ids
    const reordered = new Float64Array(N * D);
    const reorderedIds: [number, number][] = [];
    windowIndex.forEach((group, g) => {
      for (let u = 0; u < unit; u++) {
        reordered.set(x.subarray((group * unit + u) * D, (group * unit + u + 1) * D), (g * unit + u) * D);
        reorderedIds.push(ids[group * unit + u]);
      }
    });
    x = reordered;
    ids = reorderedIds;
  }
  // emb = cat(rotary, rotary), rotary = [row · inv_freq, col · inv_freq]
  const cos = new Float64Array(N * headDim), sin = new Float64Array(N * headDim);
  for (let t = 0; t < N; t++) {
    const angles = [...invFreq.map((f) => ids[t][0] * f), ...invFreq.map((f) => ids[t][1] * f)];
    const emb = [...angles, ...angles];
    for (let c = 0; c < headDim; c++) {
      cos[t * headDim + c] = Math.cos(emb[c]);
      sin[t * headDim + c] = Math.sin(emb[c]);
    }
  }
  // apply_rotary_pos_emb_vision: x·cos + rotate_half(x)·sin, rotate_half(x) = [−x2, x1], per head
  const rotate = (m: Float64Array): Float64Array => {
    const y = new Float64Array(m.length);
    const half = headDim / 2;
    for (let t = 0; t < N; t++) {
      for (let h = 0; h < heads; h++) {
        const base = t * D + h * headDim;
        for (let c = 0; c < headDim; c++) {
          const rotated = c < half ? -m[base + c + half] : m[base + c - half];
          y[base + c] = m[base + c] * cos[t * headDim + c] + rotated * sin[t * headDim + c];
        }
      }
    }
    return y;
  };
  const norm = (name: string, m: Float64Array) => qwen25
    ? rmsNorm(m, N, D, weight(`${name}.weight`), 1e-6)
    : layerNorm(m, N, D, weight(`${name}.weight`), weight(`${name}.bias`), 1e-6);

  for (let j = 0; j < spec.depth; j++) {
    const b = `blocks.${j}`;
    const cu = qwen25 && !(spec.fullattBlockIndexes ?? []).includes(j) ? cuWindowSeqlens : cuSeqlens;
    // attention: qkv(x).reshape(N, 3, heads, headDim)
    const qkv = linear(norm(`${b}.norm1`, x), N, weight(`${b}.attn.qkv.weight`), weight(`${b}.attn.qkv.bias`), 3 * D, D);
    const q = new Float64Array(N * D), k = new Float64Array(N * D), v = new Float64Array(N * D);
    for (let t = 0; t < N; t++) {
      q.set(qkv.subarray(t * 3 * D, t * 3 * D + D), t * D);
      k.set(qkv.subarray(t * 3 * D + D, t * 3 * D + 2 * D), t * D);
      v.set(qkv.subarray(t * 3 * D + 2 * D, t * 3 * D + 3 * D), t * D);
    }
    const attn = attention(rotate(q), rotate(k), v, N, heads, headDim, cu);
    addInPlace(x, linear(attn, N, weight(`${b}.attn.proj.weight`), weight(`${b}.attn.proj.bias`), D, D));
    // MLP
    const h = norm(`${b}.norm2`, x);
    let mlp: Float64Array;
    if (qwen25) {
      const I = weight(`${b}.mlp.gate_proj.bias`).length;
      const gate = linear(h, N, weight(`${b}.mlp.gate_proj.weight`), weight(`${b}.mlp.gate_proj.bias`), I, D);
      const up = linear(h, N, weight(`${b}.mlp.up_proj.weight`), weight(`${b}.mlp.up_proj.bias`), I, D);
      const act = gate.map((g, i) => activate('silu', g) * up[i]);
      mlp = linear(act, N, weight(`${b}.mlp.down_proj.weight`), weight(`${b}.mlp.down_proj.bias`), D, I);
    } else {
      const I = weight(`${b}.mlp.fc1.bias`).length;
      const hidden = linear(h, N, weight(`${b}.mlp.fc1.weight`), weight(`${b}.mlp.fc1.bias`), I, D).map((z) => activate(spec.hiddenAct, z));
      mlp = linear(hidden, N, weight(`${b}.mlp.fc2.weight`), weight(`${b}.mlp.fc2.bias`), D, I);
    }
    addInPlace(x, mlp);
  }

  // PatchMerger: ln_q(x).view(−1, D·merge²) → mlp.0 → GELU → mlp.2
  const G = N / unit, M = D * unit;
  const lnq = norm('merger.ln_q', x); // [N, D] is [G, M] row-major
  const hidden = linear(lnq, G, weight('merger.mlp.0.weight'), weight('merger.mlp.0.bias'), M, M).map((z) => activate('gelu', z));
  const merged = linear(hidden, G, weight('merger.mlp.2.weight'), weight('merger.mlp.2.bias'), spec.outHidden, M);
  if (!qwen25) return merged;
  // reverse_indices = argsort(window_index); hidden_states[reverse_indices]
  const reverse = windowIndex.map((_, g) => g).sort((a, b) => windowIndex[a] - windowIndex[b]);
  const out = new Float64Array(G * spec.outHidden);
  reverse.forEach((source, i) => out.set(merged.subarray(source * spec.outHidden, (source + 1) * spec.outHidden), i * spec.outHidden));
  return out;
}

// ---------------------------------------------------------------------------
// LLaVA-OneVision: SigLIP and the projector
// ---------------------------------------------------------------------------

/**
 * views [n, C, S, S] → projected features [n · P², outHidden] with P = ⌊S / patch⌋: the output of
 * encoder layer `layers` (hidden_states[layers]), every position, through the projector.
 */
export function siglipVision(views: Float64Array, n: number, size: number, spec: SiglipSpec, weight: Weights): Float64Array {
  const { width: D, heads, patch, channels: C } = spec;
  const P = Math.floor(size / patch), L = P * P, T = n * L, headDim = D / heads;
  if (views.length !== n * C * size * size) throw new Error(`siglipVision: ${views.length} values are not [${n}, ${C}, ${size}, ${size}]`);

  // SiglipVisionEmbeddings: Conv2d(C, D, kernel = stride = patch) → flatten(2).transpose(1, 2), + position_embedding
  const convW = weight('embeddings.patch_embedding.weight'); // [D, C, patch, patch]
  const convB = weight('embeddings.patch_embedding.bias');
  const positions = weight('embeddings.position_embedding.weight'); // [L, D]
  if (positions.length !== L * D) throw new Error(`siglipVision: the position embedding does not have ${L} rows`);
  const x = new Float64Array(T * D);
  for (let v = 0; v < n; v++) {
    for (let py = 0; py < P; py++) {
      for (let px = 0; px < P; px++) {
        const token = v * L + py * P + px;
        for (let o = 0; o < D; o++) {
          let s = convB[o];
          for (let c = 0; c < C; c++) {
            for (let ky = 0; ky < patch; ky++) {
              for (let kx = 0; kx < patch; kx++) {
                const pixel = views[((v * C + c) * size + py * patch + ky) * size + px * patch + kx];
                s += convW[((o * C + c) * patch + ky) * patch + kx] * pixel;
              }
            }
          }
          x[token * D + o] = s + positions[(py * P + px) * D + o];
        }
      }
    }
  }

  const cu = Array.from({ length: n + 1 }, (_, v) => v * L); // each view is its own batch entry
  for (let i = 0; i < spec.layers; i++) {
    const l = `encoder.layers.${i}`;
    const h = layerNorm(x, T, D, weight(`${l}.layer_norm1.weight`), weight(`${l}.layer_norm1.bias`), spec.layerNormEps);
    const proj = (name: string, m: Float64Array) => linear(m, T, weight(`${l}.self_attn.${name}.weight`), weight(`${l}.self_attn.${name}.bias`), D, D);
    const attn = attention(proj('q_proj', h), proj('k_proj', h), proj('v_proj', h), T, heads, headDim, cu);
    addInPlace(x, proj('out_proj', attn));
    const h2 = layerNorm(x, T, D, weight(`${l}.layer_norm2.weight`), weight(`${l}.layer_norm2.bias`), spec.layerNormEps);
    const I = weight(`${l}.mlp.fc1.bias`).length;
    const hidden = linear(h2, T, weight(`${l}.mlp.fc1.weight`), weight(`${l}.mlp.fc1.bias`), I, D).map((z) => activate(spec.hiddenAct, z));
    addInPlace(x, linear(hidden, T, weight(`${l}.mlp.fc2.weight`), weight(`${l}.mlp.fc2.bias`), D, I));
  }

  // multi_modal_projector(hidden_states[layers]): post_layernorm is not applied to hidden states
  const H = spec.outHidden;
  const hidden = linear(x, T, weight('multi_modal_projector.linear_1.weight'), weight('multi_modal_projector.linear_1.bias'), H, D)
    .map((z) => activate(spec.projectorAct, z));
  return linear(hidden, T, weight('multi_modal_projector.linear_2.weight'), weight('multi_modal_projector.linear_2.bias'), H, H);
}
