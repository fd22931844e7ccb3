#include "decoder_layer.h"

#include <string>

#include "common.h"
#include "worker.h"

namespace vlmq::napi {
namespace {

DecoderDims parse_dims(Napi::Env env, Napi::Value value) {
  Napi::Object o = get_object(env, value, "dims");
  DecoderDims d;
  d.hidden = get_integer(o, "hidden", "dims");
  d.heads = get_integer(o, "heads", "dims");
  d.kv_heads = get_integer(o, "kvHeads", "dims");
  d.head_dim = get_integer(o, "headDim", "dims");
  d.intermediate = get_integer(o, "intermediate", "dims");
  d.eps = static_cast<float>(get_number(o, "eps", "dims"));
  d.rope_theta = static_cast<float>(get_number(o, "ropeTheta", "dims"));
  Napi::Value sections = o.Get("mropeSection");
  if (!sections.IsNull() && !sections.IsUndefined()) {
    if (!sections.IsArray() || sections.As<Napi::Array>().Length() != 3) throw_invalid(env, "Expected null or 3 integers for dims.mropeSection");
    Napi::Array a = sections.As<Napi::Array>();
    for (uint32_t i = 0; i < 3; i++) {
      Napi::Value v = a.Get(i);
      if (!v.IsNumber()) throw_invalid(env, "Expected 3 integers for dims.mropeSection");
      d.mrope[i] = v.As<Napi::Number>().Int64Value();
    }
  }
  Status status = check_decoder_dims(d);
  if (!status.ok()) throw_invalid(env, "dims: " + status.message());
  return d;
}

DecoderStage parse_stage(Napi::Env env, Napi::Value value) {
  const std::string s = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  if (s == "attention-input") return DecoderStage::kAttentionInput;
  if (s == "o-input") return DecoderStage::kOInput;
  if (s == "attention-output") return DecoderStage::kAttentionOutput;
  if (s == "mlp-input") return DecoderStage::kMlpInput;
  if (s == "down-input") return DecoderStage::kDownInput;
  if (s == "output") return DecoderStage::kOutput;
  throw_invalid(env, "Expected attention-input, o-input, attention-output, mlp-input, down-input or output for until but received " + s);
}

// Hidden states [T, hidden] as a Float32Array, and the token layout that goes with them.
struct JsTokens {
  JsFloats x;
  TokenLayout layout;
  Napi::ObjectReference positions, segments;
  int64_t tokens = 0;
};

const int32_t* int32_data(Napi::Env env, Napi::Value value, const char* name, size_t* length, Napi::ObjectReference* keep) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_invalid(env, std::string("Expected an Int32Array for ") + name);
  Napi::Int32Array array = value.As<Napi::Int32Array>();
  *length = array.ElementLength();
  *keep = Napi::Persistent(array.As<Napi::Object>());
  return array.Data();
}

JsTokens parse_tokens(Napi::Env env, const DecoderDims& dims, Napi::Value x, Napi::Value tokens, const char* name) {
  JsTokens t;
  if (!x.IsTypedArray() || x.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_invalid(env, std::string("Expected a Float32Array for ") + name);
  const size_t n = x.As<Napi::Float32Array>().ElementLength();
  if (n == 0 || n % static_cast<size_t>(dims.hidden) != 0)
    throw_invalid(env, std::string(name) + ": " + std::to_string(n) + " floats are not whole rows of " + std::to_string(dims.hidden));
  t.tokens = static_cast<int64_t>(n) / dims.hidden;
  t.x = get_floats(env, x, name, n, false);
  Napi::Object o = get_object(env, tokens, "tokens");
  size_t positions = 0, segments = 0;
  t.layout.positions = int32_data(env, o.Get("positions"), "tokens.positions", &positions, &t.positions);
  t.layout.segments = int32_data(env, o.Get("segments"), "tokens.segments", &segments, &t.segments);
  const size_t want = static_cast<size_t>(t.tokens) * (dims.has_mrope() ? 3 : 1);
  if (positions != want) throw_invalid(env, "tokens.positions: expected " + std::to_string(want) + " values (" + (dims.has_mrope() ? "3 × " : "") + "tokens)");
  if (segments < 2) throw_invalid(env, "tokens.segments: expected offsets [0, ..., tokens]");
  t.layout.nseg = static_cast<int64_t>(segments) - 1;
  return t;
}

MatF host_matrix(const float* data, int64_t rows, int64_t cols) { return {const_cast<float*>(data), rows, cols, cols, DeviceKind::kHost}; }

HostArray<float> host_array(size_t count) {
  HostArray<float> a;
  a.data.reset(static_cast<float*>(std::malloc(std::max<size_t>(count, 1) * sizeof(float))));
  if (!a.data) throw std::bad_alloc();
  a.size = count;
  return a;
}

}  // namespace

Napi::Function DecoderLayerWrap::Define(Napi::Env env) {
  return DefineClass(env, "DecoderLayer",
                     {InstanceMethod<&DecoderLayerWrap::SetTensor>("setTensor"), InstanceMethod<&DecoderLayerWrap::Forward>("forward"),
                      InstanceMethod<&DecoderLayerWrap::Importance>("importance"), InstanceMethod<&DecoderLayerWrap::Dispose>("dispose")});
}

DecoderLayerWrap::DecoderLayerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DecoderLayerWrap>(info) {
  core_ = std::make_shared<LayerCore>();
  core_->dims = parse_dims(info.Env(), info[0]);
}

std::shared_ptr<LayerCore> DecoderLayerWrap::core(Napi::Env env) const {
  if (!core_) throw_invalid(env, "the DecoderLayer was disposed");
  return core_;
}

// setTensor(name, matrix): Promise<void>
Napi::Value DecoderLayerWrap::SetTensor(const Napi::CallbackInfo& info) {
  auto core = this->core(info.Env());
  return queue_set_tensor(info, "vlmq:DecoderLayer.setTensor", [core](const std::string& name, const MatrixView& view) {
    std::lock_guard<std::mutex> lock(core->mutex);
    return set_decoder_tensor(cpu_backend(), core->dims, core->weights, name, view);
  });
}

// forward(x, tokens, until): Promise<Float32Array>
Napi::Value DecoderLayerWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto core = this->core(env);
  JsTokens t = parse_tokens(env, core->dims, info[0], info[1], "x");
  const DecoderStage stage = parse_stage(env, info[2]);
  const int64_t width = stage_width(core->dims, stage);
  auto out = std::make_shared<HostArray<float>>();
  const float* x = t.x.data;
  const int64_t T = t.tokens;
  const TokenLayout layout = t.layout;
  auto job = [core, out, x, T, layout, stage, width] {
    *out = host_array(static_cast<size_t>(T * width));
    std::lock_guard<std::mutex> lock(core->mutex);
    return decoder_forward(cpu_backend(), core->dims, core->weights, host_matrix(x, T, core->dims.hidden), layout, stage,
                           host_matrix(out->data.get(), T, width));
  };
  return queue_job(env, "vlmq:DecoderLayer.forward", job, float_result(out), Value(), {&t.x.keep, &t.positions, &t.segments});
}

// importance(u, f, tokens, l2, reference): Promise<{ q, k, v, o: Float32Array, loss: number }>
// f: the full-precision stream, or null when `reference` (B(f), computed elsewhere) is given.
Napi::Value DecoderLayerWrap::Importance(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto core = this->core(env);
  JsTokens t = parse_tokens(env, core->dims, info[0], info[2], "u");
  const size_t n = static_cast<size_t>(t.tokens * core->dims.hidden);
  JsFloats f = get_floats(env, info[1], "f", n, true);
  if (!info[3].IsBoolean()) throw_invalid(env, "Expected a boolean for l2");
  const bool l2 = info[3].As<Napi::Boolean>().Value();
  JsFloats reference = get_floats(env, info[4], "reference", n, true);
  if (!f.data == !reference.data) throw_invalid(env, "Expected exactly one of f and reference");
  struct Result {
    HostArray<float> g[4];
    double loss = 0;
  };
  auto result = std::make_shared<Result>();
  const float* u = t.x.data;
  const float* fp = f.data;
  const float* ref = reference.data;
  const int64_t T = t.tokens;
  const TokenLayout layout = t.layout;
  auto job = [core, result, u, fp, ref, T, layout, l2] {
    for (auto& g : result->g) g = host_array(static_cast<size_t>(T));
    float* const g[4] = {result->g[0].data.get(), result->g[1].data.get(), result->g[2].data.get(), result->g[3].data.get()};
    std::lock_guard<std::mutex> lock(core->mutex);
    const int64_t H = core->dims.hidden;
    const MatF none{};
    return attention_importance(cpu_backend(), core->dims, core->weights, host_matrix(u, T, H), fp ? host_matrix(fp, T, H) : none,
                                ref ? host_matrix(ref, T, H) : none, layout, l2, g, &result->loss);
  };
  auto build = [result, T](Napi::Env e) -> Napi::Value {
    Napi::Object out = Napi::Object::New(e);
    const char* names[4] = {"q", "k", "v", "o"};
    for (int i = 0; i < 4; i++) out.Set(names[i], Napi::Float32Array::New(e, static_cast<size_t>(T), adopt(e, std::move(result->g[i])), 0));
    out.Set("loss", Napi::Number::New(e, result->loss));
    return out;
  };
  return queue_job(env, "vlmq:DecoderLayer.importance", job, build, Value(), {&t.x.keep, &f.keep, &reference.keep, &t.positions, &t.segments});
}

void DecoderLayerWrap::Dispose(const Napi::CallbackInfo&) { core_.reset(); }

}  // namespace vlmq::napi
