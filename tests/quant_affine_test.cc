// Affine int8/int16 quantization (TFLite semantics), per tensor and per channel, power-of-two
// scales, fake quantization with its STE, and the calibration observers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/quant/affine.h"
#include "lowbit/quant/observer.h"
#include "quant_test_util.h"

namespace lowbit::quant {
namespace {

using testing::kInf;
using testing::kSizes;

std::vector<float> random_values(std::size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// TFLite's reference Quantize, written as a plain loop body: float quotient, llround (half away
// from zero), add zero point, clamp.
long long ref_quantize(float x, float scale, int zp, int qmin, int qmax) {
  if (std::isinf(x)) return x > 0 ? qmax : qmin;
  const float r = x / scale;
  if (r > 1e15f) return qmax;
  if (r < -1e15f) return qmin;
  const long long q = std::llround(r) + zp;
  return q < qmin ? qmin : (q > qmax ? qmax : q);
}

// ---- parameter choice ----------------------------------------------------------------------

TEST(QuantAffine, AsymmetricHandDerived) {
  // [−1, 1] int8: scale = fl(2/255) is slightly above 2/255, so −min/scale = 127.49999237 and
  // zero_point = round(−128 + 127.49999237) = round(−0.50000763) = −1. Then 1.0 quantizes to
  // round(127.49999) − 1 = 126 and −1.0 to −127 − 1 = −128.
  QuantParams p = choose_asymmetric(-1.0f, 1.0f);
  EXPECT_EQ(p.scale, 2.0f / 255.0f);
  EXPECT_EQ(p.zero_point, -1);
  EXPECT_EQ(quantize_value(1.0f, p), 126);
  EXPECT_EQ(quantize_value(-1.0f, p), -128);
  EXPECT_EQ(quantize_value(0.0f, p), -1);
  EXPECT_EQ(dequantize_value(-1, p), 0.0f);
  // [−128, 127] int8: scale 1, zero point 0. [0, 255] uint8: scale 1, zero point 0.
  p = choose_asymmetric(-128.0f, 127.0f);
  EXPECT_EQ(p.scale, 1.0f);
  EXPECT_EQ(p.zero_point, 0);
  p = choose_asymmetric(0.0f, 255.0f, kUInt8);
  EXPECT_EQ(p.scale, 1.0f);
  EXPECT_EQ(p.zero_point, 0);
  EXPECT_EQ(p.qmin, 0);
  EXPECT_EQ(p.qmax, 255);
  // Ranges that exclude 0 are extended: [2, 10] -> [0, 10], zero point −128; [−10, −2] ->
  // [−10, 0], zero point 127.
  p = choose_asymmetric(2.0f, 10.0f);
  EXPECT_EQ(p.scale, 10.0f / 255.0f);
  EXPECT_EQ(p.zero_point, -128);
  p = choose_asymmetric(-10.0f, -2.0f);
  EXPECT_EQ(p.zero_point, 127);
  // Exact ties in the zero point round away from zero (std::round, as TFLite): uint8 [−2.5,
  // 252.5] has scale 1 and zero_point_from_min = 0 + 2.5 -> 3 (half-to-even would give 2);
  // int8 [−3.5, 251.5]: −128 + 3.5 = −124.5 -> −125 (half-to-even: −124).
  p = choose_asymmetric(-2.5f, 252.5f, kUInt8);
  EXPECT_EQ(p.scale, 1.0f);
  EXPECT_EQ(p.zero_point, 3);
  p = choose_asymmetric(-3.5f, 251.5f);
  EXPECT_EQ(p.scale, 1.0f);
  EXPECT_EQ(p.zero_point, -125);
  // int16 asymmetric [−1, 3]: scale 4/65535.
  p = choose_asymmetric(-1.0f, 3.0f, kInt16);
  EXPECT_EQ(p.scale, 4.0f / 65535.0f);
}

TEST(QuantAffine, AsymmetricZeroIsExactOnRandomRanges) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-50.0f, 50.0f);
  for (int i = 0; i < 20000; ++i) {
    float a = d(rng), b = d(rng);
    if (i % 4 == 0) a = std::fabs(a) * 1e-3f;  // small positive-only ranges
    const float lo = std::min(a, b), hi = std::max(a, b);
    for (QRange r : {kInt8, kUInt8, kInt16}) {
      const QuantParams p = choose_asymmetric(lo, hi, r);
      const float elo = std::min(lo, 0.0f), ehi = std::max(hi, 0.0f);
      ASSERT_EQ(p.scale, (ehi - elo) / static_cast<float>(r.qmax - r.qmin));
      ASSERT_GE(p.zero_point, r.qmin);
      ASSERT_LE(p.zero_point, r.qmax);
      // The point of the nudge: 0.0 quantizes to the zero point and comes back as exactly 0.
      ASSERT_EQ(quantize_value(0.0f, p), p.zero_point);
      ASSERT_EQ(dequantize_value(quantize_value(0.0f, p), p), 0.0f);
      // The representable interval covers the requested one up to half a step (the nudge moves
      // it by at most that), plus float rounding of the ends.
      const float slack = 0.5f * p.scale + 1e-6f * std::max(-elo, ehi);
      ASSERT_LE(p.real_min(), elo + slack);
      ASSERT_GE(p.real_max(), ehi - slack);
    }
  }
}

TEST(QuantAffine, SymmetricAndPowerOfTwo) {
  QuantParams p = choose_symmetric(2.54f);
  EXPECT_EQ(p.scale, 2.54f / 127.0f);
  EXPECT_EQ(p.zero_point, 0);
  EXPECT_EQ(p.qmin, -127);
  EXPECT_EQ(quantize_value(-kInf, p), -127) << "narrow range never produces −128";
  EXPECT_EQ(quantize_value(-2.54f, p), -127);
  EXPECT_EQ(quantize_value(2.54f, p), 127);
  p = choose_symmetric(1.0f, kInt16Narrow);
  EXPECT_EQ(p.scale, 1.0f / 32767.0f);
  EXPECT_EQ(quantize_value(-1.0f, p), -32767);
  std::vector<float> w{0.5f, -3.0f, 1.0f};
  EXPECT_EQ(choose_symmetric(w).scale, 3.0f / 127.0f);
  EXPECT_THROW(choose_symmetric(-1.0f), Error);
  EXPECT_THROW(choose_symmetric(1.0f, QRange{1, 10}), Error);

  // Power of two: 2^pot the smallest power >= max|x|, pot >= 0 by default; scale 2^(pot − 15).
  EXPECT_EQ(choose_power_of_two(0.9f).scale, std::ldexp(1.0f, -15));   // pot 0
  EXPECT_EQ(choose_power_of_two(1.0f).scale, std::ldexp(1.0f, -15));   // 2^0 >= 1
  EXPECT_EQ(choose_power_of_two(1.5f).scale, std::ldexp(1.0f, -14));   // pot 1
  EXPECT_EQ(choose_power_of_two(2.0f).scale, std::ldexp(1.0f, -14));   // exactly 2^1
  EXPECT_EQ(choose_power_of_two(2.0001f).scale, std::ldexp(1.0f, -13));
  EXPECT_EQ(choose_power_of_two(0.0f).scale, std::ldexp(1.0f, -15));
  EXPECT_EQ(choose_power_of_two(3e-5f, 16, -20).scale, std::ldexp(1.0f, -30));  // 2^-15 >= 3e-5
  EXPECT_EQ(choose_power_of_two(1000.0f).scale, std::ldexp(1.0f, -5));          // pot 10
  EXPECT_THROW(choose_power_of_two(1500.0f), Error);                             // pot 11 > 10
  const QuantParams c = choose_power_of_two(3.0f);
  EXPECT_EQ(c.qmin, -32768);
  EXPECT_EQ(c.qmax, 32767);
  EXPECT_EQ(c.zero_point, 0);
  EXPECT_EQ(power_of_two_exponent(c.scale), -13);
  EXPECT_EQ(choose_power_of_two(3.0f, 8).scale, std::ldexp(1.0f, -5));
  EXPECT_EQ(power_of_two_exponent(std::ldexp(1.0f, -11) * 1.0005f), -11);  // within 1e-3 on log2
  EXPECT_THROW(power_of_two_exponent(0.3f), Error);
  EXPECT_THROW(power_of_two_exponent(0.0f), Error);
}

TEST(QuantAffine, ZeroRangeIsSafe) {
  for (QuantParams p : {choose_asymmetric(0.0f, 0.0f), choose_symmetric(0.0f), choose_asymmetric(0.0f, 1e-12f),
                        choose_asymmetric(-1e-30f, 0.0f, kInt16), choose_symmetric(1e-40f, kInt16Narrow)}) {
    EXPECT_TRUE(std::isnormal(p.scale)) << p.scale;
    EXPECT_GT(p.scale, 0.0f);
    EXPECT_GE(p.zero_point, p.qmin);
    EXPECT_LE(p.zero_point, p.qmax);
    EXPECT_EQ(dequantize_value(quantize_value(0.0f, p), p), 0.0f);
  }
  // All-zero tensor quantizes to its zero point.
  std::vector<float> zeros(13, 0.0f);
  const QuantParams p = choose_asymmetric(zeros);
  std::vector<int8_t> q(13);
  quantize(zeros, p, q);
  for (int8_t v : q) EXPECT_EQ(v, p.zero_point);
  // Ranges of at least kMinQuantRange are left alone (TFLite-identical).
  EXPECT_EQ(choose_asymmetric(0.0f, 2e-8f).scale, 2e-8f / 255.0f);
  // Bad ranges are errors.
  EXPECT_THROW(choose_asymmetric(1.0f, -1.0f), Error);
  EXPECT_THROW(choose_asymmetric(-kInf, 1.0f), Error);
  EXPECT_THROW(choose_asymmetric(std::nanf(""), 1.0f), Error);
  EXPECT_THROW(choose_asymmetric(0.0f, 1.0f, QRange{5, 5}), Error);
}

// ---- quantize / dequantize -------------------------------------------------------------------

TEST(QuantAffine, QuantizeMatchesReferenceAllTypes) {
  for (std::size_t n : kSizes) {
    std::vector<float> x = random_values(n, 30 + n, -3.0f, 5.0f);
    x[0] = 0.0f;
    if (n > 3) x[1] = -kInf, x[2] = kInf, x[3] = 1e30f;
    const QuantParams p8 = choose_asymmetric(-2.0f, 4.0f);
    const QuantParams pu8 = choose_asymmetric(-2.0f, 4.0f, kUInt8);
    const QuantParams p16 = choose_asymmetric(-2.0f, 4.0f, kInt16);
    const QuantParams ps = choose_symmetric(4.0f);
    std::vector<int8_t> q8(n), qs(n);
    std::vector<uint8_t> qu8(n);
    std::vector<int16_t> q16(n);
    std::vector<int32_t> q32(n);
    quantize(x, p8, q8);
    quantize(x, pu8, qu8);
    quantize(x, p16, q16);
    quantize(x, ps, qs);
    quantize(x, p16, q32);
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_EQ(q8[i], ref_quantize(x[i], p8.scale, p8.zero_point, -128, 127)) << x[i];
      ASSERT_EQ(qu8[i], ref_quantize(x[i], pu8.scale, pu8.zero_point, 0, 255)) << x[i];
      ASSERT_EQ(q16[i], ref_quantize(x[i], p16.scale, p16.zero_point, -32768, 32767)) << x[i];
      ASSERT_EQ(qs[i], ref_quantize(x[i], ps.scale, 0, -127, 127)) << x[i];
      ASSERT_EQ(q32[i], q16[i]);
    }
    // Dequantize: scale · (q − zp), and the round trip is within half a step inside the range.
    std::vector<float> back(n);
    dequantize(std::span<const int8_t>(q8), p8, back);
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_EQ(back[i], static_cast<float>(static_cast<double>(p8.scale) * (q8[i] - p8.zero_point)));
      if (x[i] >= p8.real_min() && x[i] <= p8.real_max()) {
        ASSERT_LE(std::fabs(back[i] - x[i]), 0.5f * p8.scale * 1.001f) << x[i];
      }
    }
    dequantize(std::span<const uint8_t>(qu8), pu8, back);
    dequantize(std::span<const int16_t>(q16), p16, back);
    dequantize(std::span<const int32_t>(q32), p16, back);
  }
}

TEST(QuantAffine, QuantizeTiesAreAwayFromZero) {
  const QuantParams p{0.5f, 0, -128, 127};
  std::vector<float> x{0.25f, -0.25f, 0.75f, -0.75f, 1.25f, -1.25f};
  std::vector<int8_t> q(6);
  quantize(x, p, q);
  EXPECT_EQ(q, (std::vector<int8_t>{1, -1, 2, -2, 3, -3}));  // 0.5 -> 1, 1.5 -> 2, 2.5 -> 3 (not 2)
  const QuantParams pz{0.5f, 10, -128, 127};
  EXPECT_EQ(quantize_value(-0.25f, pz), 9);  // −0.5 -> −1, then + 10
}

TEST(QuantAffine, QuantizeChecksTypesSizesAndNaN) {
  std::vector<float> x{1.0f, 2.0f};
  std::vector<int8_t> q(2);
  EXPECT_THROW(quantize(x, choose_asymmetric(-1.0f, 1.0f, kUInt8), q), Error);  // [0, 255] ⊄ int8
  std::vector<int8_t> q3(3);
  EXPECT_THROW(quantize(x, choose_symmetric(2.0f), q3), Error);
  x[1] = std::nanf("");
  EXPECT_THROW(quantize(x, choose_symmetric(2.0f), q), Error);
  EXPECT_THROW(quantize_value(std::nanf(""), choose_symmetric(2.0f)), Error);
  EXPECT_THROW(quantize(std::vector<float>{1.0f}, QuantParams{0.0f, 0, -128, 127}, std::span(q).first(1)), Error);
  EXPECT_THROW(quantize(std::vector<float>{1.0f}, QuantParams{1.0f, 200, -128, 127}, std::span(q).first(1)), Error);
}

TEST(QuantAffine, TensorForms) {
  const std::vector<float> v = random_values(12, 5, -1.0f, 1.0f);
  Tensor t = Tensor::from<float>({3, 4}, v);
  const QuantParams p = choose_asymmetric(v);
  Tensor q = quantize(t, p, DType::i8);
  EXPECT_EQ(q.dtype(), DType::i8);
  EXPECT_EQ(q.shape(), (Shape{3, 4}));
  std::vector<int8_t> ref(12);
  quantize(v, p, ref);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(q.data<int8_t>()[i], ref[i]);
  Tensor d = dequantize(q, p);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(d.data<float>()[i], dequantize_value(ref[i], p));
  EXPECT_THROW(quantize(t, p, DType::f32), Error);
  const auto pc = choose_symmetric_per_channel(v, 3);
  Tensor qc = quantize_per_channel(t, pc, DType::i8);
  for (int c = 0; c < 3; ++c)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(qc.data<int8_t>()[4 * c + j], quantize_value(v[4 * c + j], pc[c]));
  EXPECT_THROW(quantize_per_channel(t, std::span(pc).first(2), DType::i8), Error);
}

// ---- per channel -----------------------------------------------------------------------------

TEST(QuantAffine, PerChannelEqualsPerTensorOnEachRow) {
  for (std::size_t inner : kSizes) {
    const std::size_t channels = 5;
    std::vector<float> w = random_values(channels * inner, 70 + inner, -1.0f, 1.0f);
    for (std::size_t c = 0; c < channels; ++c)  // very different magnitudes per channel
      for (std::size_t j = 0; j < inner; ++j) w[c * inner + j] *= std::ldexp(1.0f, static_cast<int>(c) * 3 - 6);
    const auto sym = choose_symmetric_per_channel(w, channels);
    const auto asym = choose_asymmetric_per_channel(w, channels);
    ASSERT_EQ(sym.size(), channels);
    std::vector<int8_t> qs(w.size()), qa(w.size());
    quantize_per_channel(w, sym, qs);
    quantize_per_channel(w, asym, qa);
    std::vector<float> fq(w.size()), back(w.size());
    fake_quantize_per_channel(w, sym, fq);
    dequantize_per_channel(std::span<const int8_t>(qs), sym, back);
    EXPECT_EQ(fq, back);
    for (std::size_t c = 0; c < channels; ++c) {
      std::span<const float> row(w.data() + c * inner, inner);
      const QuantParams ps = choose_symmetric(row), pa = choose_asymmetric(row);
      EXPECT_EQ(sym[c].scale, ps.scale);
      EXPECT_EQ(asym[c].scale, pa.scale);
      EXPECT_EQ(asym[c].zero_point, pa.zero_point);
      float m = 0;
      for (float v : row) m = std::max(m, std::fabs(v));
      EXPECT_EQ(sym[c].scale, std::max(m, 0.5f * kMinQuantRange) / 127.0f);
      for (std::size_t j = 0; j < inner; ++j) {
        ASSERT_EQ(qs[c * inner + j], ref_quantize(row[j], ps.scale, 0, -127, 127));
        ASSERT_EQ(qa[c * inner + j], ref_quantize(row[j], pa.scale, pa.zero_point, -128, 127));
      }
    }
    // Per channel is never worse than per tensor here (the small channels gain resolution).
    const QuantParams pt = choose_symmetric(w);
    std::vector<float> ft(w.size());
    fake_quantize(w, pt, ft);
    double err_t = 0, err_c = 0;
    for (std::size_t i = 0; i < w.size(); ++i) err_t += std::fabs(ft[i] - w[i]), err_c += std::fabs(fq[i] - w[i]);
    EXPECT_LE(err_c, err_t + 1e-12);
  }
  std::vector<float> w(10);
  EXPECT_THROW(choose_symmetric_per_channel(w, 3), Error);
  std::vector<int16_t> q16(10);
  std::vector<QuantParams> two(2, choose_symmetric(1.0f, kInt16Narrow));
  quantize_per_channel(w, two, q16);
  std::vector<float> back(10);
  dequantize_per_channel(std::span<const int16_t>(q16), two, back);
  for (float v : back) EXPECT_EQ(v, 0.0f);
}

// ---- fake quantization ------------------------------------------------------------------------

TEST(QuantAffine, FakeQuantizeAndItsStraightThroughGradient) {
  for (std::size_t n : kSizes) {
    std::vector<float> x = random_values(n, 90 + n, -3.0f, 3.0f);
    const QuantParams p = choose_asymmetric(-1.0f, 2.0f);
    std::vector<float> fq(n), g = random_values(n, 95 + n, -1.0f, 1.0f), gin(n);
    fake_quantize(x, p, fq);
    for (std::size_t i = 0; i < n; ++i)
      ASSERT_EQ(fq[i], p.scale * static_cast<float>(ref_quantize(x[i], p.scale, p.zero_point, -128, 127) - p.zero_point));
    fake_quantize_backward(x, g, p, gin);
    for (std::size_t i = 0; i < n; ++i) {
      const bool inside = x[i] >= p.real_min() && x[i] <= p.real_max();
      ASSERT_EQ(gin[i], inside ? g[i] : 0.0f);
    }
  }
  // The boundaries themselves pass; just outside does not.
  const QuantParams p = choose_symmetric(1.27f);  // scale 0.01, range [−1.27, 1.27]
  std::vector<float> x{p.real_min(), p.real_max(), std::nextafter(p.real_max(), 2.0f),
                       std::nextafter(p.real_min(), -2.0f)};
  std::vector<float> g{1, 1, 1, 1}, gin(4);
  fake_quantize_backward(x, g, p, gin);
  EXPECT_EQ(gin, (std::vector<float>{1, 1, 0, 0}));
  // Finite differences of the clipped identity clip(x, real_min, real_max) away from the kinks.
  std::vector<float> xs, ones;
  for (float v = -2.0f; v <= 2.0f; v += 0.0371f) xs.push_back(v), ones.push_back(1.0f);
  std::vector<float> gs(xs.size());
  fake_quantize_backward(xs, ones, p, gs);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    auto clip = [&](double v) { return std::max<double>(p.real_min(), std::min<double>(p.real_max(), v)); };
    ASSERT_NEAR(gs[i], (clip(xs[i] + 1e-5) - clip(xs[i] - 1e-5)) / 2e-5, 1e-6) << xs[i];
  }
}

// ---- observers ---------------------------------------------------------------------------------

TEST(QuantObserver, MinMaxTracksGlobalRangeAndSkipsNaN) {
  MinMaxObserver obs;
  EXPECT_TRUE(obs.empty());
  EXPECT_THROW(obs.min(), Error);
  EXPECT_THROW(obs.asymmetric(), Error);
  float lo = kInf, hi = -kInf;
  for (std::size_t n : kSizes) {
    std::vector<float> x = random_values(n, 110 + n, -static_cast<float>(n), 0.5f * n);
    if (n > 2) x[1] = std::nanf("");
    obs.update(x);
    for (float v : x)
      if (!std::isnan(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  EXPECT_EQ(obs.min(), lo);
  EXPECT_EQ(obs.max(), hi);
  std::vector<float> all_nan(4, std::nanf(""));
  obs.update(all_nan);
  EXPECT_EQ(obs.min(), lo);
  const QuantParams a = obs.asymmetric();
  const QuantParams b = choose_asymmetric(lo, hi);
  EXPECT_EQ(a.scale, b.scale);
  EXPECT_EQ(a.zero_point, b.zero_point);
  EXPECT_EQ(obs.symmetric().scale, std::max(-lo, hi) / 127.0f);
  std::vector<float> with_inf{1.0f, kInf};
  EXPECT_THROW(obs.update(with_inf), Error);
  obs.reset();
  EXPECT_TRUE(obs.empty());
  std::vector<float> c{3.0f};
  obs.update(c);
  EXPECT_EQ(obs.power_of_two().scale, std::ldexp(1.0f, -13));
}

TEST(QuantObserver, MovingAverageFollowsItsRecurrence) {
  MovingAverageMinMaxObserver obs(0.1f);
  double lo = 0, hi = 0;
  bool first = true;
  for (int step = 0; step < 50; ++step) {
    const std::vector<float> x = random_values(13 + step, 200 + step, -1.0f - step * 0.1f, 1.0f + step * 0.05f);
    obs.update(x);
    const double blo = *std::min_element(x.begin(), x.end()), bhi = *std::max_element(x.begin(), x.end());
    if (first) {
      lo = blo, hi = bhi, first = false;
    } else {
      lo = 0.9 * lo + 0.1 * blo;
      hi = 0.9 * hi + 0.1 * bhi;
    }
  }
  EXPECT_NEAR(obs.min(), lo, 1e-4);
  EXPECT_NEAR(obs.max(), hi, 1e-4);
  EXPECT_THROW(MovingAverageMinMaxObserver(0.0f), Error);
  EXPECT_THROW(MovingAverageMinMaxObserver(1.5f), Error);
  MovingAverageMinMaxObserver zero;
  std::vector<float> zeros(7, 0.0f);
  zero.update(zeros);
  EXPECT_TRUE(std::isnormal(zero.asymmetric().scale));
  EXPECT_TRUE(std::isnormal(zero.symmetric().scale));
}

TEST(QuantObserver, PerChannel) {
  PerChannelMinMaxObserver obs(3);
  EXPECT_TRUE(obs.empty());
  std::vector<float> lo(3, kInf), hi(3, -kInf);
  for (std::size_t inner : kSizes) {
    const std::vector<float> x = random_values(3 * inner, 300 + inner, -2.0f, 3.0f);
    obs.update(x);
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t j = 0; j < inner; ++j) lo[c] = std::min(lo[c], x[c * inner + j]), hi[c] = std::max(hi[c], x[c * inner + j]);
  }
  EXPECT_FALSE(obs.empty());
  const auto sym = obs.symmetric();
  const auto asym = obs.asymmetric();
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(obs.min(c), lo[c]);
    EXPECT_EQ(obs.max(c), hi[c]);
    EXPECT_EQ(sym[c].scale, std::max(-lo[c], hi[c]) / 127.0f);
    EXPECT_EQ(asym[c].zero_point, choose_asymmetric(lo[c], hi[c]).zero_point);
  }
  std::vector<float> bad(4);
  EXPECT_THROW(obs.update(bad), Error);
  EXPECT_THROW(obs.min(3), Error);
  EXPECT_THROW(PerChannelMinMaxObserver(0), Error);
}

}  // namespace
}  // namespace lowbit::quant
