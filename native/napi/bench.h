#pragma once
#include <napi.h>

namespace vlmq::napi {
Napi::Value Benchmark(const Napi::CallbackInfo& info);
}
