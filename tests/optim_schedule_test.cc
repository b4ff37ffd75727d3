#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "lowbit/core/error.h"
#include "lowbit/nn/schedule.h"

namespace lowbit::nn {
namespace {

TEST(OptimSchedule, Constant) {
  const LrSchedule s = LrSchedule::constant(0.01f);
  EXPECT_EQ(s.lr(0), 0.01f);
  EXPECT_EQ(s.lr(1000), 0.01f);
  EXPECT_THROW(s.lr(-1), Error);
}

TEST(OptimSchedule, ExponentialIsTheTheanoDecay) {
  // BNN Theano CIFAR-10: 1e-3 -> 3e-7 over 500 epochs; λ = (3e-7/1e-3)^(1/500).
  const LrSchedule s = LrSchedule::exponential(1e-3f, 3e-7f, 500);
  const double lambda = std::pow(3e-7 / 1e-3, 1.0 / 500);
  EXPECT_EQ(s.lr(0), 1e-3f);
  // The Theano loop multiplies by λ after every epoch: epoch e trains at 1e-3·λ^e.
  double lr = 1e-3;
  for (int e = 0; e < 500; ++e, lr *= lambda) ASSERT_NEAR(s.lr(e), lr, 1e-6 * lr) << e;
  // After the last of the 500 epochs the rate has reached lr_end, and stays there.
  EXPECT_NEAR(s.lr(500), 3e-7f, 1e-6 * 3e-7);
  EXPECT_NEAR(s.lr(500) / s.lr(499), lambda, 1e-5);
  EXPECT_EQ(s.lr(800), s.lr(500));
  // MNIST: 3e-3 -> 3e-7 over 1000 epochs.
  const LrSchedule m = LrSchedule::exponential(3e-3f, 3e-7f, 1000);
  EXPECT_NEAR(m.lr(1000), 3e-7f, 1e-12);
  EXPECT_NEAR(m.lr(500), std::sqrt(3e-3 * 3e-7), 1e-9);  // geometric midpoint
  EXPECT_THROW(LrSchedule::exponential(1e-3f, 0.0f, 10), Error);
  EXPECT_THROW(LrSchedule::exponential(1e-3f, 1e-4f, 0), Error);
}

TEST(OptimSchedule, StepHalvesEveryNEpochs) {
  // Torch7 MNIST: 2^-6 halved every 20 epochs.
  const LrSchedule s = LrSchedule::step(0x1p-6f, 0.5f, 20);
  EXPECT_EQ(s.lr(0), 0x1p-6f);
  EXPECT_EQ(s.lr(19), 0x1p-6f);
  EXPECT_EQ(s.lr(20), 0x1p-7f);
  EXPECT_EQ(s.lr(39), 0x1p-7f);
  EXPECT_EQ(s.lr(40), 0x1p-8f);
  EXPECT_EQ(s.lr(100), 0x1p-11f);
  EXPECT_THROW(LrSchedule::step(0.1f, 0.5f, 0), Error);
}

TEST(OptimSchedule, PowerOfTwoRounding) {
  LrSchedule s = LrSchedule::exponential(1e-3f, 1e-6f, 30);
  s.round_pow2();
  for (int e = 0; e <= 30; ++e) {
    int ex = 0;
    EXPECT_EQ(std::frexp(s.lr(e), &ex), 0.5f) << e;
    // Within a factor sqrt(2) of the unrounded rate.
    const double ratio = s.lr(e) / LrSchedule::exponential(1e-3f, 1e-6f, 30).lr(e);
    EXPECT_LE(ratio, std::sqrt(2.0) + 1e-6);
    EXPECT_GE(ratio, 1 / std::sqrt(2.0) - 1e-6);
  }
  EXPECT_EQ(s.lr(0), 0x1p-10f);  // 1e-3 is nearest 2^-10 in the log domain
  LrSchedule h = LrSchedule::step(0x1p-6f, 0.5f, 50);
  h.round_pow2();
  EXPECT_EQ(h.lr(120), 0x1p-8f);  // already powers of two: unchanged
}

TEST(OptimSchedule, GlorotLrScale) {
  // qnn.md §2: 784 -> 4096 ≈ 57, 4096 -> 4096 ≈ 74, a 3 -> 128 3x3 conv ≈ 28.
  EXPECT_NEAR(glorot_lr_scale(784, 4096), std::sqrt((784.0 + 4096) / 1.5), 1e-4);
  EXPECT_NEAR(glorot_lr_scale(784, 4096), 57.0, 0.1);
  EXPECT_NEAR(glorot_lr_scale(4096, 4096), 73.9, 0.1);
  EXPECT_NEAR(glorot_lr_scale(9 * 3, 9 * 128), 28.0, 0.1);
  EXPECT_EQ(glorot_lr_scale_pow2(784, 4096), 64.0f);
  EXPECT_EQ(glorot_lr_scale_pow2(4096, 4096), 64.0f);   // 73.9 < 64·sqrt(2) ≈ 90.5
  EXPECT_EQ(glorot_lr_scale_pow2(9 * 3, 9 * 128), 32.0f);
  EXPECT_THROW(glorot_lr_scale(0, 10), Error);
}

TEST(OptimBestTracker, KeepsTheEarliestLowestValidationError) {
  BestTracker t;
  EXPECT_FALSE(t.has_best());
  EXPECT_THROW(t.best(), Error);
  EXPECT_TRUE(t.record(0, 0.20, 0.21));
  EXPECT_TRUE(t.record(1, 0.10, 0.12));
  EXPECT_FALSE(t.record(2, 0.15, 0.09));  // a better test error does not matter
  EXPECT_FALSE(t.record(3, 0.10, 0.08));  // a tie keeps epoch 1
  EXPECT_FALSE(t.record(4, std::numeric_limits<double>::quiet_NaN(), 0.0));
  EXPECT_TRUE(t.record(5, 0.099, 0.11));
  EXPECT_EQ(t.best().epoch, 5);
  EXPECT_EQ(t.best().test_error, 0.11);
  EXPECT_EQ(t.history().size(), 6u);
  BestTracker n;
  EXPECT_FALSE(n.record(0, std::numeric_limits<double>::quiet_NaN(), 0.5));
  EXPECT_FALSE(n.has_best());
  EXPECT_TRUE(n.record(1, 0.9, 0.9));
}

}  // namespace
}  // namespace lowbit::nn
