// Layer implementations: parameter set-up (initial values, clipping, learning-rate factors) and
// forward passes composed from autograd ops.
#include "lowbit/nn/layers.h"

#include <cmath>

#include "lowbit/autograd/ops.h"
#include "lowbit/core/error.h"
#include "lowbit/quant/kbit.h"
#include "lowbit/quant/rng.h"

namespace lowbit::nn {
namespace ag = lowbit::autograd;

float glorot_lr_factor(int64_t fan_in, int64_t fan_out) {
  LOWBIT_CHECK(fan_in + fan_out > 0, "glorot_lr_factor: fan_in + fan_out = ", fan_in + fan_out, " must be > 0");
  return static_cast<float>(1.0 / std::sqrt(1.5 / static_cast<double>(fan_in + fan_out)));
}

namespace {

// U(−limit, limit), element i drawn from the counter-based generator (reproducible by seed).
Tensor uniform(const Shape& shape, float limit, uint64_t seed) {
  Tensor t = Tensor::zeros(shape, DType::f32);
  float* p = t.data<float>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i)
    p[i] = limit * (2.0f * quant::uniform01(seed, static_cast<uint64_t>(i)) - 1.0f);
  return t;
}

void check_weight_options(const WeightOptions& opt, const char* layer) {
  if (opt.mode == WeightMode::kbit)
    LOWBIT_CHECK(opt.bits >= 1 && opt.bits <= 8, layer, ": bits = ", opt.bits, " (expected 1..8)");
}

// Creates the weight (and bias) of a dense/conv layer for the given fans.
void init_weights(const WeightOptions& opt, const Shape& wshape, int64_t out, int64_t fan_in,
                  int64_t fan_out, uint64_t seed, std::shared_ptr<Parameter>& weight, std::shared_ptr<Parameter>& bias,
                  const std::function<std::shared_ptr<Parameter>(std::string, Tensor)>& reg) {
  if (opt.mode == WeightMode::real) {
    // Glorot/Xavier uniform for float layers.
    const float limit = static_cast<float>(std::sqrt(6.0 / static_cast<double>(fan_in + fan_out)));
    weight = reg("weight", uniform(wshape, limit, quant::derive_seed(seed, 1)));
  } else {
    // Latent weights of binary/k-bit layers: U(−1, 1), clipped to [−1, 1] by the optimizer
    // after each step, optionally with the Glorot learning-rate factor (qnn.md §2).
    weight = reg("weight", uniform(wshape, 1.0f, quant::derive_seed(seed, 1)));
    weight->clip = true;
    weight->clip_value = 1.0f;
    if (opt.glorot_lr_scale) weight->lr_scale = glorot_lr_factor(fan_in, fan_out);
  }
  if (opt.bias) bias = reg("bias", Tensor::zeros({out}, DType::f32));
}

Var quantized_weight(const std::shared_ptr<Parameter>& w, const WeightOptions& opt) {
  Var latent(w->value, w->grad, &w->grad_stale);
  switch (opt.mode) {
    case WeightMode::real: return latent;
    case WeightMode::binary: return ag::sign_ste(latent);
    case WeightMode::kbit: return ag::fake_quantize(latent, ag::Quantizer::weights_kbit(opt.bits));
  }
  return latent;
}

Tensor effective(const std::shared_ptr<Parameter>& w, const WeightOptions& opt) {
  ag::NoGradGuard no_grad;
  return quantized_weight(w, opt).value().clone();
}

// The forward pass's quantized weights, written into buffers the layer reuses every step
// (ag::fake_quantize_into): binarizing a 1024×1024 latent matrix each step would otherwise
// allocate and fault in two fresh 4 MB tensors.
Var step_weight(const std::shared_ptr<Parameter>& w, const WeightOptions& opt, Tensor& value_buf, Tensor& grad_buf) {
  if (opt.mode == WeightMode::real) return Var(w->value, w->grad, &w->grad_stale);
  if (!value_buf.defined()) {
    value_buf = Tensor::zeros(w->value.shape(), DType::f32);
    grad_buf = Tensor::zeros(w->value.shape(), DType::f32);
  }
  const ag::Quantizer q = opt.mode == WeightMode::binary ? ag::Quantizer::binary() : ag::Quantizer::weights_kbit(opt.bits);
  return ag::fake_quantize_into(Var(w->value, w->grad, &w->grad_stale), q, value_buf, grad_buf);
}

}  // namespace

// ---- dense -----------------------------------------------------------------------------------

DenseBase::DenseBase(int64_t in, int64_t out, WeightOptions opt, uint64_t seed)
    : Module(seed), in_(in), out_(out), opt_(opt) {
  LOWBIT_CHECK(in >= 1 && out >= 1, "dense layer: in_features = ", in, " and out_features = ", out, " must be >= 1");
  check_weight_options(opt, "dense layer");
  init_weights(opt, {out, in}, out, in, out, seed, weight_, bias_,
               [this](std::string n, Tensor t) { return register_parameter(std::move(n), std::move(t)); });
}

Shape DenseBase::output_shape(const Shape& input) const {
  LOWBIT_CHECK(input.size() == 1 && input[0] == in_, kind(), ": input shape ", shape_str(input), " does not match [",
               in_, "]", input.size() > 1 ? " (add a flatten layer before it)" : "");
  return {out_};
}

Tensor DenseBase::effective_weight() const { return effective(weight_, opt_); }
Var DenseBase::weight_var() const { return step_weight(weight_, opt_, wq_value_, wq_grad_); }

Var DenseBase::compute(const Var& x, bool) {
  return ag::linear(x, weight_var(), bias_ ? leaf(bias_) : Var());
}

Dense::Dense(int64_t in, int64_t out, bool bias, uint64_t seed)
    : DenseBase(in, out, {WeightMode::real, 32, bias, false}, seed) {}
BinaryDense::BinaryDense(int64_t in, int64_t out, bool bias, bool glorot, uint64_t seed)
    : DenseBase(in, out, {WeightMode::binary, 1, bias, glorot}, seed) {}
KbitDense::KbitDense(int64_t in, int64_t out, int bits, bool bias, bool glorot, uint64_t seed)
    : DenseBase(in, out, {WeightMode::kbit, bits, bias, glorot}, seed) {}

// ---- conv ------------------------------------------------------------------------------------

ConvBase::ConvBase(int64_t in, int64_t out, ConvOptions conv, WeightOptions opt, uint64_t seed)
    : Module(seed), in_(in), out_(out), conv_(conv), opt_(opt) {
  LOWBIT_CHECK(in >= 1 && out >= 1, "conv layer: in_channels = ", in, " and out_channels = ", out, " must be >= 1");
  LOWBIT_CHECK(conv.kernel >= 1 && conv.stride >= 1 && conv.padding >= 0, "conv layer: kernel = ", conv.kernel,
               ", stride = ", conv.stride, ", padding = ", conv.padding,
               " (expected kernel >= 1, stride >= 1, padding >= 0)");
  check_weight_options(opt, "conv layer");
  const int64_t kk = conv.kernel * conv.kernel;
  init_weights(opt, {out, in, conv.kernel, conv.kernel}, out, kk * in, kk * out, seed, weight_, bias_,
               [this](std::string n, Tensor t) { return register_parameter(std::move(n), std::move(t)); });
}

Shape ConvBase::output_shape(const Shape& input) const {
  LOWBIT_CHECK(input.size() == 3 && input[0] == in_, kind(), ": input shape ", shape_str(input),
               " does not match [", in_, ", H, W]");
  const int64_t h = input[1] + 2 * conv_.padding - conv_.kernel, w = input[2] + 2 * conv_.padding - conv_.kernel;
  LOWBIT_CHECK(h >= 0 && w >= 0, kind(), ": kernel ", conv_.kernel, " does not fit input ", shape_str(input),
               " with padding ", conv_.padding);
  return {out_, h / conv_.stride + 1, w / conv_.stride + 1};
}

Tensor ConvBase::effective_weight() const { return effective(weight_, opt_); }
Var ConvBase::weight_var() const { return step_weight(weight_, opt_, wq_value_, wq_grad_); }

Var ConvBase::compute(const Var& x, bool) {
  return ag::conv2d(x, weight_var(), bias_ ? leaf(bias_) : Var(), conv_.stride, conv_.padding);
}

Conv2d::Conv2d(int64_t in, int64_t out, ConvOptions conv, bool bias, uint64_t seed)
    : ConvBase(in, out, conv, {WeightMode::real, 32, bias, false}, seed) {}
BinaryConv2d::BinaryConv2d(int64_t in, int64_t out, ConvOptions conv, bool bias, bool glorot, uint64_t seed)
    : ConvBase(in, out, conv, {WeightMode::binary, 1, bias, glorot}, seed) {}
KbitConv2d::KbitConv2d(int64_t in, int64_t out, ConvOptions conv, int bits, bool bias, bool glorot, uint64_t seed)
    : ConvBase(in, out, conv, {WeightMode::kbit, bits, bias, glorot}, seed) {}

// ---- pooling, normalization, activations -----------------------------------------------------

MaxPool2d::MaxPool2d(int size, int stride) : size_(size), stride_(stride) {
  LOWBIT_CHECK(size >= 1 && stride >= 1, "max_pool2d: size = ", size, " and stride = ", stride, " must be >= 1");
}

Shape MaxPool2d::output_shape(const Shape& input) const {
  LOWBIT_CHECK(input.size() == 3 && input[1] >= size_ && input[2] >= size_, "max_pool2d: input shape ",
               shape_str(input), " is not [C, H, W] with H, W >= ", size_);
  return {input[0], (input[1] - size_) / stride_ + 1, (input[2] - size_) / stride_ + 1};
}

Var MaxPool2d::compute(const Var& x, bool) { return ag::max_pool2d(x, size_, stride_); }

BatchNorm::BatchNorm(int64_t c, float momentum, float eps, bool shift)
    : c_(c), momentum_(momentum), eps_(eps), shift_(shift) {
  LOWBIT_CHECK(c >= 1, "batch_norm: num_features = ", c, " must be >= 1");
  LOWBIT_CHECK(momentum >= 0.0f && momentum <= 1.0f, "batch_norm: momentum = ", momentum, " is outside [0, 1]");
  LOWBIT_CHECK(eps > 0.0f, "batch_norm: eps = ", eps, " must be > 0");
  Tensor ones = Tensor::zeros({c}, DType::f32);
  for (int64_t i = 0; i < c; ++i) ones.data<float>()[i] = 1.0f;
  gamma_ = register_parameter("gamma", ones.clone());
  beta_ = register_parameter("beta", Tensor::zeros({c}, DType::f32));
  register_buffer("running_mean", Tensor::zeros({c}, DType::f32));
  register_buffer(shift ? "running_inv_std" : "running_var", ones.clone());
}

Shape BatchNorm::output_shape(const Shape& input) const {
  LOWBIT_CHECK((input.size() == 1 || input.size() == 3) && input[0] == c_, "batch_norm: input shape ",
               shape_str(input), " does not match [", c_, "] or [", c_, ", H, W]");
  return input;
}

Tensor BatchNorm::running_var() const {
  LOWBIT_CHECK(!shift_, "batch_norm '", name(), "' is shift-based: it keeps running_inv_std, not running_var");
  return buffer("running_var");
}

Tensor BatchNorm::running_inv_std() const {
  LOWBIT_CHECK(shift_, "batch_norm '", name(), "' is not shift-based: it keeps running_var, not running_inv_std");
  return buffer("running_inv_std");
}

Var BatchNorm::compute(const Var& x, bool training) {
  if (shift_)
    return ag::shift_batch_norm(x, leaf(gamma_), leaf(beta_), buffer("running_mean"), buffer("running_inv_std"),
                                training, momentum_, eps_);
  return ag::batch_norm(x, leaf(gamma_), leaf(beta_), buffer("running_mean"), buffer("running_var"), training,
                        momentum_, eps_);
}

Var HardTanh::compute(const Var& x, bool) { return ag::hardtanh(x); }

Sign::Sign(bool stochastic, uint64_t seed) : Module(seed), stochastic_(stochastic) {}

Var Sign::compute(const Var& x, bool training) {
  if (stochastic_ && training) return ag::sign_stochastic(x, next_seed());
  return ag::sign_ste(x);
}

QuantAct::QuantAct(int bits, bool is_signed) : bits_(bits), signed_(is_signed) {
  LOWBIT_CHECK(bits >= 1 && bits <= 8, "quant_act: bits = ", bits, " (expected 1..8)");
}

Var QuantAct::compute(const Var& x, bool) {
  return ag::fake_quantize(x, signed_ ? ag::Quantizer::weights_kbit(bits_) : ag::Quantizer::activations_kbit(bits_));
}

Dropout::Dropout(float p, uint64_t seed) : Module(seed), p_(p) {
  LOWBIT_CHECK(p >= 0.0f && p < 1.0f, "dropout: p = ", p, " is outside [0, 1)");
}

Var Dropout::compute(const Var& x, bool training) {
  if (!training || p_ == 0.0f) return x;
  return ag::dropout(x, p_, next_seed(), true);
}

Var Flatten::compute(const Var& x, bool) { return ag::flatten(x); }

// ---- 8-bit first layer -----------------------------------------------------------------------

FirstLayer8bit::FirstLayer8bit(std::unique_ptr<Module> inner, bool bitplanes)
    : Module(inner ? inner->seed() : 0), inner_(std::move(inner)), bitplanes_(bitplanes) {
  LOWBIT_CHECK(inner_ != nullptr, "first_layer_8bit: the inner layer is null");
  const bool ok = (inner_->as<DenseBase>() && inner_->as<DenseBase>()->weight_mode() == WeightMode::binary) ||
                  (inner_->as<ConvBase>() && inner_->as<ConvBase>()->weight_mode() == WeightMode::binary);
  LOWBIT_CHECK(ok, "first_layer_8bit: the inner layer is ", inner_->kind(),
               " (expected binary_dense or binary_conv2d)");
  // The wrapper shares the inner layer's parameters so that they are listed under its name.
  for (const auto& p : inner_->parameters()) {
    const std::string& n = p->name;
    register_parameter(n.substr(n.rfind('.') + 1), p);
  }
}

void FirstLayer8bit::set_name(std::string name) {
  inner_->set_name(name);
  Module::set_name(std::move(name));
}

Tensor FirstLayer8bit::input_codes(const Tensor& x) {
  LOWBIT_CHECK(x.defined() && x.dtype() == DType::f32 && x.is_contiguous(),
               "first_layer_8bit: expected a contiguous f32 input");
  const auto n = static_cast<std::size_t>(x.numel());
  std::vector<uint8_t> codes(n);
  // The 8-bit grid (2u − 255)/255 is the 8-bit "weights" grid of quant/kbit.h on [−1, 1].
  quant::weights_kbit_to_codes({x.data<float>(), n}, codes, 8, 1.0f);
  Tensor out = Tensor::zeros(x.shape(), DType::f32);
  float* p = out.data<float>();
  for (std::size_t i = 0; i < n; ++i) p[i] = codes[i];
  return out;
}

Var FirstLayer8bit::product(const Var& v, const Var& wb) const {
  if (inner_->as<DenseBase>()) return ag::linear(v, wb, Var());
  const auto* c = inner_->as<ConvBase>();
  return ag::conv2d(v, wb, Var(), c->stride(), c->padding());
}

namespace {
// Bit plane n (1-based, n = 8 the MSB) of float codes in [0, 255].
Tensor bit_plane(const Tensor& codes, int n) {
  Tensor out = Tensor::zeros(codes.shape(), DType::f32);
  const float* u = codes.data<float>();
  float* p = out.data<float>();
  for (int64_t i = 0; i < codes.numel(); ++i) p[i] = static_cast<float>((static_cast<unsigned>(u[i]) >> (n - 1)) & 1u);
  return out;
}
}  // namespace

Tensor FirstLayer8bit::code_product(const Tensor& codes, bool bitplanes) const {
  ag::NoGradGuard no_grad;
  const Var wb = inner_->as<DenseBase>() ? inner_->as<DenseBase>()->weight_var() : inner_->as<ConvBase>()->weight_var();
  if (!bitplanes) return product(Var(codes), wb).value();
  Var acc;
  for (int n = 1; n <= 8; ++n) {
    Var term = ag::scale(product(Var(bit_plane(codes, n)), wb), static_cast<float>(1u << (n - 1)));
    acc = n == 1 ? term : ag::add(acc, term);
  }
  return acc.value();
}

Var FirstLayer8bit::compute(const Var& x, bool) {
  const Tensor codes = input_codes(x.value());
  const auto* dense = inner_->as<DenseBase>();
  const auto* conv = inner_->as<ConvBase>();
  const Var wb = dense ? dense->weight_var() : conv->weight_var();
  // P(u, W_b), directly or as the sum of the eight bit-plane products (each scaled by 2^(n−1)).
  Var pu;
  if (!bitplanes_) {
    pu = product(Var(codes), wb);
  } else {
    for (int n = 1; n <= 8; ++n) {
      Var term = ag::scale(product(Var(bit_plane(codes, n)), wb), static_cast<float>(1u << (n - 1)));
      pu = n == 1 ? term : ag::add(pu, term);
    }
  }
  // P(1, W_b) for one sample, broadcast over the batch: the offset of the level grid.
  Shape one_shape = x.shape();
  one_shape[0] = 1;
  Tensor ones = Tensor::zeros(one_shape, DType::f32);
  for (int64_t i = 0; i < ones.numel(); ++i) ones.data<float>()[i] = 1.0f;
  Var y = ag::sub(ag::scale(pu, 2.0f / 255.0f), product(Var(ones), wb));
  const auto& bias = dense ? dense->bias() : conv->bias();
  if (bias) {
    Var b = leaf(bias);
    y = ag::add(y, dense ? b : ag::reshape(b, {bias->value.numel(), 1, 1}));
  }
  return y;
}

}  // namespace lowbit::nn
