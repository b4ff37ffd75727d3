// Integer LSTM building blocks against the published TensorFlow Lite test vectors
// (tensor_utils_test.cc: inputs, parameters and expected outputs) and hand-derived integers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/quant/integer_ops.h"
#include "test_util.h"

namespace lowbit::quant::iops {
namespace {

using V16 = std::vector<int16_t>;

// TFLite QuantTanh0/3 inputs (15 values repeated twice per batch pair; the published test runs
// 4 x 15 with the second half repeating the first).
const V16 kTanhIn = {-145, 899, -176, -35, 264, 289, 8, 27, -37, -1310, -120, 127, -16, 106, 370,
                     -583, -299, 93, -548, 548, 653, -29, -53, 1058, -52, -164, -149, -635, 201, -1297};

V16 run_tanh(int bits, const V16& in) {
  V16 out(in.size());
  apply_tanh(bits, in.data(), static_cast<int64_t>(in.size()), out.data());
  return out;
}

TEST(IntegerOps, Tanh0MatchesPublishedVector) {
  const V16 expected = {-136, 904, -176, -40, 260, 292, 8, 28, -44, -1304, -120, 120, -24, 112, 376,
                        -576, -308, 88, -544, 544, 652, -32, -60, 1056, -56, -156, -144, -636, 192, -1300};
  EXPECT_EQ(run_tanh(0, kTanhIn), expected);
}

TEST(IntegerOps, Tanh3MatchesPublishedVector) {
  const V16 expected = {-1156, 7076, -1412, -276, 2104, 2308, 64, 220, -288, -10132, -964, 1016, -120, 844, 2944,
                        -4640, -2392, 736, -4352, 4352, 5180, -232, -428, 8276, -412, -1308, -1196, -5044, 1612,
                        -10044};
  EXPECT_EQ(run_tanh(3, kTanhIn), expected);
}

TEST(IntegerOps, Tanh4MatchesPublishedVector) {
  const V16 in = {-5, 163, -31, -5, 54, 90, 1, 2, -4, -42, -8, 29, 0, 47, 150,
                  -26, -36, 9, -73, 25, 14, -2, -1, 29, -10, -12, -18, -29, 51, -92};
  const V16 expected = {-76, 2596, -496, -76, 856, 1436, 24, 36, -64, -672, -120, 456, 0, 752, 2400,
                        -412, -576, 148, -1168, 400, 216, -36, -24, 456, -164, -192, -292, -456, 820, -1476};
  EXPECT_EQ(run_tanh(4, in), expected);
}

TEST(IntegerOps, SigmoidMatchesPublishedVector) {
  const V16 in = {-10500, 1398, -6963, -7404, 485, -5401, -1757, -7668, -19248, -9692, -24249, -17923, -15840,
                  -10026, 5249, -89, 1787, -16178, -6691, -19524, -13439, -24048, -1123, 32767, -17267, -3378,
                  823, 11482, -11139, 7508};
  const V16 expected = {2339, 19152, 5063, 4617, 17350, 6917, 12921, 4371, 299, 2813, 89, 409, 673, 2605, 25646,
                        16207, 19904, 615, 5353, 273, 1187, 91, 14153, 32756, 475, 9983, 18026, 30898, 2023, 28246};
  V16 out(in.size());
  apply_sigmoid(in.data(), static_cast<int64_t>(in.size()), out.data());
  EXPECT_EQ(out, expected);
}

TEST(IntegerOps, SigmoidAndTanhFollowTheFloatFunctions) {
  // Every Q3.12 input: within a few LSB of the real function (not exactly monotone: the
  // barrel shifter's constants make small steps back at multiples of 1/4), exact at 0.
  for (int32_t a = -32768; a <= 32767; ++a) {
    const double x = a / 4096.0;
    const int16_t s = logistic(static_cast<int16_t>(a));
    const int16_t t = tanh(static_cast<int16_t>(a), 3);
    ASSERT_NEAR(s / 32768.0, 1.0 / (1.0 + std::exp(-x)), 10.0 / 32768) << a;
    ASSERT_NEAR(t / 32768.0, std::tanh(x), 16.0 / 32768) << a;
  }
  EXPECT_EQ(logistic(0), 16384);
  EXPECT_EQ(tanh(0, 3), 0);
  EXPECT_EQ(exp_on_negative_values(0, 3), 32767);
}

TEST(IntegerOps, ArrayFormsEqualTheElementFunctionsOnEveryInput) {
  V16 in(65536), out(65536);
  for (int32_t a = -32768; a <= 32767; ++a) in[static_cast<std::size_t>(a + 32768)] = static_cast<int16_t>(a);
  lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
    compute_sigmoid(in.data(), 65536, out.data());
    for (std::size_t i = 0; i < in.size(); ++i) ASSERT_EQ(out[i], logistic(in[i])) << in[i];
    for (int k = 0; k <= 6; ++k) {
      compute_tanh(k, in.data(), 65536, out.data());
      for (std::size_t i = 0; i < in.size(); ++i) ASSERT_EQ(out[i], tanh(in[i], k)) << in[i] << " bits " << k;
    }
  });
  // The table forms (in reverse order, so that a table indexed off by one would show), at every
  // instruction-set level (the vector lookup gathers), on a length that leaves a scalar tail.
  V16 rev(in.rbegin(), in.rend());
  rev.push_back(32767);
  rev.push_back(-32768);
  rev.push_back(1);
  out.resize(rev.size());
  const auto n = static_cast<int64_t>(rev.size());
  lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
    std::fill(out.begin(), out.end(), int16_t{-1});
    apply_sigmoid(rev.data(), n, out.data());
    for (std::size_t i = 0; i < rev.size(); ++i) ASSERT_EQ(out[i], logistic(rev[i])) << rev[i];
    for (int k = 0; k <= 6; ++k) {
      apply_tanh(k, rev.data(), n, out.data());
      for (std::size_t i = 0; i < rev.size(); ++i) ASSERT_EQ(out[i], tanh(rev[i], k)) << rev[i] << " bits " << k;
    }
  });
  EXPECT_THROW(compute_tanh(7, in.data(), 1, out.data()), Error);
}

TEST(IntegerOps, RescaleAccumulateEqualsTheMatmulEpilogue) {
  std::mt19937 rng(3);
  const int64_t n = 101;  // six 16-lane vectors and a tail
  std::vector<int32_t> acc(n), bias(n);
  V16 init(n);
  for (int64_t j = 0; j < n; ++j) {
    acc[j] = static_cast<int32_t>(rng());
    bias[j] = static_cast<int32_t>(rng()) >> (j % 20);
    init[j] = static_cast<int16_t>(rng());
  }
  // Sums at the int32 extremes (the wrap of bias + acc, the rounding at ±2^31).
  acc[0] = INT32_MAX;
  bias[0] = 1;
  acc[1] = INT32_MIN;
  bias[1] = 0;
  acc[2] = -1;
  bias[2] = 0;
  for (int shift : {-31, -30, -20, -3, -1, 0, 1, 2, 30}) {
    const int32_t m = (1 << 30) + static_cast<int32_t>(rng() % (1u << 30));
    V16 want = init;
    for (int64_t j = 0; j < n; ++j)
      want[j] = sat16(multiply_by_quantized_multiplier(wrap_add32(bias[j], acc[j]), m, shift) + want[j]);
    lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
      V16 got = init;
      rescale_accumulate(acc.data(), bias.data(), m, shift, n, got.data());
      ASSERT_EQ(got, want) << "shift " << shift;
    });
  }
}

TEST(IntegerOps, TanhRejectsUnsupportedIntegerBits) {
  EXPECT_THROW(tanh(100, 7), Error);
  EXPECT_THROW(tanh(100, -1), Error);
  int16_t in = 5, out = 0;
  EXPECT_THROW(apply_tanh(7, &in, 1, &out), Error);
}

TEST(IntegerOps, ExpClampsBelowMinus32WithManyIntegerBits) {
  // Q6.9: −32 is −16384; anything below it is 0; values around −20 are tiny but positive or zero.
  EXPECT_EQ(exp_on_negative_values(-16385, 6), 0);
  EXPECT_EQ(exp_on_negative_values(-32768, 6), 0);
  EXPECT_NEAR(exp_on_negative_values(-512, 6) / 32768.0, std::exp(-1.0), 3e-4);
}

TEST(IntegerOps, LayerNormMatchesPublishedVector) {
  const V16 in = {-310, 596, 34, -68, 475, 92, 672, -54, -913, -200, -1194, -836, -620, -237, 991,
                  533, 721, -736, -8, -941, -372, -1084, 591, 2557, -779, 175, 582, 956, -287, 944};
  const V16 w = {21849, 22882, 20626, 23854, 24779, 26354, 12980, 26231, 23716, 27271, 24937, 22647, 24715, 22854, 19646};
  const std::vector<int32_t> bias = {-14175520, -13805465, -16027609, -13786809, -13321033,
                                     -14399810, -15055368, -14536623, -14508746, -13784007,
                                     -15206609, -15125830, -14996304, -14847597, -12814379};
  const V16 expected = {-9407, 5846, -4802, -5295, 4822, -2390, 930, -5283, -20352, -7846, -26539, -18704, -15829,
                        -8627, 10313, -2522, -132, -16058, -8206, -19158, -13296, -14407, -1235, 20612, -18591,
                        -6738, -2274, 2602, -11622, 1565};
  V16 out(30);
  layer_norm(in.data(), w.data(), bias.data(), 1895840000, -13, 1, 2, 15, out.data());
  EXPECT_EQ(out, expected);
}

TEST(IntegerOps, LayerNormUsesTheVarianceGuardOnConstantRows) {
  // A constant row has variance 0: the guard replaces it, and every output is the bias term.
  const V16 in(8, 100), w(8, 16384);
  const std::vector<int32_t> bias(8, 1 << 20);
  V16 a(8), b(8);
  layer_norm(in.data(), w.data(), bias.data(), 1 << 30, 0, 1, 1, 8, a.data());
  layer_norm(in.data(), w.data(), bias.data(), 1 << 30, 0, 4, 1, 8, b.data());
  // (1·16384·0 + 2^20 + 512) / 1024 = 1024; MBQM(1024, 2^30, 12) = 1024 · 2^12 / 2 = 2^21 -> saturates.
  for (int j = 0; j < 8; ++j) {
    EXPECT_EQ(a[j], 32767);
    EXPECT_EQ(b[j], 32767);
  }
}

TEST(IntegerOps, InvSqrtMultiplier) {
  EXPECT_EQ(inv_sqrt_multiplier(0, -1).multiplier, INT32_MAX);
  EXPECT_EQ(inv_sqrt_multiplier(1, -1).shift, 0);
  for (int32_t v : {2, 3, 4, 100, 12345, 1 << 20, 1 << 29, 2000000000}) {
    const QuantizedMultiplier m = inv_sqrt_multiplier(v, -1);
    const double real = m.multiplier * std::ldexp(1.0, m.shift - 31);
    EXPECT_NEAR(real * std::sqrt(static_cast<double>(v)), 1.0, 1e-5) << v;
  }
}

TEST(IntegerOps, MatmulAccumulate8x8_16MatchesPublishedVector) {
  const std::vector<int8_t> x = {4, -41, 5, -41, 22, 17, -30, 24, 13, -47, 18, 9, -11, -30, 16,
                                 -47, 12, 36, -20, 27, -3, 0, -51, -31, 3, -8, -38, 43, 23, 12,
                                 11, -23, -26, 23, 14, -9, -44, 22, 21, -30, 3, -47, -26, -21, -24,
                                 -44, 34, -11, -23, -28, 26, -38, 19, 35, 9, 23, 6, -42, -25, 28};
  const std::vector<int32_t> bias = {-620, -170, -395, 715, -1220, -1080, 1130, -260, -470};
  const std::vector<int8_t> w = {
      -10, -4, -8, 16, 4, -16, -1, 11, 1, 2, -25, 19, 7, 9, 2, -24, -2, 10, -7, 7, -5, -2, 3, 4, 3, -4, -7, -11, -13,
      -18, 11, 10, 12, -9, 17, -15, -5, 20, -6, -11, 2, -6, -18, 15, 4, 4, -9, -2, -3, -9, -13, 17, -21, 5, 3, -12, 0,
      -4, 9, -5, 10, -2, 8, 1, -10, -6, 1, -9, 10, 11, -1, -5, 4, -7, -4, -4, 4, 12, -7, -5, -9, -19, 6, -4, 12, -17,
      -22, 0, 9, -4, -5, 5, -8, 8, 3, 15, -18, -18, 5, 3, -12, 5, -10, 7, 7, -9, 17, 2, -11, -25, 3, 19, -6, 7, 1, 7,
      5, -3, 11, 3, 0, -8, 8, -2, -2, -12, 14, -5, 7, 8, 16, 20, -16, -5, -5, 1, -10, -6, 14, 10, -12, 10, -6, 5, 0,
      3, 8, -9, -13, -2, 4, 4, -16, -17, -9, 16, -5, 14, -9, -5, -12, 0, 17, 6, -1, 16, -20, 1, -11, -1, -10, -21,
      13, 4, -12, -7, 0, -14, -6, 3, -4, 6, -18, -3, -1, 14, -8, -6, -15, 5, 12, -3, -10, 4, 6, -5, -20, 0, 3, -3, -7,
      1, 2, -10, 7, -3, 6, 1, -12, 6, 4, -12, 2, 6, -20, 0, 5, 23, 15, 14, 9, 8, 20, -2, 9, -8, -8, -7, -4, -8, -9, 7,
      -12, -2, 2, 1, -14, 31, 4, -14, 3, 10, -18, -17, -1, 18, 1, 12, 0, 7, -3, -5, 8, -9, 18, 17, 7, -15, 3, 20, 4,
      -8, 16, 6, -3, -3, 9, -4, -6, 4};
  ASSERT_EQ(w.size(), 270u);
  V16 out = {10, 2, 33, 4, 5, 6, 65, 4, 3, 52, 1, 2, 8, -1, -2, 11, 17, -18};
  matmul_accumulate_ref(x.data(), 2, 30, w.data(), 9, bias.data(), 2080364544, -2, 0, out.data());
  const V16 expected = {-210, 331, 153, 139, -570, -657, 258, 515, -495, 91, -243, -73, 603, -744, -269, 169, -748, -174};
  EXPECT_EQ(out, expected);
}

const V16 kMulA = {2491, 32767, -32768, 32767, -32768, 32767, 32767, -32768, -32768, 2157, 4545, 14835, 1285, 29498,
                   26788, 2907, 7877, 6331, 8775, 3001, 1399, 4683, 1437, 1853, 12163, 4927, 7977, 3001, 16612, 4791};
const V16 kMulB = {-1156, 32767, -32768, -32768, 32767, 2308, 64, 220, -288, -10132, -964, 1016, -120, 844, 2944,
                   -4640, -2392, 736, -4352, 4352, 5180, -232, -428, 8276, -412, -1308, -1196, -5044, 1612, -10044};

TEST(IntegerOps, CwiseMulShift15And19MatchPublishedVectors) {
  V16 out(30);
  cwise_mul_shift(kMulA.data(), kMulB.data(), 30, 15, out.data());
  const V16 e15 = {-88, 32766, -32768, -32767, -32767, 2308, 64, -220, 288, -667, -134, 460, -5, 760, 2407,
                   -412, -575, 142, -1165, 399, 221, -33, -19, 468, -153, -197, -291, -462, 817, -1469};
  EXPECT_EQ(out, e15);  // element 2: (−32768)² >> 15 = 32768 wraps to −32768
  cwise_mul_shift(kMulA.data(), kMulB.data(), 30, 19, out.data());
  const V16 e19 = {-5, 2048, 2048, -2048, -2048, 144, 4, -14, 18, -42, -8, 29, 0, 47, 150,
                   -26, -36, 9, -73, 25, 14, -2, -1, 29, -10, -12, -18, -29, 51, -92};
  EXPECT_EQ(out, e19);
}

TEST(IntegerOps, CwiseMulToInt8AddsTheZeroPoint) {
  // Hand-derived: 100·200 = 20000; MBQM(20000, 2^30, −7) = 20000/2/128 = 78.125 -> 78; + zp 5 = 83.
  const int16_t a = 100, b = 200;
  int8_t out = 0;
  cwise_mul_to_int8(&a, &b, 1, 1 << 30, -7, 5, &out);
  EXPECT_EQ(out, 83);
  cwise_mul_to_int8(&a, &b, 1, 1 << 30, -7, -5, &out);
  EXPECT_EQ(out, 73);
  cwise_mul_to_int8(&a, &b, 1, 1 << 30, 0, 0, &out);  // saturates
  EXPECT_EQ(out, 127);
  // The vectorized array form against the element definition, on random int16 pairs, at every
  // instruction-set level (including both saturations and the (−32768)² product).
  std::mt19937 rng(11);
  const int64_t n = 203;
  V16 x(n), y(n);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = static_cast<int16_t>(rng());
    y[i] = static_cast<int16_t>(rng());
  }
  x[0] = y[0] = -32768;
  std::vector<int8_t> got(n);
  for (int shift : {-31, -20, -9, 0, 3}) {
    for (int32_t zp : {-128, -3, 0, 77}) {
      const int32_t m = (1 << 30) + static_cast<int32_t>(rng() % (1u << 30));
      lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
        cwise_mul_to_int8(x.data(), y.data(), n, m, shift, zp, got.data());
        for (int64_t i = 0; i < n; ++i) {
          const int32_t v = quant::multiply_by_quantized_multiplier(static_cast<int32_t>(x[i]) * y[i], m, shift) + zp;
          ASSERT_EQ(got[i], std::clamp(v, -128, 127)) << "shift " << shift << " zp " << zp << " i " << i;
        }
      });
    }
  }
}

TEST(IntegerOps, AddSub1AndClipsMatchPublishedVectors) {
  const V16 a = {2491, 32767, -32768, 32767, -32768, 32767, 32767, -32768, -32768, 20000};
  const V16 b = {-1156, 32767, -32768, -32768, 32767, 2308, 64, 220, -288, 20000};
  V16 out(10);
  cwise_add_sat(a.data(), b.data(), 10, out.data());
  EXPECT_EQ(out, (V16{1335, 32767, -32768, -1, -1, 32767, 32767, -32548, -32768, 32767}));
  const V16 f = {0, 32767, 16384, -1};
  V16 s(4);
  sub1(f.data(), 4, s.data());
  EXPECT_EQ(s, (V16{32767, 0, 16383, -32768}));  // 32767 − (−1) wraps
  V16 c = {-10500, 1, -2, -7404, 200, 300, 301, -300, -301};
  clip16(c.data(), 9, 300);
  EXPECT_EQ(c, (V16{-300, 1, -2, -300, 200, 300, 300, -300, -300}));
  std::vector<int8_t> c8 = {4, -11, -34, 127, -128, 32, -32, 33};
  clip8(c8.data(), 8, 32);
  EXPECT_EQ(c8, (std::vector<int8_t>{4, -11, -32, 32, -32, 32, -32, 32}));
}

TEST(IntegerOps, PeepholeAccumulateSaturates) {
  const V16 p = {16384, -16384};
  const V16 c = {32767, 32767};
  V16 out = {32000, -32000};
  // MBQM(16384·32767, 2^30, 0) = 16384·32767/2 = 268427264 -> saturates after adding.
  peephole_accumulate(p.data(), 2, c.data(), 1, 2, 1 << 30, -15, out.data(), 2);
  // 16384·32767 / 2^16 = 8191.75 -> 8192
  EXPECT_EQ(out, (V16{32767, -32768}));
}

}  // namespace
}  // namespace lowbit::quant::iops
