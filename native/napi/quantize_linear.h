#pragma once
#include <napi.h>

namespace vlmq::napi {
Napi::Value QuantizeLinear(const Napi::CallbackInfo& info);
}
