// Models from a JSON description: the `model` section of a training recipe.
//
//   {"input_shape": [784],
//    "layers": [{"type": "dropout", "p": 0.2},
//               {"type": "binary_dense", "units": 2048, "bias": false, "glorot_lr_scale": true},
//               {"type": "batch_norm", "momentum": 0.1, "eps": 1e-4, "shift_based": false},
//               {"type": "hardtanh"}, {"type": "sign", "stochastic": false},
//               {"type": "binary_dense", "units": 10}, {"type": "batch_norm"}]}
//
// Layer types and keys (required keys marked *; every layer also takes "quantize_grad_bits",
// 0 = off, else 1..16, which quantizes the gradient arriving at the layer's output):
//   dense            units*, bias = true
//   binary_dense     units*, bias = false, glorot_lr_scale = true
//   kbit_dense       units*, bits* (1..8), bias = false, glorot_lr_scale = true
//   conv2d           channels*, kernel*, stride = 1, padding = 0, bias = true
//   binary_conv2d    channels*, kernel*, stride = 1, padding = 0, bias = false, glorot_lr_scale = true
//   kbit_conv2d      as binary_conv2d plus bits* (1..8)
//   max_pool2d       size*, stride = size
//   batch_norm       momentum = 0.1, eps = 1e-4, shift_based = false
//   hardtanh, flatten
//   sign             stochastic = false
//   quant_act        bits* (1..8), signed = false
//   dropout          p* in [0, 1)
//   first_layer_8bit binary dense (units*) or binary conv (channels*, kernel*, stride, padding)
//                    on 8-bit input; bias = false, glorot_lr_scale = true, bitplanes = false
// Shapes are per sample and inferred from input_shape ([784], [3, 32, 32]). Unknown or mistyped
// keys and types, missing required keys and shapes that do not fit are lowbit::Errors naming the
// layer index, its type and the key.
#pragma once

#include <cstdint>
#include <string>

#include "lowbit/nn/module.h"

namespace lowbit::nn {

// Layer i is seeded with quant::derive_seed(seed, i) (initial weights, dropout masks, stochastic
// binarization), so the same JSON and seed give the same model and the same training run.
Sequential build_model(const std::string& json_text, uint64_t seed);

// One line per layer: index, type, options, output shape and parameter count; then the total.
std::string describe(const Sequential& model);

}  // namespace lowbit::nn
