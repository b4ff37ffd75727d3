// Fixed-point rescaling arithmetic, bit-exact to the definitions used by gemmlowp
// (fixedpoint/fixedpoint.h) and TensorFlow Lite's integer kernels
// (kernels/internal/common.h, quantization_util.cc), the oracle for integer-only inference:
//
//   quantize_multiplier(real)  -> (M0, shift): real ≈ M0 · 2^(shift − 31), M0 in [2^30, 2^31)
//   srdhm(a, b)                -> saturating rounding doubling high multiply: a·b / 2^31 rounded
//                                 to nearest. The reference adds a nudge of 2^30 (product >= 0) or
//                                 1 − 2^30 (product < 0) and divides by 2^31 truncating toward
//                                 zero; for negative products that is the same as
//                                 floor((a·b + 2^30) / 2^31), so ties round toward +infinity
//                                 (−0.5 -> 0, −1.5 -> −1), the same as ARM's SQRDMULH.
//                                 srdhm(INT32_MIN, INT32_MIN) = INT32_MAX (the only overflow).
//   rounding_divide_by_pot(x,n)-> x / 2^n rounded to nearest, ties away from zero, 0 <= n <= 31
//   multiply_by_quantized_multiplier(x, M0, shift)
//                              -> rounding_divide_by_pot(srdhm(x · 2^max(shift,0), M0), max(−shift,0))
//
// The two roundings are applied one after the other ("double rounding", TFLite's default build;
// TFLITE_SINGLE_ROUNDING is not modelled), so the result can differ by one from the exactly
// rounded x·real: multiply_by_quantized_multiplier(1, 2^30, −1) is 1 although 1·0.25 rounds to 0.
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

// Splits a real multiplier (>= 0, finite) into M0 and shift, TFLite's QuantizeMultiplier:
// real = q · 2^e with q in [0.5, 1) (frexp); M0 = round(q · 2^31) with ties away from zero; if
// that rounds up to 2^31, M0 = 2^30 and e + 1; shift = e. Consequences:
//   * 0 -> (0, 0); powers of two 2^k -> (2^30, k + 1);
//   * multipliers that need e < −31 (real below about 2^-32) are flushed to (0, 0), which makes
//     every product 0 instead of needing a right shift of more than 31;
//   * the result's shift is in [−31, 30]; multipliers that would need shift 31 (real at or above
//     about 2^30) are rejected, because the left shift would overflow every non-trivial input.
// Throws lowbit::Error on negative, NaN or infinite input (TFLite accepts negative multipliers;
// none of lowbit's rescales is negative, so a negative one is a bug worth reporting).
QuantizedMultiplier quantize_multiplier(double real_multiplier);

inline int32_t srdhm(int32_t a, int32_t b) {
  const bool overflow = a == b && a == std::numeric_limits<int32_t>::min();
  const int64_t ab = static_cast<int64_t>(a) * static_cast<int64_t>(b);
  const int64_t nudge = ab >= 0 ? (int64_t{1} << 30) : (1 - (int64_t{1} << 30));
  const int32_t high = static_cast<int32_t>((ab + nudge) / (int64_t{1} << 31));  // truncates toward zero
  return overflow ? std::numeric_limits<int32_t>::max() : high;
}

// int16 version: a·b / 2^15 rounded to nearest with ties toward +infinity (nudge 2^14 or 1 − 2^14,
// truncating division), srdhm16(INT16_MIN, INT16_MIN) = INT16_MAX.
inline int16_t srdhm16(int16_t a, int16_t b) {
  const bool overflow = a == b && a == std::numeric_limits<int16_t>::min();
  const int32_t ab = static_cast<int32_t>(a) * static_cast<int32_t>(b);
  const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
  const int16_t high = static_cast<int16_t>((ab + nudge) / (1 << 15));
  return overflow ? std::numeric_limits<int16_t>::max() : high;
}

// x / 2^exponent rounded to nearest, ties away from zero (gemmlowp RoundingDivideByPOT). The
// arithmetic shift floors; one is added when the discarded bits are above one half (x >= 0) or
// above one half plus one unit (x < 0), so a negative tie stays at the floor, away from zero:
// (−3, 1) -> −2, (3, 1) -> 2. Requires 0 <= exponent <= 31.
inline int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((int64_t{1} << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

// x · 2^left_shift modulo 2^32 (0 <= left_shift <= 31), through unsigned arithmetic so that the
// wrap is defined.
inline int32_t shift_left_wrapping(int32_t x, int left_shift) {
  return static_cast<int32_t>(static_cast<uint32_t>(x) << left_shift);
}

// x · M0 · 2^(shift − 31) with TFLite's double rounding. Requires shift in [−31, 30] (the range
// quantize_multiplier produces) and M0 >= 0. For shift > 0 the left shift wraps on overflow.
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
