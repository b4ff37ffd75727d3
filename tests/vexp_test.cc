// The vectorized exponential against std::exp (in double) and across instruction-set levels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "lowbit/kernels/vexp.h"
#include "test_util.h"

namespace lowbit::kernels {
namespace {

TEST(VExp, WithinTwoUlpOfExpAndTheSameAtEveryIsa) {
  std::vector<float> x;
  for (float v = -87.3f; v <= 88.0f; v += 0.00731f) x.push_back(v);
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-30.0f, 5.0f);
  for (int i = 0; i < 10000; ++i) x.push_back(u(rng));
  for (float v : {0.0f, -0.0f, 1.0f, -1.0f, 0.5f * 0.6931472f, -0.5f * 0.6931472f, 1e-8f, -1e-8f}) x.push_back(v);
  const auto n = static_cast<int64_t>(x.size());
  std::vector<float> first;
  lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
    std::vector<float> y(x.size());
    exp_f32(x.data(), 0.0f, n, y.data());
    for (int64_t i = 0; i < n; ++i) {
      const double e = std::exp(static_cast<double>(x[i]));
      ASSERT_LE(std::fabs(y[i] - e) / e, 3e-7) << "x = " << x[i];
    }
    if (first.empty()) first = y;
    ASSERT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * sizeof(float)));
  });
  float one = 0.0f;
  exp_f32(&one, 0.0f, 1, &one);
  EXPECT_EQ(one, 1.0f);
}

TEST(VExp, ShiftClampsAndInPlace) {
  std::vector<float> x = {3.0f, 1.0f, -200.0f, 500.0f, -1e30f};
  exp_f32(x.data(), -3.0f, 5, x.data());  // in place, shifted by the maximum as a softmax does
  EXPECT_EQ(x[0], 1.0f);
  EXPECT_NEAR(x[1], std::exp(-2.0), 3e-7 * std::exp(-2.0));
  EXPECT_GE(x[2], 0.0f);
  EXPECT_LT(x[2], 1.3e-38f);  // clamped at −87.3: about 1.2e−38, not 0
  EXPECT_NEAR(x[3], std::exp(88.0), 3e-7 * std::exp(88.0));  // clamped at 88
  EXPECT_LT(x[4], 1.3e-38f);
}

}  // namespace
}  // namespace lowbit::kernels

#include "quant/common.h"

namespace lowbit::quant::detail {
namespace {

TEST(RoundAway, EqualsStdRoundOnTiesNearTiesAndRandomDoubles) {
  const double specials[] = {0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, 0.49999999999999994, -0.49999999999999994,
                             0.5 - std::ldexp(1.0, -54), 2.4999999999999996, 4503599627370495.5,
                             -4503599627370495.5, 4503599627370496.0, 1e300, -1e300,
                             std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::denorm_min()};
  for (double v : specials) {
    EXPECT_EQ(round_away(v), std::round(v)) << v;
    EXPECT_EQ(std::signbit(round_away(v)), std::signbit(std::round(v))) << v;
  }
  EXPECT_TRUE(std::isnan(round_away(std::numeric_limits<double>::quiet_NaN())));
  std::mt19937_64 rng(9);
  for (int i = 0; i < 2000000; ++i) {
    const double v = std::ldexp(static_cast<double>(static_cast<int64_t>(rng() >> 11) - (int64_t{1} << 52)),
                                -static_cast<int>(rng() % 60));
    ASSERT_EQ(round_away(v), std::round(v)) << v;
  }
}

}  // namespace
}  // namespace lowbit::quant::detail
