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

// Hidden states from JS on the layer's backend (no copy on the CPU); an empty view for null.
Status stage_stream(Backend& backend, const float* data, int64_t rows, int64_t cols, Buffer* staging, MatF* out) {
  if (!data) return *out = MatF{}, Status::Ok();
  return to_backend(backend, host_mat(const_cast<float*>(data), rows, cols), staging, out);
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
  core_->backend = &get_backend(info.Env(), info[1]);
}

std::shared_ptr<LayerCore> DecoderLayerWrap::core(Napi::Env env) const {
  if (!core_) throw_invalid(env, "the DecoderLayer was disposed");
  return core_;
}

// setTensor(name, matrix): Promise<void>
Napi::Value DecoderLayerWrap::SetTensor(const Napi::CallbackInfo& info) {
  auto core = this->core(info.Env());
  return queue_set_tensor(info, "vlmq:DecoderLayer.setTensor", [core](const std::string& name, const MatrixView& host) {
    std::lock_guard<std::mutex> lock(core->mutex);
    Buffer staged;
    MatrixView view;
    VLMQ_TRY(to_backend(*core->backend, host, &staged, &view));
    return set_decoder_tensor(*core->backend, core->dims, core->weights, name, view);
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
    std::lock_guard<std::mutex> lock(core->mutex);
    Backend& backend = *core->backend;
    Buffer staged;
    MatF in;
    VLMQ_TRY(stage_stream(backend, x, T, core->dims.hidden, &staged, &in));
    return produce_result(backend, T, width, out.get(), [&](MatF result) {
      return decoder_forward(backend, core->dims, core->weights, in, layout, stage, result);
    });
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
    std::lock_guard<std::mutex> lock(core->mutex);
    Backend& backend = *core->backend;
    const int64_t H = core->dims.hidden;
    Buffer staged[3], factors[4];
    MatF streams[3], g[4];
    const float* hosts[3] = {u, fp, ref};
    for (int i = 0; i < 3; i++) VLMQ_TRY(stage_stream(backend, hosts[i], T, H, &staged[i], &streams[i]));
    for (int i = 0; i < 4; i++) VLMQ_TRY(alloc_mat<float>(backend, &factors[i], 1, T, BufferUsage::kResult, &g[i]));
    VLMQ_TRY(attention_importance(backend, core->dims, core->weights, streams[0], streams[1], streams[2], layout, l2, g, &result->loss));
    for (int i = 0; i < 4; i++) VLMQ_TRY(to_host(std::move(factors[i]), static_cast<size_t>(T), &result->g[i]));
    return Status::Ok();
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
