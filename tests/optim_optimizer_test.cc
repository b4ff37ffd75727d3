#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lowbit/autograd/ops.h"
#include "lowbit/core/error.h"
#include "lowbit/nn/optim.h"
#include "lowbit/quant/kbit.h"

namespace lowbit::nn {
namespace {

std::shared_ptr<Parameter> param(const std::string& name, const std::vector<float>& v) {
  return Parameter::make(name, Tensor::from<float>({static_cast<int64_t>(v.size())}, v));
}

void set_grad(Parameter& p, const std::vector<float>& g) {
  ASSERT_EQ(static_cast<int64_t>(g.size()), p.grad.numel());
  std::memcpy(p.grad.data<float>(), g.data(), g.size() * sizeof(float));
}

std::vector<float> values(const Parameter& p) {
  return std::vector<float>(p.value.data<float>(), p.value.data<float>() + p.value.numel());
}

// A fixed sequence of gradients for a parameter of size n: step k, element i.
float grad_at(int k, int i) { return std::sin(1.3f * i + 0.7f * k) * (i % 3 == 0 ? 3.0f : 0.2f) + (i == 1 ? 0.0f : 0.01f); }

bool is_pow2(double x) {
  if (!(x > 0) || !std::isfinite(x)) return false;
  int e = 0;
  return std::frexp(x, &e) == 0.5;
}

void expect_error(const std::function<void()>& fn, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

const std::vector<float> kInit{0.5f, -0.25f, 0.0f, 1.5f, -2.0f, 0.125f, 0.75f};

// ---- SGD ------------------------------------------------------------------------------------

TEST(OptimSgd, MatchesScalarReference) {
  for (const bool nesterov : {false, true})
    for (const float wd : {0.0f, 0.01f}) {
      SCOPED_TRACE(::testing::Message() << "nesterov " << nesterov << " wd " << wd);
      auto p = param("w", kInit);
      Sgd opt({p}, {.momentum = 0.9f, .nesterov = nesterov, .weight_decay = wd});
      std::vector<double> w(kInit.begin(), kInit.end()), b(kInit.size(), 0.0);
      for (int k = 0; k < 5; ++k) {
        std::vector<float> g(kInit.size());
        for (std::size_t i = 0; i < g.size(); ++i) g[i] = grad_at(k, static_cast<int>(i));
        set_grad(*p, g);
        const float lr = 0.1f / (k + 1);
        opt.step(lr);
        for (std::size_t i = 0; i < w.size(); ++i) {
          const double gi = g[i] + wd * w[i];
          b[i] = 0.9 * b[i] + gi;
          w[i] -= lr * (nesterov ? gi + 0.9 * b[i] : b[i]);
        }
      }
      const auto got = values(*p);
      for (std::size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(got[i], w[i], 1e-5 * (1 + std::fabs(w[i]))) << i;
    }
}

TEST(OptimSgd, PlainStepIsLrTimesGradient) {
  auto p = param("w", {1.0f, 2.0f});
  Sgd opt({p});
  set_grad(*p, {0.5f, -4.0f});
  opt.step(0.25f);
  EXPECT_EQ(values(*p), (std::vector<float>{0.875f, 3.0f}));
  EXPECT_EQ(opt.state().size(), 1u);  // only the step count: no momentum buffer
  expect_error([] { Sgd({param("w", {1})}, {.momentum = 0.0f, .nesterov = true}); }, "Nesterov");
}

// ---- Adam -----------------------------------------------------------------------------------

TEST(OptimAdam, FirstStepIsLrTimesSignByBiasCorrection) {
  // t = 1: m = (1−β1)g, v = (1−β2)g², a = lr·sqrt(1−β2)/(1−β1), so the step is
  // lr·g/(|g| + ε/sqrt(1−β2)) ≈ lr·sign(g) whatever the size of g.
  auto p = param("w", {0.0f, 0.0f, 0.0f});
  Adam opt({p});
  set_grad(*p, {1e-3f, -50.0f, 0.0f});
  opt.step(0.01f);
  const auto w = values(*p);
  // ε sits outside the uncorrected sqrt(v) (Lasagne's form), so it weighs 1/sqrt(1 − β2) ≈ 32
  // times more than its nominal value against a small gradient.
  const double guard = 1e-8 / std::sqrt(1 - 0.999);
  EXPECT_NEAR(w[0], -0.01 * 1e-3 / (1e-3 + guard), 1e-9);
  EXPECT_NEAR(w[1], 0.01 * 50 / (50 + guard), 1e-9);
  EXPECT_NEAR(w[0], -0.01, 4e-6);
  EXPECT_EQ(w[2], 0.0f);
}

TEST(OptimAdam, MatchesScalarReference) {
  auto p = param("w", kInit);
  const AdamOptions o{.beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-6f};
  Adam opt({p}, o);
  std::vector<double> w(kInit.begin(), kInit.end()), m(w.size(), 0), v(w.size(), 0);
  for (int t = 1; t <= 6; ++t) {
    std::vector<float> g(w.size());
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = grad_at(t, static_cast<int>(i));
    set_grad(*p, g);
    opt.step(0.05f);
    for (std::size_t i = 0; i < w.size(); ++i) {
      m[i] = 0.8 * m[i] + 0.2 * g[i];
      v[i] = 0.99 * v[i] + 0.01 * double{g[i]} * g[i];
      const double a = 0.05 * std::sqrt(1 - std::pow(0.99, t)) / (1 - std::pow(0.8, t));
      w[i] -= a * m[i] / (std::sqrt(v[i]) + 1e-6);
    }
  }
  const auto got = values(*p);
  for (std::size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(got[i], w[i], 1e-5) << i;
  EXPECT_EQ(opt.steps(), 6);
}

// ---- AdaMax ---------------------------------------------------------------------------------

TEST(OptimAdaMax, MatchesScalarReferenceAndKeepsTheMax) {
  auto p = param("w", kInit);
  AdaMax opt({p});
  std::vector<double> w(kInit.begin(), kInit.end()), m(w.size(), 0), u(w.size(), 0);
  for (int t = 1; t <= 6; ++t) {
    std::vector<float> g(w.size());
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = grad_at(t, static_cast<int>(i)) * (t == 2 ? 10.0f : 1.0f);
    set_grad(*p, g);
    opt.step(0.002f);
    for (std::size_t i = 0; i < w.size(); ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      u[i] = std::max(0.999 * u[i], std::fabs(double{g[i]}));
      w[i] -= 0.002 / (1 - std::pow(0.9, t)) * m[i] / (u[i] + 1e-8);
    }
  }
  const auto got = values(*p);
  for (std::size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(got[i], w[i], 1e-6) << i;
  // The large step-2 gradients still dominate u four steps later: u = 0.999^4·|g_2|.
  const NamedTensors st = opt.state();
  ASSERT_EQ(st[2].first, "adamax/w/u");
  for (std::size_t i = 0; i < w.size(); ++i) {
    EXPECT_NEAR(st[2].second.data<float>()[i], u[i], 1e-6 * u[i]) << i;
    if (i % 3 == 0) {
      EXPECT_NEAR(u[i], std::pow(0.999, 4) * std::fabs(double{10.0f * grad_at(2, static_cast<int>(i))}), 1e-9);
    }
  }
}

// ---- Shift-based AdaMax ---------------------------------------------------------------------

// The Torch7 rule written out in float with the library's scalar AP2, and the update read as
// m · AP2(1/v) (see optim.h).
struct ShiftAdaMaxRef {
  std::vector<float> w, m, v;
  float b1 = 0.9f, b2 = 0.999f, eps = 0x1p-27f;
  int t = 0;
  void step(const std::vector<float>& g, float lr, float lr_scale) {
    ++t;
    const float s = quant::ap2(static_cast<float>(lr / (1.0 - std::pow(double{b1}, t)))) * lr_scale;
    for (std::size_t i = 0; i < w.size(); ++i) {
      m[i] = b1 * m[i] + (1.0f - b1) * g[i];
      v[i] = quant::ap2(std::max(b2 * v[i], std::fabs(g[i]))) + eps;
      w[i] -= s * (m[i] * quant::ap2(1.0f / v[i]));
    }
  }
};

TEST(OptimShiftAdaMax, MatchesTorch7RuleWithPowerOfTwoSteps) {
  // Gradients spanning the float range, subnormals included, to check the vectorised AP2.
  std::vector<float> init(64), g0(64);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f), e(-140.0f, 30.0f);
  for (int i = 0; i < 64; ++i) {
    init[i] = u(rng);
    g0[i] = std::copysign(std::exp2(e(rng)), u(rng));
  }
  g0[0] = 0.0f;
  g0[1] = 1e-45f;  // the smallest subnormal
  g0[2] = 0x1.6a09e6p0f;  // just below sqrt(2): AP2 rounds down
  g0[3] = 0x1.6a09e8p0f;  // just above: rounds up
  auto p = param("w", init);
  p->lr_scale = 4.0f;  // a power of two, as glorot_lr_scale_pow2 gives
  ShiftAdaMax opt({p});
  ShiftAdaMaxRef ref{init, std::vector<float>(64, 0.0f), std::vector<float>(64, 0.0f)};
  for (int t = 1; t <= 5; ++t) {
    std::vector<float> g(64);
    for (int i = 0; i < 64; ++i) g[i] = t == 1 ? g0[i] : g0[i] * std::cos(0.3f * t * i);
    set_grad(*p, g);
    const std::vector<float> before = values(*p);
    const float lr = 0x1p-6f;
    opt.step(lr);
    ref.step(g, lr, 4.0f);
    // The step size AP2(lr/(1 − β1^t)) is a power of two.
    EXPECT_TRUE(is_pow2(opt.last_step_size()));
    EXPECT_EQ(opt.last_step_size(), quant::ap2(static_cast<float>(lr / (1 - std::pow(0.9, t)))));
    const NamedTensors st = opt.state();
    ASSERT_EQ(st[2].first, "shift_adamax/w/v");
    const float* m = st[1].second.data<float>();
    const float* v = st[2].second.data<float>();
    for (int i = 0; i < 64; ++i) {
      // Bit-exact against the scalar form: the state and the weights.
      ASSERT_EQ(v[i], ref.v[i]) << "t " << t << " i " << i << " g " << g[i];
      ASSERT_EQ(m[i], ref.m[i]) << i;
      ASSERT_EQ(p->value.data<float>()[i], ref.w[i]) << i;
      // v − ε is a power of two (or zero) whenever ε is below v's last digit or v − ε is exact.
      const double v2 = static_cast<double>(v[i]) - 0x1p-27;
      if (v[i] > 0x1p-27f) {
        EXPECT_TRUE(is_pow2(v2) || is_pow2(v[i])) << v[i];
      }
      // The step multiplier (w_old − w_new)/m = s·lr_scale·AP2(1/v) is a power of two; the
      // float subtraction leaves a relative error of a few ulps of w.
      const double dw = static_cast<double>(before[i]) - p->value.data<float>()[i];
      if (m[i] != 0.0f && std::fabs(dw) > 1e-4 * std::fabs(before[i]) + 1e-30) {
        const double k = std::log2(dw / m[i]);
        EXPECT_NEAR(k, std::round(k), 1e-3) << "i " << i;
      }
    }
  }
  // Torch7 divides by v instead: for v well above ε the two agree to float precision.
  EXPECT_EQ(quant::ap2(1.0f / (0x1p-8f + 0x1p-27f)), 0x1p8f);
  EXPECT_NEAR(1.0 / (0x1p-8 + 0x1p-27), 0x1p8, 0x1p8 * 0x1p-19);
}

TEST(OptimShiftAdaMax, ZeroGradientKeepsWeightAndVAtEps) {
  auto p = param("w", {0.5f, -0.5f});
  ShiftAdaMax opt({p});
  opt.step(0.01f);
  EXPECT_EQ(values(*p), (std::vector<float>{0.5f, -0.5f}));
  EXPECT_EQ(opt.state()[2].second.data<float>()[0], 0x1p-27f);
  expect_error([] { ShiftAdaMax({param("w", {1})}, {.eps = 0.0f}); }, "eps");
}

// ---- Common behaviour -----------------------------------------------------------------------

using Factory = std::function<std::unique_ptr<Optimizer>(ParameterList)>;
std::vector<std::pair<std::string, Factory>> all_optimizers() {
  return {
      {"sgd", [](ParameterList p) { return std::make_unique<Sgd>(std::move(p), SgdOptions{.momentum = 0.9f}); }},
      {"sgd_nesterov_wd",
       [](ParameterList p) {
         return std::make_unique<Sgd>(std::move(p), SgdOptions{.momentum = 0.5f, .nesterov = true, .weight_decay = 1e-3f});
       }},
      {"adam", [](ParameterList p) { return std::make_unique<Adam>(std::move(p)); }},
      {"adamax", [](ParameterList p) { return std::make_unique<AdaMax>(std::move(p)); }},
      {"shift_adamax", [](ParameterList p) { return std::make_unique<ShiftAdaMax>(std::move(p)); }},
  };
}

TEST(OptimCommon, ClipAndLrScale) {
  for (const auto& [name, make] : all_optimizers()) {
    SCOPED_TRACE(name);
    auto clipped = param("binary.weight", {0.9f, -0.9f, 0.2f, 3.0f});
    clipped->clip = true;
    auto scaled = param("scaled", {0.0f, 0.0f, 0.0f, 0.0f});
    scaled->lr_scale = 2.0f;
    auto plain = param("plain", {0.0f, 0.0f, 0.0f, 0.0f});
    auto opt = make({clipped, scaled, plain});
    const std::vector<float> g{-1.0f, 1.0f, -0.5f, 0.25f};
    set_grad(*clipped, g);
    set_grad(*scaled, g);
    set_grad(*plain, g);
    opt->step(0.5f);
    const auto c = values(*clipped);
    EXPECT_EQ(c[0], 1.0f);   // pushed past +1: clipped
    EXPECT_EQ(c[1], -1.0f);  // pushed past −1: clipped
    EXPECT_GT(c[2], 0.2f);   // moved, inside
    EXPECT_EQ(c[3], 1.0f);   // started outside: clipped even though the step is small
    // lr_scale 2: exactly twice the step of the unscaled parameter (scaling by 2 is exact).
    for (int i = 0; i < 4; ++i) EXPECT_EQ(scaled->value.data<float>()[i], 2.0f * plain->value.data<float>()[i]) << i;
    EXPECT_GT(std::fabs(plain->value.data<float>()[3]), 0.0f);
    // A clip value other than 1.
    auto wide = param("wide", {0.0f});
    wide->clip = true;
    wide->clip_value = 0.25f;
    auto opt2 = make({wide});
    set_grad(*wide, {-100.0f});
    for (int k = 0; k < 20; ++k) opt2->step(1.0f);
    EXPECT_EQ(wide->value.data<float>()[0], 0.25f);
  }
}

TEST(OptimCommon, SavedStateResumesBitForBit) {
  for (const auto& [name, make] : all_optimizers()) {
    SCOPED_TRACE(name);
    auto a1 = param("fc.weight", kInit), a2 = param("fc.bias", {0.1f, -0.1f});
    a1->clip = true;
    a1->lr_scale = 8.0f;
    auto opt = make({a1, a2});
    auto grads = [&](int k, Parameter& w, Parameter& b) {
      std::vector<float> g(kInit.size());
      for (std::size_t i = 0; i < g.size(); ++i) g[i] = grad_at(k, static_cast<int>(i));
      set_grad(w, g);
      set_grad(b, {grad_at(k, 11), grad_at(k, 12)});
    };
    for (int k = 0; k < 3; ++k) {
      grads(k, *a1, *a2);
      opt->step(0.01f);
    }
    const NamedTensors saved = opt->state();
    // A fresh optimizer over copies of the parameters, given the saved state.
    auto b1 = Parameter::make("fc.weight", a1->value.clone()), b2 = Parameter::make("fc.bias", a2->value.clone());
    b1->clip = true;
    b1->lr_scale = 8.0f;
    auto resumed = make({b1, b2});
    resumed->load_state(saved);
    EXPECT_EQ(resumed->steps(), 3);
    for (int k = 3; k < 7; ++k) {
      grads(k, *a1, *a2);
      grads(k, *b1, *b2);
      opt->step(0.01f / k);
      resumed->step(0.01f / k);
    }
    EXPECT_EQ(values(*a1), values(*b1));
    EXPECT_EQ(values(*a2), values(*b2));
    // The saved state is a copy: later steps did not change it.
    EXPECT_EQ(saved[0].second.data<int32_t>()[0], 3);
  }
}

TEST(OptimCommon, LoadStateValidates) {
  auto w = param("w", {1, 2, 3});
  Adam adam({w});
  adam.step(0.1f);
  NamedTensors st = adam.state();
  ASSERT_EQ(st.size(), 3u);
  EXPECT_EQ(st[0].first, "adam/step");
  EXPECT_EQ(st[1].first, "adam/w/m");
  EXPECT_EQ(st[2].first, "adam/w/v");

  AdaMax other({param("w", {1, 2, 3})});
  expect_error([&] { other.load_state(st); }, "is not adamax state");
  Adam wrong_shape({param("w", {1, 2})});
  expect_error([&] { wrong_shape.load_state(st); }, "'adam/w/m' is f32[3], expected f32[2]");
  Adam wrong_name({param("u", {1, 2, 3})});
  expect_error([&] { wrong_name.load_state(st); }, "'adam/u/m' is missing");
  NamedTensors extra = st;
  extra.emplace_back("adam/x/m", Tensor::zeros({3}, DType::f32));
  Adam fresh({param("w", {1, 2, 3})});
  expect_error([&] { fresh.load_state(extra); }, "'adam/x/m' matches no parameter");
  EXPECT_EQ(fresh.steps(), 0);  // a rejected state changes nothing
  NamedTensors dup = st;
  dup.push_back(st[1]);
  expect_error([&] { fresh.load_state(dup); }, "twice");
}

TEST(OptimCommon, ConstructionAndStepChecks) {
  expect_error([] { Adam({param("w", {1}), param("w", {2})}); }, "two parameters are named 'w'");
  expect_error([] { Adam({param("", {1})}); }, "has no name");
  auto p = param("w", {1, 2});
  p->grad = Tensor::zeros({3}, DType::f32);
  expect_error([&] { Adam({p}); }, "gradient of shape [2]");
  Adam ok({param("v", {1})});
  expect_error([&] { ok.step(-1.0f); }, "learning rate");
  expect_error([&] { ok.step(NAN); }, "learning rate");
}

TEST(OptimCommon, ZeroGrad) {
  auto p = param("w", {1, 2});
  Sgd opt({p});
  set_grad(*p, {3, 4});
  opt.zero_grad();
  EXPECT_EQ(p->grad.data<float>()[0], 0.0f);
  EXPECT_EQ(p->grad.data<float>()[1], 0.0f);
}

TEST(OptimCommon, DiscardGradsActsAsZeroGradWithoutClearing) {
  namespace ag = autograd;
  auto a = param("a", {1.0f, 2.0f, -3.0f});
  auto b = param("b", {4.0f, 5.0f, 6.0f});
  Sgd opt({a, b});
  set_grad(*a, {7.0f, 7.0f, 7.0f});  // a finished step's gradients
  set_grad(*b, {9.0f, 9.0f, 9.0f});
  opt.discard_grads();
  EXPECT_TRUE(a->grad_stale && b->grad_stale);
  EXPECT_EQ(a->grad.data<float>()[0], 7.0f);  // not cleared
  // a reaches the loss through two leaves of the tape, b through none: d/da sum(a·a) = 2a, the
  // two contributions added, and b's gradient counts as zero.
  const ag::Var a1(a->value, a->grad, &a->grad_stale), a2(a->value, a->grad, &a->grad_stale);
  ag::backward(ag::sum(ag::mul(a1, a2)));
  EXPECT_FALSE(a->grad_stale);
  EXPECT_TRUE(b->grad_stale);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a->grad.data<float>()[i], 2.0f * a->value.data<float>()[i]) << i;
  opt.step(0.5f);
  EXPECT_FALSE(b->grad_stale);
  EXPECT_EQ(values(*a), (std::vector<float>{0.0f, 0.0f, 0.0f}));  // a − 0.5·2a
  EXPECT_EQ(values(*b), (std::vector<float>{4.0f, 5.0f, 6.0f}));  // zero gradient
  EXPECT_EQ(b->grad.data<float>()[1], 0.0f);
  // settle_grad clears a stale gradient that a caller is about to read.
  set_grad(*a, {1.0f, 1.0f, 1.0f});
  opt.discard_grads();
  settle_grad(*a);
  EXPECT_FALSE(a->grad_stale);
  EXPECT_EQ(a->grad.data<float>()[2], 0.0f);
}

TEST(OptimCommon, ConvergesOnAQuadratic) {
  // f(w) = ½ Σ a_i (w_i − c_i)², an ill-conditioned bowl (a from 0.1 to 10) with the minimum
  // inside [−1, 1], so clipping does not get in the way.
  const int n = 9;
  std::vector<float> a(n), c(n);
  for (int i = 0; i < n; ++i) {
    a[i] = std::pow(10.0f, -1.0f + 2.0f * i / (n - 1));
    c[i] = 0.9f * std::sin(1.0f + i);
  }
  for (const auto& [name, make] : all_optimizers()) {
    SCOPED_TRACE(name);
    auto p = param("w", std::vector<float>(n, 0.0f));
    p->clip = true;
    auto opt = make({p});
    const bool sgd = name.rfind("sgd", 0) == 0;
    for (int k = 0; k < 2000; ++k) {
      std::vector<float> g(n);
      for (int i = 0; i < n; ++i) g[i] = a[i] * (p->value.data<float>()[i] - c[i]);
      set_grad(*p, g);
      // Adaptive methods move by about lr per step whatever the gradient: decay the rate.
      opt->step(sgd ? 0.05f : 0.05f * std::pow(0.997f, static_cast<float>(k)));
    }
    // Weight decay moves the minimum to a·c/(a + wd).
    const float wd = name == "sgd_nesterov_wd" ? 1e-3f : 0.0f;
    for (int i = 0; i < n; ++i) EXPECT_NEAR(p->value.data<float>()[i], a[i] * c[i] / (a[i] + wd), 2e-3) << i;
  }
}

TEST(OptimCommon, LargeTensorsMatchTheSmallPath) {
  // 100 003 elements go through the thread pool in chunks; each element must come out as if
  // it had been updated alone.
  const int64_t n = 100003;
  std::vector<float> init(n), g(n);
  for (int64_t i = 0; i < n; ++i) {
    init[i] = std::sin(0.001f * static_cast<float>(i));
    g[i] = std::cos(0.37f * static_cast<float>(i));
  }
  for (const auto& [name, make] : all_optimizers()) {
    SCOPED_TRACE(name);
    auto big = param("big", init);
    big->clip = true;
    auto opt = make({big});
    set_grad(*big, g);
    opt->step(0.3f);
    opt->step(0.3f);
    for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{32767}, int64_t{32768}, int64_t{65536}, n - 1}) {
      auto one = param("one", {init[i]});
      one->clip = true;
      auto o1 = make({one});
      set_grad(*one, {g[i]});
      o1->step(0.3f);
      o1->step(0.3f);
      EXPECT_EQ(big->value.data<float>()[i], one->value.data<float>()[0]) << i;
    }
  }
}

}  // namespace
}  // namespace lowbit::nn
