// DecoderLayer: one Qwen2 decoder layer's weights in native memory, with async forward passes
// (to any module group's input) and VLMQ's attention-block importance factors.
#pragma once
#include <napi.h>

#include <memory>
#include <mutex>

#include "vlmq/decoder.h"

namespace vlmq::napi {

struct LayerCore {
  std::mutex mutex;  // one job at a time uses the weights
  Backend* backend = nullptr;  // where the weights live, chosen at construction
  DecoderDims dims;
  DecoderLayerWeights weights;
};

class DecoderLayerWrap : public Napi::ObjectWrap<DecoderLayerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit DecoderLayerWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value SetTensor(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Importance(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);
  std::shared_ptr<LayerCore> core(Napi::Env env) const;

  std::shared_ptr<LayerCore> core_;
};

}  // namespace vlmq::napi
