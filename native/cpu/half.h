// Exact conversions from the 16-bit float formats to f32, and a finiteness test on raw bits.
#pragma once
#include <cstdint>
#include <cstring>

namespace vlmq {

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(static_cast<uint32_t>(h) << 16); }

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t mantissa = h & 0x3ff;
  if (exponent == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mantissa << 13));  // inf / NaN
  if (exponent != 0) return bits_to_f32(sign | ((exponent + 112) << 23) | (mantissa << 13));
  // zero or subnormal: mantissa · 2^-24, exact in f32
  const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-08f;
  return sign ? -magnitude : magnitude;
}

inline bool f16_finite(uint16_t h) { return (h & 0x7c00) != 0x7c00; }
inline bool bf16_finite(uint16_t h) { return (h & 0x7f80) != 0x7f80; }

}  // namespace vlmq
