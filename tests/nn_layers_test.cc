// nn layers: parameter set-up (clip, Glorot factor, names), straight-through gradients of the
// binary and k-bit layers against their masked formulas, finite-difference checks of the float
// layers, BN train/eval through the layer, the 8-bit first layer's bit-plane identity, a small
// end-to-end training run, and the time of one training step of the BNN MNIST MLP.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "lowbit/autograd/ops.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/kernels/sgemm.h"
#include "lowbit/nn/layers.h"
#include "lowbit/nn/model.h"
#include "lowbit/quant/kbit.h"

namespace lowbit::nn {
namespace {
namespace ag = lowbit::autograd;

Tensor random_tensor(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Tensor t = Tensor::zeros(shape, DType::f32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

void zero_grads(const ParameterList& ps) {
  for (const auto& p : ps) std::fill(p->grad.data<float>(), p->grad.data<float>() + p->grad.numel(), 0.0f);
}

TEST(NnLayers, BinaryDenseParametersFollowTheBnnCode) {
  BinaryDense d(784, 2048, false, true, 3);
  const auto& w = *d.weight();
  EXPECT_EQ(w.value.shape(), (Shape{2048, 784}));
  EXPECT_TRUE(w.clip);
  EXPECT_EQ(w.clip_value, 1.0f);
  EXPECT_NEAR(w.lr_scale, 1.0 / std::sqrt(1.5 / (784 + 2048)), 1e-4);  // ≈ 43.4
  EXPECT_EQ(d.bias(), nullptr);
  float lo = 1, hi = -1;
  for (int64_t i = 0; i < w.value.numel(); ++i) {
    lo = std::min(lo, w.value.data<float>()[i]);
    hi = std::max(hi, w.value.data<float>()[i]);
  }
  EXPECT_GE(lo, -1.0f);
  EXPECT_LE(hi, 1.0f);
  EXPECT_LT(lo, -0.99f);  // U(−1, 1)
  EXPECT_GT(hi, 0.99f);
  BinaryDense no_glorot(10, 10, false, false);
  EXPECT_EQ(no_glorot.weight()->lr_scale, 1.0f);
  // Conv fans are k²·C (qnn.md §2: 3→128 3×3 conv ≈ 28).
  BinaryConv2d c(3, 128, {3, 1, 1});
  EXPECT_NEAR(c.weight()->lr_scale, 1.0 / std::sqrt(1.5 / (9 * 3 + 9 * 128)), 1e-4);
  EXPECT_NEAR(c.weight()->lr_scale, 28.0, 0.5);
  // Same seed, same weights; different seed, different weights.
  BinaryDense a(5, 4, false, true, 11), b(5, 4, false, true, 11), e(5, 4, false, true, 12);
  EXPECT_EQ(a.weight()->value.data<float>()[7], b.weight()->value.data<float>()[7]);
  EXPECT_NE(a.weight()->value.data<float>()[7], e.weight()->value.data<float>()[7]);
}

TEST(NnLayers, BinaryDenseSteGradientIsTheMaskedFormula) {
  const int64_t n = 5, in = 7, out = 3;
  BinaryDense d(in, out, true, true, 1);
  // Push some latent weights outside [−1, 1]: their gradient must be cancelled (qnn.md §1).
  float* w = d.weight()->value.data<float>();
  w[0] = 1.5f;
  w[4] = -2.0f;
  w[5] = 0.0f;  // sign(0) = +1
  Var x(random_tensor({n, in}, 2), true);
  const Tensor g = random_tensor({n, out}, 3);
  const Var y = d.forward(x, true);
  ag::backward(y, g);
  const Tensor wb = d.effective_weight();
  EXPECT_EQ(wb.data<float>()[5], 1.0f);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      const float wi = w[o * in + i];
      EXPECT_EQ(wb.data<float>()[o * in + i], wi >= 0 ? 1.0f : -1.0f);
      double gw = 0;  // (gᵀ·x)[o, i] · 1{|W| <= 1}
      for (int64_t r = 0; r < n; ++r) gw += g.data<float>()[r * out + o] * x.data()[r * in + i];
      if (std::fabs(wi) > 1.0f) gw = 0;
      EXPECT_NEAR(d.weight()->grad.data<float>()[o * in + i], gw, 1e-5) << o << "," << i;
    }
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < in; ++i) {
      double gx = 0;  // g · sign(W)
      for (int64_t o = 0; o < out; ++o) gx += g.data<float>()[r * out + o] * wb.data<float>()[o * in + i];
      EXPECT_NEAR(x.grad().data<float>()[r * in + i], gx, 1e-5);
    }
  for (int64_t o = 0; o < out; ++o) {
    double gb = 0;
    for (int64_t r = 0; r < n; ++r) gb += g.data<float>()[r * out + o];
    EXPECT_NEAR(d.bias()->grad.data<float>()[o], gb, 1e-5);
  }
}

TEST(NnLayers, KbitDenseUsesKbitLevelsWithSte) {
  KbitDense d(6, 4, 2, false, true, 5);
  float* w = d.weight()->value.data<float>();
  w[1] = 1.25f;
  const Tensor wq = d.effective_weight();
  std::vector<float> ref(static_cast<std::size_t>(wq.numel()));
  quant::quantize_weights_kbit({w, ref.size()}, ref, 2);
  for (std::size_t i = 0; i < ref.size(); ++i) EXPECT_EQ(wq.data<float>()[i], ref[i]);
  Var x(random_tensor({3, 6}, 6));
  const Tensor g = random_tensor({3, 4}, 7);
  ag::backward(d.forward(x, true), g);
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t i = 0; i < 6; ++i) {
      double gw = 0;
      for (int64_t r = 0; r < 3; ++r) gw += g.data<float>()[r * 4 + o] * x.data()[r * 6 + i];
      if (std::fabs(w[o * 6 + i]) > 1.0f) gw = 0;
      EXPECT_NEAR(d.weight()->grad.data<float>()[o * 6 + i], gw, 1e-5);
    }
  EXPECT_THROW(KbitDense(3, 3, 9), Error);
}

// Finite-difference check of a layer's input and parameter gradients.
void layer_gradcheck(Module& m, const Tensor& x, bool training, double tol = 2e-2) {
  const ParameterList ps = m.parameters();
  zero_grads(ps);
  Var xv(x.clone(), true);
  const Var y = m.forward(xv, training);
  const Tensor r = random_tensor(y.shape(), 77);
  ag::backward(y, r);
  auto objective = [&](const Tensor& xin) {
    ag::NoGradGuard ng;
    // Eval mode leaves buffers alone; in training, BN buffers move but do not affect the output.
    const Var o = m.forward(Var(xin), training);
    double s = 0;
    for (int64_t i = 0; i < o.numel(); ++i) s += static_cast<double>(o.data()[i]) * r.data<float>()[i];
    return s;
  };
  const float eps = 1e-2f;
  auto check = [&](float* v, const float* g, int64_t n, const Tensor& xin, const char* what) {
    for (int64_t i = 0; i < n; i += std::max<int64_t>(1, n / 25)) {
      const float keep = v[i];
      v[i] = keep + eps;
      const double fp = objective(xin);
      v[i] = keep - eps;
      const double fm = objective(xin);
      v[i] = keep;
      const double num = (fp - fm) / (2 * eps);
      EXPECT_NEAR(g[i], num, tol * (1 + std::fabs(num))) << what << " " << i;
    }
  };
  Tensor xc = x.clone();
  check(xc.data<float>(), xv.grad().data<float>(), xc.numel(), xc, "input");
  for (const auto& p : ps) check(p->value.data<float>(), p->grad.data<float>(), p->value.numel(), xc, p->name.c_str());
}

TEST(NnLayers, FloatLayersGradcheck) {
  Dense d(7, 4, true, 1);
  layer_gradcheck(d, random_tensor({5, 7}, 10), true);
  Conv2d c(3, 4, {3, 2, 1}, true, 2);
  layer_gradcheck(c, random_tensor({2, 3, 7, 5}, 11), true);
  BatchNorm bn(4, 0.1f, 1e-4f);
  layer_gradcheck(bn, random_tensor({6, 4}, 12, -2, 3), true);
  layer_gradcheck(bn, random_tensor({6, 4}, 13, -2, 3), false);
  BatchNorm bn4(3);
  layer_gradcheck(bn4, random_tensor({2, 3, 3, 4}, 14, -2, 3), true);
}

TEST(NnLayers, BatchNormLayerTrainEvalAndBuffers) {
  BatchNorm bn(3, 0.1f, 1e-4f);
  bn.set_name("2");
  EXPECT_EQ(bn.gamma()->name, "2.gamma");
  ASSERT_EQ(bn.buffers().size(), 2u);
  EXPECT_EQ(bn.buffers()[0].name, "2.running_mean");
  EXPECT_EQ(bn.buffers()[1].name, "2.running_var");
  EXPECT_THROW(bn.running_inv_std(), Error);
  EXPECT_THROW(bn.buffer("running_std"), Error);
  const Tensor x = random_tensor({50, 3}, 20, 2, 6);
  for (int i = 0; i < 200; ++i) bn.forward(Var(x), true);
  // The running statistics converge to the batch's (unbiased variance).
  for (int c = 0; c < 3; ++c) {
    double m = 0, v = 0;
    for (int r = 0; r < 50; ++r) m += x.data<float>()[r * 3 + c];
    m /= 50;
    for (int r = 0; r < 50; ++r) v += std::pow(x.data<float>()[r * 3 + c] - m, 2);
    v /= 49;
    EXPECT_NEAR(bn.running_mean().data<float>()[c], m, 1e-4);
    EXPECT_NEAR(bn.running_var().data<float>()[c], v, 1e-4);
  }
  // Eval on one sample uses the running statistics (a batch of 1 has no variance).
  const Var one(random_tensor({1, 3}, 21));
  const Var e = bn.forward(one, false);
  const float want = (one.data()[1] - bn.running_mean().data<float>()[1]) /
                     std::sqrt(bn.running_var().data<float>()[1] + 1e-4f);
  EXPECT_NEAR(e.data()[1], want, 1e-5);
  BatchNorm sbn(3, 0.125f, 1e-5f, true);
  EXPECT_EQ(sbn.buffers()[1].name, "running_inv_std");
  EXPECT_THROW(sbn.running_var(), Error);
}

TEST(NnLayers, SignDropoutQuantActModes) {
  Sign det(false), sto(true, 4);
  const Tensor x = random_tensor({20, 30}, 30, -0.5f, 0.5f);
  const Var a = sto.forward(Var(x), true), b = sto.forward(Var(x), true), e = sto.forward(Var(x), false);
  int64_t diff = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    diff += a.data()[i] != b.data()[i];  // a new seed each step
    EXPECT_EQ(e.data()[i], x.data<float>()[i] >= 0 ? 1.0f : -1.0f);  // eval: deterministic
  }
  EXPECT_GT(diff, 0);
  Dropout dr(0.5f, 9);
  const Var xv(x);
  EXPECT_EQ(dr.forward(xv, false).node(), xv.node());
  Dropout dr2(0.5f, 9);
  const Var d1 = dr.forward(xv, true), d2 = dr2.forward(xv, true);
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(d1.data()[i], d2.data()[i]);  // same seed, same masks
  QuantAct q(2, true);
  const Var qa = q.forward(Var(x), true);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float v = qa.data()[i];
    EXPECT_TRUE(std::fabs(std::fabs(v) - 1.0f / 3.0f) < 1e-6 || std::fabs(std::fabs(v) - 1.0f) < 1e-6) << v;
  }
}

// ---- 8-bit first layer -----------------------------------------------------------------------

TEST(NnFirstLayer8bit, BitPlaneSumEqualsDirectProductExactly) {
  // Pixels p mapped to [−1, 1] as x = 2p/255 − 1 give back u = p.
  const int64_t n = 4, in = 37, out = 5;
  std::mt19937 rng(1);
  Tensor x = Tensor::zeros({n, in}, DType::f32);
  std::vector<int> pix(static_cast<std::size_t>(n * in));
  for (int64_t i = 0; i < x.numel(); ++i) {
    pix[static_cast<std::size_t>(i)] = static_cast<int>(rng() % 256);
    x.data<float>()[i] = 2.0f * static_cast<float>(pix[static_cast<std::size_t>(i)]) / 255.0f - 1.0f;
  }
  pix[0] = 0, x.data<float>()[0] = -1.0f;
  pix[1] = 255, x.data<float>()[1] = 1.0f;
  const Tensor codes = FirstLayer8bit::input_codes(x);
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(codes.data<float>()[i], pix[static_cast<std::size_t>(i)]);
  FirstLayer8bit fl(std::make_unique<BinaryDense>(in, out, false, true, 2));
  const Tensor planes = fl.code_product(codes, true), direct = fl.code_product(codes, false);
  const Tensor wb = fl.inner().as<BinaryDense>()->effective_weight();
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out; ++o) {
      int64_t ref = 0;  // integer u · W_b
      for (int64_t i = 0; i < in; ++i)
        ref += pix[static_cast<std::size_t>(r * in + i)] * static_cast<int64_t>(wb.data<float>()[o * in + i]);
      EXPECT_EQ(planes.data<float>()[r * out + o], static_cast<float>(ref));
      EXPECT_EQ(direct.data<float>()[r * out + o], static_cast<float>(ref));
    }
  // The layer's output (either path) is the product on the quantized input x_q.
  for (bool bp : {false, true}) {
    fl.set_bitplanes(bp);
    const Var y = fl.forward(Var(x), false);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double ref = 0;
        for (int64_t i = 0; i < in; ++i) ref += x.data<float>()[r * in + i] * wb.data<float>()[o * in + i];
        EXPECT_NEAR(y.data()[r * out + o], ref, 1e-4);
      }
  }
}

TEST(NnFirstLayer8bit, ConvFormWithPaddingAndWeightGradient) {
  const Tensor x = random_tensor({2, 3, 6, 5}, 40);
  FirstLayer8bit fl(std::make_unique<BinaryConv2d>(3, 4, ConvOptions{3, 2, 1}, true, true, 3), true);
  EXPECT_EQ(fl.parameters().size(), 2u);
  fl.set_name("0");
  EXPECT_EQ(fl.parameters()[0]->name, "0.weight");
  // Reference: conv of the quantized input (2u − 255)/255 with sign(W), zero padding.
  const Tensor codes = FirstLayer8bit::input_codes(x);
  Tensor xq = Tensor::zeros(x.shape(), DType::f32);
  for (int64_t i = 0; i < x.numel(); ++i) xq.data<float>()[i] = (2.0f * codes.data<float>()[i] - 255.0f) / 255.0f;
  const Tensor wb = fl.inner().as<BinaryConv2d>()->effective_weight();
  const auto& bias = fl.inner().as<BinaryConv2d>()->bias();
  bias->value.data<float>()[1] = 0.5f;
  const Var ref = ag::conv2d(Var(xq), Var(wb), Var(bias->value), 2, 1);
  zero_grads(fl.parameters());
  const Var y = fl.forward(Var(x), true);
  ASSERT_EQ(y.shape(), ref.shape());
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_NEAR(y.data()[i], ref.data()[i], 1e-4);
  EXPECT_EQ(fl.code_product(codes, true).data<float>()[7], fl.code_product(codes, false).data<float>()[7]);
  // Weight gradient = that of the reference product, masked by the STE.
  const Tensor g = random_tensor(y.shape(), 41);
  ag::backward(y, g);
  Var wv(wb.clone(), true);
  ag::backward(ag::conv2d(Var(xq), wv, Var(), 2, 1), g);
  const float* w = fl.parameters()[0]->value.data<float>();
  for (int64_t i = 0; i < wb.numel(); ++i)
    EXPECT_NEAR(fl.parameters()[0]->grad.data<float>()[i], std::fabs(w[i]) <= 1 ? wv.grad().data<float>()[i] : 0.0f,
                1e-3);
}

// ---- end to end --------------------------------------------------------------------------------

// Binary MLP (BinaryDense → BN → hardtanh → sign → BinaryDense → BN, squared hinge) trained with
// plain SGD (lr_scale, clip) on a linearly separable 2-class problem: Gaussian inputs labelled by
// the sign of their product with a ±1 teacher vector.
double train_binary_mlp(float lr, int steps) {
  const char* json = R"({"input_shape": [16], "layers": [
      {"type": "binary_dense", "units": 64}, {"type": "batch_norm"}, {"type": "hardtanh"}, {"type": "sign"},
      {"type": "binary_dense", "units": 2}, {"type": "batch_norm"}]})";
  Sequential model = build_model(json, 42);
  const ParameterList params = model.parameters();
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> dir(16);
  for (auto& v : dir) v = nd(rng) >= 0 ? 1.0f : -1.0f;  // a binary teacher: realizable by one binary neuron
  auto batch = [&](int64_t n, Tensor& x, std::vector<int32_t>& y) {
    x = Tensor::zeros({n, 16}, DType::f32);
    y.assign(static_cast<std::size_t>(n), 0);
    for (int64_t r = 0; r < n; ++r) {
      double s = 0;
      for (int i = 0; i < 16; ++i) s += (x.data<float>()[r * 16 + i] = nd(rng)) * dir[static_cast<std::size_t>(i)];
      y[static_cast<std::size_t>(r)] = s > 0 ? 1 : 0;
    }
  };
  Tensor x;
  std::vector<int32_t> y;
  for (int step = 0; step < steps; ++step) {
    batch(64, x, y);
    zero_grads(params);
    ag::backward(ag::squared_hinge(model.forward(Var(x), true), y));
    for (const auto& p : params) {
      float* v = p->value.data<float>();
      const float* g = p->grad.data<float>();
      for (int64_t i = 0; i < p->value.numel(); ++i) {
        v[i] -= lr * p->lr_scale * g[i];
        if (p->clip) v[i] = std::clamp(v[i], -p->clip_value, p->clip_value);
      }
    }
  }
  batch(1000, x, y);
  ag::NoGradGuard ng;
  const Var out = model.forward(Var(x), false);
  int errors = 0;
  for (int64_t r = 0; r < 1000; ++r) errors += (out.data()[r * 2 + 1] > out.data()[r * 2]) != (y[static_cast<std::size_t>(r)] == 1);
  return errors / 1000.0;
}

TEST(NnEndToEnd, BinaryMlpLearnsSeparableProblem) {
  const double untrained = train_binary_mlp(0.0f, 1);
  const double trained = train_binary_mlp(0.1f, 600);
  std::printf("binary MLP test error: untrained %.3f, trained %.3f\n", untrained, trained);
  EXPECT_GT(untrained, 0.2);
  EXPECT_LT(trained, 0.08);
}

// ---- timing ------------------------------------------------------------------------------------

// One training step (forward + backward, squared hinge) of the BNN MNIST MLP 784-1024×3-10 at
// batch 100, with binary weights, BN, hard tanh and sign. Prints the mean step time; compare with
// the PyTorch script of the Python benchmarks at the same thread count.
TEST(NnTiming, BinaryMlpTrainingStep) {
  const char* json = R"({"input_shape": [784], "layers": [
      {"type": "binary_dense", "units": 1024}, {"type": "batch_norm"}, {"type": "hardtanh"}, {"type": "sign"},
      {"type": "binary_dense", "units": 1024}, {"type": "batch_norm"}, {"type": "hardtanh"}, {"type": "sign"},
      {"type": "binary_dense", "units": 1024}, {"type": "batch_norm"}, {"type": "hardtanh"}, {"type": "sign"},
      {"type": "binary_dense", "units": 10}, {"type": "batch_norm"}]})";
  Sequential model = build_model(json, 1);
  const ParameterList params = model.parameters();
  const Tensor x = random_tensor({100, 784}, 5);
  std::vector<int32_t> y(100);
  for (int i = 0; i < 100; ++i) y[static_cast<std::size_t>(i)] = i % 10;
  auto step = [&] {
    zero_grads(params);
    ag::backward(ag::squared_hinge(model.forward(Var(x), true), y));
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up: allocator, oneDNN kernels, thread pool
  const int iters = 20;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) step();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
  // The floor: the step's eleven GEMMs alone (4 forward, 4 weight gradients, 3 input gradients;
  // the data input needs none), on the same shapes through the same sgemm.
  const int64_t dims[] = {784, 1024, 1024, 1024, 10};
  std::vector<Tensor> acts, ws, outs, ys, gws, gxs;
  for (int l = 0; l < 4; ++l) {
    acts.push_back(random_tensor({100, dims[l]}, 10 + l));
    ws.push_back(random_tensor({dims[l + 1], dims[l]}, 20 + l));
    outs.push_back(random_tensor({100, dims[l + 1]}, 30 + l));
    ys.push_back(Tensor::zeros({100, dims[l + 1]}, DType::f32));
    gws.push_back(Tensor::zeros({dims[l + 1], dims[l]}, DType::f32));
    gxs.push_back(Tensor::zeros({100, dims[l]}, DType::f32));
  }
  auto gemms = [&] {  // preallocated outputs: the floor has no allocation at all
    for (int l = 0; l < 4; ++l) {
      const int64_t in = dims[l], out = dims[l + 1];
      Tensor &y = ys[l], &gw = gws[l], &gx = gxs[l];
      kernels::sgemm(false, true, 100, out, in, 1.0f, acts[l].data<float>(), in, ws[l].data<float>(), in, 0.0f,
                     y.data<float>(), out);
      kernels::sgemm(true, false, out, in, 100, 1.0f, outs[l].data<float>(), out, acts[l].data<float>(), in, 0.0f,
                     gw.data<float>(), in);
      if (l > 0) {
        kernels::sgemm(false, false, 100, in, out, 1.0f, outs[l].data<float>(), out, ws[l].data<float>(), in, 0.0f,
                       gx.data<float>(), in);
      }
    }
  };
  for (int i = 0; i < 3; ++i) gemms();
  const auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) gemms();
  const double floor_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count() / iters;
  std::printf("binary MLP 784-1024x3-10, batch 100, %d threads: %.2f ms per training step (forward + backward); "
              "its GEMMs alone %.2f ms (step / GEMMs = %.2f)\n",
              num_threads(), ms, floor_ms, ms / floor_ms);
  EXPECT_GT(ms, 0.0);
}

}  // namespace
}  // namespace lowbit::nn
