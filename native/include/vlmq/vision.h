// The vision towers of the supported VLMs in full precision (f32) on a Backend
// (docs/formats.md §3.6, §4.1): Qwen2-VL's ViT (LayerNorm blocks, quick-GELU MLPs, 2-D rotary
// embedding) and Qwen2.5-VL's (RMSNorm blocks, SiLU-gated MLPs, window attention), each with its
// patch merger; LLaVA-OneVision's SigLIP tower with its two-layer projector. Weights are
// converted to f32 when they are set; activations stay in f32.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vlmq/backend.h"

namespace vlmq {

enum class VisionKind : uint8_t { kQwen2VL, kQwen25VL, kSiglip };

struct VisionDims {
  VisionKind kind = VisionKind::kQwen2VL;
  int64_t width = 0, heads = 0, intermediate = 0, depth = 0;  // depth: blocks (SigLIP: encoder layers run)
  int64_t channels = 3, patch = 14;
  int64_t temporal_patch = 1, merge = 1;  // Qwen: Conv3d depth and spatial_merge_size
  int64_t window = 0;                     // Qwen2.5-VL: window_size in pixels
  std::vector<int64_t> fullatt;           // Qwen2.5-VL: blocks that attend over the whole image
  int64_t image_size = 0;                 // SigLIP: position_embedding has (image_size / patch)² rows
  int64_t out_hidden = 0;                 // merger / projector output: the language model's width
  float eps = 1e-6f;                      // every norm of the tower and the merger's ln_q
  Activation mlp_act = Activation::kQuickGelu;  // the blocks' MLP (Qwen2.5-VL: the gate's, must be SiLU)
  Activation head_act = Activation::kGelu;      // between the merger's / projector's two linears

  int64_t head_dim() const { return width / heads; }
  int64_t unit() const { return merge * merge; }  // patches per merged token (Qwen)
  int64_t patch_features() const { return channels * temporal_patch * patch * patch; }
  int64_t positions() const { return (image_size / patch) * (image_size / patch); }  // SigLIP
};

Status check_vision_dims(const VisionDims& dims);

// One tensor of a tower: its name relative to the tower and its shape as a matrix (Linear weights
// [out, in]; convolution weights [out, in · kernel]; vectors [1, n]).
//   Qwen (relative to `visual.`): patch_embed.proj.weight, blocks.{j}.norm1/norm2.weight (+ .bias
//   for Qwen2-VL), blocks.{j}.attn.qkv/proj.{weight,bias}, blocks.{j}.mlp.fc1/fc2 (Qwen2-VL) or
//   gate_proj/up_proj/down_proj (Qwen2.5-VL) .{weight,bias}, merger.ln_q.weight (+ .bias for
//   Qwen2-VL), merger.mlp.0/mlp.2.{weight,bias}.
//   SigLIP (relative to `vision_tower.vision_model.`): embeddings.patch_embedding.{weight,bias},
//   embeddings.position_embedding.weight, encoder.layers.{i}.self_attn.q/k/v/out_proj.{weight,bias},
//   encoder.layers.{i}.layer_norm1/layer_norm2.{weight,bias}, encoder.layers.{i}.mlp.fc1/fc2.{weight,bias};
//   and multi_modal_projector.linear_1/linear_2.{weight,bias}.
struct VisionTensorSpec {
  std::string name;
  int64_t rows = 1, cols = 0;
};
std::vector<VisionTensorSpec> vision_tensor_specs(const VisionDims& dims);

struct VisionTensor {
  Buffer data;
  int64_t rows = 0, cols = 0;
  MatF matrix() const { return data.matrix(rows, cols); }
};
struct VisionWeights {
  std::map<std::string, VisionTensor> tensors;
};

// Stores one tensor (converted to f32), checking its name and shape against the specs.
Status set_vision_tensor(Backend& backend, const VisionDims& dims, VisionWeights& w, const std::string& name, MatrixView value);
// The first tensor not yet set, or "" when the tower is complete.
std::string vision_missing(const VisionDims& dims, const VisionWeights& w);

// Qwen images: grids holds (t, h, w) per image in patches (host, 3 · images int32), h and w
// multiples of the merge size. Checks them and returns the number of patches Σ t·h·w.
Status check_qwen_grids(const VisionDims& dims, const int32_t* grids, int64_t images, int64_t* patches);

// Qwen2.5-VL's window order (get_window_index): window_index lists the merged tokens (groups of
// merge² consecutive patches) window by window — each frame of each image cut into windows of
// window / merge / patch merged tokens per side, partial at the bottom and right edges, in raster
// order — and windows holds the window boundaries in patches [0, ..., Σ t·h·w] (no empty windows).
Status qwen_window_index(const VisionDims& dims, const int32_t* grids, int64_t images, std::vector<int32_t>* window_index,
                         std::vector<int32_t>* windows);

// Qwen2-VL / Qwen2.5-VL: pixels [Σ t·h·w, channels · temporal_patch · patch²] (rows in the
// processor's order: each merge² consecutive rows form one merge block) → out [Σ t·h·w / merge²,
// out_hidden], the merged tokens in raster order of merge blocks, image after image.
Status qwen_vision_forward(Backend& backend, const VisionDims& dims, const VisionWeights& w, MatF pixels,
                           const int32_t* grids, int64_t images, MatF out);

// LLaVA-OneVision: views [n, channels · size · size] (one image per row, channel-major) with
// (size / patch)² equal to the position embedding's rows → out [n · (size / patch)², out_hidden]:
// the output of encoder layer `depth` (no post_layernorm), all positions, through linear_1 →
// head_act → linear_2.
Status siglip_forward(Backend& backend, const VisionDims& dims, const VisionWeights& w, MatF views, int64_t size, MatF out);

}  // namespace vlmq
