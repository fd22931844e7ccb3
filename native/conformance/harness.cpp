#include "harness.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <type_traits>

namespace vlmq::conformance {
namespace {

// FNV-1a: the seed of a case is its name, so a case draws the same inputs in any run and order.
uint64_t seed_of(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

template <class T>
bool same_bits(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <class T>
std::string show(T x) {
  if constexpr (std::is_floating_point_v<T>) return number(x);
  else return std::to_string(static_cast<int64_t>(x));
}

std::string cell(const std::string& what, int64_t index, int64_t cols) {
  return what + "[" + std::to_string(index / cols) + ", " + std::to_string(index % cols) + "]";
}

}  // namespace

std::vector<float> Rng::floats(int64_t n, float lo, float hi) {
  std::vector<float> out(static_cast<size_t>(n));
  for (float& x : out) x = uniform(lo, hi);
  return out;
}

std::vector<int32_t> Rng::permutation(int64_t n) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) p[i] = static_cast<int32_t>(i);
  for (int64_t i = n - 1; i > 0; i--) std::swap(p[i], p[below(i + 1)]);
  return p;
}

void Suite::run(const std::string& primitive, const std::string& name, const std::function<Outcome(Rng&)>& body) {
  Rng rng(seed_of(primitive + "/" + name));
  ConformanceResult result{primitive, name, false, ""};
  try {
    const Outcome outcome = body(rng);
    result.ok = outcome.ok;
    result.detail = outcome.detail;
  } catch (const std::exception& e) {
    result.detail = std::string("threw: ") + e.what();
  } catch (...) {
    result.detail = "threw an exception of unknown type";
  }
  results.push_back(std::move(result));
}

// --- operands ------------------------------------------------------------------------------------------

template <> float guard_value<float>() { return bits_as<float>(0x7fc0beefu); }
template <> double guard_value<double>() { return bits_as<double>(0x7ff8beefbeefbeefull); }
template <> int32_t guard_value<int32_t>() { return -7777; }
template <> uint8_t guard_value<uint8_t>() { return 0xA5; }
template <> uint16_t guard_value<uint16_t>() { return 0x7FC1; }  // NaN as f16 and as bf16

template <> DType default_dtype<float>() { return DType::kF32; }
template <> DType default_dtype<double>() { return DType::kF64; }
template <> DType default_dtype<int32_t>() { return DType::kI32; }
template <> DType default_dtype<uint8_t>() { return DType::kU8; }
template <> DType default_dtype<uint16_t>() { return DType::kF16; }

template <class T>
Status make_operand(Backend& backend, std::string name, int64_t rows, int64_t cols, Layout layout,
                    const std::vector<T>& values, Operand<T>* out, DType dtype) {
  if (static_cast<int64_t>(values.size()) != rows * cols)
    return Internal(name + ": " + std::to_string(values.size()) + " values for a " + shape(rows, cols) + " operand");
  const bool offset = layout == Layout::kOffset;
  Operand<T>& op = *out;
  op.name = std::move(name);
  op.dtype = dtype;
  op.rows = rows;
  op.cols = cols;
  op.top = offset ? 2 : 0;
  op.left = offset ? 3 : 0;
  op.ld = cols + (offset ? 5 : 0);
  op.total_rows = rows + (offset ? 3 : 0);
  op.device = backend.device();
  op.image.assign(static_cast<size_t>(op.total_rows * op.ld), guard_value<T>());
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) op.image[op.at(i, j)] = values[i * cols + j];
  VLMQ_TRY(backend.alloc(&op.buffer, op.image.size() * sizeof(T), BufferUsage::kScratch));
  return backend.upload(op.whole(), op.image.data());
}

template <class T>
Outcome read(Backend& backend, const Operand<T>& op, std::vector<T>* values) {
  std::vector<T> all(op.image.size());
  const Status status = backend.download(all.data(), op.whole());
  if (!status.ok()) return fail("download of " + op.name + " failed: " + status.message());
  values->assign(static_cast<size_t>(op.rows * op.cols), T{});
  for (int64_t r = 0; r < op.total_rows; r++)
    for (int64_t c = 0; c < op.ld; c++) {
      const int64_t k = r * op.ld + c;
      const int64_t i = r - op.top, j = c - op.left;
      if (i >= 0 && i < op.rows && j >= 0 && j < op.cols) (*values)[i * op.cols + j] = all[k];
      else if (!same_bits(all[k], op.image[k]))
        return fail("wrote outside its view: guard cell " + op.name + "[" + std::to_string(i) + ", " + std::to_string(j) +
                    "] (relative to the view) changed from " + show(op.image[k]) + " to " + show(all[k]));
    }
  return pass();
}

template <class T>
std::vector<T> contents(const Operand<T>& op) {
  std::vector<T> out(static_cast<size_t>(op.rows * op.cols));
  for (int64_t i = 0; i < op.rows; i++)
    for (int64_t j = 0; j < op.cols; j++) out[i * op.cols + j] = op.image[op.at(i, j)];
  return out;
}

template <class T>
Outcome unchanged(Backend& backend, const Operand<T>& op) {
  std::vector<T> got;
  CONF_CHECK(read(backend, op, &got));
  return same(op.name + " (an input)", op.cols, got, contents(op));
}

#define VLMQ_CONFORMANCE_OPERAND(T)                                                                                 \
  template Status make_operand<T>(Backend&, std::string, int64_t, int64_t, Layout, const std::vector<T>&, Operand<T>*, \
                                  DType);                                                                           \
  template Outcome read<T>(Backend&, const Operand<T>&, std::vector<T>*);                                            \
  template std::vector<T> contents<T>(const Operand<T>&);                                                            \
  template Outcome unchanged<T>(Backend&, const Operand<T>&);                                                       \
  template Outcome same<T>(const std::string&, int64_t, const std::vector<T>&, const std::vector<T>&);
VLMQ_CONFORMANCE_OPERAND(float)
VLMQ_CONFORMANCE_OPERAND(double)
VLMQ_CONFORMANCE_OPERAND(int32_t)
VLMQ_CONFORMANCE_OPERAND(uint8_t)
VLMQ_CONFORMANCE_OPERAND(uint16_t)
#undef VLMQ_CONFORMANCE_OPERAND

// --- comparisons -------------------------------------------------------------------------------------------

template <class T>
Outcome same(const std::string& what, int64_t cols, const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size())
    return fail(what + ": " + std::to_string(got.size()) + " elements, expected " + std::to_string(want.size()));
  for (size_t k = 0; k < got.size(); k++)
    if (!same_bits(got[k], want[k]))
      return fail(cell(what, static_cast<int64_t>(k), std::max<int64_t>(cols, 1)) + " = " + show(got[k]) + ", expected " +
                  show(want[k]));
  return pass("bit-identical");
}

Outcome near(const std::string& what, int64_t cols, const std::vector<float>& got, const std::vector<double>& want,
             double rtol, double atol, const std::vector<double>& scale) {
  if (got.size() != want.size())
    return fail(what + ": " + std::to_string(got.size()) + " elements, expected " + std::to_string(want.size()));
  double worst = 0;
  for (size_t k = 0; k < got.size(); k++) {
    const double tol = atol + rtol * (scale.empty() ? std::fabs(want[k]) : scale[k]);
    const double err = std::fabs(static_cast<double>(got[k]) - want[k]);
    if (!(err <= tol))
      return fail(cell(what, static_cast<int64_t>(k), std::max<int64_t>(cols, 1)) + " = " + number(got[k]) + ", expected " +
                  number(want[k]) + " (|error| " + number(err) + " > tolerance " + number(tol) + ")");
    if (tol > 0) worst = std::max(worst, err / tol);
  }
  return pass("largest error " + number(worst) + " of the tolerance");
}

Outcome near_value(const std::string& what, double got, double want, double tol) {
  const double err = std::fabs(got - want);
  if (!(err <= tol)) return fail(what + " = " + number(got) + ", expected " + number(want) + " (tolerance " + number(tol) + ")");
  return pass(what + " within " + number(err));
}

std::string code_name(Code code) {
  switch (code) {
    case Code::kOk: return "Ok";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kOutOfMemory: return "OutOfMemory";
    case Code::kNotPositiveDefinite: return "NotPositiveDefinite";
    case Code::kUnsupported: return "Unsupported";
    case Code::kCancelled: return "Cancelled";
    case Code::kBackend: return "Backend";
    case Code::kInternal: return "Internal";
  }
  return "code " + std::to_string(static_cast<int>(code));
}

Outcome succeeded(const Status& status) {
  if (status.ok()) return pass();
  return fail("returned " + code_name(status.code()) + ": " + status.message());
}

Outcome returns(const Status& status, Code code) {
  if (status.code() == code) return pass(code_name(code) + (status.message().empty() ? "" : ": " + status.message()));
  return fail("returned " + code_name(status.code()) + (status.message().empty() ? "" : " (" + status.message() + ")") +
              ", expected " + code_name(code));
}

std::string number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", x);
  return text;
}

std::string shape(int64_t rows, int64_t cols) { return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]"; }

std::string dims_of(int64_t rows, int64_t cols, Layout layout) {
  return shape(rows, cols) + (layout == Layout::kOffset ? " at an offset" : "");
}

std::vector<double> widen(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

// --- references ----------------------------------------------------------------------------------------------

double f16_value(uint16_t h) {
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  const int exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  if (exponent == 0x1f) return mantissa ? std::numeric_limits<double>::quiet_NaN() : sign * HUGE_VAL;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

double bf16_value(uint16_t h) { return bits_as<float>(static_cast<uint32_t>(h) << 16); }

float nearest_f16_scale(float x) {
  const double kMin = std::ldexp(1.0, -24), kMax = 65504.0;
  if (!(x > kMin)) return static_cast<float>(kMin);
  if (x >= kMax) return static_cast<float>(kMax);
  int e = 0;
  std::frexp(static_cast<double>(x), &e);  // x = m · 2^e with m in [0.5, 1): x in [2^(e−1), 2^e)
  const double quantum = e - 1 >= -14 ? std::ldexp(1.0, e - 1 - 10) : kMin;
  return static_cast<float>(std::nearbyint(x / quantum) * quantum);
}

RefParams params_for_range(float xmin, float xmax, const Grid& grid) {
  const float maxq = static_cast<float>((1 << grid.bits) - 1);
  float scale = (xmax - xmin) / maxq;
  if (grid.fp16_scales) scale = nearest_f16_scale(scale);
  float zero = grid.sym ? (maxq + 1.0f) / 2.0f : std::nearbyint(-xmin / scale);
  zero = std::min(std::max(zero, 0.0f), maxq);
  return {scale, zero};
}

RefParams minmax_params(const float* x, int64_t n, const Grid& grid) {
  float xmin = 0, xmax = 0;  // the range always contains 0
  for (int64_t i = 0; i < n; i++) xmin = std::min(xmin, x[i]), xmax = std::max(xmax, x[i]);
  if (grid.sym) {
    xmax = std::max(std::fabs(xmin), xmax);
    if (xmin < 0) xmin = -xmax;
  }
  if (xmin == 0 && xmax == 0) xmin = -1, xmax = 1;
  return params_for_range(xmin, xmax, grid);
}

float ref_code(float x, RefParams p, float maxq) {
  const float c = std::nearbyint(x / p.scale) + p.zero;
  return std::min(std::max(c, 0.0f), maxq);
}

float ref_dequant(float code, RefParams p) { return p.scale * (code - p.zero); }

}  // namespace vlmq::conformance
