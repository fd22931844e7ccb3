// Non-owning views of row-major matrices in a backend's memory. A view is a pointer, a shape, a
// row stride, a dtype and the device the memory lives on; it owns nothing.
#pragma once
#include <cstddef>
#include <cstdint>

namespace vlmq {

enum class DType : uint8_t { kF32, kF16, kBF16, kI32, kU8 };
enum class DeviceKind : uint8_t { kHost, kCuda };

inline size_t dtype_size(DType t) {
  switch (t) {
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
  }
  return "?";
}

// A row-major matrix of any dtype: element (i, j) is at data + (i * ld + j) * dtype_size.
struct MatrixView {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0, ld = 0;
  DeviceKind device = DeviceKind::kHost;
};

// A writable row-major f32 matrix, the working type of every algorithm.
struct MatF {
  float* data = nullptr;
  int64_t rows = 0, cols = 0, ld = 0;
  DeviceKind device = DeviceKind::kHost;

  float* row(int64_t i) const { return data + i * ld; }
  // The sub-matrix [r0, r0 + nr) × [c0, c0 + nc); shares memory with this one.
  MatF block(int64_t r0, int64_t c0, int64_t nr, int64_t nc) const {
    return {data + r0 * ld + c0, nr, nc, ld, device};
  }
  MatrixView view() const { return {data, DType::kF32, rows, cols, ld, device}; }
};

}  // namespace vlmq
