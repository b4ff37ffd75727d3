// From a trained network (nn::Sequential in eval mode) to the integer-only runtime network.
//
// The exporter walks the layers in groups, each group one runtime stage:
//
//   [dropout] LINEAR [max_pool2d] [batch_norm] [hardtanh] ACTIVATION [dropout]
//
//   LINEAR      binary_dense, kbit_dense, binary_conv2d, kbit_conv2d, first_layer_8bit,
//               optionally preceded by flatten
//   ACTIVATION  sign (-> packed bits) or quant_act (-> k-bit codes); the last group has none and
//               becomes the float logits (an affine map of the integer accumulator)
//
// Dropout is the identity at inference. Batch norm (vanilla or shift-based, running statistics)
// and the linear layer's scales are folded into per-channel integer thresholds (runtime/fold.h),
// so nothing but integer arithmetic runs before the logits. The input normalisation
// x = pixel·scale + offset is folded into the first layer, which reads the raw u8 pixels.
// A network outside this grammar (float layers, an activation the runtime lacks, a pool after
// the activation) is a lowbit::Error naming the layer and the sequence it found.
#pragma once

#include "lowbit/nn/module.h"
#include "lowbit/runtime/network.h"

namespace lowbit::runtime {

// `input`: the shape and layout of the u8 images the runtime will be fed, and the
// normalisation the training graph applied to them (scale, offset). Its height·width·channels
// must equal the model's input size; the training graph saw the pixels in `input.layout` order.
Network export_network(const nn::Sequential& model, const InputSpec& input);

}  // namespace lowbit::runtime
