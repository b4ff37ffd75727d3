// Binarization, ternarization and the counter-based generator, each checked against a scalar
// reference written here independently (plain double arithmetic, no shared helpers).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/quant/binary.h"
#include "lowbit/quant/rng.h"
#include "lowbit/quant/ternary.h"
#include "quant_test_util.h"

namespace lowbit::quant {
namespace {

using testing::kInf;
using testing::kSizes;

// Random values in [−lim, lim] with the special values sprinkled in.
std::vector<float> random_values(std::size_t n, uint32_t seed, float lim = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-lim, lim);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, 1e-30f, -1e-30f, kInf, -kInf, 1.0000001f, -0.9999999f};
  for (std::size_t i = 0; i < n; i += 3) v[i] = specials[(i / 3) % 10];
  return v;
}

std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// ---- deterministic sign -------------------------------------------------------------------

TEST(QuantBinary, DeterministicMatchesReference) {
  for (std::size_t n : kSizes) {
    const std::vector<float> x = random_values(n, 1 + n);
    std::vector<float> out(n);
    binarize(x, out);
    for (std::size_t i = 0; i < n; ++i) {
      const float want = (x[i] < 0.0f) ? -1.0f : 1.0f;  // sign(0) = sign(−0) = +1 (qnn.md §1)
      ASSERT_EQ(out[i], want) << "n=" << n << " x=" << x[i];
    }
  }
  EXPECT_EQ(sign_pm1(0.0f), 1.0f);
  EXPECT_EQ(sign_pm1(-0.0f), 1.0f);
  EXPECT_EQ(sign_pm1(-1e-45f), -1.0f);
}

TEST(QuantBinary, InPlaceAndTensorForm) {
  std::vector<float> x = random_values(13, 3);
  const std::vector<float> copy = x;
  binarize(x, x);
  Tensor t = Tensor::from<float>({13}, copy);
  Tensor b = binarize(t);
  for (std::size_t i = 0; i < 13; ++i) EXPECT_EQ(b.data<float>()[i], x[i]);
}

TEST(QuantBinary, SizeMismatchAndNaNAreErrors) {
  std::vector<float> x(7, 0.5f), out(6);
  const std::string msg = what_of([&] { binarize(x, out); });
  EXPECT_NE(msg.find("6"), std::string::npos) << msg;
  EXPECT_NE(msg.find("7"), std::string::npos) << msg;
  x[4] = std::nanf("");
  std::vector<float> out7(7, 42.0f);
  const std::string nan_msg = what_of([&] { binarize(x, out7); });
  EXPECT_NE(nan_msg.find("input[4]"), std::string::npos) << nan_msg;
  EXPECT_EQ(out7[0], 42.0f) << "nothing is written before the NaN check";
  EXPECT_THROW(binarize_stochastic(x, out7, 1), Error);
  std::vector<float> g(6);
  EXPECT_THROW(binarize_backward(x, g, out7), Error);
  Tensor i8 = Tensor::zeros({3}, DType::i8);
  EXPECT_THROW(binarize(i8), Error);
}

// ---- stochastic ---------------------------------------------------------------------------

TEST(QuantBinary, StochasticIsDeterministicGivenSeedAndChunkable) {
  for (std::size_t n : kSizes) {
    const std::vector<float> x = random_values(n, 10 + n, 1.2f);
    std::vector<float> a(n), b(n), c(n), chunked(n);
    binarize_stochastic(x, a, 99);
    binarize_stochastic(x, b, 99);
    binarize_stochastic(x, c, 100);
    EXPECT_EQ(a, b);
    for (float v : a) ASSERT_TRUE(v == 1.0f || v == -1.0f);
    // Chunks with their offsets reproduce the whole call.
    const std::size_t half = n / 2;
    binarize_stochastic(std::span(x).first(half), std::span(chunked).first(half), 99, 0);
    binarize_stochastic(std::span(x).subspan(half), std::span(chunked).subspan(half), 99, half);
    EXPECT_EQ(a, chunked);
    if (n >= 64) {
      EXPECT_NE(a, c) << "different seeds should give different draws";
    }
  }
}

TEST(QuantBinary, StochasticMeanIsHardTanh) {
  // E[q(x)] = 2·σ(x) − 1 = clip(x, −1, 1). 200000 draws: the standard error is below 0.0023.
  const std::size_t n = 200000;
  for (float v : {-2.0f, -1.0f, -0.6f, -0.2f, 0.0f, 0.3f, 0.9f, 1.0f, 3.0f}) {
    std::vector<float> x(n, v), out(n);
    binarize_stochastic(x, out, 12345);
    double sum = 0;
    for (float q : out) sum += q;
    const double want = std::max(-1.0, std::min(1.0, static_cast<double>(v)));
    EXPECT_NEAR(sum / n, want, 0.012) << "x = " << v;
    if (std::fabs(v) >= 1.0f) {
      EXPECT_EQ(sum / n, want) << "saturated inputs are deterministic";
    }
  }
  EXPECT_EQ(hard_sigmoid(-3.0f), 0.0f);
  EXPECT_EQ(hard_sigmoid(0.0f), 0.5f);
  EXPECT_EQ(hard_sigmoid(0.5f), 0.75f);
  EXPECT_EQ(hard_sigmoid(kInf), 1.0f);
}

// ---- STE ----------------------------------------------------------------------------------

TEST(QuantBinary, SteMaskIsExact) {
  for (std::size_t n : kSizes) {
    const std::vector<float> x = random_values(n, 20 + n);
    const std::vector<float> g = random_values(n, 30 + n, 5.0f);
    std::vector<float> gin(n);
    for (float w : {1.0f, 2.0f, 0.0f}) {
      binarize_backward(x, g, gin, w);
      for (std::size_t i = 0; i < n; ++i) {
        const bool pass = x[i] >= -w && x[i] <= w;  // |x| <= w, boundary included
        ASSERT_EQ(gin[i], pass ? g[i] : 0.0f) << "x=" << x[i] << " w=" << w;
      }
    }
  }
  // Boundary: |x| = 1 passes, 1 + ulp does not.
  std::vector<float> x{1.0f, -1.0f, std::nextafter(1.0f, 2.0f), -std::nextafter(1.0f, 2.0f)};
  std::vector<float> g{1, 1, 1, 1}, gin(4);
  binarize_backward(x, g, gin);
  EXPECT_EQ(gin, (std::vector<float>{1, 1, 0, 0}));
  EXPECT_THROW(binarize_backward(x, g, gin, -1.0f), Error);
}

TEST(QuantBinary, SteMatchesFiniteDifferenceOfHardTanh) {
  // The STE is the derivative of htanh(x) = clip(x, −1, 1): compare with central differences
  // away from the kinks.
  std::mt19937 rng(4);
  std::uniform_real_distribution<double> d(-3.0, 3.0);
  std::vector<float> x, g;
  while (x.size() < 257) {
    const double v = d(rng);
    if (std::fabs(std::fabs(v) - 1.0) < 1e-2) continue;
    x.push_back(static_cast<float>(v));
    g.push_back(1.0f);
  }
  std::vector<float> gin(x.size());
  binarize_backward(x, g, gin);
  const double h = 1e-3;
  for (std::size_t i = 0; i < x.size(); ++i) {
    auto htanh = [](double v) { return std::max(-1.0, std::min(1.0, v)); };
    const double fd = (htanh(x[i] + h) - htanh(x[i] - h)) / (2 * h);
    ASSERT_NEAR(gin[i], fd, 1e-9) << x[i];
  }
}

// ---- scaled binarization ------------------------------------------------------------------

TEST(QuantBinary, ScaledPerTensorAndPerRow) {
  for (std::size_t n : kSizes) {
    std::vector<float> x = random_values(n, 40 + n);
    for (auto& v : x)
      if (std::isinf(v)) v = 3.0f;  // α = mean|x| needs finite weights
    for (int64_t rows : {int64_t{1}, static_cast<int64_t>(n)}) {
      const std::size_t cols = n / rows;
      std::vector<float> out(n), alpha(rows);
      binarize_scaled(x, out, rows, alpha);
      for (int64_t r = 0; r < rows; ++r) {
        double s = 0;
        for (std::size_t j = 0; j < cols; ++j) s += std::fabs(static_cast<double>(x[r * cols + j]));
        const double a = s / cols;
        ASSERT_NEAR(alpha[r], a, 1e-6 * std::max(1.0, a)) << "row " << r;
        for (std::size_t j = 0; j < cols; ++j) {
          const float xi = x[r * cols + j];
          ASSERT_EQ(out[r * cols + j], alpha[r] * (xi < 0 ? -1.0f : 1.0f));
        }
      }
    }
  }
  // Per-row equals per-tensor applied to each row separately; a zero row has α = 0.
  std::vector<float> x{1, -2, 3, 0, 0, 0, -0.5f, 0.25f, 0.25f};
  std::vector<float> out(9), alpha(3);
  binarize_scaled(x, out, 3, alpha);
  EXPECT_FLOAT_EQ(alpha[0], 2.0f);
  EXPECT_EQ(alpha[1], 0.0f);
  EXPECT_FLOAT_EQ(alpha[2], 1.0f / 3.0f);
  for (int r = 0; r < 3; ++r) {
    std::vector<float> row_out(3), a1(1);
    binarize_scaled(std::span<const float>(x).subspan(3 * r, 3), row_out, 1, a1);
    EXPECT_EQ(a1[0], alpha[r]);
    for (int j = 0; j < 3; ++j) EXPECT_EQ(row_out[j], out[3 * r + j]);
  }
  EXPECT_THROW(binarize_scaled(x, out, 2, alpha), Error);  // 9 does not split into 2 rows
  EXPECT_THROW(binarize_scaled(x, out, 3, std::span<float>(alpha).first(2)), Error);
}

TEST(QuantBinary, ScaledBackwardMatchesNumericAlphaTermPlusSte) {
  // out = α(x)·sign(x). Perturbing one x_i by ±h without crossing 0 leaves the signs alone, so a
  // central difference of L = Σ g_j·out_j measures exactly the α-term sign(x_i)/n·Σ g_j s_j;
  // the STE term α·g_i·1{|x_i| <= 1} is added analytically.
  for (std::size_t n : {std::size_t{7}, std::size_t{64}, std::size_t{257}}) {
    std::mt19937 rng(50 + n);
    std::uniform_real_distribution<float> mag(0.2f, 1.8f);
    std::uniform_real_distribution<float> gd(-1.0f, 1.0f);
    std::vector<float> x(n), g(n), gin(n);
    for (std::size_t i = 0; i < n; ++i) {
      x[i] = (rng() & 1 ? 1.0f : -1.0f) * mag(rng);
      g[i] = gd(rng);
    }
    binarize_scaled_backward(x, g, 1, gin);
    auto loss = [&](const std::vector<float>& xv) {
      std::vector<float> out(n), a(1);
      binarize_scaled(xv, out, 1, a);
      double l = 0;
      for (std::size_t j = 0; j < n; ++j) l += static_cast<double>(g[j]) * out[j];
      return l;
    };
    double alpha = 0;
    for (float v : x) alpha += std::fabs(v);
    alpha /= n;
    const float h = 0.05f;
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<float> xp = x, xm = x;
      xp[i] += h;
      xm[i] -= h;
      const double alpha_term = (loss(xp) - loss(xm)) / (static_cast<double>(xp[i]) - xm[i]);
      const double ste_term = std::fabs(x[i]) <= 1.0f ? alpha * g[i] : 0.0;
      ASSERT_NEAR(gin[i], alpha_term + ste_term, 2e-3) << "n=" << n << " i=" << i;
    }
  }
}

// ---- ternary ------------------------------------------------------------------------------

TEST(QuantTernary, MatchesTwnReference) {
  for (std::size_t n : kSizes) {
    std::vector<float> x = random_values(n, 60 + n);
    for (auto& v : x)
      if (std::isinf(v)) v = -2.5f;
    for (int64_t rows : {int64_t{1}, static_cast<int64_t>(n)}) {
      const std::size_t cols = n / rows;
      std::vector<float> out(n);
      std::vector<TernaryParams> params(rows);
      ternarize(x, out, rows, params);
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = &x[r * cols];
        double s = 0;
        for (std::size_t j = 0; j < cols; ++j) s += std::fabs(static_cast<double>(xr[j]));
        const double delta = 0.7 * s / cols;
        double kept = 0;
        int count = 0;
        for (std::size_t j = 0; j < cols; ++j)
          if (std::fabs(xr[j]) > delta) kept += std::fabs(xr[j]), ++count;
        const double alpha = count ? kept / count : 0.0;
        ASSERT_NEAR(params[r].delta, delta, 1e-6 * std::max(1.0, delta));
        ASSERT_NEAR(params[r].alpha, alpha, 1e-6 * std::max(1.0, alpha));
        for (std::size_t j = 0; j < cols; ++j) {
          if (std::fabs(std::fabs(xr[j]) - delta) < 1e-5) continue;  // too close to call in float
          const int t = xr[j] > delta ? 1 : (xr[j] < -delta ? -1 : 0);
          ASSERT_EQ(out[r * cols + j], params[r].alpha * t) << "x=" << xr[j] << " delta=" << delta;
        }
      }
    }
  }
}

TEST(QuantTernary, EdgesTiesZerosAndCodes) {
  // |x| == Δ maps to 0: factor 1 on equal magnitudes puts every element on the threshold.
  std::vector<float> same{1, -1, 1, -1};
  std::vector<float> out(4);
  std::vector<TernaryParams> p(1);
  ternarize(same, out, 1, p, 1.0f);
  EXPECT_EQ(p[0].delta, 1.0f);
  EXPECT_EQ(p[0].alpha, 0.0f);
  for (float v : out) EXPECT_EQ(v, 0.0f);
  // mean|x| = 1.25, factor 0.8: Δ = 1; ±2 kept (α = 2), 0.5 dropped.
  std::vector<float> x{-2, 2, 0.5f, -0.5f};
  ternarize(x, out, 1, p, 0.8f);
  EXPECT_FLOAT_EQ(p[0].delta, 1.0f);
  EXPECT_EQ(p[0].alpha, 2.0f);
  EXPECT_EQ(out, (std::vector<float>{-2, 2, 0, 0}));
  ternarize(x, out, 1, p, 0.8f, /*scaled=*/false);
  EXPECT_EQ(out, (std::vector<float>{-1, 1, 0, 0}));
  std::vector<int8_t> codes(4);
  ternarize_codes(x, codes, 1, p, 0.8f);
  EXPECT_EQ(codes, (std::vector<int8_t>{-1, 1, 0, 0}));
  // All zeros.
  std::vector<float> zeros(5, 0.0f), zout(5, 9.0f);
  std::vector<TernaryParams> zp(1);
  ternarize(zeros, zout, 1, zp);
  EXPECT_EQ(zp[0].alpha, 0.0f);
  for (float v : zout) EXPECT_EQ(v, 0.0f);
  // Infinite and NaN weights are rejected.
  std::vector<float> bad{1, kInf, 0};
  std::vector<float> bout(3);
  EXPECT_THROW(ternarize(bad, bout, 1, zp), Error);
  bad[1] = std::nanf("");
  EXPECT_THROW(ternarize(bad, bout, 1, zp), Error);
  EXPECT_THROW(ternarize(x, out, 1, p, -0.1f), Error);
}

TEST(QuantTernary, CodesAgreeWithUnscaledForward) {
  for (std::size_t n : kSizes) {
    std::vector<float> x = random_values(n, 70 + n);
    for (auto& v : x)
      if (std::isinf(v)) v = 0.1f;
    std::vector<float> out(n);
    std::vector<int8_t> codes(n);
    std::vector<TernaryParams> p1(1), p2(1);
    ternarize(x, out, 1, p1, 0.7f, false);
    ternarize_codes(x, codes, 1, p2);
    EXPECT_EQ(p1[0].delta, p2[0].delta);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(static_cast<float>(codes[i]), out[i]);
  }
}

TEST(QuantTernary, BackwardMasks) {
  std::vector<float> x{-3, -1, -0.5f, 0, 0.5f, 1, 3};
  std::vector<float> g{1, 2, 3, 4, 5, 6, 7}, gin(7);
  ternarize_backward(x, g, gin);
  EXPECT_EQ(gin, g);  // identity by default (TWN)
  ternarize_backward(x, g, gin, 1.0f);
  EXPECT_EQ(gin, (std::vector<float>{0, 2, 3, 4, 5, 6, 0}));
}

// ---- counter-based generator ----------------------------------------------------------------

TEST(QuantRng, UniformIsInRangeWithRightMomentsAndSeedsDiffer) {
  double sum = 0, sq = 0;
  const int n = 200000;
  float lo = 1, hi = 0;
  for (int i = 0; i < n; ++i) {
    const float u = uniform01(7, i);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    sum += u;
    sq += static_cast<double>(u) * u;
  }
  EXPECT_GE(lo, 0.0f);
  EXPECT_LT(hi, 1.0f);
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_NEAR(sq / n - (sum / n) * (sum / n), 1.0 / 12.0, 0.002);
  // Neighbouring seeds and counters are unrelated.
  int equal = 0;
  for (int i = 0; i < 1000; ++i) equal += uniform01(1, i) == uniform01(2, i);
  EXPECT_LT(equal, 5);
  EXPECT_NE(derive_seed(1, 0), derive_seed(1, 1));
  EXPECT_NE(derive_seed(1, 0), derive_seed(2, 0));
  EXPECT_EQ(random_bits(5, 9), random_bits(5, 9));
}

}  // namespace
}  // namespace lowbit::quant
