#pragma once
#include <napi.h>

namespace vlmq::napi {
// Adds conformance(device?) and conformanceSelfTest() to the module's exports.
void RegisterConformance(Napi::Env env, Napi::Object exports);
}
