// Trainable parameters as layers expose them and optimizers update them.
//
// A parameter owns its value and gradient tensors (f32, same shape). Layers fill `grad` during
// the backward pass; an optimizer reads it, updates `value` and leaves `grad` for the caller to
// zero. Binary and k-bit layers keep real-valued "latent" weights here: the forward pass
// quantizes them, and `clip` asks the optimizer to clip the value to [-clip_value, clip_value]
// after every update (BNN: W <- clip(W, -1, 1)), while `lr_scale` multiplies the learning rate
// (the BNN code's per-layer Glorot factor, 1 for ordinary parameters).
#pragma once

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

  static std::shared_ptr<Parameter> make(std::string name, Tensor value) {
    auto p = std::make_shared<Parameter>();
    p->name = std::move(name);
    p->grad = Tensor::zeros(value.shape(), DType::f32);
    p->value = std::move(value);
    return p;
  }
};

using ParameterList = std::vector<std::shared_ptr<Parameter>>;

}  // namespace lowbit::nn
