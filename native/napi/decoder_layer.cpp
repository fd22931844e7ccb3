#include "decoder_layer.h"

#include <string>

#include "common.h"
#include "tensor.h"
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

const int32_t* int32_data(Napi::Env env, Napi::Value value, const char* name, size_t* length, Napi::ObjectReference* keep) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_invalid(env, std::string("Expected an Int32Array for ") + name);
  Napi::Int32Array array = value.As<Napi::Int32Array>();
  *length = array.ElementLength();
  *keep = Napi::Persistent(array.As<Napi::Object>());
  return array.Data();
}

// Hidden states [T, hidden]: a Float32Array (staged on the layer's backend by the job, no copy on
// the CPU) or a Tensor already there. Empty for null when optional.
struct StreamData {  // what a job needs (copyable)
  const float* host = nullptr;
  std::shared_ptr<TensorCore> tensor;
  int64_t tokens = 0;
  bool empty() const { return !host && !tensor; }
  // The stream as an operand of `backend`; `staging` holds a host copy where one is needed.
  Status on(Backend& backend, int64_t hidden, Buffer* staging, MatF* out) const {
    if (tensor) return *out = tensor->matrix(), Status::Ok();
    if (!host) return *out = MatF{}, Status::Ok();
    return to_backend(backend, host_mat(const_cast<float*>(host), tokens, hidden), staging, out);
  }
};

struct Stream {
  StreamData data;
  Napi::ObjectReference keep;  // the Float32Array, alive until the job ends
};

Stream parse_stream(Napi::Env env, const LayerCore& core, Napi::Value value, const char* name, bool optional) {
  Stream s;
  if (optional && (value.IsNull() || value.IsUndefined())) return s;
  const int64_t hidden = core.dims.hidden;
  StreamData& d = s.data;
  d.tensor = TensorWrap::From(env, value, *core.backend, name);
  if (d.tensor) {
    if (d.tensor->cols != hidden) throw_invalid(env, std::string(name) + ": a Tensor of " + std::to_string(hidden) + " columns expected");
    d.tokens = d.tensor->rows;
    return s;
  }
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_invalid(env, std::string("Expected a Float32Array or a Tensor for ") + name);
  const size_t n = value.As<Napi::Float32Array>().ElementLength();
  if (n == 0 || n % static_cast<size_t>(hidden) != 0)
    throw_invalid(env, std::string(name) + ": " + std::to_string(n) + " floats are not whole rows of " + std::to_string(hidden));
  d.tokens = static_cast<int64_t>(n) / hidden;
  JsFloats floats = get_floats(env, value, name, n, false);
  d.host = floats.data;
  s.keep = std::move(floats.keep);
  return s;
}

// The token layout of a batch of `count` tokens: positions and segment offsets (host memory).
struct JsTokens {
  TokenLayout layout;
  Napi::ObjectReference positions, segments;
};

JsTokens parse_tokens(Napi::Env env, const DecoderDims& dims, Napi::Value tokens, int64_t count) {
  JsTokens t;
  Napi::Object o = get_object(env, tokens, "tokens");
  size_t positions = 0, segments = 0;
  t.layout.positions = int32_data(env, o.Get("positions"), "tokens.positions", &positions, &t.positions);
  t.layout.segments = int32_data(env, o.Get("segments"), "tokens.segments", &segments, &t.segments);
  const size_t want = static_cast<size_t>(count) * (dims.has_mrope() ? 3 : 1);
  if (positions != want) throw_invalid(env, "tokens.positions: expected " + std::to_string(want) + " values (" + (dims.has_mrope() ? "3 × " : "") + "tokens)");
  if (segments < 2) throw_invalid(env, "tokens.segments: expected offsets [0, ..., tokens]");
  t.layout.nseg = static_cast<int64_t>(segments) - 1;
  return t;
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

// forward(x, tokens, until): Promise<Float32Array>, or Promise<Tensor> when x is a Tensor (the
// result stays on the layer's backend).
Napi::Value DecoderLayerWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto core = this->core(env);
  Stream input = parse_stream(env, *core, info[0], "x", false);
  const StreamData x = input.data;
  JsTokens t = parse_tokens(env, core->dims, info[1], x.tokens);
  const DecoderStage stage = parse_stage(env, info[2]);
  const int64_t width = stage_width(core->dims, stage);
  const int64_t T = x.tokens;
  const TokenLayout layout = t.layout;
  auto result = std::make_shared<TensorCore>();
  result->backend = core->backend;
  result->rows = T;
  result->cols = width;
  // A Float32Array in, a Float32Array out (moved to the host in the job); a Tensor in, a Tensor out.
  auto host = x.tensor ? nullptr : std::make_shared<HostArray<float>>();
  auto job = [core, x, result, host, layout, stage] {
    std::lock_guard<std::mutex> lock(core->mutex);
    Backend& backend = *core->backend;
    Buffer staged;
    MatF in, out;
    VLMQ_TRY(x.on(backend, core->dims.hidden, &staged, &in));
    VLMQ_TRY(alloc_mat<float>(backend, &result->buffer, result->rows, result->cols, BufferUsage::kResult, &out));
    VLMQ_TRY(decoder_forward(backend, core->dims, core->weights, in, layout, stage, out));
    return host ? to_host(std::move(result->buffer), static_cast<size_t>(result->rows * result->cols), host.get()) : Status::Ok();
  };
  PromiseWorker::Build build = [result](Napi::Env e) -> Napi::Value { return TensorWrap::Wrap(e, result); };
  if (host) build = float_result(host);
  return queue_job(env, "vlmq:DecoderLayer.forward", job, build, Value(), {&input.keep, &t.positions, &t.segments});
}

// importance(u, f, tokens, l2, reference): Promise<{ q, k, v, o: Float32Array, loss: number }>
// f: the full-precision stream, or null when `reference` (B(f), computed elsewhere) is given.
// Each stream is a Float32Array or a Tensor on the layer's backend.
Napi::Value DecoderLayerWrap::Importance(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto core = this->core(env);
  Stream streams[3] = {parse_stream(env, *core, info[0], "u", false), parse_stream(env, *core, info[1], "f", true),
                       parse_stream(env, *core, info[4], "reference", true)};
  const StreamData u = streams[0].data, f = streams[1].data, reference = streams[2].data;
  JsTokens t = parse_tokens(env, core->dims, info[2], u.tokens);
  if (!info[3].IsBoolean()) throw_invalid(env, "Expected a boolean for l2");
  const bool l2 = info[3].As<Napi::Boolean>().Value();
  if (f.empty() == reference.empty()) throw_invalid(env, "Expected exactly one of f and reference");
  const StreamData& other = f.empty() ? reference : f;
  if (other.tokens != u.tokens) throw_invalid(env, "the two streams must have the same number of tokens");
  struct Result {
    HostArray<float> g[4];
    double loss = 0;
  };
  auto result = std::make_shared<Result>();
  const int64_t T = u.tokens;
  const TokenLayout layout = t.layout;
  auto job = [core, result, u, f, reference, T, layout, l2] {
    std::lock_guard<std::mutex> lock(core->mutex);
    Backend& backend = *core->backend;
    const int64_t H = core->dims.hidden;
    Buffer staged[3], factors[4];
    MatF operands[3], g[4];
    const StreamData* inputs[3] = {&u, &f, &reference};
    for (int i = 0; i < 3; i++) VLMQ_TRY(inputs[i]->on(backend, H, &staged[i], &operands[i]));
    for (int i = 0; i < 4; i++) VLMQ_TRY(alloc_mat<float>(backend, &factors[i], 1, T, BufferUsage::kResult, &g[i]));
    VLMQ_TRY(attention_importance(backend, core->dims, core->weights, operands[0], operands[1], operands[2], layout, l2, g, &result->loss));
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
  return queue_job(env, "vlmq:DecoderLayer.importance", job, build, Value(), {&streams[0].keep, &streams[1].keep, &streams[2].keep, &t.positions, &t.segments});
}

void DecoderLayerWrap::Dispose(const Napi::CallbackInfo&) { core_.reset(); }

}  // namespace vlmq::napi
