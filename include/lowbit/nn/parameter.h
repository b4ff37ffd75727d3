// Trainable parameters as layers expose them and optimizers update them.
//
// A parameter owns its value and gradient tensors (f32, same shape). Layers fill `grad` during
// the backward pass; an optimizer reads it, updates `value` and leaves `grad` for the caller to
// zero, or to mark stale (`grad_stale`, Optimizer::discard_grads): the next backward pass then
// writes the gradient instead of adding to it, which saves clearing the tensor and reading it
// back (the weight-sized passes of a large layer), and a reader of `grad` that may see a stale
// tensor calls settle_grad() first.
//
// Binary and k-bit layers keep real-valued "latent" weights here: the forward pass quantizes
// them, and `clip` asks the optimizer to clip the value to [-clip_value, clip_value] after every
// update (BNN: W <- clip(W, -1, 1)), while `lr_scale` multiplies the learning rate (the BNN
// code's per-layer Glorot factor, 1 for ordinary parameters).
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/core/tensor.h"

namespace lowbit::nn {

struct Parameter {
  std::string name;  // unique within a model, e.g. "fc1.weight"
  Tensor value;      // f32
  Tensor grad;       // f32, same shape as value
  float lr_scale = 1.0f;
  bool clip = false;
  float clip_value = 1.0f;
  // `grad` holds an earlier step's values that stand for zero (see above); layers pass
  // &grad_stale to the autograd leaf of this parameter (autograd::Var(value, grad, stale)).
  bool grad_stale = false;

  static std::shared_ptr<Parameter> make(std::string name, Tensor value) {
    auto p = std::make_shared<Parameter>();
    p->name = std::move(name);
    p->grad = Tensor::zeros(value.shape(), DType::f32);
    p->value = std::move(value);
    return p;
  }
};

using ParameterList = std::vector<std::shared_ptr<Parameter>>;

// Makes a stale gradient zero (a parameter that no backward pass reached since it was marked).
inline void settle_grad(Parameter& p) {
  if (!p.grad_stale) return;
  std::fill(p.grad.data<float>(), p.grad.data<float>() + p.grad.numel(), 0.0f);
  p.grad_stale = false;
}

}  // namespace lowbit::nn
