#include "lowbit/nn/optim.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/quant/kbit.h"

namespace lowbit::nn {
namespace {

// Elements per chunk of the thread pool: below this a tensor is updated on one thread, since
// an element costs a few nanoseconds and waking workers costs microseconds.
constexpr int64_t kGrain = 1 << 15;
constexpr int64_t kCacheBlock = 2048;  // elements: 8 KiB of each of w, g and two slots

// AP2 of a non-negative float in integer operations only, so that the AdaMax loop vectorises:
// round(log2 x) is the exponent, plus one when the significand is at least sqrt(2). No float
// equals sqrt(2); the smallest fraction field above it is 0x3504F4, so adding
// 0x800000 − 0x3504F4 carries into the exponent exactly when the fraction is at least that,
// and masking keeps the exponent: a power of two. Equal to quant::ap2 for every normal x >= 0,
// 0 and +inf (the largest floats round to +inf, as there). A subnormal x gives 0 or 2^−126
// instead of its own AP2 (at most 2^−126); ShiftAdaMax only adds such a value to ε >= 2^−100,
// where anything that small vanishes in the rounding, so the state is the same.
inline float ap2_nonneg(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  return std::bit_cast<float>((bits + (0x00800000u - 0x3504F4u)) & 0x7F800000u);
}

void check_beta(const char* who, const char* name, float b) {
  LOWBIT_CHECK(std::isfinite(b) && b >= 0.0f && b < 1.0f, who, ": ", name, " must be in [0, 1), got ", b);
}

}  // namespace

// ---- Optimizer ------------------------------------------------------------------------------

Optimizer::Optimizer(ParameterList params) : params_(std::move(params)) {
  std::set<std::string> names;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    LOWBIT_CHECK(p != nullptr, "Optimizer: parameter ", i, " is null");
    LOWBIT_CHECK(!p->name.empty(), "Optimizer: parameter ", i, " has no name (names key the saved state)");
    LOWBIT_CHECK(names.insert(p->name).second, "Optimizer: two parameters are named '", p->name, "'");
    LOWBIT_CHECK(p->value.defined() && p->value.dtype() == DType::f32 && p->value.is_contiguous(), "Optimizer: parameter '",
                 p->name, "' must have a contiguous f32 value, got ", p->value.defined() ? p->value.describe() : "none");
    LOWBIT_CHECK(p->grad.defined() && p->grad.dtype() == DType::f32 && p->grad.is_contiguous() &&
                     p->grad.shape() == p->value.shape(),
                 "Optimizer: parameter '", p->name, "' needs a contiguous f32 gradient of shape ", shape_str(p->value.shape()),
                 ", got ", p->grad.defined() ? p->grad.describe() : "none");
    LOWBIT_CHECK(std::isfinite(p->lr_scale) && p->lr_scale >= 0.0f, "Optimizer: parameter '", p->name,
                 "': lr_scale must be finite and >= 0, got ", p->lr_scale);
    LOWBIT_CHECK(!p->clip || (std::isfinite(p->clip_value) && p->clip_value > 0.0f), "Optimizer: parameter '", p->name,
                 "': clip_value must be finite and > 0, got ", p->clip_value);
  }
}

void Optimizer::init_slots() {
  slot_names_ = slot_names();
  slots_.clear();
  for (const auto& p : params_) {
    std::vector<Tensor> s;
    for (std::size_t k = 0; k < slot_names_.size(); ++k) s.push_back(Tensor::zeros(p->value.shape(), DType::f32));
    slots_.push_back(std::move(s));
  }
}

void Optimizer::step(float lr) {
  LOWBIT_CHECK(std::isfinite(lr) && lr >= 0.0f, kind(), ": learning rate must be finite and >= 0, got ", lr);
  LOWBIT_CHECK(t_ < std::numeric_limits<int32_t>::max(), kind(), ": step count overflow");
  for (const auto& p : params_)
    LOWBIT_CHECK(p->grad.shape() == p->value.shape() && p->grad.dtype() == DType::f32 && p->grad.is_contiguous(), kind(),
                 ": gradient of '", p->name, "' is ", p->grad.describe(), ", expected f32", shape_str(p->value.shape()));
  for (const auto& p : params_) settle_grad(*p);
  ++t_;
  begin_step(lr, t_);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Parameter& p = *params_[i];
    float* w = p.value.data<float>();
    const float* g = p.grad.data<float>();
    std::vector<float*> slots;
    for (Tensor& s : slots_[i]) slots.push_back(s.data<float>());
    float* const* sp = slots.data();
    const float scale = p.lr_scale;
    const bool clip = p.clip;
    const float c = p.clip_value;
    parallel_for(0, p.value.numel(), kGrain, [&](int64_t b, int64_t e) {
      // In blocks, so that the clip finds the block's weights still in L1
      // (qnn.md §2: W <- clip(W − step, −1, 1)).
      for (int64_t s = b; s < e; s += kCacheBlock) {
        const int64_t t = std::min(e, s + kCacheBlock);
        update(w, g, sp, s, t, lr, scale);
        if (clip)
          for (int64_t j = s; j < t; ++j) w[j] = std::min(std::max(w[j], -c), c);
      }
    });
  }
}

void Optimizer::zero_grad() {
  for (const auto& p : params_) {
    std::memset(p->grad.raw(), 0, p->grad.nbytes());
    p->grad_stale = false;
  }
}

void Optimizer::discard_grads() {
  for (const auto& p : params_) p->grad_stale = true;
}

NamedTensors Optimizer::state() const {
  NamedTensors out;
  const int32_t t = static_cast<int32_t>(t_);
  out.emplace_back(kind() + "/step", Tensor::from<int32_t>({1}, std::span<const int32_t>(&t, 1)));
  for (std::size_t i = 0; i < params_.size(); ++i)
    for (std::size_t k = 0; k < slot_names_.size(); ++k)
      out.emplace_back(kind() + "/" + params_[i]->name + "/" + slot_names_[k], slots_[i][k].clone());
  return out;
}

void Optimizer::load_state(const NamedTensors& state) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : state) {
    LOWBIT_CHECK(by_name.emplace(name, &t).second, kind(), ": state names '", name, "' twice");
    LOWBIT_CHECK(name.rfind(kind() + "/", 0) == 0, kind(), ": state entry '", name, "' is not ", kind(),
                 " state (entries start with '", kind(), "/')");
  }
  auto find = [&](const std::string& name, DType dtype, const Shape& shape) -> const Tensor& {
    auto it = by_name.find(name);
    LOWBIT_CHECK(it != by_name.end(), kind(), ": state entry '", name, "' is missing");
    const Tensor& t = *it->second;
    LOWBIT_CHECK(t.defined() && t.dtype() == dtype && t.shape() == shape && t.is_contiguous(), kind(), ": state entry '",
                 name, "' is ", t.defined() ? t.describe() : "empty", ", expected ", dtype_name(dtype), shape_str(shape));
    return t;
  };
  // Check everything before changing anything, so a bad state leaves the optimizer as it was.
  const Tensor& step = find(kind() + "/step", DType::i32, {1});
  const int32_t t = step.data<int32_t>()[0];
  LOWBIT_CHECK(t >= 0, kind(), ": state step count ", t, " is negative");
  std::vector<std::vector<const Tensor*>> found(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i)
    for (const std::string& slot : slot_names_)
      found[i].push_back(&find(kind() + "/" + params_[i]->name + "/" + slot, DType::f32, params_[i]->value.shape()));
  const std::size_t expected = 1 + params_.size() * slot_names_.size();
  if (by_name.size() != expected) {
    std::set<std::string> known{kind() + "/step"};
    for (const auto& p : params_)
      for (const std::string& slot : slot_names_) known.insert(kind() + "/" + p->name + "/" + slot);
    for (const auto& [name, t] : by_name)
      LOWBIT_CHECK(known.count(name), kind(), ": state entry '", name, "' matches no parameter of this optimizer");
  }
  for (std::size_t i = 0; i < params_.size(); ++i)
    for (std::size_t k = 0; k < slot_names_.size(); ++k)
      std::memcpy(slots_[i][k].raw(), found[i][k]->raw(), slots_[i][k].nbytes());
  t_ = t;
}

// ---- SGD ------------------------------------------------------------------------------------

Sgd::Sgd(ParameterList params, SgdOptions opt) : Optimizer(std::move(params)), opt_(opt) {
  LOWBIT_CHECK(std::isfinite(opt.momentum) && opt.momentum >= 0.0f && opt.momentum < 1.0f,
               "sgd: momentum must be in [0, 1), got ", opt.momentum);
  LOWBIT_CHECK(!opt.nesterov || opt.momentum > 0.0f, "sgd: Nesterov momentum needs momentum > 0");
  LOWBIT_CHECK(std::isfinite(opt.weight_decay) && opt.weight_decay >= 0.0f, "sgd: weight_decay must be finite and >= 0, got ",
               opt.weight_decay);
  init_slots();
}

std::vector<std::string> Sgd::slot_names() const {
  if (opt_.momentum > 0.0f) return {"momentum"};
  return {};
}

void Sgd::update(float* w, const float* g, float* const* slots, int64_t begin, int64_t end, float lr, float lr_scale) {
  const float a = lr * lr_scale, wd = opt_.weight_decay, mu = opt_.momentum;
  if (mu == 0.0f) {
    for (int64_t i = begin; i < end; ++i) w[i] -= a * (g[i] + wd * w[i]);
    return;
  }
  float* buf = slots[0];
  if (opt_.nesterov) {
    for (int64_t i = begin; i < end; ++i) {
      const float gi = g[i] + wd * w[i];
      buf[i] = mu * buf[i] + gi;
      w[i] -= a * (gi + mu * buf[i]);
    }
  } else {
    for (int64_t i = begin; i < end; ++i) {
      buf[i] = mu * buf[i] + (g[i] + wd * w[i]);
      w[i] -= a * buf[i];
    }
  }
}

// ---- Adam -----------------------------------------------------------------------------------

Adam::Adam(ParameterList params, AdamOptions opt) : Optimizer(std::move(params)), opt_(opt) {
  check_beta("adam", "beta1", opt.beta1);
  check_beta("adam", "beta2", opt.beta2);
  LOWBIT_CHECK(std::isfinite(opt.eps) && opt.eps > 0.0f, "adam: eps must be finite and > 0, got ", opt.eps);
  init_slots();
}

std::vector<std::string> Adam::slot_names() const { return {"m", "v"}; }

void Adam::begin_step(float lr, int64_t t) {
  // In double: 1 − β^t loses most of its digits in float when t is small and β near 1.
  const double td = static_cast<double>(t);
  correction_ = static_cast<float>(std::sqrt(1.0 - std::pow(double{opt_.beta2}, td)) /
                                   (1.0 - std::pow(double{opt_.beta1}, td)));
}

void Adam::update(float* w, const float* g, float* const* slots, int64_t begin, int64_t end, float lr, float lr_scale) {
  float* m = slots[0];
  float* v = slots[1];
  const float b1 = opt_.beta1, b2 = opt_.beta2, eps = opt_.eps;
  const float a = lr * lr_scale * correction_;
  // In blocks of three passes: GCC keeps a scalar errno path for sqrt (v >= 0 never sets it,
  // but it cannot tell), which stops a loop around sqrt from vectorising. Isolating the square
  // roots in their own short loop lets the moment updates and the weight update vectorise, and
  // on x86-64 that loop uses SSE2's sqrtps (part of the baseline ISA; correctly rounded, so the
  // same values as std::sqrt).
  constexpr int64_t kBlock = 512;
  float denom[kBlock];
  for (int64_t b = begin; b < end; b += kBlock) {
    const int64_t n = std::min(kBlock, end - b);
    float* mb = m + b;
    float* vb = v + b;
    float* wb = w + b;
    const float* gb = g + b;
    for (int64_t i = 0; i < n; ++i) {
      mb[i] = b1 * mb[i] + (1.0f - b1) * gb[i];
      vb[i] = b2 * vb[i] + (1.0f - b2) * gb[i] * gb[i];
    }
    int64_t i = 0;
#if defined(__SSE2__)
    const __m128 e4 = _mm_set1_ps(eps);
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(denom + i, _mm_add_ps(_mm_sqrt_ps(_mm_loadu_ps(vb + i)), e4));
#endif
    for (; i < n; ++i) denom[i] = std::sqrt(vb[i]) + eps;
    for (int64_t j = 0; j < n; ++j) wb[j] -= a * mb[j] / denom[j];
  }
}

// ---- AdaMax ---------------------------------------------------------------------------------

AdaMax::AdaMax(ParameterList params, AdaMaxOptions opt) : Optimizer(std::move(params)), opt_(opt) {
  check_beta("adamax", "beta1", opt.beta1);
  check_beta("adamax", "beta2", opt.beta2);
  LOWBIT_CHECK(std::isfinite(opt.eps) && opt.eps > 0.0f, "adamax: eps must be finite and > 0, got ", opt.eps);
  init_slots();
}

std::vector<std::string> AdaMax::slot_names() const { return {"m", "u"}; }

void AdaMax::begin_step(float lr, int64_t t) {
  correction_ = static_cast<float>(1.0 / (1.0 - std::pow(double{opt_.beta1}, static_cast<double>(t))));
}

void AdaMax::update(float* w, const float* g, float* const* slots, int64_t begin, int64_t end, float lr, float lr_scale) {
  float* m = slots[0];
  float* u = slots[1];
  const float b1 = opt_.beta1, b2 = opt_.beta2, eps = opt_.eps;
  const float a = lr * lr_scale * correction_;
  for (int64_t i = begin; i < end; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    u[i] = std::max(b2 * u[i], std::fabs(g[i]));
    w[i] -= a * m[i] / (u[i] + eps);
  }
}

// ---- Shift-based AdaMax ---------------------------------------------------------------------

ShiftAdaMax::ShiftAdaMax(ParameterList params, ShiftAdaMaxOptions opt) : Optimizer(std::move(params)), opt_(opt) {
  check_beta("shift_adamax", "beta1", opt.beta1);
  check_beta("shift_adamax", "beta2", opt.beta2);
  // ε >= 2^−100 keeps v normal, and makes ap2_nonneg exact where it matters (see there).
  LOWBIT_CHECK(std::isfinite(opt.eps) && opt.eps >= 0x1p-100f, "shift_adamax: eps must be finite and >= 2^-100, got ",
               opt.eps);
  init_slots();
}

std::vector<std::string> ShiftAdaMax::slot_names() const { return {"m", "v"}; }

void ShiftAdaMax::begin_step(float lr, int64_t t) {
  const double bias = 1.0 - std::pow(double{opt_.beta1}, static_cast<double>(t));
  step_size_ = quant::ap2(static_cast<float>(lr / bias));
}

void ShiftAdaMax::update(float* w, const float* g, float* const* slots, int64_t begin, int64_t end, float lr,
                         float lr_scale) {
  float* m = slots[0];
  float* v = slots[1];
  const float b1 = opt_.beta1, b2 = opt_.beta2, eps = opt_.eps;
  const float s = step_size_ * lr_scale;
  for (int64_t i = begin; i < end; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    // Torch7 keeps the rounded v (plus ε) as the state: the next max() compares against it.
    v[i] = ap2_nonneg(std::max(b2 * v[i], std::fabs(g[i]))) + eps;
    // m · AP2(1/v): a shift of m (see the header for why this replaces Torch7's m / v).
    w[i] -= s * (m[i] * ap2_nonneg(1.0f / v[i]));
  }
}

}  // namespace lowbit::nn
