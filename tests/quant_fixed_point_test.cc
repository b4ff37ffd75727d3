// Tests of the gemmlowp / TFLite rescaling arithmetic in lowbit/quant/fixed_point.h.
//
// Edge cases use integers derived by hand (the derivation is in the comment next to each);
// random inputs are compared with references written with 128-bit integers or long double
// (64-bit mantissa, so every product of two int32 values is exact), never with the same
// nudge/mask formulation as the code under test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "lowbit/core/error.h"
#include "lowbit/quant/fixed_point.h"

namespace lowbit::quant {
namespace {

constexpr int32_t kMin = std::numeric_limits<int32_t>::min();
constexpr int32_t kMax = std::numeric_limits<int32_t>::max();

// ---- independent references -------------------------------------------------------------

// a·b / 2^31 rounded to nearest, ties toward +infinity, as floor division on 128-bit integers.
int32_t ref_srdhm(int32_t a, int32_t b) {
  if (a == kMin && b == kMin) return kMax;
  const __int128 p = static_cast<__int128>(a) * b + (__int128{1} << 30);
  const __int128 d = __int128{1} << 31;
  __int128 q = p / d;
  if (p % d != 0 && p < 0) q -= 1;  // C++ division truncates; make it floor
  return static_cast<int32_t>(q);
}

// x / 2^n rounded half away from zero, from the exact long double quotient.
int32_t ref_rdpot(int32_t x, int n) {
  const long double v = std::ldexp(static_cast<long double>(x), -n);
  return static_cast<int32_t>(std::round(v));  // std::round: ties away from zero
}

int32_t ref_mbqm(int32_t x, int32_t m, int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  // Wrap modulo 2^32 by reducing the exact 64-bit product.
  const int64_t wide = static_cast<int64_t>(x) * (int64_t{1} << left);
  const uint32_t low = static_cast<uint32_t>(static_cast<uint64_t>(wide) & 0xffffffffu);
  const int32_t wrapped = low >= 0x80000000u ? static_cast<int32_t>(static_cast<int64_t>(low) - (int64_t{1} << 32))
                                             : static_cast<int32_t>(low);
  return ref_rdpot(ref_srdhm(wrapped, m), right);
}

// ---- srdhm -----------------------------------------------------------------------------

TEST(FixedPoint, SrdhmHandDerivedEdges) {
  // INT32_MIN · INT32_MIN = 2^62; / 2^31 = 2^31 does not fit: saturates.
  EXPECT_EQ(srdhm(kMin, kMin), kMax);
  // (2^31 − 1)^2 / 2^31 = 2^31 − 2 + 2^-31 -> 2^31 − 2.
  EXPECT_EQ(srdhm(kMax, kMax), 2147483646);
  // −2^31 · (2^31 − 1) / 2^31 = −(2^31 − 1) exactly.
  EXPECT_EQ(srdhm(kMin, kMax), -2147483647);
  EXPECT_EQ(srdhm(kMax, kMin), -2147483647);
  // −2^31 · 2^30 / 2^31 = −2^30 exactly.
  EXPECT_EQ(srdhm(kMin, 1 << 30), -(1 << 30));
  // 1 · 2^30 / 2^31 = +0.5: tie, rounds up to 1.
  EXPECT_EQ(srdhm(1, 1 << 30), 1);
  // −1 · 2^30 / 2^31 = −0.5: the nudge 1 − 2^30 gives (−2^31 + 1) / 2^31 = −0.99.. -> 0
  // (truncation): ties go toward +infinity, not away from zero.
  EXPECT_EQ(srdhm(-1, 1 << 30), 0);
  // −3 · 2^30 / 2^31 = −1.5: (−2^32 + 1) / 2^31 = −1.99.. -> −1.
  EXPECT_EQ(srdhm(-3, 1 << 30), -1);
  // 3 · 2^30 / 2^31 = 1.5 -> 2.
  EXPECT_EQ(srdhm(3, 1 << 30), 2);
  // (−2^30 − 1) / 2^31 = −0.5 − 2^-31, just past the tie -> −1; (−2^30 + 1) / 2^31 -> 0.
  EXPECT_EQ(srdhm(-(1 << 30) - 1, 1), -1);
  EXPECT_EQ(srdhm(-(1 << 30) + 1, 1), 0);
  // (−2^31 − 2) / 2^31 = −1 − 2^-30 -> −1.
  EXPECT_EQ(srdhm(-(1 << 30) - 1, 2), -1);
  // Zero and one.
  EXPECT_EQ(srdhm(0, kMin), 0);
  EXPECT_EQ(srdhm(kMin, 0), 0);
  // x · (2^31 − 1) / 2^31 = x − x/2^31: for x = 1 that is 0.99.. -> 1; for −1, −0.99.. -> −1.
  EXPECT_EQ(srdhm(1, kMax), 1);
  EXPECT_EQ(srdhm(-1, kMax), -1);
}

TEST(FixedPoint, SrdhmMatchesReferenceOnRandomInputs) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int32_t> any(kMin, kMax);
  std::uniform_int_distribution<int32_t> small(-70000, 70000);
  for (int i = 0; i < 400000; ++i) {
    const int32_t a = i % 3 == 0 ? small(rng) : any(rng);
    const int32_t b = i % 5 == 0 ? small(rng) : any(rng);
    ASSERT_EQ(srdhm(a, b), ref_srdhm(a, b)) << a << " * " << b;
  }
  // Exact ties: b = 2^30 makes a·b / 2^31 = a / 2 for every a.
  for (int32_t a = -1001; a <= 1001; ++a) ASSERT_EQ(srdhm(a, 1 << 30), ref_srdhm(a, 1 << 30)) << a;
}

TEST(FixedPoint, Srdhm16) {
  constexpr int16_t kMin16 = std::numeric_limits<int16_t>::min();
  constexpr int16_t kMax16 = std::numeric_limits<int16_t>::max();
  EXPECT_EQ(srdhm16(kMin16, kMin16), kMax16);  // 2^30 / 2^15 = 2^15 does not fit
  // (2^15 − 1)^2 / 2^15 = 2^15 − 2 + 2^-15 -> 32766.
  EXPECT_EQ(srdhm16(kMax16, kMax16), 32766);
  // −2^15 · (2^15 − 1) / 2^15 = −32767.
  EXPECT_EQ(srdhm16(kMin16, kMax16), -32767);
  // ±0.5 and ±1.5 ties, as for int32: toward +infinity.
  EXPECT_EQ(srdhm16(1, 1 << 14), 1);
  EXPECT_EQ(srdhm16(-1, 1 << 14), 0);
  EXPECT_EQ(srdhm16(-3, 1 << 14), -1);
  // Exhaustive over a in int16 against b from a grid, reference in floor form.
  for (int a = kMin16; a <= kMax16; ++a) {
    for (int b : {-32768, -32767, -16385, -16384, -3, -1, 0, 1, 2, 16384, 16385, 32767}) {
      int16_t want;
      if (a == kMin16 && b == kMin16) {
        want = kMax16;
      } else {
        const int32_t p = a * b + (1 << 14);
        want = static_cast<int16_t>(p >= 0 ? p / 32768 : -((-p + 32767) / 32768));
      }
      ASSERT_EQ(srdhm16(static_cast<int16_t>(a), static_cast<int16_t>(b)), want) << a << " * " << b;
    }
  }
}

// ---- rounding_divide_by_pot -------------------------------------------------------------

TEST(FixedPoint, RoundingDivideByPotHandDerivedEdges) {
  // −3 / 2 = −1.5, tie, away from zero -> −2 (floor −2, discarded bit 1 is not above 1 + 0).
  EXPECT_EQ(rounding_divide_by_pot(-3, 1), -2);
  // −5 / 2 = −2.5 -> −3;  5 / 2 = 2.5 -> 3;  3 / 2 = 1.5 -> 2.
  EXPECT_EQ(rounding_divide_by_pot(-5, 1), -3);
  EXPECT_EQ(rounding_divide_by_pot(5, 1), 3);
  EXPECT_EQ(rounding_divide_by_pot(3, 1), 2);
  // ±0.5 -> ±1.
  EXPECT_EQ(rounding_divide_by_pot(1, 1), 1);
  EXPECT_EQ(rounding_divide_by_pot(-1, 1), -1);
  // −6 / 4 = −1.5 -> −2; −7 / 4 = −1.75 -> −2; −5 / 4 = −1.25 -> −1; 6 / 4 = 1.5 -> 2.
  EXPECT_EQ(rounding_divide_by_pot(-6, 2), -2);
  EXPECT_EQ(rounding_divide_by_pot(-7, 2), -2);
  EXPECT_EQ(rounding_divide_by_pot(-5, 2), -1);
  EXPECT_EQ(rounding_divide_by_pot(6, 2), 2);
  // Exponent 0 is the identity, including the extremes.
  EXPECT_EQ(rounding_divide_by_pot(kMin, 0), kMin);
  EXPECT_EQ(rounding_divide_by_pot(kMax, 0), kMax);
  EXPECT_EQ(rounding_divide_by_pot(-1, 0), -1);
  // Exponent 31: INT32_MIN / 2^31 = −1 exactly; INT32_MAX / 2^31 = 0.99.. -> 1;
  // 2^30 / 2^31 = 0.5 -> 1; (2^30 − 1) / 2^31 < 0.5 -> 0; −2^30 / 2^31 = −0.5 -> −1;
  // (−2^30 + 1) / 2^31 > −0.5 -> 0; (INT32_MIN + 1) / 2^31 = −0.99.. -> −1.
  EXPECT_EQ(rounding_divide_by_pot(kMin, 31), -1);
  EXPECT_EQ(rounding_divide_by_pot(kMax, 31), 1);
  EXPECT_EQ(rounding_divide_by_pot(1 << 30, 31), 1);
  EXPECT_EQ(rounding_divide_by_pot((1 << 30) - 1, 31), 0);
  EXPECT_EQ(rounding_divide_by_pot(-(1 << 30), 31), -1);
  EXPECT_EQ(rounding_divide_by_pot(-(1 << 30) + 1, 31), 0);
  EXPECT_EQ(rounding_divide_by_pot(kMin + 1, 31), -1);
  EXPECT_EQ(rounding_divide_by_pot(0, 31), 0);
  // INT32_MIN / 2 = −2^30 exactly; INT32_MAX / 2 = 2^30 − 0.5 -> 2^30.
  EXPECT_EQ(rounding_divide_by_pot(kMin, 1), -(1 << 30));
  EXPECT_EQ(rounding_divide_by_pot(kMax, 1), 1 << 30);
}

TEST(FixedPoint, RoundingDivideByPotMatchesReference) {
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<int32_t> any(kMin, kMax);
  for (int n = 0; n <= 31; ++n) {
    for (int i = 0; i < 20000; ++i) {
      const int32_t x = any(rng);
      ASSERT_EQ(rounding_divide_by_pot(x, n), ref_rdpot(x, n)) << x << " >> " << n;
    }
    // Every exact tie around zero for small exponents.
    if (n >= 1 && n <= 8) {
      for (int32_t k = -300; k <= 300; ++k) {
        const int32_t x = k * (1 << n) + (1 << (n - 1));
        ASSERT_EQ(rounding_divide_by_pot(x, n), ref_rdpot(x, n)) << x << " >> " << n;
        ASSERT_EQ(rounding_divide_by_pot(-x, n), ref_rdpot(-x, n)) << -x << " >> " << n;
      }
    }
  }
}

// ---- quantize_multiplier ----------------------------------------------------------------

TEST(FixedPoint, QuantizeMultiplierHandDerived) {
  QuantizedMultiplier m;
  // 0.5 = 0.5 · 2^0 -> M0 = 2^30, shift 0.
  m = quantize_multiplier(0.5);
  EXPECT_EQ(m.multiplier, 1 << 30);
  EXPECT_EQ(m.shift, 0);
  // 1.0 = 0.5 · 2^1; 2^k = 0.5 · 2^(k+1).
  m = quantize_multiplier(1.0);
  EXPECT_EQ(m.multiplier, 1 << 30);
  EXPECT_EQ(m.shift, 1);
  for (int k = -31; k <= 29; ++k) {
    m = quantize_multiplier(std::ldexp(1.0, k));
    EXPECT_EQ(m.multiplier, 1 << 30) << k;
    EXPECT_EQ(m.shift, k + 1) << k;
  }
  // 0.75 · 2^31 = 1610612736.
  m = quantize_multiplier(0.75);
  EXPECT_EQ(m.multiplier, 1610612736);
  EXPECT_EQ(m.shift, 0);
  // 1 − 2^-31: q · 2^31 = 2^31 − 1 exactly, no carry.
  m = quantize_multiplier(1.0 - std::ldexp(1.0, -31));
  EXPECT_EQ(m.multiplier, kMax);
  EXPECT_EQ(m.shift, 0);
  // 1 − 2^-32: q · 2^31 = 2^31 − 0.5, a tie, rounds away to 2^31: carry to (2^30, 1).
  m = quantize_multiplier(1.0 - std::ldexp(1.0, -32));
  EXPECT_EQ(m.multiplier, 1 << 30);
  EXPECT_EQ(m.shift, 1);
  // 1 − 2^-33: q · 2^31 = 2^31 − 0.25 -> 2^31, carry as well.
  m = quantize_multiplier(1.0 - std::ldexp(1.0, -33));
  EXPECT_EQ(m.multiplier, 1 << 30);
  EXPECT_EQ(m.shift, 1);
  // 2^-31 = 0.5 · 2^-30 -> (2^30, −30).
  m = quantize_multiplier(std::ldexp(1.0, -31));
  EXPECT_EQ(m.multiplier, 1 << 30);
  EXPECT_EQ(m.shift, -30);
  // 2^-32 = 0.5 · 2^-31 -> (2^30, −31), the smallest kept exponent.
  m = quantize_multiplier(std::ldexp(1.0, -32));
  EXPECT_EQ(m.multiplier, 1 << 30);
  EXPECT_EQ(m.shift, -31);
  // (1 − 2^-33) · 2^-32: e = −32 before the carry; q rounds up to 1, carry to e = −31: kept.
  m = quantize_multiplier(std::ldexp(1.0 - std::ldexp(1.0, -33), -32));
  EXPECT_EQ(m.multiplier, 1 << 30);
  EXPECT_EQ(m.shift, -31);
  // (1 − 2^-30) · 2^-32: q · 2^31 = 2^31 − 2, no carry, e = −32 < −31: flushed to zero.
  m = quantize_multiplier(std::ldexp(1.0 - std::ldexp(1.0, -30), -32));
  EXPECT_EQ(m.multiplier, 0);
  EXPECT_EQ(m.shift, 0);
  // 2^-33 and tinier: flushed.
  m = quantize_multiplier(std::ldexp(1.0, -33));
  EXPECT_EQ(m.multiplier, 0);
  EXPECT_EQ(m.shift, 0);
  m = quantize_multiplier(1e-300);
  EXPECT_EQ(m.multiplier, 0);
  m = quantize_multiplier(std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(m.multiplier, 0);
  // Zero.
  m = quantize_multiplier(0.0);
  EXPECT_EQ(m.multiplier, 0);
  EXPECT_EQ(m.shift, 0);
  // The largest accepted: (1 − 2^-31) · 2^30 -> (2^31 − 1, 30). Anything closer to 2^30 rounds
  // q up to 1 and needs shift 31 (rejected below).
  m = quantize_multiplier(std::ldexp(1.0, 30) * (1.0 - std::ldexp(1.0, -31)));
  EXPECT_EQ(m.multiplier, kMax);
  EXPECT_EQ(m.shift, 30);
}

TEST(FixedPoint, QuantizeMultiplierRejectsBadInput) {
  EXPECT_THROW(quantize_multiplier(-0.5), Error);
  EXPECT_THROW(quantize_multiplier(std::nan("")), Error);
  EXPECT_THROW(quantize_multiplier(std::numeric_limits<double>::infinity()), Error);
  EXPECT_THROW(quantize_multiplier(std::ldexp(1.0, 30)), Error);  // needs shift 31
  // q = 1 − 2^-40 rounds up to 2^31 and carries into shift 31.
  EXPECT_THROW(quantize_multiplier(std::ldexp(1.0 - std::ldexp(1.0, -40), 30)), Error);
  try {
    quantize_multiplier(-0.5);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("-0.5"), std::string::npos) << e.what();
  }
}

TEST(FixedPoint, QuantizeMultiplierIsWithinHalfUnitOnRandomReals) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> exponent(-31.9, 29.9);
  for (int i = 0; i < 200000; ++i) {
    const double real = std::exp2(exponent(rng));
    const QuantizedMultiplier m = quantize_multiplier(real);
    ASSERT_GE(m.multiplier, 1 << 30) << real;
    ASSERT_LE(m.shift, 30);
    ASSERT_GE(m.shift, -31);
    // Represented value M0 · 2^(shift − 31); its error is at most half a unit of M0.
    const long double got = std::ldexp(static_cast<long double>(m.multiplier), m.shift - 31);
    const long double half_unit = std::ldexp(0.5L, m.shift - 31);
    ASSERT_LE(std::fabs(got - static_cast<long double>(real)), half_unit) << real;
  }
}

// ---- multiply_by_quantized_multiplier ---------------------------------------------------

TEST(FixedPoint, MultiplyByQuantizedMultiplierHandDerived) {
  const int32_t half = 1 << 30;  // M0 for 0.5 at shift 0
  // x · 0.5 through srdhm alone: ties toward +infinity.
  EXPECT_EQ(multiply_by_quantized_multiplier(3, half, 0), 2);    // 1.5 -> 2
  EXPECT_EQ(multiply_by_quantized_multiplier(-3, half, 0), -1);  // −1.5 -> −1
  EXPECT_EQ(multiply_by_quantized_multiplier(kMin, half, 0), -(1 << 30));
  EXPECT_EQ(multiply_by_quantized_multiplier(kMax, half, 0), 1 << 30);  // 2^30 − 0.5 -> 2^30
  // Multiplier 1 − 2^-31 = (2^31 − 1, 0): INT32_MAX -> 2^31 − 2; INT32_MIN -> −(2^31 − 1).
  const QuantizedMultiplier almost_one = quantize_multiplier(1.0 - std::ldexp(1.0, -31));
  EXPECT_EQ(multiply_by_quantized_multiplier(kMax, almost_one), 2147483646);
  EXPECT_EQ(multiply_by_quantized_multiplier(kMin, almost_one), -2147483647);
  EXPECT_EQ(multiply_by_quantized_multiplier(1, almost_one), 1);
  EXPECT_EQ(multiply_by_quantized_multiplier(-1, almost_one), -1);
  // Multiplier 1.0 = (2^30, 1): the left shift doubles, srdhm halves exactly: identity for
  // |x| < 2^30. At x = 2^30 the doubled value 2^31 wraps to INT32_MIN: result −2^30.
  const QuantizedMultiplier one = quantize_multiplier(1.0);
  for (int32_t x : {0, 1, -1, 12345, -12345, (1 << 30) - 1, -(1 << 30)})
    EXPECT_EQ(multiply_by_quantized_multiplier(x, one), x) << x;
  EXPECT_EQ(multiply_by_quantized_multiplier(1 << 30, one), -(1 << 30));
  // INT32_MIN doubled wraps to 0.
  EXPECT_EQ(multiply_by_quantized_multiplier(kMin, one), 0);
  // Multiplier 2^-31 = (2^30, −30): srdhm halves (ties up), RDPOT(·, 30) rounds away.
  //   INT32_MAX: srdhm = 2^30 (from 2^30 − 0.5), RDPOT(2^30, 30) = 1.
  //   INT32_MIN: srdhm = −2^30, RDPOT = −1.
  //   2^30: srdhm = 2^29, RDPOT(2^29, 30) = 0.5 -> 1.   −2^30: −2^29 -> −0.5 -> −1.
  //   2^29: srdhm = 2^28 -> 0.25 -> 0.
  const QuantizedMultiplier tiny = quantize_multiplier(std::ldexp(1.0, -31));
  EXPECT_EQ(multiply_by_quantized_multiplier(kMax, tiny), 1);
  EXPECT_EQ(multiply_by_quantized_multiplier(kMin, tiny), -1);
  EXPECT_EQ(multiply_by_quantized_multiplier(1 << 30, tiny), 1);
  EXPECT_EQ(multiply_by_quantized_multiplier(-(1 << 30), tiny), -1);
  EXPECT_EQ(multiply_by_quantized_multiplier(1 << 29, tiny), 0);
  // Shift −31 with M0 = 2^30 (multiplier 2^-32): INT32_MAX -> srdhm 2^30 -> RDPOT(2^30, 31) = 1,
  // although the exact product 0.4999999998 rounds to 0 (double rounding).
  EXPECT_EQ(multiply_by_quantized_multiplier(kMax, 1 << 30, -31), 1);
  EXPECT_EQ(multiply_by_quantized_multiplier(kMin, 1 << 30, -31), -1);  // −2^30 / 2^31 = −0.5 -> −1
  // Double rounding: 1 · 0.25 = (2^30, −1): srdhm(1, 2^30) = 1 (0.5 up), RDPOT(1, 1) = 1.
  EXPECT_EQ(multiply_by_quantized_multiplier(1, 1 << 30, -1), 1);
  // −1 · 0.25: srdhm(−1, 2^30) = 0 (−0.5 up), RDPOT(0, 1) = 0.
  EXPECT_EQ(multiply_by_quantized_multiplier(-1, 1 << 30, -1), 0);
  // Shift 30 with M0 = 2^30 (multiplier 2^29): x = 1 -> 2^30 << ... srdhm(2^30, 2^30) = 2^29.
  EXPECT_EQ(multiply_by_quantized_multiplier(1, 1 << 30, 30), 1 << 29);
  // Zero multiplier (a flushed tiny real) gives 0 for every x.
  for (int32_t x : {kMin, -1, 0, 1, kMax}) EXPECT_EQ(multiply_by_quantized_multiplier(x, 0, 0), 0);
}

TEST(FixedPoint, MultiplyByQuantizedMultiplierMatchesReference) {
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int32_t> any(kMin, kMax);
  std::uniform_int_distribution<int32_t> m0(1 << 30, kMax);
  std::uniform_int_distribution<int> shift(-31, 30);
  std::uniform_int_distribution<int32_t> acc(-(1 << 20), 1 << 20);
  for (int i = 0; i < 300000; ++i) {
    const int32_t x = i % 2 ? any(rng) : acc(rng);
    const int32_t m = m0(rng);
    const int s = shift(rng);
    ASSERT_EQ(multiply_by_quantized_multiplier(x, m, s), ref_mbqm(x, m, s)) << x << " " << m << " " << s;
  }
}

TEST(FixedPoint, MultiplyByQuantizedMultiplierIsWithinOneOfExactProduct) {
  // Without wrap-around the double rounding is off by at most one from x · real.
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> exponent(-20.0, 0.0);
  std::uniform_int_distribution<int32_t> acc(-(1 << 24), 1 << 24);
  for (int i = 0; i < 100000; ++i) {
    const double real = std::exp2(exponent(rng));
    const QuantizedMultiplier m = quantize_multiplier(real);
    const int32_t x = acc(rng);
    const long double exact = static_cast<long double>(x) * std::ldexp(static_cast<long double>(m.multiplier), m.shift - 31);
    const int32_t got = multiply_by_quantized_multiplier(x, m);
    ASSERT_LE(std::fabs(static_cast<long double>(got) - exact), 1.0L) << x << " * " << real;
    ASSERT_LE(std::fabs(static_cast<long double>(got) - static_cast<long double>(x) * real), 1.0L + 1e-6L);
  }
}

TEST(FixedPoint, Saturate) {
  EXPECT_EQ(saturate(200, -128, 127), 127);
  EXPECT_EQ(saturate(-200, -128, 127), -128);
  EXPECT_EQ(saturate(5, -128, 127), 5);
  EXPECT_EQ(saturate(kMin, -32768, 32767), -32768);
}

}  // namespace
}  // namespace lowbit::quant
