// Elementwise and data movement: convert_rows, subtract_rows, count_nonfinite, reverse, the
// gathers, zero_columns, the diagonals and triangles, mirror_lower, copy, fill, max_asymmetry.
// All of them are exact in f32 (a conversion, a subtraction and a product are each rounded once),
// so results are compared bit for bit; max_asymmetry's value is compared within 1e-6.
#include <algorithm>
#include <cmath>
#include <tuple>
#include <type_traits>

#include "harness.h"

namespace vlmq::conformance {
namespace {

// Finite f16 values of every exponent, subnormals and zeros included.
std::vector<uint16_t> random_f16(Rng& rng, int64_t n) {
  std::vector<uint16_t> out(static_cast<size_t>(n));
  for (uint16_t& h : out) h = static_cast<uint16_t>((rng.next() & 0x8000) | (rng.below(31) << 10) | rng.below(1024));
  return out;
}

// bf16 values with magnitudes between 2^-32 and 2^31.
std::vector<uint16_t> random_bf16(Rng& rng, int64_t n) {
  std::vector<uint16_t> out(static_cast<size_t>(n));
  for (uint16_t& h : out) h = static_cast<uint16_t>((rng.next() & 0x8000) | ((0x5f + rng.below(64)) << 7) | rng.below(128));
  return out;
}

// A float matrix of any of the three dtypes on the backend, and its values as f32.
struct FloatInput {
  Operand<float> f32;
  Operand<uint16_t> half;
  DType dtype = DType::kF32;
  std::vector<float> values;
  MatrixView view() const { return dtype == DType::kF32 ? f32.view() : half.view(); }
};

Status make_float_input(Backend& b, Rng& rng, const std::string& name, DType dtype, int64_t rows, int64_t cols, Layout layout,
                        FloatInput* out) {
  out->dtype = dtype;
  if (dtype == DType::kF32) {
    out->values = rng.floats(rows * cols, -100.0f, 100.0f);
    return make_operand(b, name, rows, cols, layout, out->values, &out->f32);
  }
  const std::vector<uint16_t> bits = dtype == DType::kF16 ? random_f16(rng, rows * cols) : random_bf16(rng, rows * cols);
  out->values.resize(bits.size());
  for (size_t k = 0; k < bits.size(); k++)
    out->values[k] = static_cast<float>(dtype == DType::kF16 ? f16_value(bits[k]) : bf16_value(bits[k]));
  return make_operand(b, name, rows, cols, layout, bits, &out->half, dtype);
}

void convert_cases(Suite& s) {
  Backend& b = s.backend;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16})
    for (bool scaled : {false, true})
      for (auto [rows, cols, layout] : {std::tuple{1, 1, Layout::kContiguous}, {7, 33, Layout::kOffset}, {67, 130, Layout::kOffset}}) {
        const std::string name = std::string(dtype_name(dtype)) + " " + dims_of(rows, cols, layout) + (scaled ? ", row_scale" : "");
        s.run("convert_rows", name, [&b, dtype, scaled, rows = rows, cols = cols, layout = layout](Rng& rng) {
          FloatInput src;
          Operand<float> dst, scale;
          CONF_SETUP(make_float_input(b, rng, "src", dtype, rows, cols, layout, &src));
          CONF_SETUP(make_operand(b, "dst", rows, cols, layout, rng.floats(rows * cols), &dst));
          const std::vector<float> factors = rng.floats(rows, -2.0f, 2.0f);
          CONF_SETUP(make_operand(b, "row_scale", 1, rows, Layout::kOffset, factors, &scale));
          CONF_CALL(b.convert_rows(dst.mat(), src.view(), scaled ? scale.mat() : MatF{}));
          std::vector<float> got, want(src.values);
          if (scaled)
            for (int64_t k = 0; k < rows * cols; k++) want[k] = src.values[k] * factors[k / cols];
          CONF_CHECK(read(b, dst, &got));
          return same("dst", cols, got, want);
        });
      }
}

void subtract_cases(Suite& s) {
  Backend& b = s.backend;
  const DType F32 = DType::kF32, F16 = DType::kF16, BF16 = DType::kBF16;
  for (auto [da, db] : {std::pair{F32, F32}, {F16, F16}, {BF16, BF16}, {F16, BF16}, {F32, BF16}})
    for (auto [rows, cols, layout, scaled] :
         {std::tuple{1, 1, Layout::kContiguous, false}, {7, 33, Layout::kOffset, true}, {33, 67, Layout::kOffset, false}}) {
      const std::string name = std::string(dtype_name(da)) + " − " + dtype_name(db) + " " + dims_of(rows, cols, layout) +
                               (scaled ? ", row_scale" : "");
      s.run("subtract_rows", name, [&b, da = da, db = db, rows = rows, cols = cols, layout = layout, scaled = scaled](Rng& rng) {
        FloatInput a, c;
        Operand<float> dst, scale;
        CONF_SETUP(make_float_input(b, rng, "a", da, rows, cols, layout, &a));
        CONF_SETUP(make_float_input(b, rng, "b", db, rows, cols, Layout::kOffset, &c));
        CONF_SETUP(make_operand(b, "dst", rows, cols, layout, rng.floats(rows * cols), &dst));
        const std::vector<float> factors = rng.floats(rows, -2.0f, 2.0f);
        CONF_SETUP(make_operand(b, "row_scale", 1, rows, Layout::kContiguous, factors, &scale));
        CONF_CALL(b.subtract_rows(dst.mat(), a.view(), c.view(), scaled ? scale.mat() : MatF{}));
        std::vector<float> got, want(a.values.size());
        for (int64_t k = 0; k < rows * cols; k++) {
          want[k] = a.values[k] - c.values[k];
          if (scaled) want[k] *= factors[k / cols];
        }
        CONF_CHECK(read(b, dst, &got));
        return same("dst", cols, got, want);
      });
    }
}

// NaN, +inf and −inf in each dtype's bits.
uint16_t half_special(DType dtype, int which) {
  static const uint16_t f16[3] = {0x7E00, 0x7C00, 0xFC00}, bf16[3] = {0x7FC0, 0x7F80, 0xFF80};
  return dtype == DType::kF16 ? f16[which] : bf16[which];
}

void count_nonfinite_cases(Suite& s) {
  Backend& b = s.backend;
  struct Shape {
    const char* name;
    int64_t rows, cols, specials;  // specials < 0: one, at the last element
  };
  const Shape shapes[] = {{"[7, 33] at an offset, none (the guards around the view are NaN)", 7, 33, 0},
                          {"[33, 67] at an offset, NaN and ±inf at random places", 33, 67, 9},
                          {"[67, 130] at an offset, one at the last element", 67, 130, -1},
                          {"1×1 NaN", 1, 1, -1},
                          {"1×1 finite", 1, 1, 0}};
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16})
    for (const Shape& sh : shapes)
      s.run("count_nonfinite", std::string(dtype_name(dtype)) + " " + sh.name, [&b, dtype, sh](Rng& rng) {
        const int64_t n = sh.rows * sh.cols;
        std::vector<int64_t> places;
        if (sh.specials < 0) places.push_back(n - 1);
        for (int64_t k = 0; k < sh.specials; k++) places.push_back(rng.below(n));
        std::vector<float> f32 = rng.floats(n, -3e38f, 3e38f);  // large finite values stay finite
        std::vector<uint16_t> half = dtype == DType::kF16 ? random_f16(rng, n) : random_bf16(rng, n);
        for (size_t k = 0; k < places.size(); k++) {
          const int which = static_cast<int>(k % 3);
          f32[places[k]] = which == 0 ? NAN : which == 1 ? INFINITY : -INFINITY;
          half[places[k]] = half_special(dtype, which);
        }
        int64_t want = 0, want_first = -1;
        for (int64_t k = 0; k < n; k++) {
          const double v = dtype == DType::kF32 ? f32[k] : dtype == DType::kF16 ? f16_value(half[k]) : bf16_value(half[k]);
          if (!std::isfinite(v)) want++, want_first = want_first < 0 ? k : want_first;
        }
        Operand<float> a32;
        Operand<uint16_t> a16;
        MatrixView a;
        if (dtype == DType::kF32) {
          CONF_SETUP(make_operand(b, "a", sh.rows, sh.cols, Layout::kOffset, f32, &a32));
          a = a32.view();
        } else {
          CONF_SETUP(make_operand(b, "a", sh.rows, sh.cols, Layout::kOffset, half, &a16, dtype));
          a = a16.view();
        }
        int64_t count = -7, first = -7;
        CONF_CALL(b.count_nonfinite(a, &count, &first));
        if (count != want || first != want_first)
          return fail("count " + std::to_string(count) + ", first " + std::to_string(first) + "; expected " + std::to_string(want) +
                      ", " + std::to_string(want_first));
        return pass(std::to_string(want) + " non-finite");
      });
}

void reverse_cases(Suite& s) {
  Backend& b = s.backend;
  for (auto [rows, cols, layout, in_place] : {std::tuple{1, 1, Layout::kContiguous, false}, {7, 33, Layout::kOffset, false},
                                              {67, 130, Layout::kOffset, false}, {1, 1, Layout::kContiguous, true},
                                              {33, 67, Layout::kContiguous, true}, {130, 130, Layout::kContiguous, true}}) {
    s.run("reverse", dims_of(rows, cols, layout) + (in_place ? ", in place" : ""),
          [&b, rows = rows, cols = cols, layout = layout, in_place = in_place](Rng& rng) {
            Operand<float> src, dst;
            const std::vector<float> values = rng.floats(rows * cols);
            CONF_SETUP(make_operand(b, "src", rows, cols, layout, values, &src));
            CONF_SETUP(make_operand(b, "dst", rows, cols, Layout::kOffset, rng.floats(rows * cols), &dst));
            const Operand<float>& out = in_place ? src : dst;
            CONF_CALL(b.reverse(out.mat(), src.mat()));
            std::vector<float> got, want(values.rbegin(), values.rend());  // row-major reversal: both indices at once
            CONF_CHECK(read(b, out, &got));
            if (!in_place) CONF_CHECK(unchanged(b, src));
            return same("dst", cols, got, want);
          });
  }
  s.run("reverse", "in place on a strided view is refused (in place needs a contiguous matrix)", [&b](Rng& rng) {
    Operand<float> a;
    CONF_SETUP(make_operand(b, "a", 7, 33, Layout::kOffset, rng.floats(7 * 33), &a));
    CONF_CHECK(returns(b.reverse(a.mat(), a.mat()), Code::kInvalidArgument));
    return unchanged(b, a);
  });
}

// dst[:, j] = src[:, index[j]] for f32 or u8, out of place or in place.
template <class T>
void gather_columns_cases(Suite& s, const char* primitive) {
  Backend& b = s.backend;
  struct Case {
    const char* name;
    int64_t rows, cols;
    Layout layout;
    bool in_place, permutation;
  };
  const Case cases[] = {{"1×1", 1, 1, Layout::kContiguous, false, true},
                        {"[7, 33] at an offset, a permutation", 7, 33, Layout::kOffset, false, true},
                        {"[33, 67] at an offset, an index with repeats", 33, 67, Layout::kOffset, false, false},
                        {"[67, 130] at an offset, a permutation", 67, 130, Layout::kOffset, false, true},
                        {"1×1 in place", 1, 1, Layout::kContiguous, true, true},
                        {"[33, 67] in place", 33, 67, Layout::kContiguous, true, true},
                        {"[7, 130] at an offset, in place", 7, 130, Layout::kOffset, true, true}};
  for (const Case& c : cases)
    s.run(primitive, c.name, [&b, c](Rng& rng) {
      std::vector<T> values(static_cast<size_t>(c.rows * c.cols));
      for (T& x : values) x = static_cast<T>(std::is_same_v<T, float> ? rng.uniform(-1.0f, 1.0f) : static_cast<float>(rng.below(256)));
      std::vector<int32_t> index = rng.permutation(c.cols);
      if (!c.permutation)
        for (int32_t& j : index) j = static_cast<int32_t>(rng.below(c.cols));
      Operand<T> src, dst;
      Operand<int32_t> perm;
      CONF_SETUP(make_operand(b, "src", c.rows, c.cols, c.layout, values, &src));
      CONF_SETUP(make_operand(b, "dst", c.rows, c.cols, Layout::kOffset, std::vector<T>(values.size(), T(3)), &dst));
      CONF_SETUP(make_operand(b, "perm", 1, c.cols, Layout::kOffset, index, &perm));
      const Operand<T>& out = c.in_place ? src : dst;
      if constexpr (std::is_same_v<T, uint8_t>) CONF_CALL(b.gather_columns_u8(out.mat(), src.mat(), perm.mat()));
      else CONF_CALL(b.gather_columns(out.mat(), src.mat(), perm.mat()));
      std::vector<T> got, want(values.size());
      for (int64_t i = 0; i < c.rows; i++)
        for (int64_t j = 0; j < c.cols; j++) want[i * c.cols + j] = values[i * c.cols + index[j]];
      CONF_CHECK(read(b, out, &got));
      CONF_CHECK(unchanged(b, perm));
      return same("dst", c.cols, got, want);
    });
}

void gather_symmetric_cases(Suite& s) {
  Backend& b = s.backend;
  for (auto [n, layout] : {std::pair{1, Layout::kContiguous}, {7, Layout::kOffset}, {67, Layout::kOffset}, {130, Layout::kContiguous}})
    s.run("gather_symmetric", dims_of(n, n, layout), [&b, n = n, layout = layout](Rng& rng) {
      const std::vector<float> values = rng.floats(n * n);
      const std::vector<int32_t> index = rng.permutation(n);
      Operand<float> src, dst;
      Operand<int32_t> perm;
      CONF_SETUP(make_operand(b, "src", n, n, layout, values, &src));
      CONF_SETUP(make_operand(b, "dst", n, n, Layout::kOffset, rng.floats(n * n), &dst));
      CONF_SETUP(make_operand(b, "perm", 1, n, Layout::kOffset, index, &perm));
      CONF_CALL(b.gather_symmetric(dst.mat(), src.mat(), perm.mat()));
      std::vector<float> got, want(values.size());
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) want[i * n + j] = values[index[i] * n + index[j]];
      CONF_CHECK(read(b, dst, &got));
      CONF_CHECK(unchanged(b, src));
      return same("dst", n, got, want);
    });
}

void gather_rows_cases(Suite& s) {
  Backend& b = s.backend;
  for (auto [src_rows, dst_rows, cols] : {std::tuple{1, 1, 1}, {33, 20, 7}, {7, 40, 5}, {67, 67, 130}})
    s.run("gather_rows", shape(dst_rows, cols) + " from " + shape(src_rows, cols) + " at offsets, an index with repeats",
          [&b, src_rows = src_rows, dst_rows = dst_rows, cols = cols](Rng& rng) {
            const std::vector<float> values = rng.floats(src_rows * cols);
            std::vector<int32_t> index(static_cast<size_t>(dst_rows));
            for (int32_t& r : index) r = static_cast<int32_t>(rng.below(src_rows));
            if (dst_rows > 1) index[0] = src_rows - 1, index[1] = 0;  // both ends, and never the identity
            Operand<float> src, dst;
            Operand<int32_t> idx;
            CONF_SETUP(make_operand(b, "src", src_rows, cols, Layout::kOffset, values, &src));
            CONF_SETUP(make_operand(b, "dst", dst_rows, cols, Layout::kOffset, rng.floats(dst_rows * cols), &dst));
            CONF_SETUP(make_operand(b, "index", 1, dst_rows, Layout::kOffset, index, &idx));
            CONF_CALL(b.gather_rows(dst.mat(), src.mat(), idx.mat()));
            std::vector<float> got, want;
            for (int32_t r : index) want.insert(want.end(), values.begin() + r * cols, values.begin() + (r + 1) * cols);
            CONF_CHECK(read(b, dst, &got));
            CONF_CHECK(unchanged(b, src));
            return same("dst", cols, got, want);
          });
}

// A primitive that edits a in place (or only reads it): edit runs it on the operand and turns
// *want, a's contents as uploaded, into what a must hold afterwards.
using Edit = std::function<Outcome(Backend&, Rng&, const Operand<float>&, std::vector<float>* want)>;

void edit_case(Suite& s, const char* primitive, const std::string& name, int64_t rows, int64_t cols, Layout layout, const Edit& edit) {
  Backend& b = s.backend;
  s.run(primitive, name.empty() ? dims_of(rows, cols, layout) : dims_of(rows, cols, layout) + ", " + name, [&b, rows, cols, layout, edit](Rng& rng) {
    Operand<float> a;
    CONF_SETUP(make_operand(b, "a", rows, cols, layout, rng.floats(rows * cols), &a));
    std::vector<float> want = contents(a), got;
    CONF_CHECK(edit(b, rng, a, &want));
    CONF_CHECK(read(b, a, &got));
    return same("a", cols, got, want);
  });
}

const std::tuple<int64_t, int64_t, Layout> kEditShapes[] = {
    {1, 1, Layout::kContiguous}, {7, 33, Layout::kOffset}, {33, 7, Layout::kOffset}, {67, 67, Layout::kOffset}, {130, 130, Layout::kContiguous}};

void edit_cases(Suite& s) {
  for (auto [rows, cols, layout] : kEditShapes) {
    edit_case(s, "zero_columns", "a mask of 0, 1, 7 and 255", rows, cols, layout, [cols = cols](Backend& b, Rng& rng, const Operand<float>& a, std::vector<float>* want) {
      std::vector<uint8_t> mask(static_cast<size_t>(cols));
      const uint8_t values[] = {0, 1, 7, 255};
      for (uint8_t& m : mask) m = values[rng.below(4)];
      Operand<uint8_t> dev;
      CONF_SETUP(make_operand(b, "mask", 1, cols, Layout::kOffset, mask, &dev));
      CONF_CALL(b.zero_columns(a.mat(), dev.mat()));
      for (size_t k = 0; k < want->size(); k++)
        if (mask[k % cols]) (*want)[k] = 0.0f;
      return unchanged(b, dev);
    });
    edit_case(s, "set_diagonal", "", rows, cols, layout, [rows = rows, cols = cols](Backend& b, Rng& rng, const Operand<float>& a, std::vector<float>* want) {
      const int64_t n = std::min(rows, cols);
      const std::vector<float> values = rng.floats(n, 5.0f, 6.0f);
      Operand<float> dev;
      CONF_SETUP(make_operand(b, "values", 1, n, Layout::kOffset, values, &dev));
      CONF_CALL(b.set_diagonal(a.mat(), dev.mat()));
      for (int64_t i = 0; i < n; i++) (*want)[i * cols + i] = values[i];
      return unchanged(b, dev);
    });
    edit_case(s, "get_diagonal", "", rows, cols, layout, [rows = rows, cols = cols](Backend& b, Rng& rng, const Operand<float>& a, std::vector<float>* want) {
      const int64_t n = std::min(rows, cols);
      Operand<float> out;
      CONF_SETUP(make_operand(b, "out", 1, n, Layout::kOffset, rng.floats(n), &out));
      CONF_CALL(b.get_diagonal(a.mat(), out.mat()));
      std::vector<float> got, diagonal;
      for (int64_t i = 0; i < n; i++) diagonal.push_back((*want)[i * cols + i]);
      CONF_CHECK(read(b, out, &got));
      return same("out", n, got, diagonal);
    });
    for (bool lower : {true, false})
      for (bool diagonal : {false, true})
        edit_case(s, "zero_triangle", std::string(lower ? "lower" : "upper") + (diagonal ? " with the diagonal" : ", strictly"), rows, cols,
                  layout, [lower, diagonal, cols = cols](Backend& b, Rng&, const Operand<float>& a, std::vector<float>* want) {
                    CONF_CALL(b.zero_triangle(a.mat(), lower, diagonal));
                    for (size_t k = 0; k < want->size(); k++) {
                      const int64_t i = static_cast<int64_t>(k) / cols, j = static_cast<int64_t>(k) % cols;
                      if ((lower ? j < i : j > i) || (diagonal && i == j)) (*want)[k] = 0.0f;
                    }
                    return pass();
                  });
    edit_case(s, "fill", "with −2.5", rows, cols, layout, [](Backend& b, Rng&, const Operand<float>& a, std::vector<float>* want) {
      CONF_CALL(b.fill(a.mat(), -2.5f));
      std::fill(want->begin(), want->end(), -2.5f);
      return pass();
    });
    edit_case(s, "copy", "from a contiguous matrix", rows, cols, layout, [rows = rows, cols = cols](Backend& b, Rng& rng, const Operand<float>& a, std::vector<float>* want) {
      Operand<float> src;
      *want = rng.floats(rows * cols);
      CONF_SETUP(make_operand(b, "src", rows, cols, Layout::kContiguous, *want, &src));
      CONF_CALL(b.copy(a.mat(), src.mat()));
      return unchanged(b, src);
    });
    edit_case(s, "copy", "from a matrix at an offset", rows, cols, layout, [rows = rows, cols = cols](Backend& b, Rng& rng, const Operand<float>& a, std::vector<float>* want) {
      Operand<float> src;
      *want = rng.floats(rows * cols);
      CONF_SETUP(make_operand(b, "src", rows, cols, Layout::kOffset, *want, &src));
      CONF_CALL(b.copy(a.mat(), src.mat()));
      return unchanged(b, src);
    });
    if (rows == cols)
      edit_case(s, "mirror_lower", "", rows, cols, layout, [n = rows](Backend& b, Rng&, const Operand<float>& a, std::vector<float>* want) {
        CONF_CALL(b.mirror_lower(a.mat()));
        for (int64_t i = 0; i < n; i++)
          for (int64_t j = i + 1; j < n; j++) (*want)[i * n + j] = (*want)[j * n + i];
        return pass();
      });
  }
  edit_case(s, "mirror_lower", "", 7, 7, Layout::kOffset, [](Backend& b, Rng&, const Operand<float>& a, std::vector<float>* want) {
    CONF_CALL(b.mirror_lower(a.mat()));
    for (int64_t i = 0; i < 7; i++)
      for (int64_t j = i + 1; j < 7; j++) (*want)[i * 7 + j] = (*want)[j * 7 + i];
    return pass();
  });
}

// A symmetric matrix with relative asymmetries below 5e-4 everywhere but at (wi, wj), and the
// largest one there; max_asymmetry must find it.
void max_asymmetry_cases(Suite& s) {
  Backend& b = s.backend;
  struct Case {
    const char* name;
    int64_t n;
    float floor;
    int kind;  // 0: symmetric; 1: one pair stands out; 2: the floor hides a tiny pair
  };
  const Case cases[] = {{"1×1", 1, 0.0f, 0},
                        {"[7, 7] at an offset, symmetric", 7, 1e-6f, 0},
                        {"[33, 33] at an offset, one pair stands out", 33, 1e-6f, 1},
                        {"[130, 130] at an offset, one pair stands out beyond two 64-tiles", 130, 1e-6f, 1},
                        {"[67, 67] at an offset, floor 1e-3 hides a tiny pair's asymmetry", 67, 1e-3f, 2},
                        {"[67, 67] at an offset, floor 0 shows a tiny pair's asymmetry", 67, 0.0f, 2}};
  for (const Case& c : cases)
    s.run("max_asymmetry", c.name, [&b, c](Rng& rng) {
      const int64_t n = c.n;
      std::vector<float> a(static_cast<size_t>(n * n));
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j <= i; j++) {
          a[i * n + j] = rng.uniform(0.5f, 2.0f) * (rng.below(2) ? 1.0f : -1.0f);
          a[j * n + i] = c.kind == 0 ? a[i * n + j] : a[i * n + j] * (1.0f + rng.uniform(0.0f, 1e-3f));
        }
      if (c.kind == 1) {
        const int64_t i = 1 + rng.below(n - 1), j = rng.below(i);
        a[j * n + i] = a[i * n + j] * 1.1f;
      }
      if (c.kind == 2) {
        a[5 * n + 2] = 1e-7f, a[2 * n + 5] = 3e-7f;  // relative 0.5 alone, 2e-4 against a floor of 1e-3
        a[9 * n + 3] = 1.0f, a[3 * n + 9] = 1.01f;    // relative 0.005
      }
      double want = 0;
      int64_t wi = 0, wj = 0;
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < i; j++) {
          const double x = a[i * n + j], y = a[j * n + i], denominator = std::fabs(x) + std::fabs(y) + c.floor;
          const double rel = denominator > 0 ? std::fabs(x - y) / denominator : 0.0;
          if (rel > want) want = rel, wi = i, wj = j;
        }
      Operand<float> dev;
      CONF_SETUP(make_operand(b, "a", n, n, Layout::kOffset, a, &dev));
      float worst = -1;
      int64_t i = -1, j = -1;
      CONF_CALL(b.max_asymmetry(dev.mat(), c.floor, &worst, &i, &j));
      if (i != wi || j != wj)
        return fail("at (" + std::to_string(i) + ", " + std::to_string(j) + "), expected (" + std::to_string(wi) + ", " + std::to_string(wj) + ")");
      CONF_CHECK(unchanged(b, dev));
      return near_value("worst", worst, want, 1e-6 * want);
    });
}

}  // namespace

void movement_cases(Suite& s) {
  convert_cases(s);
  subtract_cases(s);
  count_nonfinite_cases(s);
  reverse_cases(s);
  gather_columns_cases<float>(s, "gather_columns");
  gather_columns_cases<uint8_t>(s, "gather_columns_u8");
  gather_symmetric_cases(s);
  gather_rows_cases(s);
  edit_cases(s);
  max_asymmetry_cases(s);
}

}  // namespace vlmq::conformance
