// Per-environment state (worker_threads safe): the constructors used for instanceof checks.
#pragma once
#include <napi.h>

namespace vlmq::napi {

struct AddonData {
  Napi::FunctionReference cancel_token;
  Napi::FunctionReference hessian_accumulator;
  Napi::FunctionReference tensor;
};

inline AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

// True when value is an instance of the class behind `ctor` (never trust a bare Unwrap).
inline bool is_instance(Napi::Value value, const Napi::FunctionReference& ctor) {
  return value.IsObject() && !ctor.IsEmpty() && value.As<Napi::Object>().InstanceOf(ctor.Value());
}

}  // namespace vlmq::napi
