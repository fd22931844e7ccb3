// Helpers shared by the napi/ files: reading checked arguments out of JS values, turning a
// Status into a JS Error, and handing native result memory to JS without a copy.
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "vlmq/core.h"
#include "vlmq/devices.h"

namespace vlmq::napi {

// A JS exception with a stable `code` property ("ERR_VLMQ_INVALID_ARG", ...).
Napi::Error make_error(Napi::Env env, const Status& status);
[[noreturn]] void throw_invalid(Napi::Env env, const std::string& message);

// Typed readers: each checks the JS type and throws a TypeError naming `name` otherwise.
Napi::Object get_object(Napi::Env env, Napi::Value value, const char* name);
double get_number(Napi::Object obj, const char* key, const char* context);
int64_t get_integer(Napi::Object obj, const char* key, const char* context);
bool get_bool(Napi::Object obj, const char* key, const char* context);
std::string get_string(Napi::Object obj, const char* key, const char* context);

// Tells V8 about native memory a JS object holds (negative: released), so that the garbage
// collector weighs it. V8 takes int64 steps; each is kept ≤ 512 MiB as node-llama-cpp does.
void adjust_external_memory(Napi::Env env, int64_t bytes);

// The backend a device name ("auto", "cpu", "cuda", "cuda:N") selects; undefined means "auto".
// Throws the registry's reason when the device is unknown or not usable.
Backend& get_backend(Napi::Env env, Napi::Value device);

// A matrix passed from JS as { data: TypedArray, dtype, rows, cols }: the view points into the
// TypedArray's memory (no copy) and `keep` holds the array alive until the job ends.
struct JsMatrix {
  MatrixView view;
  Napi::ObjectReference keep;
};
JsMatrix get_matrix(Napi::Env env, Napi::Value value, const char* name);
// A Float32Array of exactly `length` elements (or null/undefined when `optional`).
struct JsFloats {
  const float* data = nullptr;
  size_t length = 0;
  Napi::ObjectReference keep;
};
JsFloats get_floats(Napi::Env env, Napi::Value value, const char* name, size_t length, bool optional);

// Runs `produce(view)` into a fresh [rows, cols] f32 matrix on `backend`, then moves it into
// `out`: no copy on the CPU, a download from a device.
template <class Produce>
Status produce_result(Backend& backend, int64_t rows, int64_t cols, HostArray<float>* out, Produce produce) {
  Buffer buffer;
  MatF view;
  VLMQ_TRY(alloc_mat<float>(backend, &buffer, rows, cols, BufferUsage::kResult, &view));
  VLMQ_TRY(produce(view));
  return to_host(std::move(buffer), static_cast<size_t>(rows * cols), out);
}

// Wrap host memory owned by `array` as an ArrayBuffer; ownership moves to JS (freed by the GC).
// Copies instead on runtimes that forbid external buffers (Electron's V8 sandbox).
template <class T>
Napi::ArrayBuffer adopt(Napi::Env env, HostArray<T>&& array);

}  // namespace vlmq::napi
