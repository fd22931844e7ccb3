// VisionTower: one VLM's vision tower (Qwen2-VL, Qwen2.5-VL or SigLIP with its projector) in
// native memory, with async forward passes from pixel values to the language model's embeddings.
#pragma once
#include <napi.h>

#include <memory>
#include <mutex>

#include "vlmq/vision.h"

namespace vlmq::napi {

struct VisionCore {
  std::mutex mutex;  // one job at a time uses the weights
  Backend* backend = nullptr;  // where the weights live, chosen at construction
  VisionDims dims;
  VisionWeights weights;
};

class VisionTowerWrap : public Napi::ObjectWrap<VisionTowerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit VisionTowerWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value SetTensor(const Napi::CallbackInfo& info);
  Napi::Value Qwen(const Napi::CallbackInfo& info);
  Napi::Value Siglip(const Napi::CallbackInfo& info);
  Napi::Value WindowIndex(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);
  std::shared_ptr<VisionCore> core(Napi::Env env) const;

  std::shared_ptr<VisionCore> core_;
};

}  // namespace vlmq::napi
