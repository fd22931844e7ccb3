// The Qwen2 decoder layer (docs/formats.md §3.4–§3.5) on packed token batches, and the backward
// of its attention block for VLMQ's importance factors (algorithm.md §4.3). Arithmetic in f32,
// with RoPE's angles computed in f32 as transformers does.
#include "vlmq/decoder.h"

#include <cmath>
#include <vector>

#include "scratch.h"

namespace vlmq {
namespace {

const char* const kLinearNames[kLinearCount] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

MatF weight(const DecoderLayerWeights& w, const DecoderDims& dims, LinearId id) {
  int64_t out = 0, in = 0;
  linear_shape(dims, id, &out, &in);
  return w.linear[id].matrix(out, in);
}

MatF norm_weight(const Buffer& b, const DecoderDims& dims) { return b.vec<float>(dims.hidden); }

// y = x · Wᵀ (+ bias)
Status project(Backend& backend, const DecoderDims& dims, const DecoderLayerWeights& w, LinearId id, MatF x, MatF y) {
  VLMQ_TRY(backend.gemm(false, true, 1.0f, x, weight(w, dims, id), 0.0f, y));
  if (id <= kVProj) VLMQ_TRY(backend.add_row(y, w.bias[id].vec<float>(y.cols)));
  return Status::Ok();
}

// cos/sin [T, head_dim] for the tokens' positions. inv_freq[j] = θ^(−2j/d) and the angles are
// f32 products, as transformers computes them; with M-RoPE, frequency slot j (and j + d/2) takes
// the position component of the section it falls in (§3.5).
Status rope_tables(Scratch& scratch, const DecoderDims& dims, const TokenLayout& tokens, int64_t T, MatF* cos, MatF* sin) {
  const int64_t d = dims.head_dim, half = d / 2;
  std::vector<float> inv_freq(half);
  for (int64_t j = 0; j < half; j++) inv_freq[j] = 1.0f / std::pow(dims.rope_theta, static_cast<float>(2 * j) / static_cast<float>(d));
  std::vector<int> component(half, 0);
  if (dims.has_mrope()) {
    for (int64_t j = 0; j < half; j++) component[j] = j < dims.mrope[0] ? 0 : j < dims.mrope[0] + dims.mrope[1] ? 1 : 2;
  }
  std::vector<float> c(static_cast<size_t>(T * d)), s(static_cast<size_t>(T * d));
  for (int64_t t = 0; t < T; t++) {
    for (int64_t j = 0; j < half; j++) {
      const int32_t position = tokens.positions[component[j] * T + t];
      const float angle = static_cast<float>(position) * inv_freq[j];
      c[t * d + j] = c[t * d + j + half] = std::cos(angle);
      s[t * d + j] = s[t * d + j + half] = std::sin(angle);
    }
  }
  VLMQ_TRY(scratch.upload(c.data(), T, d, cos));
  return scratch.upload(s.data(), T, d, sin);
}

// What the attention block computes on the way; q and k after RoPE.
struct Attention {
  MatF normed, q, k, v, attn, o;
};

// x → RMSNorm → q/k/v (+bias, RoPE) → causal attention → o_proj. Stops after `attn` if o is
// not wanted.
Status attention_block(Scratch& s, const DecoderDims& dims, const DecoderLayerWeights& w, MatF x, MatI segments,
                       MatF cos, MatF sin, bool with_o, Attention* a) {
  Backend& b = s.backend;
  const int64_t T = x.rows, qw = dims.heads * dims.head_dim, kvw = dims.kv_heads * dims.head_dim;
  VLMQ_TRY(s.make(T, dims.hidden, &a->normed));
  VLMQ_TRY(b.rms_norm(x, norm_weight(w.input_norm, dims), dims.eps, a->normed));
  VLMQ_TRY(s.make(T, qw, &a->q));
  VLMQ_TRY(s.make(T, kvw, &a->k));
  VLMQ_TRY(s.make(T, kvw, &a->v));
  VLMQ_TRY(project(b, dims, w, kQProj, a->normed, a->q));
  VLMQ_TRY(project(b, dims, w, kKProj, a->normed, a->k));
  VLMQ_TRY(project(b, dims, w, kVProj, a->normed, a->v));
  VLMQ_TRY(b.rope(a->q, dims.head_dim, cos, sin, false));
  VLMQ_TRY(b.rope(a->k, dims.head_dim, cos, sin, false));
  VLMQ_TRY(s.make(T, qw, &a->attn));
  VLMQ_TRY(b.attention(a->q, a->k, a->v, segments, dims.heads, dims.kv_heads, /*causal=*/true, a->attn));
  if (!with_o) return Status::Ok();
  VLMQ_TRY(s.make(T, dims.hidden, &a->o));
  return project(b, dims, w, kOProj, a->attn, a->o);
}

// The sample boundaries (checked on the host by check_tokens) as a backend vector.
Status upload_segments(Scratch& s, const TokenLayout& tokens, MatI* out) {
  return s.upload(tokens.segments, 1, tokens.nseg + 1, out);
}

Status check_tokens(const DecoderDims& dims, MatF x, const TokenLayout& tokens) {
  if (x.cols != dims.hidden) return InvalidArgument("hidden states: expected " + std::to_string(dims.hidden) + " columns, found " + std::to_string(x.cols));
  if (x.rows <= 0) return InvalidArgument("hidden states: no tokens");
  if (!tokens.positions || !tokens.segments || tokens.nseg < 1) return InvalidArgument("positions and segments are required");
  if (tokens.segments[0] != 0 || tokens.segments[tokens.nseg] != x.rows)
    return InvalidArgument("segments must run from 0 to the number of tokens (" + std::to_string(x.rows) + ")");
  for (int64_t s = 0; s < tokens.nseg; s++)
    if (tokens.segments[s + 1] <= tokens.segments[s]) return InvalidArgument("segments must be increasing");
  return Status::Ok();
}

}  // namespace

void linear_shape(const DecoderDims& dims, LinearId id, int64_t* out, int64_t* in) {
  const int64_t H = dims.hidden, q = dims.heads * dims.head_dim, kv = dims.kv_heads * dims.head_dim, I = dims.intermediate;
  const int64_t shapes[kLinearCount][2] = {{q, H}, {kv, H}, {kv, H}, {H, q}, {I, H}, {I, H}, {H, I}};
  *out = shapes[id][0];
  *in = shapes[id][1];
}

int64_t stage_width(const DecoderDims& dims, DecoderStage stage) {
  switch (stage) {
    case DecoderStage::kOInput: return dims.heads * dims.head_dim;
    case DecoderStage::kDownInput: return dims.intermediate;
    default: return dims.hidden;
  }
}

Status check_decoder_dims(const DecoderDims& d) {
  if (d.hidden <= 0 || d.heads <= 0 || d.kv_heads <= 0 || d.head_dim <= 0 || d.intermediate <= 0)
    return InvalidArgument("decoder dimensions must be positive");
  if (d.heads % d.kv_heads != 0) return InvalidArgument("heads must be a multiple of kv_heads");
  if (d.head_dim % 2 != 0) return InvalidArgument("head_dim must be even");
  if (!(d.eps > 0) || !(d.rope_theta > 0)) return InvalidArgument("eps and rope_theta must be positive");
  if (d.has_mrope() && d.mrope[0] + d.mrope[1] + d.mrope[2] != d.head_dim / 2)
    return InvalidArgument("mrope sections must sum to head_dim / 2");
  return Status::Ok();
}

Status set_decoder_tensor(Backend& backend, const DecoderDims& dims, DecoderLayerWeights& w, const std::string& name,
                          MatrixView value) {
  Buffer* target = nullptr;
  int64_t rows = 1, cols = 0;
  if (name == "input_layernorm" || name == "post_attention_layernorm") {
    target = name == "input_layernorm" ? &w.input_norm : &w.post_norm;
    cols = dims.hidden;
  }
  for (int id = 0; id < kLinearCount && !target; id++) {
    if (name == kLinearNames[id]) {
      target = &w.linear[id];
      linear_shape(dims, static_cast<LinearId>(id), &rows, &cols);
    } else if (id <= kVProj && name == std::string(kLinearNames[id]) + ".bias") {
      target = &w.bias[id];
      int64_t in = 0;
      linear_shape(dims, static_cast<LinearId>(id), &cols, &in);
    }
  }
  if (!target) return InvalidArgument("unknown decoder tensor '" + name + "'");
  if (value.rows * value.cols != rows * cols || value.cols != (rows == 1 ? value.cols : cols))
    return InvalidArgument(name + ": expected [" + std::to_string(rows) + ", " + std::to_string(cols) + "], found [" +
                           std::to_string(value.rows) + ", " + std::to_string(value.cols) + "]");
  int64_t nonfinite = 0, first = 0;
  VLMQ_TRY(backend.count_nonfinite(value, &nonfinite, &first));
  if (nonfinite) return InvalidArgument(name + ": holds NaN or infinite values");
  Buffer buffer;
  VLMQ_TRY(alloc_matrix(backend, &buffer, value.rows, value.cols, BufferUsage::kWeights));
  VLMQ_TRY(backend.convert_rows(buffer.matrix(value.rows, value.cols), value, MatF{}));
  *target = std::move(buffer);
  return Status::Ok();
}

bool decoder_complete(const DecoderLayerWeights& w) {
  if (!w.input_norm.as<void>() || !w.post_norm.as<void>()) return false;
  for (const Buffer& b : w.linear) if (!b.as<void>()) return false;
  for (const Buffer& b : w.bias) if (!b.as<void>()) return false;
  return true;
}

Status decoder_forward(Backend& backend, const DecoderDims& dims, const DecoderLayerWeights& w, MatF x,
                       const TokenLayout& tokens, DecoderStage until, MatF out) {
  VLMQ_TRY(check_tokens(dims, x, tokens));
  if (!decoder_complete(w)) return InvalidArgument("the decoder layer is missing tensors");
  if (out.rows != x.rows || out.cols != stage_width(dims, until)) return InvalidArgument("decoder_forward: output of the wrong shape");
  Scratch s{backend, {}};
  const int64_t T = x.rows;
  if (until == DecoderStage::kAttentionInput) return backend.rms_norm(x, norm_weight(w.input_norm, dims), dims.eps, out);
  MatF cos, sin;
  MatI segments;
  VLMQ_TRY(rope_tables(s, dims, tokens, T, &cos, &sin));
  VLMQ_TRY(upload_segments(s, tokens, &segments));
  Attention a;
  VLMQ_TRY(attention_block(s, dims, w, x, segments, cos, sin, until != DecoderStage::kOInput, &a));
  if (until == DecoderStage::kOInput) return backend.copy(out, a.attn);
  MatF h, normed;  // h = x + o_proj(attention), the residual stream after attention
  VLMQ_TRY(s.make(T, dims.hidden, &h));
  VLMQ_TRY(backend.axpby(x, 1.0f, a.o, h));
  if (until == DecoderStage::kAttentionOutput) return backend.copy(out, h);
  VLMQ_TRY(s.make(T, dims.hidden, &normed));
  VLMQ_TRY(backend.rms_norm(h, norm_weight(w.post_norm, dims), dims.eps, normed));
  if (until == DecoderStage::kMlpInput) return backend.copy(out, normed);
  MatF gate, up, act;
  VLMQ_TRY(s.make(T, dims.intermediate, &gate));
  VLMQ_TRY(s.make(T, dims.intermediate, &up));
  VLMQ_TRY(s.make(T, dims.intermediate, &act));
  VLMQ_TRY(project(backend, dims, w, kGateProj, normed, gate));
  VLMQ_TRY(project(backend, dims, w, kUpProj, normed, up));
  VLMQ_TRY(backend.silu_mul(gate, up, act));
  if (until == DecoderStage::kDownInput) return backend.copy(out, act);
  VLMQ_TRY(project(backend, dims, w, kDownProj, act, out));
  return backend.axpby(h, 1.0f, out, out);
}

Status attention_importance(Backend& backend, const DecoderDims& dims, const DecoderLayerWeights& w, MatF u, MatF f,
                            MatF reference, const TokenLayout& tokens, bool l2, const MatF g[4], double* loss) {
  VLMQ_TRY(check_tokens(dims, u, tokens));
  const MatF& other = reference.data ? reference : f;
  if (other.rows != u.rows || other.cols != u.cols) return InvalidArgument("the two streams must have the same shape");
  if (!decoder_complete(w)) return InvalidArgument("the decoder layer is missing tensors");
  for (int i = 0; i < 4; i++)
    if (g[i].rows != 1 || g[i].cols != u.rows) return InvalidArgument("importance: each factor vector must be [1, tokens]");
  Scratch s{backend, {}};
  const int64_t T = u.rows;
  MatF cos, sin;
  MatI segments;
  VLMQ_TRY(rope_tables(s, dims, tokens, T, &cos, &sin));
  VLMQ_TRY(upload_segments(s, tokens, &segments));
  Attention q;
  VLMQ_TRY(attention_block(s, dims, w, u, segments, cos, sin, true, &q));
  // diff = B(u) − B(f), and ∂L/∂Z_o = 2·diff. Without a reference it is formed as
  // ((u − f) + Z_o(u)) − Z_o(f), which is exactly 0 when u = f.
  MatF diff, dZo;
  VLMQ_TRY(s.make(T, dims.hidden, &diff));
  if (reference.data) {
    VLMQ_TRY(backend.axpby(u, 1.0f, q.o, diff));  // u + Z_o(u), as the forward pass forms h
    VLMQ_TRY(backend.axpby(diff, -1.0f, reference, diff));
  } else {
    Attention ref;
    VLMQ_TRY(attention_block(s, dims, w, f, segments, cos, sin, true, &ref));
    VLMQ_TRY(backend.axpby(u, -1.0f, f, diff));
    VLMQ_TRY(backend.axpby(diff, 1.0f, q.o, diff));
    VLMQ_TRY(backend.axpby(diff, -1.0f, ref.o, diff));
  }
  VLMQ_TRY(backend.sum_squares(diff, loss));
  VLMQ_TRY(s.make(T, dims.hidden, &dZo));
  VLMQ_TRY(backend.fill(dZo, 0.0f));
  VLMQ_TRY(backend.axpby(dZo, 2.0f, diff, dZo));
  // Back through o_proj (Z_o = attn · Woᵀ), attention, and RoPE (a rotation: its transpose).
  const int64_t qw = dims.heads * dims.head_dim, kvw = dims.kv_heads * dims.head_dim;
  MatF d_attn, dq, dk, dv;
  VLMQ_TRY(s.make(T, qw, &d_attn));
  VLMQ_TRY(backend.gemm(false, false, 1.0f, dZo, weight(w, dims, kOProj), 0.0f, d_attn));
  VLMQ_TRY(s.make(T, qw, &dq));
  VLMQ_TRY(s.make(T, kvw, &dk));
  VLMQ_TRY(s.make(T, kvw, &dv));
  VLMQ_TRY(backend.attention_backward(q.q, q.k, q.v, d_attn, segments, dims.heads, dims.kv_heads, dq, dk, dv));
  VLMQ_TRY(backend.rope(dq, dims.head_dim, cos, sin, true));
  VLMQ_TRY(backend.rope(dk, dims.head_dim, cos, sin, true));
  VLMQ_TRY(backend.row_norms(dq, l2, g[0]));
  VLMQ_TRY(backend.row_norms(dk, l2, g[1]));
  VLMQ_TRY(backend.row_norms(dv, l2, g[2]));
  return backend.row_norms(dZo, l2, g[3]);
}

}  // namespace vlmq
