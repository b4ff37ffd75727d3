// k-bit linear / logarithmic quantizers, k-bit weight and activation codes, stochastic rounding
// and gradient quantization, against references written here: nearest-level searches in long
// double, std::log2, and plain statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "lowbit/core/cpu.h"
#include "lowbit/core/error.h"
#include "lowbit/quant/binary.h"
#include "lowbit/quant/kbit.h"
#include "lowbit/quant/rng.h"
#include "quant_test_util.h"
#include "test_util.h"

namespace lowbit::quant {
namespace {

using testing::kInf;
using testing::kSizes;
using testing::random_values;


// Index of the integer in [0, L] nearest to t, ties to the larger one, by search. Callers
// express the value in units of the level spacing, so exact midpoints stay exact.
int nearest_index(long double t, int L) {
  int best = 0;
  for (int j = 1; j <= L; ++j)
    if (std::fabs(t - j) <= std::fabs(t - best)) best = j;
  return best;
}

// ---- LinearQuant ----------------------------------------------------------------------------

double ref_linear(float x, float step, float lo, float hi) {
  if (std::isinf(x)) return x > 0 ? hi : lo;
  const double r = static_cast<double>(x) / step;
  const double mag = std::floor(std::fabs(r) + 0.5);  // half away from zero, written by hand
  const double q = (r < 0 ? -mag : mag) * step;
  return std::min<double>(hi, std::max<double>(lo, q));
}

TEST(QuantKbit, LinearQuantMatchesReference) {
  for (std::size_t n : kSizes) {
    const std::vector<float> x = random_values(n, n, 1.5f);
    for (auto [step, lo, hi] : {std::tuple{0.25f, -1.0f, 1.0f}, std::tuple{0.1f, -0.7f, 0.8f},
                                std::tuple{1.0f / 64, 0.0f, 1.0f}, std::tuple{0.3f, -10.0f, 10.0f}}) {
      std::vector<float> out(n);
      linear_quant(x, out, step, lo, hi);
      for (std::size_t i = 0; i < n; ++i)
        ASSERT_EQ(out[i], static_cast<float>(ref_linear(x[i], step, lo, hi))) << x[i] << " step " << step;
    }
  }
}

TEST(QuantKbit, LinearQuantTiesAndSaturation) {
  // step 0.25: ±0.125 = ±0.5 steps -> ±0.25 (away from zero); ±0.375 -> ±0.5; 0.625 -> 0.75.
  std::vector<float> x{0.125f, -0.125f, 0.375f, -0.375f, 0.625f, 1.0f, 1.2f, -kInf, kInf, 0.0f};
  std::vector<float> out(x.size());
  linear_quant(x, out, 0.25f, -1.0f, 1.0f);
  EXPECT_EQ(out, (std::vector<float>{0.25f, -0.25f, 0.5f, -0.5f, 0.75f, 1.0f, 1.0f, -1.0f, 1.0f, 0.0f}));
  // A clip bound off the grid is itself an output value (clip after rounding).
  std::vector<float> y{0.9f}, yo(1);
  linear_quant(y, yo, 0.25f, -1.0f, 0.8f);
  EXPECT_EQ(yo[0], 0.8f);
  EXPECT_THROW(linear_quant(y, yo, 0.0f, -1.0f, 1.0f), Error);
  EXPECT_THROW(linear_quant(y, yo, 0.25f, 1.0f, -1.0f), Error);
  y[0] = std::nanf("");
  EXPECT_THROW(linear_quant(y, yo, 0.25f, -1.0f, 1.0f), Error);
}

TEST(QuantKbit, ClippedSteMaskAndFiniteDifference) {
  for (std::size_t n : kSizes) {
    const std::vector<float> x = random_values(n, 100 + n, 1.5f);
    const std::vector<float> g = random_values(n, 200 + n, 3.0f);
    std::vector<float> gin(n);
    linear_quant_backward(x, g, gin, -0.5f, 1.0f);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(gin[i], (x[i] >= -0.5f && x[i] <= 1.0f) ? g[i] : 0.0f);
    log_quant_backward(x, g, gin, -0.5f, 1.0f);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(gin[i], (x[i] >= -0.5f && x[i] <= 1.0f) ? g[i] : 0.0f);
  }
  // Finite differences of the clipped identity clip(x, lo, hi), away from the kinks.
  std::vector<float> x, ones;
  for (float v = -2.0f; v <= 2.0f; v += 0.0625f + 1.0f / 1024) x.push_back(v), ones.push_back(1.0f);
  std::vector<float> gin(x.size());
  clipped_ste_backward(x, ones, gin, -1.0f, 0.5f);
  for (std::size_t i = 0; i < x.size(); ++i) {
    auto clip = [](double v) { return std::min(0.5, std::max(-1.0, v)); };
    const double h = 1e-4;
    ASSERT_NEAR(gin[i], (clip(x[i] + h) - clip(x[i] - h)) / (2 * h), 1e-9) << x[i];
  }
}

// ---- AP2 / LogQuant ------------------------------------------------------------------------

double ref_ap2(double x) {
  if (x == 0) return x;
  const double k = std::round(std::log2(std::fabs(x)));
  return std::copysign(std::exp2(k), x);
}

TEST(QuantKbit, Ap2MatchesLog2Reference) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> e(-140.0, 127.0);
  for (int i = 0; i < 200000; ++i) {
    const float x = static_cast<float>((i & 1 ? -1 : 1) * std::exp2(e(rng)));
    if (x == 0 || std::isinf(x)) continue;
    const double want = ref_ap2(x);
    ASSERT_EQ(ap2(x), static_cast<float>(want)) << x;
  }
  // Exact powers of two are fixed points; the log-domain midpoint 2^-1/2 splits 0.5 and 1.
  for (int k = -149; k <= 127; ++k) ASSERT_EQ(ap2(std::ldexp(1.0f, k)), std::ldexp(1.0f, k));
  const float mid = 0.70710678118654752f;  // the float nearest 2^-1/2
  const float below = std::nextafter(mid, 0.0f), above = std::nextafter(mid, 1.0f);
  EXPECT_EQ(ap2(below), 0.5f);
  EXPECT_EQ(ap2(above), 1.0f);
  EXPECT_EQ(ap2(mid), static_cast<float>(ref_ap2(mid)));
  EXPECT_EQ(ap2(-3.0f), -4.0f);   // log2 3 = 1.58 -> 2
  EXPECT_EQ(ap2(2.8f), 2.0f);     // log2 2.8 = 1.49 -> 1
  EXPECT_EQ(ap2(0.0f), 0.0f);
  EXPECT_TRUE(std::signbit(ap2(-0.0f)));
  EXPECT_EQ(ap2(kInf), kInf);
  EXPECT_EQ(ap2(3e38f), kInf);  // log2 = 127.8 rounds to 128: overflows float
  EXPECT_TRUE(std::isnan(ap2(std::nanf(""))));
  std::vector<float> v{std::nanf("")}, o(1);
  EXPECT_THROW(ap2(v, o), Error);
}

TEST(QuantKbit, LogQuantMatchesReference) {
  for (std::size_t n : kSizes) {
    const std::vector<float> x = random_values(n, 300 + n, 3.0f);
    std::vector<float> out(n);
    log_quant(x, out, -1.0f, 1.0f);
    for (std::size_t i = 0; i < n; ++i) {
      const double want = std::isinf(x[i]) ? (x[i] > 0 ? 1.0 : -1.0) : std::min(1.0, std::max(-1.0, ref_ap2(x[i])));
      ASSERT_EQ(out[i], static_cast<float>(want)) << x[i];
    }
  }
}

// ---- k-bit weights and activations ----------------------------------------------------------

TEST(QuantKbit, WeightsAreTheNearestSymmetricLevel) {
  for (int bits = 1; bits <= 8; ++bits) {
    for (float clip : {1.0f, 0.75f, 3.0f}) {
      const int L = (1 << bits) - 1;
      for (std::size_t n : kSizes) {
        const std::vector<float> x = random_values(n, 400 + n + bits, 1.3f * clip);
        std::vector<float> out(n);
        quantize_weights_kbit(x, out, bits, clip);
        for (std::size_t i = 0; i < n; ++i) {
          const long double xc = std::min<long double>(clip, std::max<long double>(-clip, x[i]));
          // Position on the level grid: level j sits at t = j.
          int j = nearest_index((xc + clip) * L / (2.0L * clip), L);
          // x = ±1e-30 vanishes next to clip in long double; only its sign matters (sign-like).
          if (x[i] != 0 && std::fabs(static_cast<double>(x[i])) < 1e-20) j = x[i] < 0 ? (L - 1) / 2 : (L + 1) / 2;
          const float want = static_cast<float>(clip * (2.0L * j - L) / L);
          ASSERT_EQ(out[i], want) << "bits " << bits << " clip " << clip << " x " << x[i];
        }
      }
    }
  }
}

TEST(QuantKbit, OneBitWeightsAreBinarize) {
  for (std::size_t n : kSizes) {
    const std::vector<float> x = random_values(n, 500 + n, 2.0f);
    std::vector<float> a(n), b(n);
    quantize_weights_kbit(x, a, 1);
    binarize(x, b);
    EXPECT_EQ(a, b);
  }
  std::vector<float> x{-1e-30f, -0.0f, 0.0f, 1e-30f, -kInf, kInf}, out(6);
  quantize_weights_kbit(x, out, 1);
  EXPECT_EQ(out, (std::vector<float>{-1, 1, 1, 1, -1, 1}));
}

TEST(QuantKbit, WeightTiesGoUp) {
  // bits 2, clip 3: levels −3, −1, 1, 3; the midpoints −2, 0, 2 are exact floats and go up.
  std::vector<float> x{-2.0f, 0.0f, 2.0f, std::nextafter(-2.0f, -3.0f), std::nextafter(2.0f, 0.0f)}, out(5);
  quantize_weights_kbit(x, out, 2, 3.0f);
  EXPECT_EQ(out, (std::vector<float>{-1, 1, 3, -3, 1}));
  std::vector<uint8_t> codes(5);
  weights_kbit_to_codes(x, codes, 2, 3.0f);
  EXPECT_EQ(codes, (std::vector<uint8_t>{1, 2, 3, 0, 2}));
}

TEST(QuantKbit, ActivationsAreTheNearestUnsignedLevel) {
  for (int bits = 1; bits <= 8; ++bits) {
    for (float clip : {1.0f, 6.0f}) {
      const int L = (1 << bits) - 1;
      for (std::size_t n : kSizes) {
        const std::vector<float> x = random_values(n, 600 + n + bits, 1.3f * clip);
        std::vector<float> out(n);
        quantize_activations_kbit(x, out, bits, clip);
        for (std::size_t i = 0; i < n; ++i) {
          const long double xc = std::min<long double>(clip, std::max<long double>(0, x[i]));
          const int j = nearest_index(xc * L / clip, L);
          ASSERT_EQ(out[i], static_cast<float>(clip * static_cast<long double>(j) / L)) << bits << " " << x[i];
        }
      }
    }
  }
  // bits 2, clip 3: levels 0..3, midpoints 0.5, 1.5, 2.5 go up.
  std::vector<float> x{0.5f, 1.5f, 2.5f, -1.0f, 9.0f}, out(5);
  quantize_activations_kbit(x, out, 2, 3.0f);
  EXPECT_EQ(out, (std::vector<float>{1, 2, 3, 0, 3}));
}

TEST(QuantKbit, WeightsActivationsAndMasksAreTheSameAtEveryIsa) {
  // The AVX-512 forms against the scalar ones, on random values and on every tie, level and
  // clamp edge of each grid (as floats), with lengths that leave partial vectors.
  for (int bits = 1; bits <= 8; ++bits) {
    for (float clip : {1.0f, 0.75f, 3.0f, 6.0f}) {
      const int L = (1 << bits) - 1;
      std::vector<float> x = random_values(1003, 900 + bits, 1.3f * clip);
      for (int j = -2 * L - 2; j <= 2 * L + 2; ++j) {
        const float t = static_cast<float>(clip * j / (2.0 * L));  // levels and midpoints, both grids
        for (float v : {t, std::nextafter(t, -kInf), std::nextafter(t, kInf), -t}) x.push_back(v);
      }
      for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, kInf, -kInf, clip, -clip}) x.push_back(v);
      std::vector<float> first_w, first_a, first_g;
      std::vector<float> g(x.size());
      for (std::size_t i = 0; i < g.size(); ++i) g[i] = 0.5f + static_cast<float>(i);
      lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
        std::vector<float> w(x.size()), a(x.size()), gi(x.size());
        quantize_weights_kbit(x, w, bits, clip);
        quantize_activations_kbit(x, a, bits, clip);
        quantize_weights_kbit_backward(x, g, gi, clip);
        if (first_w.empty()) {
          first_w = w;
          first_a = a;
          first_g = gi;
          return;
        }
        for (std::size_t i = 0; i < x.size(); ++i) {
          ASSERT_EQ(std::signbit(w[i]), std::signbit(first_w[i])) << bits << " " << clip << " x " << x[i];
          ASSERT_EQ(w[i], first_w[i]) << bits << " " << clip << " x " << x[i];
          ASSERT_EQ(std::signbit(a[i]), std::signbit(first_a[i])) << bits << " " << clip << " x " << x[i];
          ASSERT_EQ(a[i], first_a[i]) << bits << " " << clip << " x " << x[i];
          ASSERT_EQ(gi[i], first_g[i]) << bits << " " << clip << " x " << x[i];
        }
      });
    }
  }
}

TEST(QuantKbit, CodesRoundTripToTheForward) {
  for (int bits = 1; bits <= 8; ++bits) {
    for (std::size_t n : kSizes) {
      const std::vector<float> x = random_values(n, 700 + n + bits, 1.5f);
      std::vector<float> fw(n), back(n);
      std::vector<uint8_t> codes(n);
      quantize_weights_kbit(x, fw, bits, 1.0f);
      weights_kbit_to_codes(x, codes, bits, 1.0f);
      for (uint8_t c : codes) ASSERT_LT(c, 1 << bits);
      weights_kbit_from_codes(codes, back, bits, 1.0f);
      ASSERT_EQ(fw, back) << bits;
      quantize_activations_kbit(x, fw, bits, 1.0f);
      activations_kbit_to_codes(x, codes, bits, 1.0f);
      activations_kbit_from_codes(codes, back, bits, 1.0f);
      ASSERT_EQ(fw, back) << bits;
    }
  }
  std::vector<uint8_t> bad{4};
  std::vector<float> out(1);
  EXPECT_THROW(weights_kbit_from_codes(bad, out, 2), Error);
  EXPECT_THROW(activations_kbit_from_codes(bad, out, 2), Error);
  std::vector<float> x(1);
  EXPECT_THROW(quantize_weights_kbit(x, out, 0), Error);
  EXPECT_THROW(quantize_weights_kbit(x, out, 9), Error);
  EXPECT_THROW(quantize_activations_kbit(x, out, 2, -1.0f), Error);
}

TEST(QuantKbit, KbitBackwardMasks) {
  std::vector<float> x{-1.5f, -1.0f, -0.2f, 0.0f, 0.7f, 1.0f, 1.01f}, g{1, 2, 3, 4, 5, 6, 7}, gin(7);
  quantize_weights_kbit_backward(x, g, gin);
  EXPECT_EQ(gin, (std::vector<float>{0, 2, 3, 4, 5, 6, 0}));
  quantize_activations_kbit_backward(x, g, gin);
  EXPECT_EQ(gin, (std::vector<float>{0, 0, 0, 4, 5, 6, 0}));
}

// ---- stochastic rounding and gradient quantization -----------------------------------------

TEST(QuantKbit, StochasticRoundIsUnbiasedAndDeterministic) {
  const std::size_t n = 100000;
  for (float v : {0.3f, -0.3f, 1.0f, 2.71f, -5.05f}) {
    std::vector<float> x(n, v), out(n), again(n);
    stochastic_round(x, out, 0.5f, 77);
    stochastic_round(x, again, 0.5f, 77);
    EXPECT_EQ(out, again);
    double sum = 0;
    const double lo = std::floor(v / 0.5) * 0.5;
    for (float q : out) {
      ASSERT_TRUE(q == lo || q == lo + 0.5 || (q == v && std::fmod(v, 0.5f) == 0)) << q;
      sum += q;
    }
    EXPECT_NEAR(sum / n, v, 0.004) << v;  // σ of the mean <= 0.25/sqrt(n) ≈ 0.0008
  }
  // Chunked with offsets equals whole.
  std::vector<float> x = random_values(257, 9, 3.0f);
  for (auto& v : x)
    if (std::isinf(v)) v = 1.0f;
  std::vector<float> whole(257), parts(257);
  stochastic_round(x, whole, 0.1f, 5);
  stochastic_round(std::span(x).first(100), std::span(parts).first(100), 0.1f, 5, 0);
  stochastic_round(std::span(x).subspan(100), std::span(parts).subspan(100), 0.1f, 5, 100);
  EXPECT_EQ(whole, parts);
}

TEST(QuantKbit, GradientQuantizationGridAndUnbiasedness) {
  for (std::size_t n : kSizes) {
    std::vector<float> g = random_values(n, 800 + n, 0.01f);
    for (auto& v : g)
      if (std::isinf(v)) v = 0.004f;
    for (int bits : {2, 6, 8}) {
      const double L = (1 << bits) - 1;
      std::vector<float> q(n), q2(n);
      const float m = quantize_gradient(g, q, bits, 1234);
      quantize_gradient(g, q2, bits, 1234);
      EXPECT_EQ(q, q2);
      double want_m = 0;
      for (float v : g) want_m = std::max(want_m, std::fabs(static_cast<double>(v)));
      ASSERT_EQ(m, static_cast<float>(want_m));
      const double step = 2.0 * m / L;
      for (std::size_t i = 0; i < n && m > 0; ++i) {
        // On the grid 2m·(j/L − 1/2) and within one step of g.
        const double j = (q[i] / (2.0 * m) + 0.5) * L;
        ASSERT_NEAR(j, std::round(j), 1e-3) << q[i];
        ASSERT_GE(std::round(j), 0);
        ASSERT_LE(std::round(j), L);
        ASSERT_LE(std::fabs(q[i] - g[i]), step * (1 + 1e-5)) << g[i] << " -> " << q[i];
        if (std::fabs(g[i]) == m) {
          ASSERT_EQ(q[i], g[i]) << "the extremes are levels";
        }
      }
    }
    // Mean over many seeds approaches g (6 bits, as QNN).
    const int draws = 400;
    std::vector<double> mean(n, 0.0);
    std::vector<float> q(n);
    float m = 0;
    for (int s = 0; s < draws; ++s) {
      m = quantize_gradient(g, q, 6, derive_seed(42, s));
      for (std::size_t i = 0; i < n; ++i) mean[i] += q[i];
    }
    for (std::size_t i = 0; i < n; ++i) {
      // per-draw σ <= step/2 = m/63; σ of the mean <= m/(63·20); allow 5σ
      ASSERT_NEAR(mean[i] / draws, g[i], 5.0 * m / (63.0 * 20.0)) << i;
    }
  }
  std::vector<float> zeros(13, 0.0f), out(13, 5.0f);
  EXPECT_EQ(quantize_gradient(zeros, out, 6, 1), 0.0f);
  for (float v : out) EXPECT_EQ(v, 0.0f);
  std::vector<float> bad{1.0f, kInf};
  std::vector<float> bo(2);
  EXPECT_THROW(quantize_gradient(bad, bo, 6, 1), Error);
  bad[1] = std::nanf("");
  EXPECT_THROW(quantize_gradient(bad, bo, 6, 1), Error);
  EXPECT_THROW(quantize_gradient(zeros, bo, 6, 1), Error);  // size mismatch
}

}  // namespace
}  // namespace lowbit::quant
