// Autograd ops: finite-difference gradient checks for every differentiable op, straight-through
// gradients against their masked formulas, and forward values against plain loops.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "gradcheck_util.h"
#include "test_util.h"
#include "lowbit/autograd/ops.h"
#include "lowbit/core/cpu.h"
#include "lowbit/core/error.h"
#include "lowbit/quant/binary.h"
#include "lowbit/quant/kbit.h"
#include "lowbit/quant/rng.h"

namespace lowbit::autograd {
namespace {

using testing::gradcheck;
using testing::random_tensor;

Tensor filled(const Shape& shape, std::vector<float> v) { return Tensor::from<float>(shape, v); }

// ---- tape mechanics --------------------------------------------------------------------------

TEST(AutogradTape, GradientsAccumulateOverUses) {
  Var x(filled({3}, {1, 2, 3}), true);
  Var y = sum(add(mul(x, x), x));  // Σ x² + x -> 2x + 1
  backward(y);
  EXPECT_FLOAT_EQ(y.data()[0], 1 + 2 + 3 + 1 + 4 + 9);
  for (int i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(x.grad().data<float>()[i], 2.0f * (i + 1) + 1.0f);
}

TEST(AutogradTape, LeafWithCallerGradientAccumulates) {
  Tensor v = filled({2}, {1, -1});
  Tensor g = filled({2}, {10, 20});  // what an optimizer would find if the caller did not zero it
  Var w(v, g);
  backward(sum(scale(w, 3.0f)));
  EXPECT_FLOAT_EQ(g.data<float>()[0], 13.0f);
  EXPECT_FLOAT_EQ(g.data<float>()[1], 23.0f);
}

TEST(AutogradTape, NoGradGuardRecordsNothing) {
  Var x(filled({2}, {1, 2}), true);
  {
    NoGradGuard ng;
    EXPECT_FALSE(grad_enabled());
    Var y = scale(x, 2.0f);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.node()->parents.empty());
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_TRUE(scale(x, 2.0f).requires_grad());
}

TEST(AutogradTape, BackwardErrors) {
  Var x(filled({2}, {1, 2}), true);
  EXPECT_THROW(backward(scale(x, 2.0f)), Error);  // not a scalar
  Var c(filled({1}, {1}));
  EXPECT_THROW(backward(scale(c, 2.0f)), Error);  // nothing requires a gradient
  EXPECT_THROW(backward(scale(x, 1.0f), Tensor::zeros({3}, DType::f32)), Error);
  EXPECT_THROW(add(x, Var(Tensor::zeros({3}, DType::f32))), Error);
}

TEST(AutogradTape, DeepChainDoesNotRecurse) {
  Var x(filled({1}, {1}), true);
  Var h = x;
  for (int i = 0; i < 20000; ++i) h = scale(h, 1.0f);
  backward(h);
  EXPECT_FLOAT_EQ(x.grad().data<float>()[0], 1.0f);
}

// ---- gradient checks ------------------------------------------------------------------------

TEST(AutogradGradcheck, ArithmeticSameShape) {
  const auto a = random_tensor({3, 5}, 1), b = random_tensor({3, 5}, 2);
  gradcheck([](auto& v) { return add(v[0], v[1]); }, {a, b});
  gradcheck([](auto& v) { return sub(v[0], v[1]); }, {a, b});
  gradcheck([](auto& v) { return mul(v[0], v[1]); }, {a, b});
  gradcheck([](auto& v) { return scale(v[0], -2.5f); }, {a});
  gradcheck([](auto& v) { return sum(v[0]); }, {a});
  gradcheck([](auto& v) { return mean(v[0]); }, {a});
}

TEST(AutogradGradcheck, ArithmeticBroadcast) {
  // Per-feature vector against [N, F], both operand orders; per-channel [C, 1, 1] against NCHW.
  gradcheck([](auto& v) { return mul(v[0], v[1]); }, {random_tensor({4, 7}, 3), random_tensor({7}, 4)});
  gradcheck([](auto& v) { return sub(v[0], v[1]); }, {random_tensor({7}, 5), random_tensor({4, 7}, 6)});
  gradcheck([](auto& v) { return add(v[0], v[1]); }, {random_tensor({2, 3, 4, 5}, 7), random_tensor({3, 1, 1}, 8)});
  gradcheck([](auto& v) { return mul(v[0], v[1]); }, {random_tensor({2, 3, 4, 5}, 9), random_tensor({3, 1, 1}, 10)});
  Var a(filled({2, 3}, {1, 2, 3, 4, 5, 6})), b(filled({3}, {10, 20, 30}));
  const Var c = add(a, b);
  EXPECT_FLOAT_EQ(c.data()[4], 25.0f);
  EXPECT_THROW(add(a, Var(Tensor::zeros({2}, DType::f32))), Error);
}

TEST(AutogradGradcheck, MatmulAndLinear) {
  gradcheck([](auto& v) { return matmul(v[0], v[1]); }, {random_tensor({5, 7}, 11), random_tensor({7, 3}, 12)});
  gradcheck([](auto& v) { return linear(v[0], v[1], v[2]); },
            {random_tensor({6, 9}, 13), random_tensor({4, 9}, 14), random_tensor({4}, 15)});
  gradcheck([](auto& v) { return linear(v[0], v[1], Var()); }, {random_tensor({3, 5}, 16), random_tensor({2, 5}, 17)});
  // Forward against a loop.
  const Tensor x = random_tensor({3, 5}, 18), w = random_tensor({4, 5}, 19), b = random_tensor({4}, 20);
  const Var y = linear(Var(x), Var(w), Var(b));
  for (int n = 0; n < 3; ++n)
    for (int o = 0; o < 4; ++o) {
      double s = b.data<float>()[o];
      for (int i = 0; i < 5; ++i) s += x.data<float>()[n * 5 + i] * w.data<float>()[o * 5 + i];
      EXPECT_NEAR(y.data()[n * 4 + o], s, 1e-5);
    }
}

TEST(AutogradGradcheck, LinearSkipsGradientsNobodyNeeds) {
  Var x(random_tensor({3, 5}, 21));  // data: no gradient
  Var w(random_tensor({2, 5}, 22), true);
  backward(sum(linear(x, w, Var())));
  EXPECT_FALSE(x.grad().defined());
  EXPECT_TRUE(w.grad().defined());
}

TEST(AutogradLinear, BinaryForwardPathGivesTheFloatValues) {
  // W = sign(latent) and x = sign(·) (±1), the same after dropout with p = 1/2 ({−2, 0, 2}), and
  // x in {−1/2, 0, 1/2}: the XNOR/popcount path must give exactly the float GEMM's outputs and
  // the same gradients. Odd sizes leave partial words; 70 inputs span two 64-bit words.
  struct Case {
    int64_t n, in, out;
    float c;
    float zero_fraction;
  };
  for (const Case& k : {Case{7, 70, 9, 1.0f, 0.0f}, Case{5, 600, 33, 2.0f, 0.5f}, Case{3, 129, 4, 0.5f, 0.3f},
                        Case{4, 2048, 6, 1.25f, 0.2f}}) {
    SCOPED_TRACE("n " + std::to_string(k.n) + " in " + std::to_string(k.in) + " c " + std::to_string(k.c));
    Tensor xt = random_tensor({k.n, k.in}, 41);
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (int64_t i = 0; i < xt.numel(); ++i) {
      float& v = xt.data<float>()[i];
      v = u(rng) < k.zero_fraction ? 0.0f : (v >= 0.0f ? k.c : -k.c);
    }
    const Tensor latent = random_tensor({k.out, k.in}, 43);
    const Tensor g = random_tensor({k.n, k.out}, 44);
    auto run = [&](bool binary, Tensor* gx, Tensor* gw) {
      set_binary_linear(binary);
      Var x(xt.clone(), true);
      Var w(latent.clone(), true);
      Var y = linear(x, sign_ste(w, 1.0f), Var());
      backward(y, g);
      *gx = x.grad().clone();
      *gw = w.grad().clone();
      return y.value().clone();
    };
    Tensor gx0, gw0, gx1, gw1;
    const uint64_t before = binary_linear_count();
    const Tensor y1 = run(true, &gx1, &gw1);
    EXPECT_EQ(binary_linear_count(), before + 1);  // the binary path ran
    const Tensor y0 = run(false, &gx0, &gw0);
    EXPECT_EQ(binary_linear_count(), before + 1);
    set_binary_linear(true);
    for (int64_t i = 0; i < y0.numel(); ++i) ASSERT_EQ(y0.data<float>()[i], y1.data<float>()[i]) << i;
    for (int64_t i = 0; i < gx0.numel(); ++i) ASSERT_EQ(gx0.data<float>()[i], gx1.data<float>()[i]) << i;
    for (int64_t i = 0; i < gw0.numel(); ++i) ASSERT_EQ(gw0.data<float>()[i], gw1.data<float>()[i]) << i;
  }
  // Not taken: a bias, inputs with two magnitudes, a scale whose multiples float32 cannot hold
  // exactly (1/0.7, dropout with p = 0.3), or weights that are not a sign() output.
  const uint64_t before = binary_linear_count();
  Tensor x2 = random_tensor({2, 8}, 45);
  for (int64_t i = 0; i < x2.numel(); ++i) x2.data<float>()[i] = x2.data<float>()[i] >= 0 ? 1.0f : -1.0f;
  const Var wl(random_tensor({3, 8}, 46));
  (void)linear(Var(x2), sign_ste(wl, 1.0f), Var(random_tensor({3}, 47)));
  (void)linear(Var(x2), wl, Var());
  Tensor x3 = x2.clone();
  x3.data<float>()[0] = 0.5f;
  (void)linear(Var(x3), sign_ste(wl, 1.0f), Var());
  Tensor x4 = x2.clone();
  for (int64_t i = 0; i < x4.numel(); ++i) x4.data<float>()[i] *= 1.0f / 0.7f;
  (void)linear(Var(x4), sign_ste(wl, 1.0f), Var());
  EXPECT_EQ(binary_linear_count(), before);
  (void)linear(Var(x2), sign_ste(wl, 1.0f), Var());
  EXPECT_EQ(binary_linear_count(), before + 1);
}

TEST(AutogradGradcheck, ReshapeAndFlatten) {
  gradcheck([](auto& v) { return mul(reshape(v[0], {6, 2}), v[1]); }, {random_tensor({3, 4}, 23), random_tensor({6, 2}, 24)});
  gradcheck([](auto& v) { return mul(flatten(v[0]), v[1]); }, {random_tensor({2, 3, 2, 2}, 25), random_tensor({2, 12}, 26)});
  EXPECT_THROW(reshape(Var(random_tensor({3, 4}, 1)), {5}), Error);
}

// Plain-loop convolution, the reference for the im2col path.
Tensor naive_conv(const Tensor& x, const Tensor& w, const Tensor* b, int s, int p) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t o = w.size(0), kh = w.size(2), kw = w.size(3);
  const int64_t oh = (h + 2 * p - kh) / s + 1, ow = (wd + 2 * p - kw) / s + 1;
  Tensor out = Tensor::zeros({n, o, oh, ow}, DType::f32);
  for (int64_t im = 0; im < n; ++im)
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t xo = 0; xo < ow; ++xo) {
          double acc = b ? b->data<float>()[oc] : 0.0;
          for (int64_t ci = 0; ci < c; ++ci)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t iy = y * s - p + i, ix = xo * s - p + j;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += static_cast<double>(x.data<float>()[((im * c + ci) * h + iy) * wd + ix]) *
                       w.data<float>()[((oc * c + ci) * kh + i) * kw + j];
              }
          out.data<float>()[((im * o + oc) * oh + y) * ow + xo] = static_cast<float>(acc);
        }
  return out;
}

TEST(AutogradConv, MatchesNaiveLoopsOnOddSizes) {
  struct Case { int64_t n, c, h, w, o, k; int s, p; };
  for (const Case& cs : {Case{2, 3, 7, 5, 4, 3, 2, 1}, Case{1, 3, 9, 9, 5, 3, 1, 1}, Case{3, 2, 6, 7, 3, 2, 2, 0},
                         Case{1, 1, 5, 5, 2, 5, 1, 2}}) {
    const Tensor x = random_tensor({cs.n, cs.c, cs.h, cs.w}, 30), w = random_tensor({cs.o, cs.c, cs.k, cs.k}, 31),
                 b = random_tensor({cs.o}, 32);
    const Var y = conv2d(Var(x), Var(w), Var(b), cs.s, cs.p);
    const Tensor ref = naive_conv(x, w, &b, cs.s, cs.p);
    ASSERT_EQ(y.shape(), ref.shape());
    for (int64_t i = 0; i < ref.numel(); ++i) EXPECT_NEAR(y.data()[i], ref.data<float>()[i], 1e-5) << i;
  }
}

TEST(AutogradGradcheck, Conv2dStride2Padding1) {
  gradcheck([](auto& v) { return conv2d(v[0], v[1], v[2], 2, 1); },
            {random_tensor({2, 3, 7, 5}, 33), random_tensor({4, 3, 3, 3}, 34), random_tensor({4}, 35)});
  gradcheck([](auto& v) { return conv2d(v[0], v[1], Var(), 1, 0); },
            {random_tensor({1, 2, 5, 6}, 36), random_tensor({3, 2, 2, 3}, 37)});
}

TEST(AutogradPool, MaxPoolMatchesLoopsAndRoutesGradient) {
  // Distinct values (a permutation) so that every window has a unique maximum, and finite
  // differences never cross a tie.
  const int64_t n = 2, c = 3, h = 7, w = 5;
  std::vector<float> vals(static_cast<std::size_t>(n * c * h * w));
  for (std::size_t i = 0; i < vals.size(); ++i) vals[i] = static_cast<float>((i * 37) % vals.size()) * 0.1f;
  const Tensor x = Tensor::from<float>({n, c, h, w}, vals);
  const Var y = max_pool2d(Var(x), 3, 2);
  ASSERT_EQ(y.shape(), (Shape{n, c, 3, 2}));
  for (int64_t pl = 0; pl < n * c; ++pl)
    for (int64_t oy = 0; oy < 3; ++oy)
      for (int64_t ox = 0; ox < 2; ++ox) {
        float m = -1e30f;
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) m = std::max(m, vals[static_cast<std::size_t>(pl * h * w + (oy * 2 + i) * w + ox * 2 + j)]);
        EXPECT_EQ(y.data()[(pl * 3 + oy) * 2 + ox], m);
      }
  gradcheck([](auto& v) { return max_pool2d(v[0], 3, 2); }, {x}, {.eps = 1e-3f});
  gradcheck([](auto& v) { return max_pool2d(v[0], 2, 2); }, {x}, {.eps = 1e-3f});
}

// ---- batch norm ------------------------------------------------------------------------------

testing::Fn bn_fn(bool shift, bool training) {
  return [shift, training](const std::vector<Var>& v) {
    const int64_t c = v[1].numel();
    Tensor rm = random_tensor({c}, 40, -0.2f, 0.2f), r2 = random_tensor({c}, 41, 0.5f, 2.0f);
    return shift ? shift_batch_norm(v[0], v[1], v[2], rm, r2, training, 0.1f, 1e-4f)
                 : batch_norm(v[0], v[1], v[2], rm, r2, training, 0.1f, 1e-4f);
  };
}

TEST(AutogradGradcheck, BatchNormTrainAndEval) {
  for (bool training : {true, false}) {
    SCOPED_TRACE(training ? "training" : "eval");
    gradcheck(bn_fn(false, training), {random_tensor({6, 5}, 42, -2, 3), random_tensor({5}, 43, 0.5f, 1.5f),
                                       random_tensor({5}, 44)});
    gradcheck(bn_fn(false, training), {random_tensor({3, 4, 3, 2}, 45, -2, 3), random_tensor({4}, 46, 0.5f, 1.5f),
                                       random_tensor({4}, 47)});
  }
}

TEST(AutogradBatchNorm, RunningStatisticsAndEval) {
  const Tensor x = filled({4, 2}, {1, 10, 2, 20, 3, 30, 4, 40});
  Tensor rm = filled({2}, {0, 0}), rv = filled({2}, {1, 1});
  const Var g(filled({2}, {2, 1})), b(filled({2}, {0.5f, 0}));
  const Var y = batch_norm(Var(x), g, b, rm, rv, true, 0.1f, 1e-5f);
  // Batch mean (2.5, 25); biased var (1.25, 125); unbiased (5/3, 500/3).
  EXPECT_NEAR(rm.data<float>()[0], 0.25, 1e-6);
  EXPECT_NEAR(rm.data<float>()[1], 2.5, 1e-5);
  EXPECT_NEAR(rv.data<float>()[0], 0.9 + 0.1 * 5.0 / 3.0, 1e-5);
  EXPECT_NEAR(rv.data<float>()[1], 0.9 + 0.1 * 500.0 / 3.0, 1e-3);
  EXPECT_NEAR(y.data()[0], 2.0 * (1 - 2.5) / std::sqrt(1.25 + 1e-5) + 0.5, 1e-5);
  // Eval: running statistics, buffers untouched.
  const Tensor rm0 = rm.clone(), rv0 = rv.clone();
  const Var e = batch_norm(Var(x), g, b, rm, rv, false, 0.1f, 1e-5f);
  EXPECT_NEAR(e.data()[3], 1.0 * (20 - 2.5) / std::sqrt(0.9 + 0.1 * 500.0 / 3.0 + 1e-5), 1e-4);
  EXPECT_EQ(rm.data<float>()[1], rm0.data<float>()[1]);
  EXPECT_EQ(rv.data<float>()[1], rv0.data<float>()[1]);
}

TEST(AutogradBatchNorm, SpatialStatisticsPerChannel) {
  const Tensor x = random_tensor({3, 2, 4, 5}, 48, -3, 5);
  Tensor rm = Tensor::zeros({2}, DType::f32), rv = filled({2}, {1, 1});
  const Var y = batch_norm(Var(x), Var(filled({2}, {1, 1})), Var(filled({2}, {0, 0})), rm, rv, true, 1.0f, 1e-5f);
  for (int c = 0; c < 2; ++c) {
    double s = 0, s2 = 0, xs = 0;
    for (int n = 0; n < 3; ++n)
      for (int i = 0; i < 20; ++i) {
        s += y.data()[(n * 2 + c) * 20 + i];
        s2 += std::pow(y.data()[(n * 2 + c) * 20 + i], 2);
        xs += x.data<float>()[(n * 2 + c) * 20 + i];
      }
    EXPECT_NEAR(s / 60, 0.0, 1e-5);
    EXPECT_NEAR(s2 / 60, 1.0, 1e-3);
    EXPECT_NEAR(rm.data<float>()[c], xs / 60, 1e-5);  // momentum 1: the batch mean
  }
}

// Scalar reference of the Torch7 shift-based BN (qnn.md §6) for one channel of values.
struct SbnRef {
  std::vector<double> y, dx;
  double dgamma = 0, dbeta = 0, inv_std = 0;
};
SbnRef sbn_reference(const std::vector<float>& x, const std::vector<float>& g, float gamma, float beta, float eps) {
  const std::size_t m = x.size();
  double mu = 0;
  for (float v : x) mu += v;
  mu /= m;
  double var = 0;
  for (float v : x) var += (v - mu) * (v - mu);
  var /= m;
  SbnRef r;
  r.inv_std = 1.0 / std::sqrt(var + eps);
  const double s = quant::ap2(static_cast<float>(r.inv_std)), ga = quant::ap2(gamma);
  std::vector<double> ah(m);
  double mg = 0, mgh = 0;
  for (std::size_t i = 0; i < m; ++i) {
    const float c = x[i] - static_cast<float>(mu);
    r.y.push_back(c * s * ga + beta);
    ah[i] = quant::ap2(c) * s;
    mg += g[i];
    mgh += g[i] * ah[i];
  }
  r.dbeta = mg;
  r.dgamma = mgh;
  mg /= m;
  mgh /= m;
  for (std::size_t i = 0; i < m; ++i) r.dx.push_back(ga * s * (g[i] - mg - ah[i] * mgh));
  return r;
}

TEST(AutogradShiftBatchNorm, MatchesScalarReference) {
  const int64_t n = 9, c = 3;
  const Tensor x = random_tensor({n, c}, 50, -3, 4), gamma = filled({c}, {0.7f, 1.3f, -0.4f}),
               beta = filled({c}, {0.1f, -0.2f, 0.3f}), g = random_tensor({n, c}, 51);
  Tensor rm = Tensor::zeros({c}, DType::f32), ris = filled({c}, {1, 1, 1});
  Var xv(x.clone(), true), gv(gamma.clone(), true), bv(beta.clone(), true);
  const Var y = shift_batch_norm(xv, gv, bv, rm, ris, true, 0.125f, 1e-5f);
  backward(y, g);
  for (int64_t ch = 0; ch < c; ++ch) {
    std::vector<float> xs, gs;
    for (int64_t i = 0; i < n; ++i) {
      xs.push_back(x.data<float>()[i * c + ch]);
      gs.push_back(g.data<float>()[i * c + ch]);
    }
    const SbnRef r = sbn_reference(xs, gs, gamma.data<float>()[ch], beta.data<float>()[ch], 1e-5f);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(y.data()[i * c + ch], r.y[static_cast<std::size_t>(i)], 1e-5);
      EXPECT_NEAR(xv.grad().data<float>()[i * c + ch], r.dx[static_cast<std::size_t>(i)], 1e-5);
    }
    EXPECT_NEAR(gv.grad().data<float>()[ch], r.dgamma, 1e-4);
    EXPECT_NEAR(bv.grad().data<float>()[ch], r.dbeta, 1e-4);
    // Running inverse std: EMA of the exact value with momentum 0.125 (Torch7).
    EXPECT_NEAR(ris.data<float>()[ch], 0.875 + 0.125 * r.inv_std, 1e-5);
  }
  // Eval: (x − running_mean)·AP2(running_inv_std)·AP2(γ) + β.
  const Var e = shift_batch_norm(Var(x), Var(gamma), Var(beta), rm, ris, false, 0.125f, 1e-5f);
  const float ref = (x.data<float>()[4] - rm.data<float>()[1]) * quant::ap2(ris.data<float>()[1]) * quant::ap2(1.3f) - 0.2f;
  EXPECT_NEAR(e.data()[4], ref, 1e-6);
}

TEST(AutogradShiftBatchNorm, GradientCloseToVanilla) {
  // The AP2 backward is an approximation of the true BN gradient; it should point the same way.
  const Tensor x = random_tensor({32, 4}, 52, -2, 2), gamma = filled({4}, {1, 1, 1, 1}), beta = Tensor::zeros({4}, DType::f32),
               g = random_tensor({32, 4}, 53);
  auto grad_of = [&](bool shift) {
    Var xv(x.clone(), true);
    Tensor rm = Tensor::zeros({4}, DType::f32), r2 = filled({4}, {1, 1, 1, 1});
    Var y = shift ? shift_batch_norm(xv, Var(gamma), Var(beta), rm, r2, true, 0.1f, 1e-5f)
                  : batch_norm(xv, Var(gamma), Var(beta), rm, r2, true, 0.1f, 1e-5f);
    backward(y, g);
    return xv.grad().clone();
  };
  const Tensor a = grad_of(true), b = grad_of(false);
  double dot = 0, na = 0, nb = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    dot += a.data<float>()[i] * b.data<float>()[i];
    na += std::pow(a.data<float>()[i], 2);
    nb += std::pow(b.data<float>()[i], 2);
  }
  EXPECT_GT(dot / std::sqrt(na * nb), 0.8);
}

// ---- activations, quantizers, dropout --------------------------------------------------------

TEST(AutogradGradcheck, HardTanhAwayFromKinks) {
  Tensor x = random_tensor({5, 6}, 60, -2, 2);
  for (int64_t i = 0; i < x.numel(); ++i) {
    float& v = x.data<float>()[i];
    if (std::fabs(std::fabs(v) - 1.0f) < 0.05f) v *= 0.8f;
  }
  gradcheck([](auto& v) { return hardtanh(v[0]); }, {x});
}

TEST(AutogradSign, ForwardSignZeroIsPlusOneAndSteMask) {
  Var x(filled({6}, {0.0f, -0.0f, 0.3f, -0.3f, 1.5f, -1.0f}), true);
  const Var y = sign_ste(x);
  const std::vector<float> want{1, 1, 1, -1, 1, -1};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y.data()[i], want[i]) << i;
  backward(y, filled({6}, {1, 2, 3, 4, 5, 6}));
  const std::vector<float> gw{1, 2, 3, 4, 0, 6};  // |x| <= 1 passes (x = −1 included)
  for (int i = 0; i < 6; ++i) EXPECT_EQ(x.grad().data<float>()[i], gw[i]) << i;
}

TEST(AutogradSign, MatchesQuantBinarizeOnLargeTensors) {
  // sign_ste and the layers' weight path run vectorized loops; they must agree with quant/.
  Tensor x = random_tensor({70001}, 70, -1.5f, 1.5f);
  const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, 1e-30f, -1e-30f, INFINITY, -INFINITY};
  for (int i = 0; i < 8; ++i) x.data<float>()[i * 1000] = specials[i];
  const Tensor g = random_tensor({70001}, 71);
  std::vector<float> ref(70001), gref(70001);
  quant::binarize({x.data<float>(), ref.size()}, ref);
  quant::binarize_backward({x.data<float>(), ref.size()}, {g.data<float>(), ref.size()}, gref);
  for (const bool into : {false, true}) {
    Tensor gacc = Tensor::zeros({70001}, DType::f32);
    for (int64_t i = 0; i < gacc.numel(); ++i) gacc.data<float>()[i] = 0.5f;  // accumulates onto this
    Var xv(x, gacc);
    const Var y = into ? fake_quantize_into(xv, Quantizer::binary(), Tensor::zeros({70001}, DType::f32),
                                            Tensor::zeros({70001}, DType::f32))
                       : sign_ste(xv);
    backward(y, g);
    for (int64_t i = 0; i < x.numel(); ++i) {
      ASSERT_EQ(y.data()[i], ref[static_cast<std::size_t>(i)]) << i;
      ASSERT_EQ(gacc.data<float>()[i], 0.5f + gref[static_cast<std::size_t>(i)]) << i;
    }
  }
  x.data<float>()[5] = NAN;
  EXPECT_THROW(sign_ste(Var(x)), Error);
}

TEST(AutogradSign, InsideTheWindowGradientsGoStraightToTheInput) {
  // Every |x| <= 1 (clipped latent weights, hardtanh outputs): the estimator is the identity and
  // the sign node adds its consumers' gradients into x's buffer directly. x also has a consumer
  // of its own, the sign output two, and x's buffer starts stale, then accumulating.
  const Tensor x = random_tensor({5003}, 72, -1.0f, 1.0f);
  const Tensor c1 = random_tensor({5003}, 73), c2 = random_tensor({5003}, 74), c3 = random_tensor({5003}, 75);
  for (const bool into : {false, true}) {
    for (const bool stale : {false, true}) {
      Tensor gacc = Tensor::zeros({5003}, DType::f32);
      for (int64_t i = 0; i < gacc.numel(); ++i) gacc.data<float>()[i] = 0.5f;
      bool flag = stale;
      Var xv(x, gacc, &flag);
      const Var y = into ? fake_quantize_into(xv, Quantizer::binary(), Tensor::zeros({5003}, DType::f32),
                                              Tensor::zeros({5003}, DType::f32))
                         : sign_ste(xv);
      EXPECT_EQ(y.node()->grad_alias, xv.node().get());
      backward(sum(add(add(mul(y, Var(c1)), mul(Var(c2), y)), mul(xv, Var(c3)))));
      EXPECT_FALSE(flag);
      const float base = stale ? 0.0f : 0.5f;
      for (int64_t i = 0; i < x.numel(); ++i) {
        const float want = base + c1.data<float>()[i] + c2.data<float>()[i] + c3.data<float>()[i];
        ASSERT_NEAR(gacc.data<float>()[i], want, 1e-6f) << i;  // summation order may differ
      }
    }
  }
  // One element outside the window: the masked path, no alias.
  Tensor xo = x.clone();
  xo.data<float>()[17] = 1.25f;
  Var xv(xo, true);
  const Var y = sign_ste(xv);
  EXPECT_EQ(y.node()->grad_alias, nullptr);
  backward(sum(mul(y, Var(c1))));
  EXPECT_EQ(xv.grad().data<float>()[17], 0.0f);
  EXPECT_EQ(xv.grad().data<float>()[18], c1.data<float>()[18]);
}

TEST(AutogradSign, TensorsLargerThanL2GiveTheSameSignsAtEveryIsa) {
  // Larger than L2, the forward writes with non-temporal stores (AVX-512); every level must
  // give quant's signs, the same window decision, and the NaN error.
  const int64_t n = cpu::l2_cache_bytes() / 4 + 4099;
  Tensor x = random_tensor({n}, 76, -1.0f, 1.0f);
  const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, 1e-30f, -1e-30f};
  for (int i = 0; i < 6; ++i) x.data<float>()[i * 777 + 3] = specials[i];
  std::vector<float> ref(static_cast<std::size_t>(n));
  quant::binarize({x.data<float>(), ref.size()}, ref);
  lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
    for (const float edge : {0.5f, 1.5f}) {  // one element inside or outside the window
      Tensor xe = x.clone();
      xe.data<float>()[n - 2] = edge;
      Var xv(xe, true);
      const Var y = sign_ste(xv);
      for (int64_t i = 0; i < n - 2; ++i) ASSERT_EQ(y.data()[i], ref[static_cast<std::size_t>(i)]) << i;
      EXPECT_EQ(y.data()[n - 2], 1.0f);
      EXPECT_EQ(y.node()->grad_alias != nullptr, edge <= 1.0f);
    }
    Tensor xn = x.clone();
    xn.data<float>()[n / 2] = NAN;
    EXPECT_THROW(sign_ste(Var(xn)), Error);
  });
}

TEST(AutogradSign, StochasticIsSeededAndUnbiased) {
  const int64_t n = 200000;
  Tensor x = Tensor::zeros({n}, DType::f32);
  for (int64_t i = 0; i < n; ++i) x.data<float>()[i] = 0.5f;
  const Var a = sign_stochastic(Var(x), 7), b = sign_stochastic(Var(x), 7), c = sign_stochastic(Var(x), 8);
  double mean = 0;
  int64_t diff = 0;
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(a.data()[i], b.data()[i]);
    diff += a.data()[i] != c.data()[i];
    mean += a.data()[i];
  }
  EXPECT_NEAR(mean / n, 0.5, 0.01);  // E = clip(x, −1, 1)
  EXPECT_GT(diff, n / 10);
  // Same STE as the deterministic sign.
  Var xv(filled({3}, {0.5f, 2.0f, -0.9f}), true);
  backward(sign_stochastic(xv, 1), filled({3}, {1, 1, 1}));
  EXPECT_EQ(xv.grad().data<float>()[1], 0.0f);
  EXPECT_EQ(xv.grad().data<float>()[2], 1.0f);
}

TEST(AutogradFakeQuantize, ForwardIsQuantizerBackwardIsMask) {
  const Tensor x = random_tensor({4, 9}, 61, -1.5f, 1.5f);
  const Tensor g = random_tensor({4, 9}, 62);
  struct Case { Quantizer q; float lo, hi; };
  for (const Case& cs : {Case{Quantizer::weights_kbit(3), -1, 1}, Case{Quantizer::activations_kbit(2), 0, 1},
                         Case{Quantizer::linear(0.25f, -1, 1), -1, 1}, Case{Quantizer::binary(), -1, 1}}) {
    SCOPED_TRACE(cs.q.name);
    Var xv(x.clone(), true);
    const Var y = fake_quantize(xv, cs.q);
    std::vector<float> ref(static_cast<std::size_t>(x.numel()));
    cs.q.forward({x.data<float>(), ref.size()}, ref);
    backward(y, g);
    for (int64_t i = 0; i < x.numel(); ++i) {
      EXPECT_EQ(y.data()[i], ref[static_cast<std::size_t>(i)]);
      const float xi = x.data<float>()[i];
      EXPECT_EQ(xv.grad().data<float>()[i], (xi >= cs.lo && xi <= cs.hi) ? g.data<float>()[i] : 0.0f) << xi;
    }
  }
}

TEST(AutogradDropout, SeededInvertedAndIdentityInEval) {
  const Tensor x = random_tensor({100, 50}, 63);
  const Var a = dropout(Var(x), 0.3f, 5, true), b = dropout(Var(x), 0.3f, 5, true), c = dropout(Var(x), 0.3f, 6, true);
  int64_t zeros = 0, diff = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    EXPECT_EQ(a.data()[i], b.data()[i]);
    diff += a.data()[i] != c.data()[i];
    if (a.data()[i] == 0.0f) ++zeros;
    else EXPECT_FLOAT_EQ(a.data()[i], x.data<float>()[i] / 0.7f);
  }
  EXPECT_NEAR(static_cast<double>(zeros) / x.numel(), 0.3, 0.02);
  EXPECT_GT(diff, 0);
  const Var x_var(x);
  EXPECT_EQ(dropout(x_var, 0.3f, 5, false).node(), x_var.node());  // eval: x itself
  gradcheck([](auto& v) { return dropout(v[0], 0.4f, 9, true); }, {random_tensor({7, 8}, 64)});
  EXPECT_THROW(dropout(x_var, 1.0f, 1, true), Error);
}

TEST(AutogradFakeQuantize, ClippedEstimatorInsideItsWindowPassesStraightThrough) {
  // k-bit weights in [−clip, clip] and activations in [0, clip]: the estimator is the identity,
  // and the gradient lands in x's buffer with no mask pass; one element outside keeps the mask.
  const Tensor c1 = random_tensor({3001}, 81);
  for (const bool weights : {true, false}) {
    const Quantizer q = weights ? Quantizer::weights_kbit(2, 0.75f) : Quantizer::activations_kbit(3, 0.75f);
    const Tensor x = random_tensor({3001}, 82, weights ? -0.75f : 0.0f, 0.75f);
    for (const bool into : {false, true}) {
      for (const bool one_outside : {false, true}) {
        Tensor xe = x.clone();
        if (one_outside) xe.data<float>()[1234] = 0.8f;
        Var xv(xe, true);
        const Var y = into ? fake_quantize_into(xv, q, Tensor::zeros({3001}, DType::f32),
                                                Tensor::zeros({3001}, DType::f32))
                           : fake_quantize(xv, q);
        EXPECT_EQ(y.node()->grad_alias != nullptr, !one_outside);
        std::vector<float> want(3001);
        q.forward({xe.data<float>(), 3001}, want);
        for (int64_t i = 0; i < 3001; ++i) ASSERT_EQ(y.data()[i], want[static_cast<std::size_t>(i)]) << i;
        backward(sum(mul(y, Var(c1))));
        for (int64_t i = 0; i < 3001; ++i) {
          const float g = (one_outside && i == 1234) ? 0.0f : c1.data<float>()[i];
          ASSERT_EQ(xv.grad().data<float>()[i], g) << i;
        }
      }
    }
  }
}

TEST(AutogradQuantizeGrad, IdentityForwardQuantizedBackward) {
  Var x(random_tensor({5, 13}, 65), true);
  const Var y = quantize_grad(x, 6, 77);
  EXPECT_EQ(y.data()[3], x.data()[3]);
  const Tensor g = random_tensor({5, 13}, 66, -0.01f, 0.01f);
  backward(y, g);
  std::vector<float> ref(static_cast<std::size_t>(g.numel()));
  quant::quantize_gradient({g.data<float>(), ref.size()}, ref, 6, 77);
  for (std::size_t i = 0; i < ref.size(); ++i) EXPECT_EQ(x.grad().data<float>()[i], ref[i]);
  // At most 2^6 distinct values.
  std::vector<float> vals(ref);
  std::sort(vals.begin(), vals.end());
  EXPECT_LE(std::unique(vals.begin(), vals.end()) - vals.begin(), 64);
}

// ---- losses ----------------------------------------------------------------------------------

TEST(AutogradLoss, SoftmaxCrossEntropyByHand) {
  const Tensor z = filled({2, 3}, {1, 2, 3, 0, 0, 0});
  const std::vector<int32_t> labels{2, 0};
  const Var l = softmax_cross_entropy(Var(z), labels);
  const double l0 = -std::log(std::exp(3.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(3.0)));
  const double l1 = std::log(3.0);
  EXPECT_NEAR(l.data()[0], (l0 + l1) / 2, 1e-6);
  gradcheck([&](auto& v) { return softmax_cross_entropy(v[0], labels); }, {random_tensor({2, 3}, 67, -3, 3)});
  EXPECT_THROW(softmax_cross_entropy(Var(z), std::vector<int32_t>{3, 0}), Error);
  EXPECT_THROW(softmax_cross_entropy(Var(z), std::vector<int32_t>{1}), Error);
}

TEST(AutogradLoss, SquaredHingeByHand) {
  const Tensor y = filled({2, 2}, {0.5f, -2.0f, 0.2f, 3.0f});
  const std::vector<int32_t> labels{0, 0};
  // t = [[1, −1], [1, −1]]: margins 0.5, 0 (−2·−1 = 2 > 1), 0.8, 4.
  const Var l = squared_hinge(Var(y), labels);
  EXPECT_NEAR(l.data()[0], (0.25 + 0 + 0.64 + 16) / 4, 1e-6);
  Tensor p = random_tensor({3, 4}, 68, -2, 2);
  for (int64_t i = 0; i < p.numel(); ++i)
    if (std::fabs(std::fabs(p.data<float>()[i]) - 1.0f) < 0.05f) p.data<float>()[i] = 0.3f;
  const std::vector<int32_t> l3{1, 3, 0};
  gradcheck([&](auto& v) { return squared_hinge(v[0], l3); }, {p});
}

}  // namespace
}  // namespace lowbit::autograd
