// Layer classes for float, binary (BNN) and k-bit (QNN) networks.
//
// Layer order in the papers' networks (qnn.md §7): binary dense/conv → [max-pool] → batch norm →
// hard tanh → sign → next layer; the output layer is binary dense + batch norm with no sign
// (qnn.md §4). Every class exposes its options and tensors through typed accessors so that an
// exporter can walk a trained Sequential (module.h) with kind() and as<T>().
#pragma once

#include <cstdint>
#include <memory>

#include "lowbit/nn/module.h"

namespace lowbit::nn {

// How a dense/conv layer turns its real ("latent") weights into the weights its product uses.
enum class WeightMode {
  real,    // float weights, used as they are
  binary,  // sign(W) ∈ {−1, +1} with sign(0) = +1; STE 1{|W| <= 1} (qnn.md §1, §2)
  kbit,    // quant::quantize_weights_kbit(W, bits) on [−1, 1]; STE 1{|W| <= 1} (qnn.md §3, §12)
};

// Options shared by the dense and conv families.
struct WeightOptions {
  WeightMode mode = WeightMode::real;
  int bits = 32;                // 1 for binary, 1..8 for kbit, 32 for real
  bool bias = true;
  // Binary/k-bit only: lr_scale = 1/sqrt(1.5/(fan_in + fan_out)) on the weight (qnn.md §2).
  bool glorot_lr_scale = true;
};

// Dense layers: y = x · Ŵᵀ + b with Ŵ = the mode's weights; x [N, in], W [out, in].
// Real weights start as Glorot-uniform U(±sqrt(6/(in + out))); binary and k-bit latent weights
// as U(−1, 1) (the BNN code) with Parameter::clip set, so that the optimizer clips them to
// [−1, 1] after every step (qnn.md §2). Biases start at 0.
class DenseBase : public Module {
 public:
  DenseBase(int64_t in_features, int64_t out_features, WeightOptions opt, uint64_t seed);
  Shape output_shape(const Shape& input) const override;

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  bool has_bias() const { return opt_.bias; }
  WeightMode weight_mode() const { return opt_.mode; }
  int bits() const { return opt_.bits; }
  bool glorot_lr_scale() const { return opt_.glorot_lr_scale; }
  const std::shared_ptr<Parameter>& weight() const { return weight_; }
  const std::shared_ptr<Parameter>& bias() const { return bias_; }  // null without bias
  // The weights the forward pass multiplies by (sign(W), the k-bit levels, or W itself).
  Tensor effective_weight() const;
  // The weights as a Var for the tape (with the STE of the mode). For binary/k-bit layers its
  // value lives in a buffer the layer reuses: valid until the layer's next forward pass.
  Var weight_var() const;

 protected:
  Var compute(const Var& x, bool training) override;

 private:
  int64_t in_, out_;
  WeightOptions opt_;
  std::shared_ptr<Parameter> weight_, bias_;
  mutable Tensor wq_value_, wq_grad_;  // reused by weight_var()
};

class Dense : public DenseBase {
 public:
  Dense(int64_t in, int64_t out, bool bias = true, uint64_t seed = 0);
  std::string kind() const override { return "dense"; }
};

class BinaryDense : public DenseBase {
 public:
  BinaryDense(int64_t in, int64_t out, bool bias = false, bool glorot_lr_scale = true, uint64_t seed = 0);
  std::string kind() const override { return "binary_dense"; }
};

class KbitDense : public DenseBase {
 public:
  KbitDense(int64_t in, int64_t out, int bits, bool bias = false, bool glorot_lr_scale = true, uint64_t seed = 0);
  std::string kind() const override { return "kbit_dense"; }
};

struct ConvOptions {
  int64_t kernel = 3;
  int stride = 1;
  int padding = 0;
};

// 2-D convolutions over NCHW, weight [O, C, k, k]; for the Glorot factor and the initial range
// fan_in = k²·C and fan_out = k²·O (qnn.md §2).
class ConvBase : public Module {
 public:
  ConvBase(int64_t in_channels, int64_t out_channels, ConvOptions conv, WeightOptions opt, uint64_t seed);
  Shape output_shape(const Shape& input) const override;

  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }
  int64_t kernel() const { return conv_.kernel; }
  int stride() const { return conv_.stride; }
  int padding() const { return conv_.padding; }
  bool has_bias() const { return opt_.bias; }
  WeightMode weight_mode() const { return opt_.mode; }
  int bits() const { return opt_.bits; }
  bool glorot_lr_scale() const { return opt_.glorot_lr_scale; }
  const std::shared_ptr<Parameter>& weight() const { return weight_; }
  const std::shared_ptr<Parameter>& bias() const { return bias_; }
  Tensor effective_weight() const;
  Var weight_var() const;

 protected:
  Var compute(const Var& x, bool training) override;

 private:
  int64_t in_, out_;
  ConvOptions conv_;
  WeightOptions opt_;
  std::shared_ptr<Parameter> weight_, bias_;
  mutable Tensor wq_value_, wq_grad_;  // reused by weight_var()
};

class Conv2d : public ConvBase {
 public:
  Conv2d(int64_t in, int64_t out, ConvOptions conv, bool bias = true, uint64_t seed = 0);
  std::string kind() const override { return "conv2d"; }
};

class BinaryConv2d : public ConvBase {
 public:
  BinaryConv2d(int64_t in, int64_t out, ConvOptions conv, bool bias = false, bool glorot_lr_scale = true,
               uint64_t seed = 0);
  std::string kind() const override { return "binary_conv2d"; }
};

class KbitConv2d : public ConvBase {
 public:
  KbitConv2d(int64_t in, int64_t out, ConvOptions conv, int bits, bool bias = false, bool glorot_lr_scale = true,
             uint64_t seed = 0);
  std::string kind() const override { return "kbit_conv2d"; }
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int size, int stride);
  std::string kind() const override { return "max_pool2d"; }
  Shape output_shape(const Shape& input) const override;
  int size() const { return size_; }
  int stride() const { return stride_; }

 protected:
  Var compute(const Var& x, bool training) override;

 private:
  int size_, stride_;
};

// Batch norm over features ([C]) or channels ([C, H, W]). Parameters "gamma" (1) and "beta" (0);
// buffers "running_mean" (0) and "running_var" (1), or for the shift-based variant
// "running_inv_std" (1), the EMA of the inverse std (Torch7's running_std; qnn.md §6).
class BatchNorm : public Module {
 public:
  BatchNorm(int64_t num_features, float momentum = 0.1f, float eps = 1e-4f, bool shift_based = false);
  std::string kind() const override { return "batch_norm"; }
  Shape output_shape(const Shape& input) const override;

  int64_t num_features() const { return c_; }
  float momentum() const { return momentum_; }
  float eps() const { return eps_; }
  bool shift_based() const { return shift_; }
  const std::shared_ptr<Parameter>& gamma() const { return gamma_; }
  const std::shared_ptr<Parameter>& beta() const { return beta_; }
  Tensor running_mean() const { return buffer("running_mean"); }
  Tensor running_var() const;      // vanilla only (throws for shift-based)
  Tensor running_inv_std() const;  // shift-based only (throws for vanilla)

 protected:
  Var compute(const Var& x, bool training) override;

 private:
  int64_t c_;
  float momentum_, eps_;
  bool shift_;
  std::shared_ptr<Parameter> gamma_, beta_;
};

class HardTanh : public Module {
 public:
  HardTanh() = default;
  std::string kind() const override { return "hardtanh"; }
  Shape output_shape(const Shape& input) const override { return input; }

 protected:
  Var compute(const Var& x, bool training) override;
};

// Binarized activation. Deterministic: sign (sign(0) = +1). Stochastic: +1 with probability
// hard_sigmoid(x) in training only (Torch7's default, qnn.md §1, §12 item 15); eval is always
// deterministic. Both back-propagate g·1{|x| <= 1}.
class Sign : public Module {
 public:
  explicit Sign(bool stochastic = false, uint64_t seed = 0);
  std::string kind() const override { return "sign"; }
  Shape output_shape(const Shape& input) const override { return input; }
  bool stochastic() const { return stochastic_; }

 protected:
  Var compute(const Var& x, bool training) override;

 private:
  bool stochastic_;
};

// k-bit activations with the clipped STE. Unsigned (default): quant::quantize_activations_kbit,
// 2^k levels j/L on [0, 1]. Signed: 2^k levels (2j − L)/L on [−1, 1] (qnn.md §12 item 2, the
// grid of quant::quantize_weights_kbit), the natural range after hard tanh.
class QuantAct : public Module {
 public:
  explicit QuantAct(int bits, bool is_signed = false);
  std::string kind() const override { return "quant_act"; }
  Shape output_shape(const Shape& input) const override { return input; }
  int bits() const { return bits_; }
  bool is_signed() const { return signed_; }

 protected:
  Var compute(const Var& x, bool training) override;

 private:
  int bits_;
  bool signed_;
};

class Dropout : public Module {
 public:
  explicit Dropout(float p, uint64_t seed = 0);
  std::string kind() const override { return "dropout"; }
  Shape output_shape(const Shape& input) const override { return input; }
  float p() const { return p_; }

 protected:
  Var compute(const Var& x, bool training) override;

 private:
  float p_;
};

class Flatten : public Module {
 public:
  Flatten() = default;
  std::string kind() const override { return "flatten"; }
  Shape output_shape(const Shape& input) const override { return {shape_numel(input)}; }

 protected:
  Var compute(const Var& x, bool training) override;
};

// The first layer on 8-bit input (qnn.md §4): the real input x ∈ [−1, 1] is quantized to the 256
// levels (2u − 255)/255, u ∈ [0, 255] (u = the pixel when x = 2p/255 − 1, the Theano input
// scaling), and the binary-weight product is computed from the integer codes u:
//   P(x_q, W_b) = (2/255)·P(u, W_b) − P(1, W_b),   P(u, W_b) = Σ_{n=1..8} 2^(n−1)·P(u^n, W_b)
// where u^n is the n-th bit plane (n = 8 the MSB) and P is the inner layer's product (dense, or
// conv with zero padding, where P(1, W_b) is the product with an all-ones image). Every term is
// an integer below 2^24, so the bit-plane sum equals P(u, W_b) exactly in float. With
// bitplanes = false, P(u, W_b) is computed in one product instead (same value, 1/8 of the work);
// bitplanes = true is the inference rewrite spelled out. The input gets no gradient (it is data).
// The inner layer is a BinaryDense or BinaryConv2d and owns the parameters.
class FirstLayer8bit : public Module {
 public:
  FirstLayer8bit(std::unique_ptr<Module> inner, bool bitplanes = false);
  std::string kind() const override { return "first_layer_8bit"; }
  Shape output_shape(const Shape& input) const override { return inner_->output_shape(input); }
  void set_name(std::string name) override;

  const Module& inner() const { return *inner_; }
  Module& inner() { return *inner_; }
  bool bitplanes() const { return bitplanes_; }
  void set_bitplanes(bool on) { bitplanes_ = on; }

  // Codes u = round((x + 1)·255/2) ∈ [0, 255] (quant::weights_kbit_to_codes with 8 bits).
  static Tensor input_codes(const Tensor& x);
  // P(u, W_b) for codes u (as float), by bit planes or directly; no gradient.
  Tensor code_product(const Tensor& codes, bool bitplanes) const;

 protected:
  Var compute(const Var& x, bool training) override;

 private:
  Var product(const Var& v, const Var& wb) const;  // the inner layer's P, no bias
  std::unique_ptr<Module> inner_;
  bool bitplanes_;
};

// Glorot learning-rate factor 1/sqrt(1.5/(fan_in + fan_out)) (qnn.md §2).
float glorot_lr_factor(int64_t fan_in, int64_t fan_out);

}  // namespace lowbit::nn
