// HessianAccumulator: native-owned calibration statistics (H and, optionally, the GPTAQ cross
// term) that JS feeds token batches into. The statistics live in a shared core object so that a
// running job keeps them alive even if JS disposes the wrapper meanwhile.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <mutex>

#include "vlmq/core.h"

namespace vlmq::napi {

struct AccumulatorCore {
  std::mutex mutex;  // one job at a time touches the statistics
  HessianState state;
  std::atomic<double> samples{0};  // state.samples, readable from JS while a job runs
};

class HessianAccumulator : public Napi::ObjectWrap<HessianAccumulator> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit HessianAccumulator(const Napi::CallbackInfo& info);
  void Finalize(Napi::Env env) override;

  // The core of a live accumulator, or throws naming `name` when it was disposed.
  std::shared_ptr<AccumulatorCore> core(Napi::Env env, const char* name) const;

 private:
  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);
  Napi::Value GetN(const Napi::CallbackInfo& info);
  Napi::Value GetCrossTerm(const Napi::CallbackInfo& info);
  Napi::Value GetSamples(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  void release_memory_accounting(Napi::Env env);

  std::shared_ptr<AccumulatorCore> core_;
  int64_t n_ = 0;
  bool cross_ = false;
  int64_t accounted_bytes_ = 0;
};

}  // namespace vlmq::napi
