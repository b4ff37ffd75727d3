// The vectorized dropout kernels against the definition (uniform01(seed, i) < p drops element i)
// at every instruction-set level.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "lowbit/kernels/dropout.h"
#include "lowbit/quant/rng.h"
#include "test_util.h"

namespace lowbit::kernels {
namespace {

TEST(DropoutKernel, ThresholdIsTheIntegerFormOfUniformBelowP) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> ps = {0.0f, 1.0f, 0.5f, 0.2f, 0.3f, 0.1f, 1.0f / 3.0f, 0x1p-24f, 0x1.8p-24f, 1.0f - 0x1p-24f};
  for (int i = 0; i < 200; ++i) ps.push_back(u(rng));
  for (float p : ps) {
    const uint32_t t = dropout_threshold(p);
    // k = t − 1 is dropped, k = t is kept (when in range): the boundary is where uniform01 crosses p.
    if (t > 0) {
      EXPECT_LT(static_cast<float>(t - 1) * 0x1p-24f, p) << p;
    }
    if (t < (1u << 24)) {
      EXPECT_GE(static_cast<float>(t) * 0x1p-24f, p) << p;
    }
  }
  EXPECT_EQ(dropout_threshold(0.0f), 0u);
  EXPECT_EQ(dropout_threshold(0.5f), 1u << 23);
  EXPECT_EQ(dropout_threshold(1.0f), 1u << 24);
}

TEST(DropoutKernel, SameMaskAndValuesAsTheDefinitionAtEveryIsa) {
  const int64_t n = 1237, b = 5, e = 1229;  // a chunk with partial vectors at both ends
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> x(n), g0(n);
  for (auto& v : x) v = nd(rng);
  for (auto& v : g0) v = nd(rng);
  for (const float p : {0.2f, 0.5f, 0.37f}) {
    const float scale = 1.0f / (1.0f - p);
    const uint64_t seed = quant::derive_seed(17, static_cast<uint64_t>(p * 100));
    std::vector<float> want(n, -7.0f), want_acc = g0, want_set(n, -7.0f);
    int64_t dropped = 0;
    for (int64_t i = b; i < e; ++i) {
      const bool drop = quant::uniform01(seed, static_cast<uint64_t>(i)) < p;
      dropped += drop;
      want[i] = drop ? 0.0f : x[i] * scale;
      want_set[i] = drop ? 0.0f : x[i] * scale;
      want_acc[i] = g0[i] + (drop ? 0.0f : x[i] * scale);
    }
    EXPECT_GT(dropped, 0);
    EXPECT_LT(dropped, e - b);
    lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
      std::vector<float> out(n, -7.0f), acc = g0, set(n, -7.0f);
      dropout_forward(seed, p, scale, x.data(), b, e, out.data());
      dropout_backward(seed, p, scale, x.data(), b, e, acc.data(), true);
      dropout_backward(seed, p, scale, x.data(), b, e, set.data(), false);
      ASSERT_EQ(0, std::memcmp(out.data(), want.data(), n * sizeof(float))) << "p = " << p;
      ASSERT_EQ(0, std::memcmp(acc.data(), want_acc.data(), n * sizeof(float))) << "p = " << p;
      ASSERT_EQ(0, std::memcmp(set.data(), want_set.data(), n * sizeof(float))) << "p = " << p;
    });
  }
}

}  // namespace
}  // namespace lowbit::kernels
