// Tensor: an f32 matrix in a backend's memory, held by JS as a handle. The pipeline keeps the
// activation streams in Tensors from one layer to the next; JS reads the bytes (read()) only to
// spill them to disk. dispose() frees the memory at once; the finalizer is the safety net.
#pragma once
#include <napi.h>

#include <memory>

#include "vlmq/core.h"

namespace vlmq::napi {

struct TensorCore {
  Backend* backend = nullptr;
  Buffer buffer;
  int64_t rows = 0, cols = 0;
  MatF matrix() const { return buffer.matrix(rows, cols); }
};

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit TensorWrap(const Napi::CallbackInfo& info);
  void Finalize(Napi::Env env) override;

  // A JS Tensor holding `core` (made on the JS thread, e.g. when a job's Promise resolves).
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<TensorCore> core);
  // The core behind a Tensor argument, or null when `value` is not a Tensor. Throws when it was
  // disposed or lives on another backend than `backend`.
  static std::shared_ptr<TensorCore> From(Napi::Env env, Napi::Value value, const Backend& backend, const char* name);

 private:
  Napi::Value Read(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);
  Napi::Value GetRows(const Napi::CallbackInfo& info);
  Napi::Value GetCols(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  void release(Napi::Env env);

  std::shared_ptr<TensorCore> core_;
  int64_t accounted_bytes_ = 0;
};

// tensorFromHost(data: Float32Array, rows, cols, device?): Promise<Tensor> — a copy on the backend.
Napi::Value TensorFromHost(const Napi::CallbackInfo& info);

}  // namespace vlmq::napi
