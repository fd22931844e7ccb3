// The Qwen2 decoder layer of every supported VLM's language model (docs/formats.md §3.4, §3.5):
// forward on packed token batches (several samples, each attending only to itself), and the
// backward of its attention block that VLMQ's importance factors need (algorithm.md §4.3).
#pragma once
#include <cstdint>
#include <string>

#include "vlmq/backend.h"

namespace vlmq {

struct DecoderDims {
  int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0;
  float eps = 1e-6f;
  float rope_theta = 1e6f;
  // M-RoPE frequency sections (temporal, height, width), summing to head_dim / 2; all 0: 1-D RoPE.
  int64_t mrope[3] = {0, 0, 0};
  bool has_mrope() const { return mrope[0] + mrope[1] + mrope[2] > 0; }
};

// The tensors of one layer, in f32 on the backend. Linears are [out, in] as checkpoints store them.
enum LinearId : int { kQProj, kKProj, kVProj, kOProj, kGateProj, kUpProj, kDownProj, kLinearCount };

struct DecoderLayerWeights {
  Buffer input_norm, post_norm;  // [hidden]
  Buffer linear[kLinearCount];
  Buffer bias[3];                // q, k, v
};

// Tokens of a batch: positions [T] (1-D) or [3, T] (M-RoPE, component-major), and the sample
// boundaries as offsets segments[0] = 0 < ... < segments[nseg] = T (host memory).
struct TokenLayout {
  const int32_t* positions = nullptr;
  const int32_t* segments = nullptr;
  int64_t nseg = 0;
};

// Where a forward pass stops, and what it returns: the inputs of the module groups
// [k,v,q] → [o] → [gate,up] → [down], the attention block's output h + o_proj(...), or the
// layer output.
enum class DecoderStage : uint8_t { kAttentionInput, kOInput, kAttentionOutput, kMlpInput, kDownInput, kOutput };

// The shape of a linear and of a stage's output, for the given dims.
void linear_shape(const DecoderDims& dims, LinearId id, int64_t* out_features, int64_t* in_features);
int64_t stage_width(const DecoderDims& dims, DecoderStage stage);

Status check_decoder_dims(const DecoderDims& dims);

// Stores one tensor of the layer (converted to f32): "input_layernorm", "post_attention_layernorm",
// a linear ("q_proj", ..., "down_proj") or a bias ("q_proj.bias", "k_proj.bias", "v_proj.bias").
Status set_decoder_tensor(Backend& backend, const DecoderDims& dims, DecoderLayerWeights& w, const std::string& name,
                          MatrixView value);
// Whether every tensor has been set.
bool decoder_complete(const DecoderLayerWeights& w);

// x [T, hidden] → out [T, stage_width(until)].
Status decoder_forward(Backend& backend, const DecoderDims& dims, const DecoderLayerWeights& w, MatF x,
                       const TokenLayout& tokens, DecoderStage until, MatF out);

// VLMQ's importance factors for one batch: with B(h) = h + o_proj(attention(RMSNorm(h))) and the
// loss L = Σ (B(u) − B(f))² (f constant), g_p[t] = mean_c |∂L/∂Z_p[t, c]| (or the root mean
// square with l2) for the outputs Z_p of q_proj, k_proj, v_proj (before RoPE) and o_proj.
// g[4] are [1, T] vectors on the backend (q, k, v, o); *loss receives L. When `reference` has data it
// is B(f) already computed (e.g. by the full-precision layer while this one holds probe weights),
// and f is not used.
Status attention_importance(Backend& backend, const DecoderDims& dims, const DecoderLayerWeights& w, MatF u, MatF f,
                            MatF reference, const TokenLayout& tokens, bool l2, const MatF g[4], double* loss);

}  // namespace vlmq
