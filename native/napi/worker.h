// The one way slow native work runs: an AsyncWorker on the libuv pool that settles a Promise.
// Execute() touches no JS; it runs a job that returns a Status. OnOK builds the JS result; a
// failed Status rejects with an Error carrying the status code. References to the JS inputs
// (TypedArrays, wrapped objects) are held until the worker is destroyed on the JS thread.
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "common.h"

namespace vlmq::napi {

// Progress reports (done, total) sent to a JS callback without blocking the worker; when the
// queue is full the report is dropped, never queued behind the work.
class ProgressSink {
 public:
  ProgressSink(Napi::Env env, Napi::Value callback);
  ~ProgressSink();
  void report(int64_t done, int64_t total);
  std::function<void(int64_t, int64_t)> as_function();

 private:
  struct Report {
    int64_t done, total;
  };
  static void call_js(Napi::Env env, Napi::Function callback, std::nullptr_t*, Report* report);
  using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Report, call_js>;
  Tsfn tsfn_;
  bool active_ = false;
};

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Job = std::function<Status()>;
  using Build = std::function<Napi::Value(Napi::Env)>;

  PromiseWorker(Napi::Env env, const char* resource, Job job, Build build)
      : Napi::AsyncWorker(env, resource), deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)),
        build_(std::move(build)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }
  void keep(Napi::ObjectReference&& ref) { refs_.push_back(std::move(ref)); }
  void keep_alive(std::shared_ptr<void> owner) { owners_.push_back(std::move(owner)); }
  void set_progress(std::unique_ptr<ProgressSink> sink) { progress_ = std::move(sink); }

 protected:
  void Execute() override {
    try {
      status_ = job_();
    } catch (const std::bad_alloc&) {
      status_ = {Code::kOutOfMemory, "out of memory"};
    } catch (const std::exception& e) {
      status_ = Internal(std::string("native failure: ") + e.what());
    } catch (...) {
      status_ = Internal("native failure of unknown type");
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    progress_.reset();  // release the callback before settling
    if (!status_.ok()) {
      deferred_.Reject(make_error(env, status_).Value());
      return;
    }
    try {
      deferred_.Resolve(build_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    progress_.reset();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Job job_;
  Build build_;
  Status status_;
  std::vector<Napi::ObjectReference> refs_;
  std::vector<std::shared_ptr<void>> owners_;
  std::unique_ptr<ProgressSink> progress_;
};

// Queues `job` on a PromiseWorker that holds the calling object `self` and the non-empty `inputs`
// (TypedArrays) until it is done, and resolves with what `build` makes: the shape of every method
// of a native class.
inline Napi::Promise queue_job(Napi::Env env, const char* resource, PromiseWorker::Job job, PromiseWorker::Build build, Napi::Value self,
                               std::initializer_list<Napi::ObjectReference*> inputs) {
  auto* worker = new PromiseWorker(env, resource, std::move(job), std::move(build));
  for (Napi::ObjectReference* input : inputs)
    if (!input->IsEmpty()) worker->keep(std::move(*input));
  worker->keep(Napi::Persistent(self.As<Napi::Object>()));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

// Resolves with `out` as a Float32Array over the native memory (no copy).
inline PromiseWorker::Build float_result(std::shared_ptr<HostArray<float>> out) {
  return [out](Napi::Env e) -> Napi::Value {
    const size_t n = out->size;
    return Napi::Float32Array::New(e, n, adopt(e, std::move(*out)), 0);
  };
}

// setTensor(name, matrix) of a native class that holds weights: `store(name, view)` runs on the
// pool while the matrix is kept alive.
template <typename Store>
Napi::Promise queue_set_tensor(const Napi::CallbackInfo& info, const char* resource, Store store) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_invalid(env, "Expected a tensor name");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  JsMatrix value = get_matrix(env, info[1], name.c_str());
  const MatrixView view = value.view;
  return queue_job(env, resource, [store, name, view] { return store(name, view); }, [](Napi::Env e) { return e.Undefined(); }, info.This(), {&value.keep});
}

// A cancel flag shared between a JS CancelToken and any number of running jobs.
using CancelFlag = std::shared_ptr<std::atomic<bool>>;

class CancelToken : public Napi::ObjectWrap<CancelToken> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit CancelToken(const Napi::CallbackInfo& info);
  const CancelFlag& flag() const { return flag_; }

 private:
  void Cancel(const Napi::CallbackInfo& info);
  Napi::Value Cancelled(const Napi::CallbackInfo& info);
  CancelFlag flag_ = std::make_shared<std::atomic<bool>>(false);
};

// The flag of a CancelToken argument, or null when the argument is null/undefined.
CancelFlag get_cancel(Napi::Env env, Napi::Value value);

}  // namespace vlmq::napi
