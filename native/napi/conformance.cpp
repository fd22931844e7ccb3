// conformance(device?): Promise<[{ primitive, name, ok, detail }]> — the Backend conformance suite
// (native/include/vlmq/conformance.h) on the backend a device name selects; conformanceSelfTest():
// the same suite on a CPU backend broken on purpose, which must fail exactly kSelfTestBroken.
#include "conformance.h"

#include <functional>
#include <memory>

#include "common.h"
#include "vlmq/conformance.h"
#include "worker.h"

namespace vlmq::napi {
namespace {

using Results = std::vector<ConformanceResult>;

Napi::Array results_to_js(Napi::Env env, const Results& results) {
  Napi::Array out = Napi::Array::New(env, results.size());
  for (size_t i = 0; i < results.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("primitive", results[i].primitive);
    o.Set("name", results[i].name);
    o.Set("ok", results[i].ok);
    o.Set("detail", results[i].detail);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// Runs `suite` on the libuv pool and resolves with its results.
Napi::Promise queue_suite(Napi::Env env, const char* resource, std::function<Results()> suite) {
  auto results = std::make_shared<Results>();
  auto* worker = new PromiseWorker(
      env, resource,
      [results, suite] {
        *results = suite();
        return Status::Ok();
      },
      [results](Napi::Env e) { return results_to_js(e, *results); });
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value Conformance(const Napi::CallbackInfo& info) {
  Backend* backend = &get_backend(info.Env(), info[0]);  // lives as long as the process
  return queue_suite(info.Env(), "vlmq:conformance", [backend] { return run_conformance(*backend); });
}

Napi::Value ConformanceSelfTest(const Napi::CallbackInfo& info) {
  return queue_suite(info.Env(), "vlmq:conformanceSelfTest", [] { return run_conformance_self_test(); });
}

}  // namespace

void RegisterConformance(Napi::Env env, Napi::Object exports) {
  exports.Set("conformance", Napi::Function::New<Conformance>(env, "conformance"));
  exports.Set("conformanceSelfTest", Napi::Function::New<ConformanceSelfTest>(env, "conformanceSelfTest"));
}

}  // namespace vlmq::napi
