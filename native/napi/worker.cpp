#include "worker.h"

#include "addon_data.h"

namespace vlmq::napi {

ProgressSink::ProgressSink(Napi::Env env, Napi::Value callback) {
  if (!callback.IsFunction()) return;
  tsfn_ = Tsfn::New(env, callback.As<Napi::Function>(), "vlmq:progress", /*max queue*/ 4, /*threads*/ 1);
  active_ = true;
}

ProgressSink::~ProgressSink() {
  if (active_) tsfn_.Release();
}

void ProgressSink::call_js(Napi::Env env, Napi::Function callback, std::nullptr_t*, Report* report) {
  if (env && callback) {
    try {
      callback.Call({Napi::Number::New(env, static_cast<double>(report->done)),
                     Napi::Number::New(env, static_cast<double>(report->total))});
    } catch (const Napi::Error&) {
      // an exception in a progress listener must not break the job; it is reported by Node
    }
  }
  delete report;
}

void ProgressSink::report(int64_t done, int64_t total) {
  if (!active_) return;
  auto* r = new Report{done, total};
  if (tsfn_.NonBlockingCall(r) != napi_ok) delete r;  // queue full or closing: drop
}

std::function<void(int64_t, int64_t)> ProgressSink::as_function() {
  if (!active_) return {};
  return [this](int64_t done, int64_t total) { report(done, total); };
}

Napi::Function CancelToken::Define(Napi::Env env) {
  return DefineClass(env, "CancelToken",
                     {InstanceMethod<&CancelToken::Cancel>("cancel"), InstanceAccessor<&CancelToken::Cancelled>("cancelled")});
}

CancelToken::CancelToken(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CancelToken>(info) {}

void CancelToken::Cancel(const Napi::CallbackInfo&) { flag_->store(true); }

Napi::Value CancelToken::Cancelled(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), flag_->load()); }

CancelFlag get_cancel(Napi::Env env, Napi::Value value) {
  if (value.IsNull() || value.IsUndefined()) return nullptr;
  if (!is_instance(value, addon_data(env).cancel_token)) throw_invalid(env, "Expected a CancelToken or null for cancel");
  return Napi::ObjectWrap<CancelToken>::Unwrap(value.As<Napi::Object>())->flag();
}

}  // namespace vlmq::napi
