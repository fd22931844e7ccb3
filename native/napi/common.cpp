#include "common.h"

#include <cstring>

namespace vlmq::napi {

namespace {
const char* code_name(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: return "ERR_VLMQ_INVALID_ARG";
    case Code::kOutOfMemory: return "ERR_VLMQ_OUT_OF_MEMORY";
    case Code::kNotPositiveDefinite: return "ERR_VLMQ_NOT_POSITIVE_DEFINITE";
    case Code::kUnsupported: return "ERR_VLMQ_UNSUPPORTED";
    case Code::kCancelled: return "ERR_VLMQ_CANCELLED";
    case Code::kBackend: return "ERR_VLMQ_BACKEND";
    case Code::kInternal: return "ERR_VLMQ_INTERNAL";
  }
  return "ERR_VLMQ_INTERNAL";
}

std::string where(const char* key, const char* context) { return std::string(context) + "." + key; }
}  // namespace

Napi::Error make_error(Napi::Env env, const Status& status) {
  Napi::Error error = Napi::Error::New(env, status.message());
  error.Set("code", Napi::String::New(env, code_name(status.code())));
  return error;
}

void throw_invalid(Napi::Env env, const std::string& message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, code_name(Code::kInvalidArgument)));
  throw error;
}

Napi::Object get_object(Napi::Env env, Napi::Value value, const char* name) {
  if (!value.IsObject()) throw_invalid(env, std::string("Expected an object for ") + name);
  return value.As<Napi::Object>();
}

double get_number(Napi::Object obj, const char* key, const char* context) {
  Napi::Value v = obj.Get(key);
  if (!v.IsNumber()) throw_invalid(obj.Env(), "Expected a number for " + where(key, context));
  return v.As<Napi::Number>().DoubleValue();
}

int64_t get_integer(Napi::Object obj, const char* key, const char* context) {
  const double d = get_number(obj, key, context);
  if (d != static_cast<double>(static_cast<int64_t>(d)) || d > 9007199254740991.0 || d < -9007199254740991.0)
    throw_invalid(obj.Env(), "Expected an integer for " + where(key, context));
  return static_cast<int64_t>(d);
}

bool get_bool(Napi::Object obj, const char* key, const char* context) {
  Napi::Value v = obj.Get(key);
  if (!v.IsBoolean()) throw_invalid(obj.Env(), "Expected a boolean for " + where(key, context));
  return v.As<Napi::Boolean>().Value();
}

std::string get_string(Napi::Object obj, const char* key, const char* context) {
  Napi::Value v = obj.Get(key);
  if (!v.IsString()) throw_invalid(obj.Env(), "Expected a string for " + where(key, context));
  return v.As<Napi::String>().Utf8Value();
}

void adjust_external_memory(Napi::Env env, int64_t bytes) {
  const int64_t step = int64_t{512} << 20;
  while (bytes != 0) {
    const int64_t part = bytes > 0 ? std::min(bytes, step) : std::max(bytes, -step);
    Napi::MemoryManagement::AdjustExternalMemory(env, part);
    bytes -= part;
  }
}

Backend& get_backend(Napi::Env env, Napi::Value device) {
  std::string name = "auto";
  if (!device.IsUndefined()) {
    if (!device.IsString()) throw_invalid(env, "Expected a string for device");
    name = device.As<Napi::String>().Utf8Value();
  }
  Backend* backend = nullptr;
  const Status status = open_backend(name, &backend);
  if (!status.ok()) throw make_error(env, status);
  return *backend;
}

JsMatrix get_matrix(Napi::Env env, Napi::Value value, const char* name) {
  Napi::Object obj = get_object(env, value, name);
  const std::string dtype = get_string(obj, "dtype", name);
  const int64_t rows = get_integer(obj, "rows", name), cols = get_integer(obj, "cols", name);
  Napi::Value data = obj.Get("data");
  if (!data.IsTypedArray()) throw_invalid(env, std::string("Expected a TypedArray for ") + name + ".data");
  Napi::TypedArray array = data.As<Napi::TypedArray>();
  JsMatrix m;
  napi_typedarray_type expected;
  if (dtype == "F32") m.view.dtype = DType::kF32, expected = napi_float32_array;
  else if (dtype == "F16") m.view.dtype = DType::kF16, expected = napi_uint16_array;
  else if (dtype == "BF16") m.view.dtype = DType::kBF16, expected = napi_uint16_array;
  else throw_invalid(env, std::string("Expected F32, F16 or BF16 for ") + name + ".dtype but received " + dtype);
  if (array.TypedArrayType() != expected)
    throw_invalid(env, std::string(name) + ".data: a " + dtype + " matrix needs a " +
                           (expected == napi_float32_array ? "Float32Array" : "Uint16Array"));
  if (rows < 0 || cols < 0 || static_cast<size_t>(rows) * static_cast<size_t>(cols) != array.ElementLength())
    throw_invalid(env, std::string(name) + ": " + std::to_string(array.ElementLength()) + " elements do not make a [" +
                           std::to_string(rows) + ", " + std::to_string(cols) + "] matrix");
  m.view.data = expected == napi_float32_array ? static_cast<void*>(array.As<Napi::Float32Array>().Data())
                                               : static_cast<void*>(array.As<Napi::Uint16Array>().Data());
  m.view.rows = rows;
  m.view.cols = cols;
  m.view.ld = cols;
  m.view.device = DeviceKind::kHost;
  m.keep = Napi::Persistent(array.As<Napi::Object>());
  return m;
}

JsFloats get_floats(Napi::Env env, Napi::Value value, const char* name, size_t length, bool optional) {
  JsFloats out;
  if (optional && (value.IsNull() || value.IsUndefined())) return out;
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_invalid(env, std::string("Expected a Float32Array for ") + name);
  Napi::Float32Array array = value.As<Napi::Float32Array>();
  if (array.ElementLength() != length)
    throw_invalid(env, std::string("Expected ") + std::to_string(length) + " elements in " + name + " but received " +
                           std::to_string(array.ElementLength()));
  out.data = array.Data();
  out.length = length;
  out.keep = Napi::Persistent(array.As<Napi::Object>());
  return out;
}

template <class T>
Napi::ArrayBuffer adopt(Napi::Env env, HostArray<T>&& array) {
  const size_t bytes = array.size * sizeof(T);
#ifdef NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(buffer.Data(), array.data.get(), bytes);
  return buffer;
#else
  if (bytes == 0) return Napi::ArrayBuffer::New(env, 0);
  T* data = array.data.release();
  return Napi::ArrayBuffer::New(env, data, bytes, [](Napi::Env, void* p) { std::free(p); });
#endif
}

template Napi::ArrayBuffer adopt<float>(Napi::Env, HostArray<float>&&);
template Napi::ArrayBuffer adopt<uint8_t>(Napi::Env, HostArray<uint8_t>&&);
template Napi::ArrayBuffer adopt<int32_t>(Napi::Env, HostArray<int32_t>&&);

}  // namespace vlmq::napi
