// Module entry: the only place that registers what JS sees (typed in lib/native/binding.ts).
#include <napi.h>

#include <thread>

#include "addon_data.h"
#include "bench.h"
#include "conformance.h"
#include "decoder_layer.h"
#include "common.h"
#include "hessian_accumulator.h"
#include "quantize_linear.h"
#include "tensor.h"
#include "vision_tower.h"
#include "vlmq/core.h"
#include "worker.h"

#ifndef VLMQ_VERSION
#define VLMQ_VERSION "0.0.0"
#endif
#ifndef VLMQ_BUILD_SYSTEM
#define VLMQ_BUILD_SYSTEM "unknown"
#endif

namespace vlmq::napi {
namespace {

// info(): what this binary is and what it can use — the facts behind `vlmq doctor`.
Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("version", VLMQ_VERSION);
  out.Set("buildSystem", VLMQ_BUILD_SYSTEM);
#ifdef NDEBUG
  out.Set("buildType", "Release");
#else
  out.Set("buildType", "Debug");
#endif
  Napi::Array backends = Napi::Array::New(env);
  backends.Set(0u, "cpu");
  const CudaInfo cuda = cuda_info();
  if (cuda.compiled) backends.Set(1u, "cuda");
  out.Set("backends", backends);

  const BlasInfo blas = cpu_blas_info();
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("blas", blas.name);
  cpu.Set("blasCore", blas.core);
  cpu.Set("blasThreads", blas.threads);
  cpu.Set("threads", cpu_threads());
  cpu.Set("hardwareThreads", static_cast<double>(std::thread::hardware_concurrency()));
  out.Set("cpu", cpu);

  Napi::Object c = Napi::Object::New(env);
  c.Set("compiled", cuda.compiled);
  c.Set("usable", cuda.usable);
  c.Set("reason", cuda.reason);
  c.Set("runtimeVersion", cuda.runtime_version);
  c.Set("driverVersion", cuda.driver_version);
  c.Set("deviceCount", cuda.device_count);
  c.Set("deviceName", cuda.device_name);
  c.Set("libraries", cuda.libraries);
  out.Set("cuda", c);
  return out;
}

void SetThreads(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) throw_invalid(info.Env(), "Expected a number for threads");
  const int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1 || n > 1024) throw_invalid(info.Env(), "Expected an integer in [1, 1024] for threads");
  set_cpu_threads(n);
}

// backends(): the registry (devices.h), one object per backend compiled in or known to the build.
Napi::Value Backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<BackendInfo> all = list_backends();
  Napi::Array out = Napi::Array::New(env, all.size());
  for (size_t i = 0; i < all.size(); i++) {
    const BackendInfo& b = all[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", b.name);
    o.Set("kind", b.kind);
    o.Set("compiled", b.compiled);
    o.Set("usable", b.usable);
    o.Set("reason", b.reason);
    o.Set("deviceName", b.device_name);
    o.Set("memoryBytes", static_cast<double>(b.memory_bytes));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// resolveDevice(device): the registry name of the backend a device name selects ("auto" → "cpu"
// or "cuda:N"); throws the reason when it is unknown or not usable.
Napi::Value ResolveDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), get_backend(info.Env(), info[0]).name());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  Napi::Function cancel = CancelToken::Define(env);
  Napi::Function accumulator = HessianAccumulator::Define(env);
  data->cancel_token = Napi::Persistent(cancel);
  data->hessian_accumulator = Napi::Persistent(accumulator);
  Napi::Function tensor = TensorWrap::Define(env);
  data->tensor = Napi::Persistent(tensor);
  exports.Set("Tensor", tensor);
  exports.Set("tensorFromHost", Napi::Function::New<TensorFromHost>(env, "tensorFromHost"));
  exports.Set("CancelToken", cancel);
  exports.Set("HessianAccumulator", accumulator);
  exports.Set("DecoderLayer", DecoderLayerWrap::Define(env));
  exports.Set("VisionTower", VisionTowerWrap::Define(env));
  exports.Set("quantizeLinear", Napi::Function::New<QuantizeLinear>(env, "quantizeLinear"));
  exports.Set("info", Napi::Function::New<Info>(env, "info"));
  exports.Set("setThreads", Napi::Function::New<SetThreads>(env, "setThreads"));
  exports.Set("backends", Napi::Function::New<Backends>(env, "backends"));
  exports.Set("resolveDevice", Napi::Function::New<ResolveDevice>(env, "resolveDevice"));
  exports.Set("benchmark", Napi::Function::New<Benchmark>(env, "benchmark"));
  RegisterConformance(env, exports);
  return exports;
}

}  // namespace
}  // namespace vlmq::napi

static Napi::Object InitVlmq(Napi::Env env, Napi::Object exports) { return vlmq::napi::Init(env, exports); }

NODE_API_MODULE(vlmq, InitVlmq)
