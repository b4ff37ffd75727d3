// build_model: valid descriptions give the layers, shapes, names and options asked for; every
// kind of mistake is an error that names the layer index, its type and the key.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "lowbit/autograd/ops.h"
#include "lowbit/core/error.h"
#include "lowbit/nn/layers.h"
#include "lowbit/nn/model.h"
#include "lowbit/nn/optim.h"

namespace lowbit::nn {
namespace {

const char* kMlp = R"({"input_shape": [784],
 "layers": [
   {"type": "dropout", "p": 0.2},
   {"type": "binary_dense", "units": 2048, "bias": false, "glorot_lr_scale": true},
   {"type": "batch_norm", "momentum": 0.1, "eps": 1e-4, "shift_based": false},
   {"type": "hardtanh"}, {"type": "sign", "stochastic": false},
   {"type": "binary_dense", "units": 10, "bias": false},
   {"type": "batch_norm"}]})";

TEST(NnModel, BuildsTheBnnMlp) {
  Sequential m = build_model(kMlp, 1);
  ASSERT_EQ(m.size(), 7u);
  EXPECT_EQ(m.at(0).kind(), "dropout");
  EXPECT_FLOAT_EQ(m.at(0).as<Dropout>()->p(), 0.2f);
  const auto* d = m.at(1).as<BinaryDense>();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->in_features(), 784);
  EXPECT_EQ(d->out_features(), 2048);
  EXPECT_FALSE(d->has_bias());
  EXPECT_EQ(d->weight()->name, "1.weight");
  EXPECT_GT(d->weight()->lr_scale, 40.0f);
  const auto* bn = m.at(2).as<BatchNorm>();
  ASSERT_NE(bn, nullptr);
  EXPECT_EQ(bn->num_features(), 2048);
  EXPECT_FLOAT_EQ(bn->eps(), 1e-4f);
  EXPECT_FALSE(bn->shift_based());
  EXPECT_FALSE(m.at(4).as<Sign>()->stochastic());
  EXPECT_EQ(m.output_shape(), (Shape{10}));
  // Parameters in order: 1.weight, 2.gamma, 2.beta, 5.weight, 6.gamma, 6.beta; buffers by name.
  const ParameterList ps = m.parameters();
  ASSERT_EQ(ps.size(), 6u);
  EXPECT_EQ(ps[3]->name, "5.weight");
  EXPECT_EQ(ps[5]->name, "6.beta");
  ASSERT_EQ(m.buffers().size(), 4u);
  EXPECT_EQ(m.buffers()[2].name, "6.running_mean");
  EXPECT_EQ(m.num_parameters(), 784 * 2048 + 2 * 2048 + 2048 * 10 + 2 * 10);
  // The same seed gives the same model.
  Sequential again = build_model(kMlp, 1), other = build_model(kMlp, 2);
  EXPECT_EQ(again.parameters()[0]->value.data<float>()[123], ps[0]->value.data<float>()[123]);
  EXPECT_NE(other.parameters()[0]->value.data<float>()[123], ps[0]->value.data<float>()[123]);
  // It runs.
  const Var y = m.forward(Var(Tensor::zeros({3, 784}, DType::f32)), true);
  EXPECT_EQ(y.shape(), (Shape{3, 10}));
  const std::string text = describe(m);
  EXPECT_NE(text.find("1 binary_dense units=2048"), std::string::npos) << text;
  EXPECT_NE(text.find("-> [2048], 1605632 params"), std::string::npos) << text;
  EXPECT_NE(text.find("total 1630228 params"), std::string::npos) << text;
}

// Optimizer::discard_grads (each layer's first gradient replaces the stale one) trains exactly as
// zero_grad does, on a model whose weights reach the loss through sign, k-bit quantizers, real
// layers and batch norm, with dropout.
TEST(NnModel, DiscardGradsTrainsExactlyAsZeroGrad) {
  const char* desc = R"({"input_shape": [40],
   "layers": [
     {"type": "dropout", "p": 0.2},
     {"type": "binary_dense", "units": 32, "bias": false, "glorot_lr_scale": true},
     {"type": "batch_norm"}, {"type": "hardtanh"}, {"type": "sign"},
     {"type": "dropout", "p": 0.5},
     {"type": "kbit_dense", "units": 24, "bits": 2},
     {"type": "batch_norm", "shift_based": true}, {"type": "hardtanh"}, {"type": "quant_act", "bits": 2},
     {"type": "dense", "units": 10}]})";
  std::vector<float> xs(16 * 40);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.37f * static_cast<float>(i));
  const Tensor x = Tensor::from<float>({16, 40}, xs);
  std::vector<int32_t> labels(16);
  for (int i = 0; i < 16; ++i) labels[static_cast<std::size_t>(i)] = (i * 7) % 10;
  auto run = [&](bool discard) {
    Sequential m = build_model(desc, 3);
    Adam opt(m.parameters());
    for (int step = 0; step < 4; ++step) {
      if (discard) opt.discard_grads();
      else opt.zero_grad();
      autograd::backward(autograd::softmax_cross_entropy(m.forward(Var(x), true), labels));
      opt.step(0.01f);
    }
    std::vector<float> all;
    for (const auto& p : m.parameters())
      all.insert(all.end(), p->value.data<float>(), p->value.data<float>() + p->value.numel());
    return all;
  };
  const std::vector<float> a = run(false), b = run(true), a2 = run(false);
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], a2[i]) << "rerun " << i;
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << i;
}

TEST(NnModel, BuildsACifarConvNetWithEveryLayerType) {
  const char* json = R"({"input_shape": [3, 32, 32], "layers": [
      {"type": "first_layer_8bit", "channels": 8, "kernel": 3, "padding": 1, "bitplanes": true},
      {"type": "batch_norm", "shift_based": true, "momentum": 0.125, "eps": 1e-5},
      {"type": "hardtanh"}, {"type": "sign", "stochastic": true},
      {"type": "binary_conv2d", "channels": 8, "kernel": 3, "padding": 1, "quantize_grad_bits": 6},
      {"type": "max_pool2d", "size": 2},
      {"type": "batch_norm"}, {"type": "hardtanh"}, {"type": "quant_act", "bits": 2, "signed": true},
      {"type": "kbit_conv2d", "channels": 4, "kernel": 3, "stride": 2, "bits": 2, "bias": true},
      {"type": "conv2d", "channels": 4, "kernel": 1},
      {"type": "flatten"},
      {"type": "kbit_dense", "units": 16, "bits": 4},
      {"type": "dense", "units": 12, "bias": false},
      {"type": "binary_dense", "units": 10, "glorot_lr_scale": false}, {"type": "batch_norm"}]})";
  Sequential m = build_model(json, 3);
  EXPECT_EQ(m.output_shape(), (Shape{10}));
  const auto* f = m.at(0).as<FirstLayer8bit>();
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->bitplanes());
  EXPECT_EQ(f->inner().as<BinaryConv2d>()->padding(), 1);
  EXPECT_EQ(m.at(0).parameters()[0]->name, "0.weight");
  EXPECT_TRUE(m.at(1).as<BatchNorm>()->shift_based());
  EXPECT_EQ(m.at(1).buffers()[1].name, "1.running_inv_std");
  EXPECT_EQ(m.at(4).quantize_grad_bits(), 6);
  EXPECT_EQ(m.at(5).as<MaxPool2d>()->stride(), 2);
  EXPECT_EQ(m.output_shape({3, 32, 32}), (Shape{10}));
  const auto* kc = m.at(9).as<KbitConv2d>();
  ASSERT_NE(kc, nullptr);
  EXPECT_EQ(kc->bits(), 2);
  EXPECT_EQ(kc->stride(), 2);
  EXPECT_TRUE(kc->has_bias());
  EXPECT_EQ(m.at(12).as<KbitDense>()->in_features(), 4 * 7 * 7);  // 16 -> (16 - 3) / 2 + 1
  EXPECT_EQ(m.at(14).as<BinaryDense>()->weight()->lr_scale, 1.0f);
  const Var y = m.forward(Var(Tensor::zeros({2, 3, 32, 32}, DType::f32)), true);
  EXPECT_EQ(y.shape(), (Shape{2, 10}));
  autograd::backward(autograd::squared_hinge(y, std::vector<int32_t>{1, 2}));
  EXPECT_NE(describe(m).find("first_layer_8bit [binary_conv2d channels=8"), std::string::npos) << describe(m);
}

// The error message for a model built from `json`.
std::string error_of(const std::string& json) {
  try {
    build_model(json, 0);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string mlp_with(const std::string& layer) {
  return R"({"input_shape": [20], "layers": [{"type": "hardtanh"}, )" + layer + "]}";
}

TEST(NnModel, ErrorsNameTheLayerAndTheKey) {
  struct Case {
    std::string json, expected;
  };
  const std::vector<Case> cases{
      {mlp_with(R"({"type": "binary_dense", "unit": 10})"),
       "model: layer 1 (binary_dense): unknown key 'unit' (allowed keys: type, quantize_grad_bits, units, bias, "
       "glorot_lr_scale)"},
      {mlp_with(R"({"type": "binary_dense"})"), "model: layer 1 (binary_dense): missing required key 'units'"},
      {mlp_with(R"({"type": "binary_dense", "units": "10"})"),
       "model: layer 1 (binary_dense): 'units' must be an integer in [1, 2147483648], got \"10\""},
      {mlp_with(R"({"type": "binary_dense", "units": 10.5})"),
       "model: layer 1 (binary_dense): 'units' must be an integer in [1, 2147483648], got 10.5"},
      {mlp_with(R"({"type": "binary_dense", "units": 0})"),
       "model: layer 1 (binary_dense): 'units' must be an integer in [1, 2147483648], got 0"},
      {mlp_with(R"({"type": "binary_dens", "units": 10})"), "model: layer 1: unknown type 'binary_dens' (known types: "},
      {mlp_with(R"({"units": 10})"), "model: layer 1: missing required key 'type'"},
      {mlp_with(R"({"type": 3})"), "model: layer 1: 'type' must be a string, got 3"},
      {mlp_with(R"([1])"), "model: layer 1 must be a JSON object, got [1]"},
      {mlp_with(R"({"type": "dense", "units": 4, "bias": 1})"),
       "model: layer 1 (dense): 'bias' must be true or false, got 1"},
      {mlp_with(R"({"type": "dropout", "p": 1.0})"), "model: layer 1 (dropout): 'p' must be a number in [0, 1), got 1.0"},
      {mlp_with(R"({"type": "dropout"})"), "model: layer 1 (dropout): missing required key 'p'"},
      {mlp_with(R"({"type": "kbit_dense", "units": 4, "bits": 9})"),
       "model: layer 1 (kbit_dense): 'bits' must be an integer in [1, 8], got 9"},
      {mlp_with(R"({"type": "batch_norm", "momentum": 2})"),
       "model: layer 1 (batch_norm): 'momentum' must be a number in [0, 1], got 2"},
      {mlp_with(R"({"type": "sign", "quantize_grad_bits": 17})"),
       "model: layer 1 (sign): 'quantize_grad_bits' must be an integer in [0, 16], got 17"},
      {mlp_with(R"({"type": "conv2d", "channels": 4, "kernel": 3})"),
       "model: layer 1 (conv2d): input shape [20] is not [C, H, W]"},
      {mlp_with(R"({"type": "max_pool2d", "size": 2})"),
       "model: layer 1 (max_pool2d): max_pool2d: input shape [20] is not [C, H, W] with H, W >= 2"},
      {mlp_with(R"({"type": "first_layer_8bit"})"),
       "model: layer 1 (first_layer_8bit): missing required key 'units' (dense) or 'channels' (conv)"},
      {mlp_with(R"({"type": "first_layer_8bit", "units": 3, "channels": 2})"),
       "model: layer 1 (first_layer_8bit): give either 'units' (dense) or 'channels' (conv), not both"},
      {mlp_with(R"({"type": "first_layer_8bit", "units": 3, "kernel": 2})"),
       "model: layer 1 (first_layer_8bit): key 'kernel' applies to the conv form (with 'channels'), not to 'units'"},
      {R"({"input_shape": [3, 8, 8], "layers": [{"type": "dense", "units": 4}]})",
       "model: layer 0 (dense): input shape [3, 8, 8] is not 1-D (add {\"type\": \"flatten\"} before this layer)"},
      {R"({"input_shape": [3, 4, 4], "layers": [{"type": "conv2d", "channels": 2, "kernel": 5}]})",
       "model: layer 0 (conv2d): conv2d: kernel 5 does not fit input [3, 4, 4] with padding 0"},
      {R"({"input_shape": [3], "layers": [], "extra": 1})", "model: unknown key 'extra' (allowed keys: input_shape, layers)"},
      {R"({"input_shape": [3], "layers": []})", "model: 'layers' must be a non-empty array, got []"},
      {R"({"layers": [{"type": "flatten"}]})", "model: missing required key 'input_shape'"},
      {R"({"input_shape": [3, -1], "layers": [{"type": "flatten"}]})",
       "model: 'input_shape' must be a non-empty array of positive integers, got [3,-1]"},
      {R"({"input_shape": [3]})", "model: missing required key 'layers'"},
      {R"([1, 2])", "model: expected a JSON object with 'input_shape' and 'layers', got [1,2]"},
      {R"({"input_shape": [3], )", "model: invalid JSON: "},
  };
  for (const Case& c : cases) {
    const std::string msg = error_of(c.json);
    EXPECT_EQ(msg.substr(0, c.expected.size()), c.expected) << "JSON: " << c.json << "\nmessage: " << msg;
  }
}

}  // namespace
}  // namespace lowbit::nn
