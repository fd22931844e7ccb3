/**
 * Independent naive reference ("oracle") of ONE Qwen2 decoder layer as Hugging Face transformers
 * computes it for the language model of Qwen2-VL / Qwen2.5-VL / LLaVA-OneVision
 * (docs/formats.md §3.4, §3.5), plus VLMQ's attention-block loss and its importance factors
 * (docs/algorithm.md §4.3), with the backward pass written out by hand.
 *
 * Deliberately imports NOTHING from lib/: tests use it to check the native implementation.
 * Clarity over speed: plain Float64Array loops, float64 throughout.
 *
 * Conventions
 * - All matrices are row-major Float64Array; tokens are rows. A [T, heads·d] activation stores
 *   head h, channel c of token t at t·heads·d + h·d + c (HF's view(T, heads, d)).
 * - Weights follow torch.nn.Linear: W is [out, in] and Z = X·Wᵀ + b.
 * - GQA (HF repeat_kv): query head h reads kv head ⌊h / (heads / kvHeads)⌋.
 * - RoPE is HF's "rotate-half" form: y = x·cos + rotate_half(x)·sin with
 *   rotate_half(x) = [−x[d/2:], x[:d/2]], i.e. element i pairs with element i + d/2.
 * - positions: length T (1-D RoPE) or 3·T laid out [3, T] (M-RoPE: temporal, height, width,
 *   component-major). With an mropeSection and only T positions, the three components are taken
 *   equal (what HF does when it receives 2-D position ids). With mropeSection null, 3·T positions
 *   are an error (LLaVA-OneVision's Qwen2 uses 1-D RoPE).
 * - segments: cumulative sample boundaries [0, t1, t1+t2, …, T]; attention is causal within a
 *   segment and never crosses segments (equivalent to running each sample as its own batch row).
 *   Positions are NOT reset here: the caller supplies each token's position ids.
 * - HF computes RMSNorm, RoPE tables and softmax in fp32 and the rest in the model dtype; this
 *   oracle does everything in float64, so comparisons with native fp32/bf16 code need tolerances.
 */
import { mulberry32, randn } from './oracle.js';

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

export interface DecoderDims {
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  eps: number;
  ropeTheta: number;
  /** M-RoPE [s0, s1, s2] summing to headDim/2, or null for 1-D RoPE */
  mropeSection: number[] | null;
}

export interface DecoderWeights {
  /** input_layernorm.weight [H] */
  inputNorm: Float64Array;
  /** post_attention_layernorm.weight [H] */
  postNorm: Float64Array;
  /** q_proj [heads·d, H] and its bias [heads·d] */
  q: Float64Array;
  qBias: Float64Array;
  /** k_proj [kv·d, H] and its bias [kv·d] */
  k: Float64Array;
  kBias: Float64Array;
  /** v_proj [kv·d, H] and its bias [kv·d] */
  v: Float64Array;
  vBias: Float64Array;
  /** o_proj [H, heads·d], no bias */
  o: Float64Array;
  /** mlp.gate_proj [I, H], no bias */
  gate: Float64Array;
  /** mlp.up_proj [I, H], no bias */
  up: Float64Array;
  /** mlp.down_proj [H, I], no bias */
  down: Float64Array;
}

/** Additive perturbations of the projection OUTPUTS Z_p (q and k are perturbed BEFORE RoPE). */
export interface ZPerturbations {
  /** [T, heads·d] */
  q?: Float64Array;
  /** [T, kv·d] */
  k?: Float64Array;
  /** [T, kv·d] */
  v?: Float64Array;
  /** [T, H] */
  o?: Float64Array;
}

export interface DecoderStages {
  /** RMSNorm_in(x): input of q/k/v [T, H] */
  normed: Float64Array;
  /** Z_q = normed·Wqᵀ + bq, BEFORE RoPE [T, heads·d] */
  q: Float64Array;
  /** Z_k = normed·Wkᵀ + bk, BEFORE RoPE [T, kv·d] */
  k: Float64Array;
  /** Z_v = normed·Wvᵀ + bv [T, kv·d] */
  v: Float64Array;
  /** RoPE(Z_q) [T, heads·d] */
  qRope: Float64Array;
  /** RoPE(Z_k) [T, kv·d] */
  kRope: Float64Array;
  /** attention output, input of o_proj [T, heads·d] */
  attn: Float64Array;
  /** Z_o = attn·Woᵀ [T, H] */
  o: Float64Array;
  /** x + Z_o [T, H] (= B(x), the attention block) */
  h: Float64Array;
  /** RMSNorm_post(h): input of gate/up [T, H] */
  normed2: Float64Array;
  /** silu(gate)·up: input of down [T, I] */
  act: Float64Array;
  /** h + down(act) [T, H] */
  out: Float64Array;
}

export interface ImportanceFactors {
  /** g_q, g_k, g_v, g_o: one factor per token [T] */
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  o: Float64Array;
  /** ∂L/∂Z_p, [T, C_p] */
  grads: { q: Float64Array; k: Float64Array; v: Float64Array; o: Float64Array };
  /** L = Σ (B(U) − B(F))² */
  loss: number;
}

// ---------------------------------------------------------------------------
// Small building blocks
// ---------------------------------------------------------------------------

function checkDims(dims: DecoderDims): void {
  const { hidden, heads, kvHeads, headDim, intermediate } = dims;
  for (const [name, v] of Object.entries({ hidden, heads, kvHeads, headDim, intermediate })) {
    if (!Number.isInteger(v) || v <= 0) throw new Error(`decoder dims: ${name} must be a positive integer, got ${v}`);
  }
  if (heads % kvHeads !== 0) throw new Error(`decoder dims: heads ${heads} not a multiple of kvHeads ${kvHeads}`);
  if (headDim % 2 !== 0) throw new Error(`decoder dims: headDim ${headDim} must be even`);
  if (dims.mropeSection !== null) {
    const s = dims.mropeSection;
    if (s.length !== 3 || s.some((x) => !Number.isInteger(x) || x < 0)) {
      throw new Error(`decoder dims: mropeSection must be three non-negative integers, got [${s}]`);
    }
    if (s[0] + s[1] + s[2] !== headDim / 2) {
      throw new Error(`decoder dims: mropeSection [${s}] must sum to headDim/2 = ${headDim / 2}`);
    }
  }
}

function checkSegments(segments: Int32Array, T: number): void {
  if (segments.length < 2 || segments[0] !== 0 || segments[segments.length - 1] !== T) {
    throw new Error(`segments must run from 0 to T = ${T}, got [${Array.from(segments)}]`);
  }
  for (let i = 1; i < segments.length; i++) {
    if (segments[i] < segments[i - 1]) throw new Error(`segments must be non-decreasing, got [${Array.from(segments)}]`);
  }
}

/** Z = X·Wᵀ + b for X [T, inDim], W [outDim, inDim], b [outDim] or null. */
function linear(X: Float64Array, T: number, inDim: number, W: Float64Array, outDim: number, b: Float64Array | null): Float64Array {
  if (X.length !== T * inDim) throw new Error(`linear: input has ${X.length} values, expected ${T}×${inDim}`);
  if (W.length !== outDim * inDim) throw new Error(`linear: weight has ${W.length} values, expected ${outDim}×${inDim}`);
  if (b !== null && b.length !== outDim) throw new Error(`linear: bias has ${b.length} values, expected ${outDim}`);
  const Z = new Float64Array(T * outDim);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < outDim; o++) {
      let acc = b === null ? 0 : b[o];
      for (let i = 0; i < inDim; i++) acc += X[t * inDim + i] * W[o * inDim + i];
      Z[t * outDim + o] = acc;
    }
  }
  return Z;
}

/** HF Qwen2RMSNorm: x · rsqrt(mean(x²) + eps), then multiplied by the weight. Per row. */
function rmsNorm(X: Float64Array, T: number, H: number, weight: Float64Array, eps: number): Float64Array {
  const Y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += X[t * H + i] * X[t * H + i];
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) Y[t * H + i] = weight[i] * (X[t * H + i] * r);
  }
  return Y;
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

function addInto(A: Float64Array, B: Float64Array | undefined, what: string): void {
  if (B === undefined) return;
  if (B.length !== A.length) throw new Error(`perturbation of ${what} has ${B.length} values, expected ${A.length}`);
  for (let i = 0; i < A.length; i++) A[i] += B[i];
}

// ---------------------------------------------------------------------------
// RoPE / M-RoPE
// ---------------------------------------------------------------------------

/**
 * cos/sin tables [T, d] exactly as HF builds them:
 * inv_freq[j] = θ^(−2j/d) for j < d/2; freqs = pos ⊗ inv_freq; emb = cat(freqs, freqs).
 * M-RoPE: each of the 3 components gets its own emb; then the d slots are split into chunks
 * mrope_section·2 = [s0, s1, s2, s0, s1, s2] and chunk i takes component i % 3
 * (apply_multimodal_rotary_pos_emb). So slot d/2 + j always uses the same component as slot j.
 */
export function ropeCosSin(positions: Int32Array, T: number, dims: DecoderDims): { cos: Float64Array; sin: Float64Array } {
  checkDims(dims);
  const d = dims.headDim;
  const half = d / 2;
  const mrope = dims.mropeSection !== null;
  let components: number;
  if (positions.length === T) components = 1;
  else if (positions.length === 3 * T && mrope) components = 3;
  else {
    throw new Error(
      `positions has ${positions.length} values; expected T = ${T}` + (mrope ? ` or 3·T = ${3 * T} (M-RoPE)` : ' (1-D RoPE: mropeSection is null)'),
    );
  }
  // position of component c for token t; with only T positions all three components are equal
  const pos = (c: number, t: number): number => (components === 1 ? positions[t] : positions[c * T + t]);

  const invFreq = new Float64Array(half);
  for (let j = 0; j < half; j++) invFreq[j] = 1 / Math.pow(dims.ropeTheta, (2 * j) / d);

  // component used by each slot i in [0, d)
  const slotComponent = new Int32Array(d);
  if (mrope) {
    const chunks = [...dims.mropeSection!, ...dims.mropeSection!];
    let slot = 0;
    chunks.forEach((width, i) => {
      for (let k = 0; k < width; k++) slotComponent[slot++] = i % 3;
    });
    if (slot !== d) throw new Error('internal: M-RoPE chunks do not cover the head dimension');
  }

  const cos = new Float64Array(T * d);
  const sin = new Float64Array(T * d);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < d; i++) {
      const angle = pos(slotComponent[i], t) * invFreq[i % half];
      cos[t * d + i] = Math.cos(angle);
      sin[t * d + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * HF apply_rotary_pos_emb on a [T, nHeads·d] activation: y = x·cos + rotate_half(x)·sin, i.e.
 *   y[i]       = x[i]·cos[i]             − x[i + d/2]·sin[i]
 *   y[i + d/2] = x[i + d/2]·cos[i + d/2] + x[i]·sin[i + d/2]        (i < d/2)
 */
export function applyRope(X: Float64Array, T: number, nHeads: number, d: number, cos: Float64Array, sin: Float64Array): Float64Array {
  const half = d / 2;
  const Y = new Float64Array(X.length);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * d;
      for (let i = 0; i < half; i++) {
        const a = X[base + i], b = X[base + i + half];
        Y[base + i] = a * cos[t * d + i] - b * sin[t * d + i];
        Y[base + i + half] = b * cos[t * d + i + half] + a * sin[t * d + i + half];
      }
    }
  }
  return Y;
}

/**
 * The transpose of applyRope (used to pull gradients back through RoPE). Since slot i and slot
 * i + d/2 carry the same angle, this is the rotation by −angle, i.e. the inverse of applyRope:
 *   dx[i]       =  dy[i]·cos[i] + dy[i + d/2]·sin[i + d/2]
 *   dx[i + d/2] = −dy[i]·sin[i] + dy[i + d/2]·cos[i + d/2]
 */
export function applyRopeTranspose(dY: Float64Array, T: number, nHeads: number, d: number, cos: Float64Array, sin: Float64Array): Float64Array {
  const half = d / 2;
  const dX = new Float64Array(dY.length);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * d;
      for (let i = 0; i < half; i++) {
        const a = dY[base + i], b = dY[base + i + half];
        dX[base + i] = a * cos[t * d + i] + b * sin[t * d + i + half];
        dX[base + i + half] = -a * sin[t * d + i] + b * cos[t * d + i + half];
      }
    }
  }
  return dX;
}

// ---------------------------------------------------------------------------
// Attention block forward (with optional perturbations) and its backward
// ---------------------------------------------------------------------------

interface AttentionForward {
  normed: Float64Array;
  zq: Float64Array;
  zk: Float64Array;
  zv: Float64Array;
  qr: Float64Array;
  kr: Float64Array;
  /** softmax probabilities [heads, T, T]; entry (h, t, s) is 0 unless s ≤ t in the same segment */
  probs: Float64Array;
  attn: Float64Array;
  zo: Float64Array;
  /** B(x) = x + Z_o */
  out: Float64Array;
  cos: Float64Array;
  sin: Float64Array;
}

function attentionForward(
  x: Float64Array,
  T: number,
  w: DecoderWeights,
  dims: DecoderDims,
  positions: Int32Array,
  segments: Int32Array,
  pert: ZPerturbations = {},
): AttentionForward {
  checkDims(dims);
  checkSegments(segments, T);
  const { hidden: H, heads, kvHeads, headDim: d } = dims;
  if (x.length !== T * H) throw new Error(`input has ${x.length} values, expected T·H = ${T}×${H}`);
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(d);

  const normed = rmsNorm(x, T, H, w.inputNorm, dims.eps);
  const zq = linear(normed, T, H, w.q, heads * d, w.qBias);
  const zk = linear(normed, T, H, w.k, kvHeads * d, w.kBias);
  const zv = linear(normed, T, H, w.v, kvHeads * d, w.vBias);
  addInto(zq, pert.q, 'Z_q');
  addInto(zk, pert.k, 'Z_k');
  addInto(zv, pert.v, 'Z_v');

  const { cos, sin } = ropeCosSin(positions, T, dims);
  const qr = applyRope(zq, T, heads, d, cos, sin);
  const kr = applyRope(zk, T, kvHeads, d, cos, sin);

  const probs = new Float64Array(heads * T * T);
  const attn = new Float64Array(T * heads * d);
  for (let seg = 0; seg + 1 < segments.length; seg++) {
    const start = segments[seg], end = segments[seg + 1];
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      for (let t = start; t < end; t++) {
        // scores S[t, s] = q_t · k_s / √d for s = start … t (causal, within the segment)
        const row = (h * T + t) * T;
        let max = -Infinity;
        for (let s = start; s <= t; s++) {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += qr[(t * heads + h) * d + c] * kr[(s * kvHeads + g) * d + c];
          probs[row + s] = dot * scale;
          if (probs[row + s] > max) max = probs[row + s];
        }
        let sum = 0;
        for (let s = start; s <= t; s++) {
          probs[row + s] = Math.exp(probs[row + s] - max);
          sum += probs[row + s];
        }
        for (let s = start; s <= t; s++) probs[row + s] /= sum;
        // attn[t, h] = Σ_s P[t, s] v_s
        for (let c = 0; c < d; c++) {
          let acc = 0;
          for (let s = start; s <= t; s++) acc += probs[row + s] * zv[(s * kvHeads + g) * d + c];
          attn[(t * heads + h) * d + c] = acc;
        }
      }
    }
  }

  const zo = linear(attn, T, heads * d, w.o, H, null);
  addInto(zo, pert.o, 'Z_o');
  const out = new Float64Array(T * H);
  for (let i = 0; i < out.length; i++) out[i] = x[i] + zo[i];
  return { normed, zq, zk, zv, qr, kr, probs, attn, zo, out, cos, sin };
}

/**
 * Hand-written backward of the attention block from dZ_o = ∂L/∂Z_o to ∂L/∂Z_q, ∂L/∂Z_k, ∂L/∂Z_v.
 * Per segment and head, with P = softmax(S), S = Q Kᵀ/√d (causal, Q/K after RoPE), O = P V:
 *   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ = dS K/√d,  dK = dSᵀ Q/√d.
 * A kv head shared by several query heads accumulates their dK and dV. Finally RoPE is undone
 * (its transpose) to get the gradients of the pre-RoPE Z_q and Z_k.
 */
function attentionBackward(
  f: AttentionForward,
  dZo: Float64Array,
  T: number,
  w: DecoderWeights,
  dims: DecoderDims,
  segments: Int32Array,
): { q: Float64Array; k: Float64Array; v: Float64Array; o: Float64Array } {
  const { hidden: H, heads, kvHeads, headDim: d } = dims;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(d);
  const C = heads * d;

  // d attn = dZ_o · Wo  (Z_o = attn · Woᵀ, Wo is [H, heads·d])
  const dAttn = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < C; j++) {
      let acc = 0;
      for (let o = 0; o < H; o++) acc += dZo[t * H + o] * w.o[o * C + j];
      dAttn[t * C + j] = acc;
    }
  }

  const dQr = new Float64Array(T * heads * d);
  const dKr = new Float64Array(T * kvHeads * d);
  const dV = new Float64Array(T * kvHeads * d);
  const dP = new Float64Array(T);
  for (let seg = 0; seg + 1 < segments.length; seg++) {
    const start = segments[seg], end = segments[seg + 1];
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      for (let t = start; t < end; t++) {
        const row = (h * T + t) * T;
        const dO = (t * heads + h) * d;
        // dP[t, s] = dO_t · v_s ; dV_s += P[t, s] dO_t
        for (let s = start; s <= t; s++) {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += dAttn[dO + c] * f.zv[(s * kvHeads + g) * d + c];
          dP[s] = dot;
          for (let c = 0; c < d; c++) dV[(s * kvHeads + g) * d + c] += f.probs[row + s] * dAttn[dO + c];
        }
        // softmax backward: dS = P ⊙ (dP − Σ_s' P dP)
        let rowDot = 0;
        for (let s = start; s <= t; s++) rowDot += f.probs[row + s] * dP[s];
        for (let s = start; s <= t; s++) {
          const dS = f.probs[row + s] * (dP[s] - rowDot);
          // S = q_t · k_s / √d
          for (let c = 0; c < d; c++) {
            dQr[(t * heads + h) * d + c] += dS * f.kr[(s * kvHeads + g) * d + c] * scale;
            dKr[(s * kvHeads + g) * d + c] += dS * f.qr[(t * heads + h) * d + c] * scale;
          }
        }
      }
    }
  }

  return {
    q: applyRopeTranspose(dQr, T, heads, d, f.cos, f.sin),
    k: applyRopeTranspose(dKr, T, kvHeads, d, f.cos, f.sin),
    v: dV,
    o: dZo,
  };
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/** One full Qwen2 decoder layer: h = x + Attn(RMSNorm(x)); out = h + MLP(RMSNorm(h)). */
export function decoderLayer(
  x: Float64Array,
  T: number,
  w: DecoderWeights,
  dims: DecoderDims,
  positions: Int32Array,
  segments: Int32Array,
): { out: Float64Array; stages: DecoderStages } {
  const a = attentionForward(x, T, w, dims, positions, segments);
  const { hidden: H, intermediate: I } = dims;
  const h = a.out;
  const normed2 = rmsNorm(h, T, H, w.postNorm, dims.eps);
  const gate = linear(normed2, T, H, w.gate, I, null);
  const up = linear(normed2, T, H, w.up, I, null);
  const act = new Float64Array(T * I);
  for (let i = 0; i < act.length; i++) act[i] = silu(gate[i]) * up[i];
  const down = linear(act, T, I, w.down, H, null);
  const out = new Float64Array(T * H);
  for (let i = 0; i < out.length; i++) out[i] = h[i] + down[i];
  return {
    out,
    stages: {
      normed: a.normed,
      q: a.zq,
      k: a.zk,
      v: a.zv,
      qRope: a.qr,
      kRope: a.kr,
      attn: a.attn,
      o: a.zo,
      h,
      normed2,
      act,
      out,
    },
  };
}

/** B(x) = x + o_proj(attention(RMSNorm(x))), [T, H]. */
export function attentionBlock(
  x: Float64Array,
  T: number,
  w: DecoderWeights,
  dims: DecoderDims,
  positions: Int32Array,
  segments: Int32Array,
): Float64Array {
  return attentionForward(x, T, w, dims, positions, segments).out;
}

/**
 * B(x) with additive perturbations of the projection outputs: Z_q, Z_k (before RoPE), Z_v, Z_o.
 * For finite-difference checks of ∂L/∂Z_p.
 */
export function attentionBlockWithPerturbations(
  x: Float64Array,
  T: number,
  w: DecoderWeights,
  dims: DecoderDims,
  positions: Int32Array,
  segments: Int32Array,
  pert: ZPerturbations,
): Float64Array {
  return attentionForward(x, T, w, dims, positions, segments, pert).out;
}

/** L = Σ over all tokens and channels of (B(U) − B(F))² (sum reduction, F a constant). */
export function blockLoss(
  U: Float64Array,
  F: Float64Array,
  T: number,
  w: DecoderWeights,
  dims: DecoderDims,
  positions: Int32Array,
  segments: Int32Array,
): number {
  const bu = attentionBlock(U, T, w, dims, positions, segments);
  const bf = attentionBlock(F, T, w, dims, positions, segments);
  let L = 0;
  for (let i = 0; i < bu.length; i++) L += (bu[i] - bf[i]) ** 2;
  return L;
}

/**
 * VLMQ importance factors (docs/algorithm.md §4.3) from the analytic backward of the block loss:
 *   ∂L/∂Z_o = 2(B(U) − B(F)), then back through o_proj, attention and RoPE (attentionBackward).
 * Per token t, over the C_p output channels of projection p:
 *   norm 'l1' (default, VLMQ Eq. 10/11): g_p[t] = (1/C_p) Σ_c |∂L/∂Z_p[t, c]|
 *   norm 'l2':                           g_p[t] = sqrt((1/C_p) Σ_c (∂L/∂Z_p[t, c])²)   (the RMS)
 */
export function importanceFactors(
  U: Float64Array,
  F: Float64Array,
  T: number,
  w: DecoderWeights,
  dims: DecoderDims,
  positions: Int32Array,
  segments: Int32Array,
  norm: 'l1' | 'l2' = 'l1',
): ImportanceFactors {
  const fu = attentionForward(U, T, w, dims, positions, segments);
  const bf = attentionBlock(F, T, w, dims, positions, segments);
  const dZo = new Float64Array(fu.out.length);
  let loss = 0;
  for (let i = 0; i < dZo.length; i++) {
    const diff = fu.out[i] - bf[i];
    loss += diff * diff;
    dZo[i] = 2 * diff;
  }
  const grads = attentionBackward(fu, dZo, T, w, dims, segments);
  const factor = (G: Float64Array): Float64Array => {
    const C = G.length / T;
    const g = new Float64Array(T);
    for (let t = 0; t < T; t++) {
      let acc = 0;
      for (let c = 0; c < C; c++) {
        const v = G[t * C + c];
        acc += norm === 'l1' ? Math.abs(v) : v * v;
      }
      g[t] = norm === 'l1' ? acc / C : Math.sqrt(acc / C);
    }
    return g;
  };
  return { q: factor(grads.q), k: factor(grads.k), v: factor(grads.v), o: factor(grads.o), grads, loss };
}

// ---------------------------------------------------------------------------
// Seeded random layers and tokens for tests
// ---------------------------------------------------------------------------

/**
 * A random layer from mulberry32(seed): projection weights and biases ~ N(0, 0.1²), RMSNorm
 * weights ~ 1 + N(0, 0.1²). Drawn in the order of the DecoderWeights fields.
 */
export function randomDecoder(dims: DecoderDims, seed: number): DecoderWeights {
  checkDims(dims);
  const rng = mulberry32(seed);
  const { hidden: H, heads, kvHeads, headDim: d, intermediate: I } = dims;
  const normal = (len: number, mean: number): Float64Array => {
    const a = new Float64Array(len);
    for (let i = 0; i < len; i++) a[i] = mean + 0.1 * randn(rng);
    return a;
  };
  return {
    inputNorm: normal(H, 1),
    postNorm: normal(H, 1),
    q: normal(heads * d * H, 0),
    qBias: normal(heads * d, 0),
    k: normal(kvHeads * d * H, 0),
    kBias: normal(kvHeads * d, 0),
    v: normal(kvHeads * d * H, 0),
    vBias: normal(kvHeads * d, 0),
    o: normal(H * heads * d, 0),
    gate: normal(I * H, 0),
    up: normal(I * H, 0),
    down: normal(H * I, 0),
  };
}

/** T tokens of width H, ~ N(0, 1), from mulberry32(seed). */
export function randomTokens(T: number, H: number, seed: number): Float64Array {
  const rng = mulberry32(seed);
  const x = new Float64Array(T * H);
  for (let i = 0; i < x.length; i++) x[i] = randn(rng);
  return x;
}
