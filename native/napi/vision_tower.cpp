#include "vision_tower.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "common.h"
#include "worker.h"

namespace vlmq::napi {
namespace {

VisionKind parse_kind(Napi::Env env, const std::string& s) {
  if (s == "qwen2_vl") return VisionKind::kQwen2VL;
  if (s == "qwen2_5_vl") return VisionKind::kQwen25VL;
  if (s == "siglip") return VisionKind::kSiglip;
  throw_invalid(env, "Expected qwen2_vl, qwen2_5_vl or siglip for dims.kind but received " + s);
}

Activation parse_activation(Napi::Env env, const std::string& s, const char* name) {
  if (s == "gelu") return Activation::kGelu;
  if (s == "gelu_pytorch_tanh") return Activation::kGeluTanh;
  if (s == "quick_gelu") return Activation::kQuickGelu;
  if (s == "silu") return Activation::kSilu;
  throw_invalid(env, std::string("Expected gelu, gelu_pytorch_tanh, quick_gelu or silu for ") + name + " but received " + s);
}

VisionDims parse_dims(Napi::Env env, Napi::Value value) {
  Napi::Object o = get_object(env, value, "dims");
  VisionDims d;
  d.kind = parse_kind(env, get_string(o, "kind", "dims"));
  d.width = get_integer(o, "width", "dims");
  d.heads = get_integer(o, "heads", "dims");
  d.intermediate = get_integer(o, "intermediate", "dims");
  d.depth = get_integer(o, "depth", "dims");
  d.channels = get_integer(o, "channels", "dims");
  d.patch = get_integer(o, "patch", "dims");
  d.temporal_patch = get_integer(o, "temporalPatch", "dims");
  d.merge = get_integer(o, "merge", "dims");
  d.window = get_integer(o, "window", "dims");
  d.image_size = get_integer(o, "imageSize", "dims");
  d.out_hidden = get_integer(o, "outHidden", "dims");
  d.eps = static_cast<float>(get_number(o, "eps", "dims"));
  d.mlp_act = parse_activation(env, get_string(o, "mlpAct", "dims"), "dims.mlpAct");
  d.head_act = parse_activation(env, get_string(o, "headAct", "dims"), "dims.headAct");
  Napi::Value fullatt = o.Get("fullatt");
  if (!fullatt.IsArray()) throw_invalid(env, "Expected an array of block indexes for dims.fullatt");
  Napi::Array a = fullatt.As<Napi::Array>();
  if (a.Length() > 4096) throw_invalid(env, "Expected at most 4096 block indexes in dims.fullatt");
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    const double j = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(j >= 0 && j < 4096) || j != static_cast<double>(static_cast<int64_t>(j)))
      throw_invalid(env, "Expected block indexes (integers ≥ 0) in dims.fullatt");
    d.fullatt.push_back(static_cast<int64_t>(j));
  }
  Status status = check_vision_dims(d);
  if (!status.ok()) throw_invalid(env, "dims: " + status.message());
  return d;
}

// A copy of an Int32Array of (t, h, w) triples.
std::vector<int32_t> parse_grids(Napi::Env env, Napi::Value value) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_invalid(env, "Expected an Int32Array of (t, h, w) triples for grids");
  Napi::Int32Array array = value.As<Napi::Int32Array>();
  const size_t n = array.ElementLength();
  if (n == 0 || n % 3 != 0) throw_invalid(env, "grids: expected 3 · images values, received " + std::to_string(n));
  return std::vector<int32_t>(array.Data(), array.Data() + n);
}

int64_t checked_integer(Napi::Env env, Napi::Value value, const char* name, int64_t lo, int64_t hi) {
  const double d = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != static_cast<double>(static_cast<int64_t>(d)))
    throw_invalid(env, std::string("Expected an integer in [") + std::to_string(lo) + ", " + std::to_string(hi) + "] for " + name);
  return static_cast<int64_t>(d);
}

Napi::Value to_int32_array(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array array = Napi::Int32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), array.Data());
  return array;
}

}  // namespace

Napi::Function VisionTowerWrap::Define(Napi::Env env) {
  return DefineClass(env, "VisionTower",
                     {InstanceMethod<&VisionTowerWrap::SetTensor>("setTensor"), InstanceMethod<&VisionTowerWrap::Qwen>("qwen"),
                      InstanceMethod<&VisionTowerWrap::Siglip>("siglip"),
                      InstanceMethod<&VisionTowerWrap::WindowIndex>("windowIndex"),
                      InstanceMethod<&VisionTowerWrap::Dispose>("dispose")});
}

// new VisionTower(dims, device?)
VisionTowerWrap::VisionTowerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VisionTowerWrap>(info) {
  core_ = std::make_shared<VisionCore>();
  core_->dims = parse_dims(info.Env(), info[0]);
  core_->backend = &get_backend(info.Env(), info[1]);
}

std::shared_ptr<VisionCore> VisionTowerWrap::core(Napi::Env env) const {
  if (!core_) throw_invalid(env, "the VisionTower was disposed");
  return core_;
}

// setTensor(name, matrix): Promise<void>
Napi::Value VisionTowerWrap::SetTensor(const Napi::CallbackInfo& info) {
  auto core = this->core(info.Env());
  return queue_set_tensor(info, "vlmq:VisionTower.setTensor", [core](const std::string& name, const MatrixView& host) {
    std::lock_guard<std::mutex> lock(core->mutex);
    Buffer staged;
    MatrixView view;
    VLMQ_TRY(to_backend(*core->backend, host, &staged, &view));
    return set_vision_tensor(*core->backend, core->dims, core->weights, name, view);
  });
}

// qwen(pixels: Float32Array [Σ t·h·w, C·T·P·P], grids: Int32Array [images · 3]): Promise<Float32Array>
Napi::Value VisionTowerWrap::Qwen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto core = this->core(env);
  const VisionDims& dims = core->dims;
  if (dims.kind == VisionKind::kSiglip) throw_invalid(env, "qwen(): this is a SigLIP tower; call siglip()");
  auto grids = std::make_shared<std::vector<int32_t>>(parse_grids(env, info[1]));
  const int64_t images = static_cast<int64_t>(grids->size() / 3);
  int64_t N = 0;
  Status status = check_qwen_grids(dims, grids->data(), images, &N);
  if (!status.ok()) throw_invalid(env, status.message());
  const int64_t F = dims.patch_features(), tokens = N / dims.unit(), H = dims.out_hidden;
  JsFloats pixels = get_floats(env, info[0], "pixelValues", static_cast<size_t>(N) * static_cast<size_t>(F), false);
  auto out = std::make_shared<HostArray<float>>();
  const float* x = pixels.data;
  auto job = [core, out, x, grids, images, N, F, tokens, H] {
    std::lock_guard<std::mutex> lock(core->mutex);
    Backend& backend = *core->backend;
    Buffer staged;
    MatF in;
    VLMQ_TRY(to_backend(backend, host_mat(const_cast<float*>(x), N, F), &staged, &in));
    return produce_result(backend, tokens, H, out.get(), [&](MatF result) {
      return qwen_vision_forward(backend, core->dims, core->weights, in, grids->data(), images, result);
    });
  };
  return queue_job(env, "vlmq:VisionTower.qwen", job, float_result(out), Value(), {&pixels.keep});
}

// siglip(pixels: Float32Array [views, C, size, size], views: number, size: number): Promise<Float32Array>
Napi::Value VisionTowerWrap::Siglip(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto core = this->core(env);
  const VisionDims& dims = core->dims;
  if (dims.kind != VisionKind::kSiglip) throw_invalid(env, "siglip(): this is a Qwen tower; call qwen()");
  const int64_t views = checked_integer(env, info[1], "views", 1, 1 << 20);
  const int64_t size = checked_integer(env, info[2], "size", 1, 1 << 16);
  const int64_t side = size / dims.patch, L = dims.positions();
  if (side * side != L)
    throw_invalid(env, "size: views of " + std::to_string(size) + " px give " + std::to_string(side) + "² patches of " +
                           std::to_string(dims.patch) + " px, but the position embedding has " + std::to_string(L) + " rows");
  if (views * L > std::numeric_limits<int32_t>::max()) throw_invalid(env, "views: too many patches");
  const size_t length = static_cast<size_t>(views) * static_cast<size_t>(dims.channels) * static_cast<size_t>(size * size);
  JsFloats pixels = get_floats(env, info[0], "pixelValues", length, false);
  const int64_t T = views * L, H = dims.out_hidden;
  auto out = std::make_shared<HostArray<float>>();
  const float* x = pixels.data;
  const int64_t pixels_per_view = static_cast<int64_t>(length) / views;
  auto job = [core, out, x, views, pixels_per_view, size, T, H] {
    std::lock_guard<std::mutex> lock(core->mutex);
    Backend& backend = *core->backend;
    Buffer staged;
    MatF in;
    VLMQ_TRY(to_backend(backend, host_mat(const_cast<float*>(x), views, pixels_per_view), &staged, &in));
    return produce_result(backend, T, H, out.get(), [&](MatF result) {
      return siglip_forward(backend, core->dims, core->weights, in, size, result);
    });
  };
  return queue_job(env, "vlmq:VisionTower.siglip", job, float_result(out), Value(), {&pixels.keep});
}

// windowIndex(grids: Int32Array): { index: Int32Array, windows: Int32Array } (synchronous, host arithmetic)
Napi::Value VisionTowerWrap::WindowIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto core = this->core(env);
  const std::vector<int32_t> grids = parse_grids(env, info[0]);
  std::vector<int32_t> index, windows;
  Status status;
  try {
    status = qwen_window_index(core->dims, grids.data(), static_cast<int64_t>(grids.size() / 3), &index, &windows);
  } catch (const std::bad_alloc&) {
    status = {Code::kOutOfMemory, "windowIndex: out of memory"};
  }
  if (status.code() == Code::kInvalidArgument) throw_invalid(env, status.message());
  if (!status.ok()) throw make_error(env, status);
  Napi::Object out = Napi::Object::New(env);
  out.Set("index", to_int32_array(env, index));
  out.Set("windows", to_int32_array(env, windows));
  return out;
}

void VisionTowerWrap::Dispose(const Napi::CallbackInfo&) { core_.reset(); }

}  // namespace vlmq::napi
