// Batch norm and shift-based batch norm (qnn.md §6) over [N, C] and [N, C, H, W].
//
// Both share one structure. The forward keeps, per element, a normalized value x̂ for the
// backward, and per channel the factor `scale` that multiplies the incoming gradient:
//   vanilla:  x̂ = (x − μ)·inv_std,         y = γ·x̂ + β,                  scale = γ·inv_std
//   shift:    x̂ = AP2(x − μ)·AP2(inv_std),  y = (x − μ)·AP2(inv_std)·AP2(γ) + β,  scale = AP2(γ)·AP2(inv_std)
// and the backward is, per channel over its M = N·H·W elements,
//   training: dx = scale·(g − Σg/M − x̂·Σ(g·x̂)/M)      eval: dx = scale·g
//   dγ = Σ g·x̂,  dβ = Σ g.
// For vanilla BN this is the exact derivative; for shift BN it is the Torch7 code's rule (the
// standard formula with the centred value, the inverse std and γ replaced by their AP2 values).
#include <cmath>

#include "autograd/internal.h"
#include "lowbit/autograd/ops.h"
#include "lowbit/quant/kbit.h"

namespace lowbit::autograd {
using detail::checked_value;

namespace {

struct BnGeom {
  int64_t n, c, s;  // batch, channels, spatial size (1 for [N, C])
  int64_t m() const { return n * s; }
};

// acc[c − c0] += Σ f(i, c) over the elements i of channels [c0, c1). With s = 1 the inner loop
// runs over channels (contiguous), otherwise over the spatial positions of one channel.
template <typename F>
void channel_reduce(const BnGeom& g, int64_t c0, int64_t c1, double* acc, F&& f) {
  if (g.s == 1) {
    std::vector<float> part(static_cast<std::size_t>(c1 - c0), 0.0f);
    for (int64_t n = 0; n < g.n; ++n) {
      const int64_t base = n * g.c;
      for (int64_t c = c0; c < c1; ++c) part[static_cast<std::size_t>(c - c0)] += f(base + c, c);
    }
    for (int64_t c = c0; c < c1; ++c) acc[c - c0] += part[static_cast<std::size_t>(c - c0)];
    return;
  }
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t base = (n * g.c + c) * g.s;
      float a = 0.0f;
      for (int64_t s = 0; s < g.s; ++s) a += f(base + s, c);
      acc[c - c0] += a;
    }
}

// f(i, c) for every element i of channels [c0, c1).
template <typename F>
void channel_map(const BnGeom& g, int64_t c0, int64_t c1, F&& f) {
  for (int64_t n = 0; n < g.n; ++n) {
    if (g.s == 1) {
      const int64_t base = n * g.c;
      for (int64_t c = c0; c < c1; ++c) f(base + c, c);
    } else {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t base = (n * g.c + c) * g.s;
        for (int64_t s = 0; s < g.s; ++s) f(base + s, c);
      }
    }
  }
}

// Splits channels across threads when the tensor is large enough to pay for it.
void for_channels(const BnGeom& g, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t per_channel = std::max<int64_t>(1, g.m());
  parallel_for(0, g.c, std::max<int64_t>(1, detail::kElementGrain / per_channel), fn);
}

void check_vec(const Tensor& t, int64_t c, const char* op, const char* what) {
  LOWBIT_CHECK(t.defined() && t.dtype() == DType::f32 && t.dim() == 1 && t.size(0) == c && t.is_contiguous(), op,
               ": ", what, " is ", t.defined() ? t.describe() : std::string("undefined"), ", expected f32[", c, "]");
}

Var batch_norm_impl(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean, Tensor running_second,
                    bool training, float momentum, float eps, bool shift) {
  const char* op = shift ? "shift_batch_norm" : "batch_norm";
  const Tensor& xv = checked_value(x, op, "x");
  LOWBIT_CHECK(xv.dim() == 2 || xv.dim() == 4, op, ": expected x[N, C] or x[N, C, H, W], got ", xv.describe());
  const BnGeom g{xv.size(0), xv.size(1), xv.dim() == 4 ? xv.size(2) * xv.size(3) : 1};
  check_vec(checked_value(gamma, op, "gamma"), g.c, op, "gamma");
  check_vec(checked_value(beta, op, "beta"), g.c, op, "beta");
  check_vec(running_mean, g.c, op, "running_mean");
  check_vec(running_second, g.c, op, shift ? "running_inv_std" : "running_var");
  LOWBIT_CHECK(eps > 0.0f && momentum >= 0.0f && momentum <= 1.0f, op, ": eps = ", eps, " must be > 0 and momentum = ",
               momentum, " in [0, 1]");
  if (training) LOWBIT_CHECK(g.m() > 0, op, ": training needs a non-empty batch, got ", xv.describe());

  Tensor out = detail::new_like(xv);
  Tensor xhat = detail::new_like(xv);
  auto scale = std::make_shared<std::vector<float>>(static_cast<std::size_t>(g.c));
  const float* px = xv.data<float>();
  const float* pg = gamma.data();
  const float* pb = beta.data();
  float* po = out.data<float>();
  float* ph = xhat.data<float>();
  float* rm = running_mean.data<float>();
  float* r2 = running_second.data<float>();
  const double inv_m = 1.0 / static_cast<double>(std::max<int64_t>(1, g.m()));

  for_channels(g, [&](int64_t c0, int64_t c1) {
    const auto nc = static_cast<std::size_t>(c1 - c0);
    std::vector<float> mu(nc), inv_std(nc);
    if (training) {
      std::vector<double> acc(nc, 0.0);
      channel_reduce(g, c0, c1, acc.data(), [&](int64_t i, int64_t) { return px[i]; });
      for (std::size_t k = 0; k < nc; ++k) mu[k] = static_cast<float>(acc[k] * inv_m);
      // Two passes (mean, then centred squares): no cancellation for large means.
      std::fill(acc.begin(), acc.end(), 0.0);
      channel_reduce(g, c0, c1, acc.data(), [&](int64_t i, int64_t c) {
        const float d = px[i] - mu[static_cast<std::size_t>(c - c0)];
        return d * d;
      });
      for (std::size_t k = 0; k < nc; ++k) {
        const double var = acc[k] * inv_m;
        const auto c = static_cast<std::size_t>(c0) + k;
        inv_std[k] = static_cast<float>(1.0 / std::sqrt(var + eps));
        rm[c] = (1.0f - momentum) * rm[c] + momentum * mu[k];
        if (shift) {
          // Torch7 keeps an EMA of the exact inverse std (its buffer `running_std`).
          r2[c] = (1.0f - momentum) * r2[c] + momentum * inv_std[k];
        } else {
          const double m = static_cast<double>(g.m());
          const double unbiased = m > 1 ? var * m / (m - 1) : var;
          r2[c] = (1.0f - momentum) * r2[c] + momentum * static_cast<float>(unbiased);
        }
      }
    } else {
      for (std::size_t k = 0; k < nc; ++k) {
        const auto c = static_cast<std::size_t>(c0) + k;
        mu[k] = rm[c];
        inv_std[k] = shift ? r2[c] : static_cast<float>(1.0 / std::sqrt(static_cast<double>(r2[c]) + eps));
      }
    }
    for (std::size_t k = 0; k < nc; ++k) {
      const auto c = static_cast<std::size_t>(c0) + k;
      if (shift) {
        inv_std[k] = quant::ap2(inv_std[k]);
        (*scale)[c] = quant::ap2(pg[c]) * inv_std[k];
      } else {
        (*scale)[c] = pg[c] * inv_std[k];
      }
    }
    if (shift) {
      channel_map(g, c0, c1, [&](int64_t i, int64_t c) {
        const auto k = static_cast<std::size_t>(c - c0);
        const float centred = px[i] - mu[k];
        po[i] = centred * (*scale)[static_cast<std::size_t>(c)] + pb[c];
        ph[i] = quant::ap2(centred) * inv_std[k];
      });
    } else {
      channel_map(g, c0, c1, [&](int64_t i, int64_t c) {
        const auto k = static_cast<std::size_t>(c - c0);
        const float h = (px[i] - mu[k]) * inv_std[k];
        ph[i] = h;
        po[i] = pg[c] * h + pb[c];
      });
    }
  });

  return make_result(op, out, {x, gamma, beta}, [g, xhat, scale, training](Node& self) {
    const float* go = self.grad.data<float>();
    const float* ph = xhat.data<float>();
    Node* nx = self.parents[0].get();
    Node* ng = self.parents[1].get();
    Node* nb = self.parents[2].get();
    float* gx = nx && nx->requires_grad ? nx->grad_buffer() : nullptr;
    float* gg = ng && ng->requires_grad ? ng->grad_buffer() : nullptr;
    float* gb = nb && nb->requires_grad ? nb->grad_buffer() : nullptr;
    const float inv_m = 1.0f / static_cast<float>(std::max<int64_t>(1, g.m()));
    for_channels(g, [&](int64_t c0, int64_t c1) {
      const auto nc = static_cast<std::size_t>(c1 - c0);
      std::vector<double> sum_g(nc, 0.0), sum_gh(nc, 0.0);
      channel_reduce(g, c0, c1, sum_g.data(), [&](int64_t i, int64_t) { return go[i]; });
      channel_reduce(g, c0, c1, sum_gh.data(), [&](int64_t i, int64_t) { return go[i] * ph[i]; });
      for (std::size_t k = 0; k < nc; ++k) {
        const auto c = static_cast<std::size_t>(c0) + k;
        if (gg) gg[c] += static_cast<float>(sum_gh[k]);
        if (gb) gb[c] += static_cast<float>(sum_g[k]);
      }
      if (!gx) return;
      if (training) {
        std::vector<float> mg(nc), mgh(nc);
        for (std::size_t k = 0; k < nc; ++k) {
          mg[k] = static_cast<float>(sum_g[k]) * inv_m;
          mgh[k] = static_cast<float>(sum_gh[k]) * inv_m;
        }
        channel_map(g, c0, c1, [&](int64_t i, int64_t c) {
          const auto k = static_cast<std::size_t>(c - c0);
          gx[i] += (*scale)[static_cast<std::size_t>(c)] * (go[i] - mg[k] - ph[i] * mgh[k]);
        });
      } else {
        channel_map(g, c0, c1, [&](int64_t i, int64_t c) { gx[i] += (*scale)[static_cast<std::size_t>(c)] * go[i]; });
      }
    });
  });
}

}  // namespace

Var batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean, Tensor running_var,
               bool training, float momentum, float eps) {
  return batch_norm_impl(x, gamma, beta, std::move(running_mean), std::move(running_var), training, momentum, eps,
                         false);
}

Var shift_batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean, Tensor running_inv_std,
                     bool training, float momentum, float eps) {
  return batch_norm_impl(x, gamma, beta, std::move(running_mean), std::move(running_inv_std), training, momentum, eps,
                         true);
}

}  // namespace lowbit::autograd
