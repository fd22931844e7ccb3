// Internal to native/conformance: the pieces every case is made of. A case allocates operands on
// the backend under test (Operand: a view at an offset inside a larger allocation whose other
// cells hold guard values), uploads them, runs one primitive, reads the results back, and
// compares them with a host reference (same, near). It never touches device memory from the host
// and never calls another primitive of the backend, so that a failure names the primitive at fault.
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "vlmq/backend.h"
#include "vlmq/conformance.h"

namespace vlmq::conformance {

// What a case found: ok with a note on how close it came, or a failure saying what differed.
struct Outcome {
  bool ok = true;
  std::string detail;
};
inline Outcome pass(std::string note = "") { return {true, std::move(note)}; }
inline Outcome fail(std::string why) { return {false, std::move(why)}; }

// A failed check ends the case with its outcome.
#define CONF_CHECK(expr)                              \
  do {                                                \
    ::vlmq::conformance::Outcome conf_outcome_ = (expr); \
    if (!conf_outcome_.ok) return conf_outcome_;      \
  } while (0)

// Allocation, upload and download around the primitive: a failure there fails the case too.
#define CONF_SETUP(expr)                                                                         \
  do {                                                                                           \
    ::vlmq::Status conf_status_ = (expr);                                                        \
    if (!conf_status_.ok()) return ::vlmq::conformance::fail("setup (" #expr "): " + conf_status_.message()); \
  } while (0)

// The primitive under test must succeed.
#define CONF_CALL(expr) CONF_CHECK(::vlmq::conformance::succeeded(expr))

// xorshift64*: small, fast, and the same sequence on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {}
  uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  float uniform(float lo, float hi) { return static_cast<float>(lo + (hi - lo) * uniform()); }
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }
  std::vector<float> floats(int64_t n, float lo = -1.0f, float hi = 1.0f);
  // A random permutation of [0, n).
  std::vector<int32_t> permutation(int64_t n);

 private:
  uint64_t state_;
};

// Runs cases and collects their results.
class Suite {
 public:
  explicit Suite(Backend& under_test) : backend(under_test) {}
  // Runs `body` with a generator seeded by primitive and name; an exception is a failed case.
  void run(const std::string& primitive, const std::string& name, const std::function<Outcome(Rng&)>& body);

  Backend& backend;
  std::vector<ConformanceResult> results;
};

// The sections of the suite (one file each).
void memory_cases(Suite& s);        // alloc, upload, download, synchronize, memory_pool
void movement_cases(Suite& s);      // conversions, gathers, triangles, diagonals, copies
void linalg_cases(Suite& s);        // gemm, syrk_lower, trmm_right_upper, cholesky_lower, invert_lower
void transformer_cases(Suite& s);   // norms, RoPE, activations, attention and its backward, patches
void quantization_cases(Suite& s);  // fit_params, quantize_groups, sweep_block
void error_cases(Suite& s);         // other devices, dtypes, shapes and indices

// --- operands ------------------------------------------------------------------------------------

// kOffset puts the operand 2 rows down and 3 columns in, inside an allocation 3 rows taller and 5
// columns wider (so ld > cols and the view starts at an offset); the other cells hold guard values.
enum class Layout : uint8_t { kContiguous, kOffset };

// Guard cells: NaN for floats (a primitive that reads past its view produces NaN; one that writes
// there is caught by the bits changing), values no index or mask uses for the integer types.
template <class T> T guard_value();

// The dtype of T's elements (uint16_t: F16 unless said otherwise).
template <class T> DType default_dtype();

template <class T>
struct Operand {
  std::string name;
  DType dtype = default_dtype<T>();
  int64_t rows = 0, cols = 0;
  int64_t top = 0, left = 0, ld = 0, total_rows = 0;
  Device device;
  Buffer buffer;
  std::vector<T> image;  // the whole allocation as uploaded: guards and the operand's values

  T* origin() const { return buffer.as<T>() + top * ld + left; }  // pointer arithmetic only
  MatrixView view() const { return {origin(), dtype, rows, cols, ld, device}; }
  Mat<T> mat() const { return {origin(), rows, cols, ld, device}; }
  MatrixView whole() const { return {buffer.as<T>(), dtype, total_rows, ld, ld, device}; }
  int64_t at(int64_t i, int64_t j) const { return (top + i) * ld + left + j; }  // index into image
};

// Allocates a [rows, cols] operand on `backend` and uploads `values` (row-major, rows · cols) into
// it, with guards around it for kOffset.
template <class T>
Status make_operand(Backend& backend, std::string name, int64_t rows, int64_t cols, Layout layout,
                    const std::vector<T>& values, Operand<T>* out, DType dtype = default_dtype<T>());

// Downloads the whole allocation: the operand's values into *values (row-major), and a failure
// naming the first guard cell that changed.
template <class T>
Outcome read(Backend& backend, const Operand<T>& op, std::vector<T>* values);

// The operand's elements as uploaded (row-major).
template <class T>
std::vector<T> contents(const Operand<T>& op);

// The operand is exactly as uploaded, guards included.
template <class T>
Outcome unchanged(Backend& backend, const Operand<T>& op);

// --- comparisons -----------------------------------------------------------------------------------

// Bit-for-bit equality of got and want (row-major with `cols` columns), naming the first difference.
template <class T>
Outcome same(const std::string& what, int64_t cols, const std::vector<T>& got, const std::vector<T>& want);

// |got − want| ≤ atol + rtol · scale[i] element by element (scale empty: |want[i]|); NaN fails.
Outcome near(const std::string& what, int64_t cols, const std::vector<float>& got, const std::vector<double>& want,
             double rtol, double atol, const std::vector<double>& scale = {});
Outcome near_value(const std::string& what, double got, double want, double tol);

// The primitive succeeded, or returned exactly `code`.
Outcome succeeded(const Status& status);
Outcome returns(const Status& status, Code code);

std::string code_name(Code code);
std::string number(double x);  // %.9g
std::string shape(int64_t rows, int64_t cols);
std::string dims_of(int64_t rows, int64_t cols, Layout layout);  // "[7, 33] at an offset"
std::vector<double> widen(const std::vector<float>& x);

// The bits of `from` read as a To of the same size (std::bit_cast before C++20).
template <class To, class From>
To bits_as(From from) {
  static_assert(sizeof(To) == sizeof(From), "bits_as needs types of one size");
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}

// --- references shared by several sections ------------------------------------------------------------

// An f16 or bf16 bit pattern as a double (from the IEEE formats, not from the backend's code).
double f16_value(uint16_t h);
double bf16_value(uint16_t h);
// The nearest f16 value to x (ties to even), kept within [2^-24, 65504] (quant_math.h, ARCHITECTURE.md).
float nearest_f16_scale(float x);

// (scale, zero) of one row by IST's min/max rule (docs/algorithm.md §1.3, mse = false).
struct RefParams {
  float scale, zero;
};
RefParams minmax_params(const float* x, int64_t n, const Grid& grid);
RefParams params_for_range(float xmin, float xmax, const Grid& grid);
// code = clamp(round_half_even(x / scale) + zero, 0, maxq), in f32 as the contract's kernels do.
float ref_code(float x, RefParams p, float maxq);
float ref_dequant(float code, RefParams p);

}  // namespace vlmq::conformance
