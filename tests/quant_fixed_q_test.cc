// Sign-magnitude fixed point Q(I.F) (Q-MANN) against an integer reference: the code is
// computed with long double and integer casts, the clamp on integers.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/quant/fixed_q.h"
#include "quant_test_util.h"

namespace lowbit::quant {
namespace {

using testing::kInf;
using testing::kSizes;
using testing::random_values;


// Integer code of x in Q(I.F): magnitude truncated or rounded (ties away), clamped to
// 2^(I+F) − 1, sign re-applied. Binary format: ±1 by x >= 0.
long long ref_code(float x, int I, int F, bool nearest) {
  if (I + F == 0) return x >= 0 ? 1 : -1;
  const long long top = (1LL << (I + F)) - 1;
  if (std::isinf(x)) return x > 0 ? top : -top;
  const long double s = std::fabs(static_cast<long double>(x)) * (1LL << F);
  if (s >= static_cast<long double>(top) + 1) return x < 0 ? -top : top;
  long long mag = nearest ? std::llround(s) : static_cast<long long>(s);  // cast truncates
  if (mag > top) mag = top;
  return x < 0 ? -mag : mag;
}

TEST(QuantFixedQ, EveryEightBitFormatMatchesReference) {
  for (int I = 0; I <= 7; ++I) {
    const int F = 7 - I;  // Q-MANN's 8-bit word: F = 7 − I
    const FixedFormat f{I, F};
    EXPECT_EQ(f.total_bits(), 8);
    for (std::size_t n : kSizes) {
      const std::vector<float> x = random_values(n, 10 * I + n, 1.5f * static_cast<float>(1 << I));
      for (FixedRounding r : {FixedRounding::truncate, FixedRounding::nearest}) {
        std::vector<float> out(n);
        std::vector<int8_t> codes(n);
        fixed_quantize(x, out, f, r);
        fixed_to_codes(x, codes, f, r);
        for (std::size_t i = 0; i < n; ++i) {
          const long long c = ref_code(x[i], I, F, r == FixedRounding::nearest);
          ASSERT_EQ(out[i], static_cast<float>(std::ldexp(static_cast<double>(c), -F))) << f.str() << " x=" << x[i];
          ASSERT_EQ(codes[i], c) << f.str() << " x=" << x[i];
        }
      }
    }
  }
}

TEST(QuantFixedQ, ArrayFormEqualsTheElementFormBitForBit) {
  // The array form has its own branch-free loop: same bits as the element form, signed zeros,
  // infinities, subnormals and saturation included.
  std::vector<float> x = random_values(1000, 5, 40.0f);
  const float extra[] = {0.0f, -0.0f, kInf, -kInf, 1e-40f, -1e-40f, 0.5f, -0.5f, 127.9f, -1e30f, 3.999f};
  x.insert(x.end(), std::begin(extra), std::end(extra));
  for (auto [I, F] : {std::pair{0, 0}, std::pair{2, 5}, std::pair{5, 2}, std::pair{0, 7}, std::pair{3, 12}, std::pair{10, 13}}) {
    for (FixedRounding r : {FixedRounding::truncate, FixedRounding::nearest}) {
      std::vector<float> out(x.size());
      fixed_quantize(x, out, FixedFormat{I, F}, r);
      for (std::size_t i = 0; i < x.size(); ++i) {
        const float e = fixed_quantize(x[i], FixedFormat{I, F}, r);
        ASSERT_EQ(std::signbit(out[i]), std::signbit(e)) << "Q" << I << "." << F << " x=" << x[i];
        ASSERT_EQ(out[i], e) << "Q" << I << "." << F << " x=" << x[i];
      }
    }
  }
}

TEST(QuantFixedQ, WiderFormatsAndInt16Codes) {
  for (auto [I, F] : {std::pair{3, 12}, std::pair{0, 15}, std::pair{8, 7}, std::pair{10, 13}}) {
    const FixedFormat f{I, F};
    for (std::size_t n : kSizes) {
      const std::vector<float> x = random_values(n, 100 * I + F + n, 1.2f * static_cast<float>(1 << I));
      std::vector<float> out(n), back(n);
      fixed_quantize(x, out, f, FixedRounding::nearest);
      for (std::size_t i = 0; i < n; ++i)
        ASSERT_EQ(out[i], static_cast<float>(std::ldexp(static_cast<double>(ref_code(x[i], I, F, true)), -F)));
      if (I + F <= 15) {
        std::vector<int16_t> codes(n);
        fixed_to_codes(x, codes, f, FixedRounding::nearest);
        fixed_from_codes(codes, back, f);
        ASSERT_EQ(out, back);
      }
    }
  }
}

TEST(QuantFixedQ, TiesTruncationAndSaturation) {
  // Q2.2: step 0.25, max (2^4 − 1)/4 = 3.75.
  const FixedFormat f{2, 2};
  EXPECT_DOUBLE_EQ(f.max_value(), 3.75);
  std::vector<float> x{0.125f, -0.125f, 0.375f, -0.375f, 0.24f, -0.24f, 3.75f, 3.8f, 100.0f, -kInf, kInf, -3.75f};
  std::vector<float> out(x.size());
  fixed_quantize(x, out, f, FixedRounding::truncate);
  EXPECT_EQ(out, (std::vector<float>{0, -0.0f, 0.25f, -0.25f, 0, 0, 3.75f, 3.75f, 3.75f, -3.75f, 3.75f, -3.75f}));
  fixed_quantize(x, out, f, FixedRounding::nearest);
  // Ties away from zero: ±0.125 -> ±0.25, ±0.375 -> ±0.5.
  EXPECT_EQ(out, (std::vector<float>{0.25f, -0.25f, 0.5f, -0.5f, 0.25f, -0.25f, 3.75f, 3.75f, 3.75f, -3.75f, 3.75f, -3.75f}));
  // The range is symmetric: no −4 code (sign-magnitude).
  EXPECT_EQ(fixed_quantize(-4.0f, f, FixedRounding::nearest), -3.75f);
  // Q-MANN's default Q5.2 (qmann.md §9): truncation of 1.99 gives 1.75.
  EXPECT_EQ(fixed_quantize(1.99f, FixedFormat{5, 2}), 1.75f);
  EXPECT_EQ(fixed_quantize(-1.99f, FixedFormat{5, 2}), -1.75f);
}

TEST(QuantFixedQ, BinaryFormatIsSignWithZeroPositive) {
  const FixedFormat b{0, 0};
  EXPECT_TRUE(b.is_binary());
  EXPECT_EQ(b.total_bits(), 1);
  std::vector<float> x{0.0f, -0.0f, 1e-30f, -1e-30f, 5.0f, -5.0f, kInf, -kInf}, out(8);
  for (FixedRounding r : {FixedRounding::truncate, FixedRounding::nearest}) {
    fixed_quantize(x, out, b, r);
    EXPECT_EQ(out, (std::vector<float>{1, 1, 1, -1, 1, -1, 1, -1}));
  }
  std::vector<int8_t> codes(8);
  fixed_to_codes(x, codes, b);
  EXPECT_EQ(codes, (std::vector<int8_t>{1, 1, 1, -1, 1, -1, 1, -1}));
  std::vector<int8_t> zero{0};
  std::vector<float> o1(1);
  EXPECT_THROW(fixed_from_codes(zero, o1, b), Error);  // 0 is not a binary code
}

TEST(QuantFixedQ, BackwardIsStraightThroughWithOptionalMask) {
  for (std::size_t n : kSizes) {
    const std::vector<float> x = random_values(n, 900 + n, 6.0f);
    const std::vector<float> g = random_values(n, 950 + n, 2.0f);
    std::vector<float> gin(n);
    const FixedFormat f{2, 5};  // max 127/32 = 3.96875
    fixed_quantize_backward(x, g, gin, f);
    EXPECT_EQ(gin, g) << "Q-MANN passes the gradient through saturation";
    fixed_quantize_backward(x, g, gin, f, /*clip_mask=*/true);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(gin[i], std::fabs(x[i]) <= 3.96875f ? g[i] : 0.0f) << x[i];
    fixed_quantize_backward(x, g, gin, FixedFormat{0, 0}, true);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(gin[i], std::fabs(x[i]) <= 1.0f ? g[i] : 0.0f) << x[i];
  }
  // Finite differences of the clipped identity clip(x, −max, max) agree with the masked STE.
  const FixedFormat f{1, 3};  // max 15/8
  std::vector<float> x, ones;
  for (float v = -3.0f; v <= 3.0f; v += 0.1f) x.push_back(v), ones.push_back(1.0f);
  std::vector<float> gin(x.size());
  fixed_quantize_backward(x, ones, gin, f, true);
  for (std::size_t i = 0; i < x.size(); ++i) {
    auto clip = [](double v) { return std::max(-1.875, std::min(1.875, v)); };
    ASSERT_NEAR(gin[i], (clip(x[i] + 1e-4) - clip(x[i] - 1e-4)) / 2e-4, 1e-9) << x[i];
  }
}

TEST(QuantFixedQ, ErrorsNameTheProblem) {
  std::vector<float> x{1.0f, std::nanf("")}, out(2);
  EXPECT_THROW(fixed_quantize(x, out, FixedFormat{2, 5}), Error);
  std::vector<float> ok{1.0f, 2.0f};
  EXPECT_THROW(fixed_quantize(ok, out, FixedFormat{-1, 5}), Error);
  EXPECT_THROW(fixed_quantize(ok, out, FixedFormat{12, 12}), Error);
  std::vector<int8_t> c8(2);
  try {
    fixed_to_codes(ok, c8, FixedFormat{4, 4});  // 9 bits do not fit int8
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q4.4"), std::string::npos) << e.what();
  }
  std::vector<int8_t> bad{-128};
  std::vector<float> o1(1);
  EXPECT_THROW(fixed_from_codes(bad, o1, FixedFormat{0, 7}), Error);  // −128 is not sign-magnitude
  std::vector<float> small(1);
  EXPECT_THROW(fixed_quantize(ok, small, FixedFormat{2, 5}), Error);
}

}  // namespace
}  // namespace lowbit::quant
