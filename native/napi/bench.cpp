// benchmark(kernel, { m, n, k, repeats }): Promise<{ seconds, flops }> — baselines for benchmarks/.
#include "bench.h"

#include <memory>

#include "common.h"
#include "vlmq/bench.h"
#include "worker.h"

namespace vlmq::napi {

Napi::Value Benchmark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_invalid(env, "Expected a kernel name for benchmark");
  Napi::Object params = get_object(env, info[1], "params");
  BenchRequest request;
  request.kernel = info[0].As<Napi::String>().Utf8Value();
  request.m = get_integer(params, "m", "params");
  request.n = get_integer(params, "n", "params");
  request.k = get_integer(params, "k", "params");
  request.repeats = static_cast<int>(get_integer(params, "repeats", "params"));
  auto result = std::make_shared<BenchResult>();
  auto* worker = new PromiseWorker(
      env, "vlmq:benchmark", [request, result] { return cpu_benchmark(request, result.get()); },
      [result](Napi::Env e) {
        Napi::Object out = Napi::Object::New(e);
        out.Set("seconds", result->seconds);
        out.Set("flops", result->flops);
        return out;
      });
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace vlmq::napi
