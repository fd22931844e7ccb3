// quantizeLinear(weight, statistics, options, cancel, onProgress, device?): Promise<result>
// The options object arrives complete and validated from lib/quant; it is re-checked cheaply
// here and copied into LinearOptions (the baton) before the job is queued.
#include "quantize_linear.h"

#include <string>

#include "addon_data.h"
#include "common.h"
#include "hessian_accumulator.h"
#include "worker.h"

namespace vlmq::napi {
namespace {

constexpr const char* kOptions = "options";

Method parse_method(Napi::Env env, const std::string& name) {
  if (name == "rtn") return Method::kRtn;
  if (name == "gptq") return Method::kGptq;
  if (name == "gptaq") return Method::kGptaq;
  throw_invalid(env, "Expected rtn, gptq or gptaq for options.method but received " + name);
}

LinearOptions parse_options(Napi::Env env, Napi::Value value) {
  Napi::Object o = get_object(env, value, kOptions);
  LinearOptions opt;
  opt.method = parse_method(env, get_string(o, "method", kOptions));
  opt.grid.bits = static_cast<int>(get_integer(o, "bits", kOptions));
  opt.grid.sym = get_bool(o, "sym", kOptions);
  opt.grid.mse = get_bool(o, "mse", kOptions);
  opt.grid.norm = static_cast<float>(get_number(o, "mseNorm", kOptions));
  opt.grid.grid = static_cast<int>(get_integer(o, "mseGrid", kOptions));
  opt.grid.max_shrink = static_cast<float>(get_number(o, "mseMaxShrink", kOptions));
  opt.grid.fp16_scales = !get_bool(o, "fp32Scales", kOptions);
  opt.group_size = get_integer(o, "groupSize", kOptions);
  opt.act_order = get_bool(o, "actOrder", kOptions);
  opt.static_groups = get_bool(o, "staticGroups", kOptions);
  opt.block_size = get_integer(o, "blockSize", kOptions);
  opt.damping.percdamp = get_number(o, "percdamp", kOptions);
  opt.damping.increment = get_number(o, "dampIncrement", kOptions);
  opt.damping.max_percdamp = get_number(o, "maxPercdamp", kOptions);
  opt.alpha = static_cast<float>(get_number(o, "alpha", kOptions));
  opt.gptaq_prequant_lazy = get_string(o, "gptaqVariant", kOptions) == "derivation";
  return opt;
}

// The statistics argument: { accumulator } or { hessian: Float32Array, dxxt: Float32Array | null }
// or null (RTN).
struct Statistics {
  std::shared_ptr<AccumulatorCore> accumulator;
  JsFloats hessian, dxxt;
};

Statistics parse_statistics(Napi::Env env, Napi::Value value, int64_t n) {
  Statistics s;
  if (value.IsNull() || value.IsUndefined()) return s;
  Napi::Object o = get_object(env, value, "statistics");
  Napi::Value acc = o.Get("accumulator");
  if (!acc.IsUndefined()) {
    if (!is_instance(acc, addon_data(env).hessian_accumulator))
      throw_invalid(env, "Expected a HessianAccumulator for statistics.accumulator");
    auto* wrapper = Napi::ObjectWrap<HessianAccumulator>::Unwrap(acc.As<Napi::Object>());
    s.accumulator = wrapper->core(env, "statistics.accumulator");
    if (s.accumulator->state.n != n)
      throw_invalid(env, "statistics.accumulator has n = " + std::to_string(s.accumulator->state.n) +
                             " but the weight has " + std::to_string(n) + " columns");
    return s;
  }
  const size_t nn = static_cast<size_t>(n) * static_cast<size_t>(n);
  s.hessian = get_floats(env, o.Get("hessian"), "statistics.hessian", nn, false);
  s.dxxt = get_floats(env, o.Get("dxxt"), "statistics.dxxt", nn, true);
  return s;
}

MatF host_matrix(const float* data, int64_t n) { return host_mat(const_cast<float*>(data), n, n); }

Napi::Value build_result(Napi::Env env, LinearResult& r) {
  Napi::Object out = Napi::Object::New(env);
  const size_t mn = static_cast<size_t>(r.rows) * r.cols, mg = static_cast<size_t>(r.rows) * r.ngroups;
  out.Set("rows", Napi::Number::New(env, static_cast<double>(r.rows)));
  out.Set("cols", Napi::Number::New(env, static_cast<double>(r.cols)));
  out.Set("groups", Napi::Number::New(env, static_cast<double>(r.ngroups)));
  out.Set("dequantized", Napi::Float32Array::New(env, mn, adopt(env, std::move(r.dequantized)), 0));
  out.Set("codes", Napi::Uint8Array::New(env, mn, adopt(env, std::move(r.codes)), 0));
  out.Set("scales", Napi::Float32Array::New(env, mg, adopt(env, std::move(r.scales)), 0));
  out.Set("zeros", Napi::Float32Array::New(env, mg, adopt(env, std::move(r.zeros)), 0));
  const size_t n = static_cast<size_t>(r.cols), perm_len = r.perm.size;
  out.Set("gIdx", Napi::Int32Array::New(env, n, adopt(env, std::move(r.g_idx)), 0));
  out.Set("perm", perm_len ? Napi::Value(Napi::Int32Array::New(env, perm_len, adopt(env, std::move(r.perm)), 0)) : env.Null());
  out.Set("loss", Napi::Number::New(env, r.loss));
  out.Set("fallback", Napi::Boolean::New(env, r.fallback_rtn));
  out.Set("deadColumns", Napi::Number::New(env, static_cast<double>(r.dead_columns)));
  Napi::Object damping = Napi::Object::New(env);
  damping.Set("ok", Napi::Boolean::New(env, r.damping.ok));
  damping.Set("percdamp", Napi::Number::New(env, r.damping.percdamp));
  damping.Set("lambda", Napi::Number::New(env, r.damping.lambda));
  Napi::Array tried = Napi::Array::New(env, r.damping.tried.size());
  for (size_t i = 0; i < r.damping.tried.size(); i++) tried.Set(static_cast<uint32_t>(i), Napi::Number::New(env, r.damping.tried[i]));
  damping.Set("tried", tried);
  damping.Set("failedMinor", Napi::Number::New(env, static_cast<double>(r.damping.failed_minor)));
  out.Set("damping", damping);
  Napi::Object seconds = Napi::Object::New(env);
  seconds.Set("prepare", Napi::Number::New(env, r.seconds_prepare));
  seconds.Set("factor", Napi::Number::New(env, r.seconds_factor));
  seconds.Set("sweep", Napi::Number::New(env, r.seconds_sweep));
  seconds.Set("correction", Napi::Number::New(env, r.seconds_correction));
  out.Set("seconds", seconds);
  return out;
}

}  // namespace

Napi::Value QuantizeLinear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  JsMatrix weight = get_matrix(env, info[0], "weight");
  const int64_t n = weight.view.cols;
  Statistics stats = parse_statistics(env, info[1], n);
  const LinearOptions options = parse_options(env, info[2]);
  CancelFlag cancel = get_cancel(env, info[3]);
  auto progress = std::make_unique<ProgressSink>(env, info[4]);

  const bool have_stats = stats.accumulator || stats.hessian.data;
  if (options.method != Method::kRtn && !have_stats) throw_invalid(env, "statistics are required for gptq and gptaq");
  if (options.method == Method::kGptaq && !stats.dxxt.data && !(stats.accumulator && stats.accumulator->state.cross_term))
    throw_invalid(env, "gptaq needs the cross term dxxt (an accumulator created with crossTerm: true, or statistics.dxxt)");

  Backend& backend = stats.accumulator ? *stats.accumulator->state.backend : get_backend(env, info[5]);
  if (stats.accumulator && !info[5].IsUndefined() && &get_backend(env, info[5]) != &backend)
    throw_invalid(env, std::string("device: the accumulator's statistics live on ") + backend.name());
  LinearInput input;
  input.W = weight.view;
  if (stats.hessian.data) input.H = host_matrix(stats.hessian.data, n);
  if (stats.dxxt.data) input.dXXT = host_matrix(stats.dxxt.data, n);

  auto result = std::make_shared<LinearResult>();
  std::shared_ptr<AccumulatorCore> accumulator = stats.accumulator;
  std::function<void(int64_t, int64_t)> report = progress->as_function();
  Backend* on = &backend;
  auto job = [on, input, options, cancel, report, result, accumulator]() mutable {
    RunControl control;
    control.cancel = cancel.get();
    control.progress = report;
    Buffer staged_w, staged_h, staged_d;  // host inputs on the backend (no copy on the CPU)
    VLMQ_TRY(to_backend(*on, input.W, &staged_w, &input.W));
    if (!accumulator) {
      if (input.H.data) VLMQ_TRY(to_backend(*on, input.H, &staged_h, &input.H));
      if (input.dXXT.data) VLMQ_TRY(to_backend(*on, input.dXXT, &staged_d, &input.dXXT));
      return quantize_linear(*on, input, options, control, result.get());
    }
    std::lock_guard<std::mutex> lock(accumulator->mutex);
    const HessianState& s = accumulator->state;
    input.H = s.H.matrix(s.n, s.n);
    input.H_lower_only = true;
    if (s.cross_term) input.dXXT = s.dXXT.matrix(s.n, s.n);
    return quantize_linear(*s.backend, input, options, control, result.get());
  };
  auto* worker = new PromiseWorker(env, "vlmq:quantizeLinear", job, [result](Napi::Env e) { return build_result(e, *result); });
  worker->keep(std::move(weight.keep));
  if (!stats.hessian.keep.IsEmpty()) worker->keep(std::move(stats.hessian.keep));
  if (!stats.dxxt.keep.IsEmpty()) worker->keep(std::move(stats.dxxt.keep));
  if (!info[1].IsNull() && !info[1].IsUndefined()) worker->keep(Napi::Persistent(info[1].As<Napi::Object>()));
  worker->set_progress(std::move(progress));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace vlmq::napi
