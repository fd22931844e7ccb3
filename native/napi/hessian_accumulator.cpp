#include "hessian_accumulator.h"

#include "common.h"
#include "tensor.h"
#include "worker.h"

namespace vlmq::napi {

Napi::Function HessianAccumulator::Define(Napi::Env env) {
  return DefineClass(env, "HessianAccumulator",
                     {InstanceMethod<&HessianAccumulator::Add>("add"),
                      InstanceMethod<&HessianAccumulator::Read>("read"),
                      InstanceMethod<&HessianAccumulator::Dispose>("dispose"),
                      InstanceAccessor<&HessianAccumulator::GetN>("n"),
                      InstanceAccessor<&HessianAccumulator::GetCrossTerm>("crossTerm"),
                      InstanceAccessor<&HessianAccumulator::GetSamples>("samples"),
                      InstanceAccessor<&HessianAccumulator::GetDisposed>("disposed")});
}

// new HessianAccumulator(n: number, crossTerm: boolean, device?: string)
HessianAccumulator::HessianAccumulator(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HessianAccumulator>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsBoolean()) throw_invalid(env, "HessianAccumulator(n: number, crossTerm: boolean)");
  const double n = info[0].As<Napi::Number>().DoubleValue();
  if (!(n >= 1 && n <= 1 << 20) || n != static_cast<double>(static_cast<int64_t>(n)))
    throw_invalid(env, "Expected an integer in [1, 1048576] for n");
  n_ = static_cast<int64_t>(n);
  cross_ = info[1].As<Napi::Boolean>().Value();
  Backend& backend = get_backend(env, info[2]);
  core_ = std::make_shared<AccumulatorCore>();
  Status status = hessian_init(backend, n_, cross_, &core_->state);
  if (!status.ok()) throw make_error(env, status);
  accounted_bytes_ = n_ * n_ * 4 * (cross_ ? 2 : 1);
  adjust_external_memory(env, accounted_bytes_);
}

void HessianAccumulator::Finalize(Napi::Env env) {
  if (core_) release_memory_accounting(env);  // collected without dispose()
}

void HessianAccumulator::release_memory_accounting(Napi::Env env) {
  adjust_external_memory(env, -accounted_bytes_);
  accounted_bytes_ = 0;
}

std::shared_ptr<AccumulatorCore> HessianAccumulator::core(Napi::Env env, const char* name) const {
  if (!core_) throw_invalid(env, std::string(name) + ": the HessianAccumulator was disposed");
  return core_;
}

// add(x: Matrix | Tensor, xFull: Matrix | Tensor | null, weights: Float32Array | null, samples: number, cancel): Promise<void>
Napi::Value HessianAccumulator::Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<AccumulatorCore> core = this->core(env, "add");
  Backend& backend = *core->state.backend;
  // x and xFull: a Tensor on the accumulator's backend, or a host matrix staged by the job.
  auto tensor_x = TensorWrap::From(env, info[0], backend, "x");
  auto tensor_full = TensorWrap::From(env, info[1], backend, "xFull");
  JsMatrix x, x_full;
  if (tensor_x) x.view = tensor_x->matrix().view();
  else x = get_matrix(env, info[0], "x");
  if (tensor_full) x_full.view = tensor_full->matrix().view();
  else if (!info[1].IsNull() && !info[1].IsUndefined()) x_full = get_matrix(env, info[1], "xFull");
  JsFloats weights = get_floats(env, info[2], "tokenWeights", static_cast<size_t>(x.view.rows), true);
  if (!info[3].IsNumber()) throw_invalid(env, "Expected a number for samples");
  const double samples = info[3].As<Napi::Number>().DoubleValue();
  CancelFlag cancel = get_cancel(env, info[4]);

  TokenBatch batch;
  batch.x = x.view;
  batch.x_full = x_full.view;
  batch.weights = weights.data;
  batch.samples = samples;
  // The job holds the Tensors (tensor_x, tensor_full), so disposing them in JS cannot free memory it reads.
  auto job = [core, batch, cancel, tensor_x, tensor_full]() mutable {
    std::lock_guard<std::mutex> lock(core->mutex);
    RunControl control;
    control.cancel = cancel.get();
    Buffer staged_x, staged_full;  // the tokens on the accumulator's backend (no copy on the CPU)
    Backend& backend = *core->state.backend;
    VLMQ_TRY(to_backend(backend, batch.x, &staged_x, &batch.x));
    if (batch.x_full.data) VLMQ_TRY(to_backend(backend, batch.x_full, &staged_full, &batch.x_full));
    Status status = hessian_add(core->state, batch, control);
    core->samples.store(core->state.samples);
    return status;
  };
  return queue_job(env, "vlmq:HessianAccumulator.add", job, [](Napi::Env e) { return e.Undefined(); }, Value(), {&x.keep, &x_full.keep, &weights.keep});
}

// read(cross: boolean): Promise<Float32Array> — a copy of H (symmetric) or of dXXT.
Napi::Value HessianAccumulator::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<AccumulatorCore> core = this->core(env, "read");
  const bool cross = info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  if (cross && !cross_) throw_invalid(env, "read: this accumulator keeps no cross term (create it with crossTerm: true)");
  auto out = std::make_shared<HostArray<float>>();
  const size_t count = static_cast<size_t>(n_) * n_;
  auto job = [core, cross, out, count]() {
    out->data.reset(static_cast<float*>(std::malloc(count * sizeof(float))));
    if (!out->data) return Status(Code::kOutOfMemory, "out of memory reading statistics");
    out->size = count;
    std::lock_guard<std::mutex> lock(core->mutex);
    return hessian_read(core->state, cross, out->data.get());
  };
  return queue_job(env, "vlmq:HessianAccumulator.read", job, float_result(out), Value(), {});
}

void HessianAccumulator::Dispose(const Napi::CallbackInfo& info) {
  if (!core_) return;
  core_.reset();  // running jobs hold their own reference; memory goes when the last one ends
  release_memory_accounting(info.Env());
}

Napi::Value HessianAccumulator::GetN(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(n_)); }
Napi::Value HessianAccumulator::GetCrossTerm(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), cross_); }
Napi::Value HessianAccumulator::GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !core_); }

Napi::Value HessianAccumulator::GetSamples(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), core_ ? core_->samples.load() : 0);
}

}  // namespace vlmq::napi
