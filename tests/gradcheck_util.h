// Finite-difference gradient checking for autograd ops, shared by the op tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "lowbit/autograd/var.h"

namespace lowbit::autograd::testing {

// Uniform values in [lo, hi), reproducible from `seed`.
inline Tensor random_tensor(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Tensor t = Tensor::zeros(shape, DType::f32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

using Fn = std::function<Var(const std::vector<Var>&)>;

struct GradTolerance {
  float eps = 1e-2f;     // central-difference step
  double rtol = 1e-2;    // relative tolerance
  double atol = 1e-3;    // absolute tolerance
  int max_checks = 40;   // elements probed per input, at most
};

// Checks d(Σ R ⊙ fn(inputs))/d(inputs) from backward against central differences computed in
// double from the f32 forward, R a fixed random tensor.
inline void gradcheck(const Fn& fn, const std::vector<Tensor>& inputs, const GradTolerance& tol = {}) {
  std::vector<Var> leaves;
  for (const Tensor& t : inputs) leaves.emplace_back(t.clone(), true);
  Var out = fn(leaves);
  ASSERT_TRUE(out.requires_grad());
  const Tensor r = random_tensor(out.shape(), 99);
  backward(out, r);
  auto objective = [&](const std::vector<Tensor>& xs) {
    NoGradGuard ng;
    std::vector<Var> vs;
    for (const Tensor& t : xs) vs.emplace_back(t);
    const Var o = fn(vs);
    double s = 0.0;
    for (int64_t i = 0; i < o.numel(); ++i) s += static_cast<double>(o.data()[i]) * r.data<float>()[i];
    return s;
  };
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& g = leaves[k].grad();
    ASSERT_TRUE(g.defined()) << "input " << k << " got no gradient";
    const int64_t n = inputs[k].numel();
    const int64_t step = std::max<int64_t>(1, n / tol.max_checks);
    for (int64_t i = 0; i < n; i += step) {
      std::vector<Tensor> xs;
      for (const Tensor& t : inputs) xs.push_back(t.clone());
      xs[k].data<float>()[i] += tol.eps;
      const double fp = objective(xs);
      xs[k].data<float>()[i] -= 2 * tol.eps;
      const double fm = objective(xs);
      const double numeric = (fp - fm) / (2.0 * tol.eps);
      const double analytic = g.data<float>()[i];
      EXPECT_NEAR(analytic, numeric, tol.atol + tol.rtol * std::max(std::fabs(analytic), std::fabs(numeric)))
          << "input " << k << " element " << i;
    }
  }
}

}  // namespace lowbit::autograd::testing
