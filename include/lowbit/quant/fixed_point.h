// Fixed-point rescaling arithmetic, bit-exact to the definitions used by gemmlowp and
// TensorFlow Lite's integer kernels (the oracle for integer-only inference):
//
//   quantize_multiplier(real)  -> (M0, shift): real ≈ M0 · 2^(shift − 31), M0 in [2^30, 2^31)
//   srdhm(a, b)                -> saturating rounding doubling high multiply: round(a·b / 2^31)
//                                 with ties away from zero; srdhm(INT32_MIN, INT32_MIN) = INT32_MAX
//   rounding_divide_by_pot(x,n)-> x / 2^n rounded to nearest, ties away from zero, 0 <= n <= 31
//   multiply_by_quantized_multiplier(x, M0, shift)
//                              -> rounding_divide_by_pot(srdhm(x · 2^max(shift,0), M0), max(−shift,0))
//
// Shift convention (TFLite): a positive shift is a left shift. All functions are defined for
// every int32 input; the left shift of x wraps modulo 2^32 as the reference does on hardware,
// and is written so that it is not undefined behaviour in C++.
#pragma once

#include <cstdint>
#include <limits>

namespace lowbit::quant {

struct QuantizedMultiplier {
  int32_t multiplier = 0;  // M0, 0 or in [2^30, 2^31)
  int shift = 0;           // positive = left shift
};

// Splits a real multiplier (>= 0, finite) into M0 and shift. Throws lowbit::Error on negative,
// NaN or infinite input. Multipliers below 2^-31 · 2^-31 become (0, 0).
QuantizedMultiplier quantize_multiplier(double real_multiplier);

inline int32_t srdhm(int32_t a, int32_t b) {
  const bool overflow = a == b && a == std::numeric_limits<int32_t>::min();
  const int64_t ab = static_cast<int64_t>(a) * static_cast<int64_t>(b);
  const int64_t nudge = ab >= 0 ? (int64_t{1} << 30) : (1 - (int64_t{1} << 30));
  const int32_t high = static_cast<int32_t>((ab + nudge) / (int64_t{1} << 31));  // truncates toward zero
  return overflow ? std::numeric_limits<int32_t>::max() : high;
}

// int16 version: round(a·b / 2^15), srdhm16(INT16_MIN, INT16_MIN) = INT16_MAX.
inline int16_t srdhm16(int16_t a, int16_t b) {
  const bool overflow = a == b && a == std::numeric_limits<int16_t>::min();
  const int32_t ab = static_cast<int32_t>(a) * static_cast<int32_t>(b);
  const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
  const int16_t high = static_cast<int16_t>((ab + nudge) / (1 << 15));
  return overflow ? std::numeric_limits<int16_t>::max() : high;
}

// Requires 0 <= exponent <= 31.
inline int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((int64_t{1} << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

inline int32_t shift_left_wrapping(int32_t x, int left_shift) {
  return static_cast<int32_t>(static_cast<uint32_t>(x) << left_shift);
}

// shift in [-31, 30].
inline int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  return rounding_divide_by_pot(srdhm(shift_left_wrapping(x, left), multiplier), right);
}

inline int32_t multiply_by_quantized_multiplier(int32_t x, QuantizedMultiplier m) {
  return multiply_by_quantized_multiplier(x, m.multiplier, m.shift);
}

inline int32_t saturate(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

}  // namespace lowbit::quant
