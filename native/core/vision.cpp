// The vision towers (vision.h) as transformers computes them: Qwen2VisionTransformerPretrainedModel
// (modeling_qwen2_vl.py), Qwen2_5_VisionTransformerPretrainedModel (modular_qwen2_5_vl.py,
// qwen2_vl/vision_utils.py) and LLaVA-OneVision's get_image_features over SiglipVisionModel
// (docs/formats.md §3.6, §4.1). Arithmetic in f32; the rotary angles are f32 products, as
// transformers forms them.
#include "vlmq/vision.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "scratch.h"

namespace vlmq {
namespace {

constexpr int64_t kMaxTokens = std::numeric_limits<int32_t>::max();

std::string str(int64_t v) { return std::to_string(v); }

bool is_qwen(const VisionDims& d) { return d.kind != VisionKind::kSiglip; }

// Tensors are looked up only after vision_missing() found none missing.
MatF weight(const VisionWeights& w, const std::string& name) { return w.tensors.at(name).matrix(); }
MatF vec(const VisionWeights& w, const std::string& name) { return w.tensors.at(name).data.vec<float>(w.tensors.at(name).cols); }

// y = x · W[name.weight]ᵀ + W[name.bias]  (nn.Linear)
Status linear(Backend& b, const VisionWeights& w, const std::string& name, MatF x, MatF y) {
  VLMQ_TRY(b.gemm(false, true, 1.0f, x, weight(w, name + ".weight"), 0.0f, y));
  return b.add_row(y, vec(w, name + ".bias"));
}

// LayerNorm with bias (Qwen2-VL, SigLIP) or RMSNorm (Qwen2.5-VL); y may be x.
Status norm(Backend& b, const VisionDims& d, const VisionWeights& w, const std::string& name, MatF x, MatF y) {
  if (d.kind == VisionKind::kQwen25VL) return b.rms_norm(x, vec(w, name + ".weight"), d.eps, y);
  return b.layer_norm(x, vec(w, name + ".weight"), vec(w, name + ".bias"), d.eps, y);
}

// --- Qwen ----------------------------------------------------------------------------------------

// Row and column of every patch in the processor's order (rot_pos_emb: merge blocks in raster
// order, raster order inside a block, frame after frame), and the frames, each of which attends
// only to itself (cu_seqlens).
void patch_positions(const VisionDims& d, const int32_t* grids, int64_t images, std::vector<int32_t>* row,
                     std::vector<int32_t>* col, std::vector<int32_t>* frames) {
  const int64_t m = d.merge;
  frames->assign(1, 0);
  for (int64_t i = 0; i < images; i++) {
    const int64_t t = grids[3 * i], h = grids[3 * i + 1], w = grids[3 * i + 2];
    for (int64_t ti = 0; ti < t; ti++) {
      for (int64_t by = 0; by < h / m; by++)
        for (int64_t bx = 0; bx < w / m; bx++)
          for (int64_t iy = 0; iy < m; iy++)
            for (int64_t ix = 0; ix < m; ix++) {
              row->push_back(static_cast<int32_t>(by * m + iy));
              col->push_back(static_cast<int32_t>(bx * m + ix));
            }
      frames->push_back(static_cast<int32_t>(frames->back() + h * w));
    }
  }
}

// cos/sin [N, head_dim] of the 2-D rotary embedding. VisionRotaryEmbedding(head_dim / 2, θ = 10⁴)
// has head_dim / 4 frequencies inv_freq[j] = 1 / θ^(2j / (head_dim / 2)); a patch's angles are
// [row · inv_freq, col · inv_freq] (head_dim / 2 of them), repeated for the second half.
Status rotary_tables(Scratch& s, const VisionDims& d, const std::vector<int32_t>& row, const std::vector<int32_t>& col,
                     MatF* cos, MatF* sin) {
  const int64_t hd = d.head_dim(), dim = hd / 2, nf = dim / 2, N = static_cast<int64_t>(row.size());
  std::vector<float> inv_freq(nf);
  for (int64_t j = 0; j < nf; j++) inv_freq[j] = 1.0f / std::pow(10000.0f, static_cast<float>(2 * j) / static_cast<float>(dim));
  std::vector<float> c(static_cast<size_t>(N * hd)), sn(static_cast<size_t>(N * hd));
  for (int64_t t = 0; t < N; t++) {
    float* ct = c.data() + t * hd;
    float* st = sn.data() + t * hd;
    for (int64_t j = 0; j < nf; j++) {
      const float by_row = static_cast<float>(row[t]) * inv_freq[j];
      const float by_col = static_cast<float>(col[t]) * inv_freq[j];
      ct[j] = ct[j + dim] = std::cos(by_row);
      st[j] = st[j + dim] = std::sin(by_row);
      ct[nf + j] = ct[nf + j + dim] = std::cos(by_col);
      st[nf + j] = st[nf + j + dim] = std::sin(by_col);
    }
  }
  VLMQ_TRY(s.upload(c.data(), N, hd, cos));
  return s.upload(sn.data(), N, hd, sin);
}

struct BlockBuffers {
  MatF normed, qkv, attn, o, hidden, up, act;
};

// x ← x + proj(attention(rope(qkv(norm1(x))))), then x ← x + mlp(norm2(x))
// (Qwen2VLVisionBlock / Qwen2_5_VLVisionBlock); attention is bidirectional within `segments`.
Status qwen_block(Backend& b, const VisionDims& d, const VisionWeights& w, int64_t j, MatF x,
                  MatI segments, MatF cos, MatF sin, const BlockBuffers& t) {
  const std::string p = "blocks." + str(j);
  const int64_t N = x.rows, W = d.width;
  VLMQ_TRY(norm(b, d, w, p + ".norm1", x, t.normed));
  VLMQ_TRY(linear(b, w, p + ".attn.qkv", t.normed, t.qkv));  // [N, 3, heads, head_dim]
  const MatF q = t.qkv.block(0, 0, N, W), k = t.qkv.block(0, W, N, W), v = t.qkv.block(0, 2 * W, N, W);
  VLMQ_TRY(b.rope(q, d.head_dim(), cos, sin, false));
  VLMQ_TRY(b.rope(k, d.head_dim(), cos, sin, false));
  VLMQ_TRY(b.attention(q, k, v, segments, d.heads, d.heads, /*causal=*/false, t.attn));
  VLMQ_TRY(linear(b, w, p + ".attn.proj", t.attn, t.o));
  VLMQ_TRY(b.axpby(x, 1.0f, t.o, x));

  VLMQ_TRY(norm(b, d, w, p + ".norm2", x, t.normed));
  if (d.kind == VisionKind::kQwen2VL) {  // fc2(act(fc1(x)))
    VLMQ_TRY(linear(b, w, p + ".mlp.fc1", t.normed, t.hidden));
    VLMQ_TRY(b.activation(d.mlp_act, t.hidden, t.hidden));
    VLMQ_TRY(linear(b, w, p + ".mlp.fc2", t.hidden, t.o));
  } else {  // down_proj(silu(gate_proj(x)) · up_proj(x))
    VLMQ_TRY(linear(b, w, p + ".mlp.gate_proj", t.normed, t.hidden));
    VLMQ_TRY(linear(b, w, p + ".mlp.up_proj", t.normed, t.up));
    VLMQ_TRY(b.silu_mul(t.hidden, t.up, t.act));
    VLMQ_TRY(linear(b, w, p + ".mlp.down_proj", t.act, t.o));
  }
  return b.axpby(x, 1.0f, t.o, x);
}

}  // namespace

Status check_vision_dims(const VisionDims& d) {
  const auto within = [](int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; };
  if (!within(d.width, 1, 1 << 17) || !within(d.heads, 1, 1 << 17) || !within(d.intermediate, 1, 1 << 18) ||
      !within(d.depth, 0, 4096) || !within(d.channels, 1, 64) || !within(d.patch, 1, 1024) || !within(d.out_hidden, 1, 1 << 18))
    return InvalidArgument("vision dimensions out of range (width, heads, intermediate, channels, patch and out_hidden must be positive)");
  if (d.width % d.heads != 0) return InvalidArgument("vision width " + str(d.width) + " is not a multiple of heads " + str(d.heads));
  if (!(d.eps > 0) || !std::isfinite(d.eps)) return InvalidArgument("vision eps must be positive");
  if (is_qwen(d)) {
    if (!within(d.temporal_patch, 1, 64) || !within(d.merge, 1, 64)) return InvalidArgument("temporal patch and merge size must be in [1, 64]");
    if (d.head_dim() % 4 != 0) return InvalidArgument("vision head dim " + str(d.head_dim()) + " must be a multiple of 4 (2-D rotary embedding)");
  }
  if (d.kind == VisionKind::kQwen25VL) {
    if (d.mlp_act != Activation::kSilu) return InvalidArgument("Qwen2.5-VL's gated MLP needs the silu activation");
    if (!within(d.window, d.merge * d.patch, 1 << 20))
      return InvalidArgument("window size " + str(d.window) + " must be at least merge · patch = " + str(d.merge * d.patch));
    for (int64_t j : d.fullatt)
      if (!within(j, 0, d.depth - 1)) return InvalidArgument("full-attention block " + str(j) + " is not below depth " + str(d.depth));
  }
  if (d.kind == VisionKind::kSiglip && !within(d.image_size, d.patch, 1 << 16))
    return InvalidArgument("image size " + str(d.image_size) + " must be in [patch, 65536]");
  return Status::Ok();
}

std::vector<VisionTensorSpec> vision_tensor_specs(const VisionDims& d) {
  const int64_t W = d.width, I = d.intermediate;
  std::vector<VisionTensorSpec> specs;
  const auto add = [&](const std::string& name, int64_t rows, int64_t cols) { specs.push_back({name, rows, cols}); };
  const auto add_linear = [&](const std::string& name, int64_t out, int64_t in) {
    add(name + ".weight", out, in);
    add(name + ".bias", 1, out);
  };
  const auto add_norm = [&](const std::string& name, bool bias) {
    add(name + ".weight", 1, W);
    if (bias) add(name + ".bias", 1, W);
  };
  if (is_qwen(d)) {
    const bool v2 = d.kind == VisionKind::kQwen2VL;
    add("patch_embed.proj.weight", W, d.patch_features());
    for (int64_t j = 0; j < d.depth; j++) {
      const std::string p = "blocks." + str(j);
      add_norm(p + ".norm1", v2);
      add_norm(p + ".norm2", v2);
      add_linear(p + ".attn.qkv", 3 * W, W);
      add_linear(p + ".attn.proj", W, W);
      if (v2) {
        add_linear(p + ".mlp.fc1", I, W);
        add_linear(p + ".mlp.fc2", W, I);
      } else {
        add_linear(p + ".mlp.gate_proj", I, W);
        add_linear(p + ".mlp.up_proj", I, W);
        add_linear(p + ".mlp.down_proj", W, I);
      }
    }
    const int64_t merged = W * d.unit();
    add_norm("merger.ln_q", v2);
    add_linear("merger.mlp.0", merged, merged);
    add_linear("merger.mlp.2", d.out_hidden, merged);
  } else {
    add_linear("embeddings.patch_embedding", W, d.channels * d.patch * d.patch);
    add("embeddings.position_embedding.weight", d.positions(), W);
    for (int64_t i = 0; i < d.depth; i++) {
      const std::string p = "encoder.layers." + str(i);
      for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) add_linear(p + ".self_attn." + proj, W, W);
      add_norm(p + ".layer_norm1", true);
      add_norm(p + ".layer_norm2", true);
      add_linear(p + ".mlp.fc1", I, W);
      add_linear(p + ".mlp.fc2", W, I);
    }
    add_linear("multi_modal_projector.linear_1", d.out_hidden, W);
    add_linear("multi_modal_projector.linear_2", d.out_hidden, d.out_hidden);
  }
  return specs;
}

Status set_vision_tensor(Backend& backend, const VisionDims& dims, VisionWeights& w, const std::string& name, MatrixView value) {
  for (const VisionTensorSpec& spec : vision_tensor_specs(dims)) {
    if (spec.name != name) continue;
    if (value.rows != spec.rows || value.cols != spec.cols)
      return InvalidArgument(name + ": expected [" + str(spec.rows) + ", " + str(spec.cols) + "], found [" + str(value.rows) + ", " +
                             str(value.cols) + "]");
    int64_t nonfinite = 0, first = 0;
    VLMQ_TRY(backend.count_nonfinite(value, &nonfinite, &first));
    if (nonfinite) return InvalidArgument(name + ": holds NaN or infinite values");
    VisionTensor tensor;
    VLMQ_TRY(alloc_matrix(backend, &tensor.data, spec.rows, spec.cols, BufferUsage::kWeights));
    tensor.rows = spec.rows;
    tensor.cols = spec.cols;
    VLMQ_TRY(backend.convert_rows(tensor.matrix(), value, MatF{}));
    w.tensors[name] = std::move(tensor);
    return Status::Ok();
  }
  return InvalidArgument("unknown vision tensor '" + name + "'");
}

std::string vision_missing(const VisionDims& dims, const VisionWeights& w) {
  for (const VisionTensorSpec& spec : vision_tensor_specs(dims))
    if (!w.tensors.count(spec.name)) return spec.name;
  return "";
}

Status check_qwen_grids(const VisionDims& d, const int32_t* grids, int64_t images, int64_t* patches) {
  if (!is_qwen(d)) return InvalidArgument("grids belong to a Qwen vision tower");
  if (images < 1 || !grids) return InvalidArgument("grids: at least one image is required");
  int64_t total = 0;
  for (int64_t i = 0; i < images; i++) {
    const int64_t t = grids[3 * i], h = grids[3 * i + 1], w = grids[3 * i + 2];
    const std::string found = "(" + str(t) + ", " + str(h) + ", " + str(w) + ")";
    if (t < 1 || h < 1 || w < 1) return InvalidArgument("grids[" + str(i) + "]: expected positive (t, h, w), found " + found);
    if (h % d.merge != 0 || w % d.merge != 0)
      return InvalidArgument("grids[" + str(i) + "]: h and w must be multiples of the merge size " + str(d.merge) + ", found " + found);
    if (h * w > kMaxTokens || t * h * w > kMaxTokens - total) return InvalidArgument("grids: more than 2³¹ − 1 patches");
    total += t * h * w;
  }
  *patches = total;
  return Status::Ok();
}

Status qwen_window_index(const VisionDims& d, const int32_t* grids, int64_t images, std::vector<int32_t>* window_index,
                         std::vector<int32_t>* windows) {
  VLMQ_TRY(check_vision_dims(d));
  if (d.kind != VisionKind::kQwen25VL) return InvalidArgument("window attention belongs to Qwen2.5-VL");
  int64_t patches = 0;
  VLMQ_TRY(check_qwen_grids(d, grids, images, &patches));
  const int64_t m = d.merge, unit = d.unit(), side = d.window / m / d.patch;  // merged tokens per window side
  window_index->clear();
  windows->assign(1, 0);
  int64_t offset = 0;  // merged tokens of the earlier images
  for (int64_t i = 0; i < images; i++) {
    const int64_t t = grids[3 * i], h = grids[3 * i + 1] / m, w = grids[3 * i + 2] / m;
    for (int64_t ti = 0; ti < t; ti++)
      for (int64_t y0 = 0; y0 < h; y0 += side)
        for (int64_t x0 = 0; x0 < w; x0 += side) {
          int64_t count = 0;
          for (int64_t y = y0; y < std::min(h, y0 + side); y++)
            for (int64_t x = x0; x < std::min(w, x0 + side); x++, count++)
              window_index->push_back(static_cast<int32_t>(offset + (ti * h + y) * w + x));
          windows->push_back(static_cast<int32_t>(windows->back() + count * unit));
        }
    offset += t * h * w;
  }
  return Status::Ok();
}

Status qwen_vision_forward(Backend& b, const VisionDims& d, const VisionWeights& w, MatF pixels, const int32_t* grids,
                           int64_t images, MatF out) {
  VLMQ_TRY(check_vision_dims(d));
  if (!is_qwen(d)) return InvalidArgument("qwen_vision_forward: the tower is not a Qwen tower");
  const std::string missing = vision_missing(d, w);
  if (!missing.empty()) return InvalidArgument("the vision tower is missing " + missing);
  int64_t N = 0;
  VLMQ_TRY(check_qwen_grids(d, grids, images, &N));
  if (pixels.rows != N || pixels.cols != d.patch_features())
    return InvalidArgument("pixel values: expected [" + str(N) + ", " + str(d.patch_features()) + "], found [" + str(pixels.rows) + ", " +
                           str(pixels.cols) + "]");
  const int64_t W = d.width, I = d.intermediate, unit = d.unit(), tokens = N / unit;
  if (out.rows != tokens || out.cols != d.out_hidden) return InvalidArgument("qwen_vision_forward: output of the wrong shape");
  Scratch s{b, {}};

  // Patch embedding: a Conv3d without bias whose kernel equals its stride is x · Wᵀ.
  MatF x;
  VLMQ_TRY(s.make(N, W, &x));
  VLMQ_TRY(b.gemm(false, true, 1.0f, pixels, weight(w, "patch_embed.proj.weight"), 0.0f, x));

  std::vector<int32_t> row, col, frames;
  patch_positions(d, grids, images, &row, &col, &frames);

  // Qwen2.5-VL: the sequence and the rotary ids reordered window by window, in merge groups.
  std::vector<int32_t> window_index, windows;
  if (d.kind == VisionKind::kQwen25VL) {
    VLMQ_TRY(qwen_window_index(d, grids, images, &window_index, &windows));
    std::vector<int32_t> order(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; i++) order[i] = static_cast<int32_t>(window_index[i / unit] * unit + i % unit);
    MatF reordered;
    MatI rows;
    VLMQ_TRY(s.make(N, W, &reordered));
    VLMQ_TRY(s.upload(order, &rows));
    VLMQ_TRY(b.gather_rows(reordered, x, rows));
    x = reordered;
    std::vector<int32_t> r(row), c(col);
    for (int64_t i = 0; i < N; i++) row[i] = r[order[i]], col[i] = c[order[i]];
  }
  MatF cos, sin;
  VLMQ_TRY(rotary_tables(s, d, row, col, &cos, &sin));
  MatI frame_segments, window_segments;
  VLMQ_TRY(s.upload(frames, &frame_segments));
  if (d.kind == VisionKind::kQwen25VL) VLMQ_TRY(s.upload(windows, &window_segments));

  BlockBuffers t;
  VLMQ_TRY(s.make(N, W, &t.normed));
  VLMQ_TRY(s.make(N, 3 * W, &t.qkv));
  VLMQ_TRY(s.make(N, W, &t.attn));
  VLMQ_TRY(s.make(N, W, &t.o));
  VLMQ_TRY(s.make(N, I, &t.hidden));
  if (d.kind == VisionKind::kQwen25VL) {
    VLMQ_TRY(s.make(N, I, &t.up));
    VLMQ_TRY(s.make(N, I, &t.act));
  }
  for (int64_t j = 0; j < d.depth; j++) {
    const bool windowed = d.kind == VisionKind::kQwen25VL && std::find(d.fullatt.begin(), d.fullatt.end(), j) == d.fullatt.end();
    VLMQ_TRY(qwen_block(b, d, w, j, x, windowed ? window_segments : frame_segments, cos, sin, t));
  }

  // PatchMerger: ln_q, each merge group of `unit` consecutive rows as one vector, mlp.0 → GELU → mlp.2.
  VLMQ_TRY(norm(b, d, w, "merger.ln_q", x, t.normed));
  const MatF grouped{t.normed.data, tokens, W * unit, W * unit, t.normed.device};
  MatF hidden;
  VLMQ_TRY(s.make(tokens, W * unit, &hidden));
  VLMQ_TRY(linear(b, w, "merger.mlp.0", grouped, hidden));
  VLMQ_TRY(b.activation(d.head_act, hidden, hidden));
  if (d.kind == VisionKind::kQwen2VL) return linear(b, w, "merger.mlp.2", hidden, out);

  // Qwen2.5-VL: back to raster order (argsort of window_index).
  MatF merged;
  VLMQ_TRY(s.make(tokens, d.out_hidden, &merged));
  VLMQ_TRY(linear(b, w, "merger.mlp.2", hidden, merged));
  std::vector<int32_t> inverse(static_cast<size_t>(tokens));
  for (int64_t g = 0; g < tokens; g++) inverse[window_index[g]] = static_cast<int32_t>(g);
  MatI raster;
  VLMQ_TRY(s.upload(inverse, &raster));
  return b.gather_rows(out, merged, raster);
}

Status siglip_forward(Backend& b, const VisionDims& d, const VisionWeights& w, MatF views, int64_t size, MatF out) {
  VLMQ_TRY(check_vision_dims(d));
  if (d.kind != VisionKind::kSiglip) return InvalidArgument("siglip_forward: the tower is not a SigLIP tower");
  const std::string missing = vision_missing(d, w);
  if (!missing.empty()) return InvalidArgument("the vision tower is missing " + missing);
  const int64_t L = d.positions(), W = d.width, I = d.intermediate;
  const int64_t n = views.rows;
  if (views.empty() || n < 1) return InvalidArgument("siglip_forward: at least one view is required");
  if (views.cols != d.channels * size * size)
    return InvalidArgument("siglip_forward: views must be [n, " + str(d.channels) + " · " + str(size) + "²]");
  if (size < d.patch || (size / d.patch) * (size / d.patch) != L)
    return InvalidArgument("views of " + str(size) + " px give " + str(size / d.patch) + "² patches, but the position embedding has " +
                           str(L) + " rows");
  if (n > kMaxTokens / L) return InvalidArgument("siglip_forward: too many views");
  const int64_t T = n * L;
  if (out.rows != T || out.cols != d.out_hidden) return InvalidArgument("siglip_forward: output of the wrong shape");
  Scratch s{b, {}};

  // Embeddings: Conv2d (kernel = stride = patch, with bias) on each view, patches in raster order,
  // plus the learned position embedding (the native resolution: no interpolation).
  MatF patches, x;
  VLMQ_TRY(s.make(T, d.channels * d.patch * d.patch, &patches));
  VLMQ_TRY(b.unfold_patches(views, d.channels, size, d.patch, patches));
  VLMQ_TRY(s.make(T, W, &x));
  VLMQ_TRY(linear(b, w, "embeddings.patch_embedding", patches, x));
  const MatF positions = weight(w, "embeddings.position_embedding.weight");
  for (int64_t v = 0; v < n; v++) {
    const MatF xv = x.block(v * L, 0, L, W);
    VLMQ_TRY(b.axpby(xv, 1.0f, positions, xv));
  }

  // Encoder layers: x + out_proj(attention(q, k, v of layer_norm1(x))), x + fc2(act(fc1(layer_norm2(x)))),
  // each view attending to itself.
  std::vector<int32_t> offsets(static_cast<size_t>(n + 1));
  for (int64_t v = 0; v <= n; v++) offsets[v] = static_cast<int32_t>(v * L);
  MatI segments;
  VLMQ_TRY(s.upload(offsets, &segments));
  MatF normed, q, k, v, attn, o, hidden;
  for (MatF* m : {&normed, &q, &k, &v, &attn, &o}) VLMQ_TRY(s.make(T, W, m));
  VLMQ_TRY(s.make(T, I, &hidden));
  for (int64_t i = 0; i < d.depth; i++) {
    const std::string p = "encoder.layers." + str(i);
    VLMQ_TRY(norm(b, d, w, p + ".layer_norm1", x, normed));
    VLMQ_TRY(linear(b, w, p + ".self_attn.q_proj", normed, q));
    VLMQ_TRY(linear(b, w, p + ".self_attn.k_proj", normed, k));
    VLMQ_TRY(linear(b, w, p + ".self_attn.v_proj", normed, v));
    VLMQ_TRY(b.attention(q, k, v, segments, d.heads, d.heads, /*causal=*/false, attn));
    VLMQ_TRY(linear(b, w, p + ".self_attn.out_proj", attn, o));
    VLMQ_TRY(b.axpby(x, 1.0f, o, x));
    VLMQ_TRY(norm(b, d, w, p + ".layer_norm2", x, normed));
    VLMQ_TRY(linear(b, w, p + ".mlp.fc1", normed, hidden));
    VLMQ_TRY(b.activation(d.mlp_act, hidden, hidden));
    VLMQ_TRY(linear(b, w, p + ".mlp.fc2", hidden, o));
    VLMQ_TRY(b.axpby(x, 1.0f, o, x));
  }

  // The feature is hidden_states[depth], the last layer's output without post_layernorm
  // (vision_feature_layer −1, strategy "full"); then the projector.
  MatF projected;
  VLMQ_TRY(s.make(T, d.out_hidden, &projected));
  VLMQ_TRY(linear(b, w, "multi_modal_projector.linear_1", x, projected));
  VLMQ_TRY(b.activation(d.head_act, projected, projected));
  return linear(b, w, "multi_modal_projector.linear_2", projected, out);
}

}  // namespace vlmq
