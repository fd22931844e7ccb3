#include "tensor.h"

#include <string>

#include "addon_data.h"
#include "common.h"
#include "worker.h"

namespace vlmq::napi {

Napi::Function TensorWrap::Define(Napi::Env env) {
  return DefineClass(env, "Tensor",
                     {InstanceMethod<&TensorWrap::Read>("read"), InstanceMethod<&TensorWrap::Dispose>("dispose"),
                      InstanceAccessor<&TensorWrap::GetRows>("rows"), InstanceAccessor<&TensorWrap::GetCols>("cols"),
                      InstanceAccessor<&TensorWrap::GetDevice>("device"),
                      InstanceAccessor<&TensorWrap::GetDisposed>("disposed")});
}

// Not constructible from JS: Tensors come from tensorFromHost and from native results.
TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) throw_invalid(info.Env(), "Tensor: use tensorFromHost() or a native result");
  core_ = *info[0].As<Napi::External<std::shared_ptr<TensorCore>>>().Data();
  accounted_bytes_ = static_cast<int64_t>(core_->buffer.bytes());
  adjust_external_memory(info.Env(), accounted_bytes_);
}

Napi::Object TensorWrap::Wrap(Napi::Env env, std::shared_ptr<TensorCore> core) {
  auto holder = std::make_unique<std::shared_ptr<TensorCore>>(std::move(core));
  Napi::External<std::shared_ptr<TensorCore>> external = Napi::External<std::shared_ptr<TensorCore>>::New(env, holder.get());
  return addon_data(env).tensor.New({external});  // the constructor copies the shared_ptr before holder goes
}

std::shared_ptr<TensorCore> TensorWrap::From(Napi::Env env, Napi::Value value, const Backend& backend, const char* name) {
  if (!is_instance(value, addon_data(env).tensor)) return nullptr;
  TensorWrap* wrap = TensorWrap::Unwrap(value.As<Napi::Object>());
  if (!wrap->core_) throw_invalid(env, std::string(name) + ": the Tensor was disposed");
  if (wrap->core_->backend != &backend)
    throw_invalid(env, std::string(name) + ": the Tensor lives on " + wrap->core_->backend->name() + ", not on " + backend.name());
  return wrap->core_;
}

void TensorWrap::release(Napi::Env env) {
  core_.reset();  // running jobs hold their own reference; memory goes when the last one ends
  adjust_external_memory(env, -accounted_bytes_);
  accounted_bytes_ = 0;
}

void TensorWrap::Finalize(Napi::Env env) {
  if (core_) release(env);
}

// read(): Promise<Float32Array> — a host copy of the elements (waits for the backend's queue).
Napi::Value TensorWrap::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!core_) throw_invalid(env, "read: the Tensor was disposed");
  std::shared_ptr<TensorCore> core = core_;
  auto out = std::make_shared<HostArray<float>>();
  auto job = [core, out] {
    const size_t count = static_cast<size_t>(core->rows * core->cols);
    out->data.reset(static_cast<float*>(std::malloc(std::max<size_t>(count, 1) * sizeof(float))));
    if (!out->data) return Status(Code::kOutOfMemory, "out of host memory reading a Tensor");
    out->size = count;
    return core->backend->download(out->data.get(), core->matrix().view());
  };
  return queue_job(env, "vlmq:Tensor.read", job, float_result(out), info.This(), {});
}

void TensorWrap::Dispose(const Napi::CallbackInfo& info) {
  if (core_) release(info.Env());
}

Napi::Value TensorWrap::GetRows(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_ ? static_cast<double>(core_->rows) : 0); }
Napi::Value TensorWrap::GetCols(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_ ? static_cast<double>(core_->cols) : 0); }
Napi::Value TensorWrap::GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !core_); }
Napi::Value TensorWrap::GetDevice(const Napi::CallbackInfo& info) {
  return core_ ? Napi::Value(Napi::String::New(info.Env(), core_->backend->name())) : info.Env().Null();
}

Napi::Value TensorFromHost(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[1].IsNumber() || !info[2].IsNumber()) throw_invalid(env, "tensorFromHost(data, rows, cols, device?)");
  const int64_t rows = info[1].As<Napi::Number>().Int64Value(), cols = info[2].As<Napi::Number>().Int64Value();
  if (rows < 1 || cols < 1 || rows > (int64_t{1} << 40) / cols) throw_invalid(env, "tensorFromHost: rows and cols must be positive");
  JsFloats data = get_floats(env, info[0], "data", static_cast<size_t>(rows * cols), false);
  Backend& backend = get_backend(env, info[3]);
  auto core = std::make_shared<TensorCore>();
  core->backend = &backend;
  core->rows = rows;
  core->cols = cols;
  const float* host = data.data;
  auto job = [core, host] {
    MatF view;
    VLMQ_TRY(alloc_mat<float>(*core->backend, &core->buffer, core->rows, core->cols, BufferUsage::kResult, &view));
    return core->backend->upload(view.view(), host);
  };
  auto build = [core](Napi::Env e) -> Napi::Value { return TensorWrap::Wrap(e, core); };
  auto* worker = new PromiseWorker(env, "vlmq:tensorFromHost", job, build);
  worker->keep(std::move(data.keep));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace vlmq::napi
