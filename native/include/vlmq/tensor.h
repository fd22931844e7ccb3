// Non-owning views of row-major matrices in a backend's memory. A view is a pointer, a shape, a
// row stride, a dtype and the device the memory lives on; it owns nothing. Vectors are one-row
// matrices, so index arrays and per-row parameters are views like any other operand.
#pragma once
#include <cstddef>
#include <cstdint>

namespace vlmq {

enum class DType : uint8_t { kF32, kF16, kBF16, kI32, kU8, kF64 };
enum class DeviceKind : uint8_t { kHost, kCuda };

// Where memory lives: the host, or CUDA device `ordinal`.
struct Device {
  DeviceKind kind = DeviceKind::kHost;
  int ordinal = 0;
  Device() = default;
  Device(DeviceKind k, int o = 0) : kind(k), ordinal(o) {}  // NOLINT: a kind alone is ordinal 0
  bool operator==(const Device& o) const { return kind == o.kind && ordinal == o.ordinal; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF64: return 8;
    case DType::kF32: case DType::kI32: return 4;
    case DType::kF16: case DType::kBF16: return 2;
    case DType::kU8: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI32: return "I32";
    case DType::kU8: return "U8";
    case DType::kF64: return "F64";
  }
  return "?";
}

inline bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::kF32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::kF64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::kI32; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::kU8; };

// A row-major matrix of any dtype: element (i, j) is at data + (i * ld + j) * dtype_size.
struct MatrixView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0, ld = 0;
  Device device;

  int64_t elements() const { return rows * cols; }
  // Rows [r0, r0 + count) of this view.
  MatrixView row_range(int64_t r0, int64_t count) const {
    MatrixView v = *this;
    v.data = static_cast<char*>(data) + r0 * ld * static_cast<int64_t>(dtype_size(dtype));
    v.rows = count;
    return v;
  }
};

// A row-major matrix of element type T (float, double, int32_t, uint8_t), the working type of
// the algorithms. Mat<float> is written MatF; a vector of n elements is a [1, n] Mat.
template <class T>
struct Mat {
  T* data = nullptr;
  int64_t rows = 0, cols = 0, ld = 0;
  Device device;

  bool empty() const { return data == nullptr; }
  T* row(int64_t i) const { return data + i * ld; }
  // The sub-matrix [r0, r0 + nr) × [c0, c0 + nc); shares memory with this one.
  Mat block(int64_t r0, int64_t c0, int64_t nr, int64_t nc) const { return {data + r0 * ld + c0, nr, nc, ld, device}; }
  MatrixView view() const { return {data, DTypeOf<T>::value, rows, cols, ld, device}; }
};

using MatF = Mat<float>;
using MatD = Mat<double>;
using MatI = Mat<int32_t>;
using MatU8 = Mat<uint8_t>;

// A [1, n] view of n contiguous elements.
template <class T>
Mat<T> vector_view(T* data, int64_t n, Device device) {
  return {data, 1, n, n, device};
}

// A contiguous [rows, cols] host matrix over memory the caller owns.
template <class T>
Mat<T> host_mat(T* data, int64_t rows, int64_t cols) {
  return {data, rows, cols, cols, Device(DeviceKind::kHost)};
}

}  // namespace vlmq
