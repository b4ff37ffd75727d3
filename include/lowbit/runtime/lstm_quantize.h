// Post-training quantization of float LSTM models into the integer 8x8_16 scheme
// (TensorFlow Lite's recipe): run the float model over calibration data recording the global
// minimum and maximum of every tensor that needs one (runtime::LstmLayerRanges), then choose:
//
//   input x, output state/output (union of ranges)
//                   int8 asymmetric: range extended to include 0, s = (max − min)/255,
//                   zp = round(−128 − min/s) clamped to [−128, 127]
//   hidden o·tanh(c) (projection only) int8 symmetric, s = max|h|/127, zp 0 (TFLite's kernel
//                   subtracts the hidden zero point when it quantizes h and folds
//                   +zp·rowsum(W_proj) into the projection bias; with zp 0 the int8 clamp of
//                   h is symmetric)
//   weights         int8 symmetric narrow, per tensor: s = max|w|/127
//   peephole, LN    int16 symmetric narrow: s = max|w|/32767
//   gate bias       int32, s = s_x · s_W(input→gate) without layer norm, s_LN · 2^-10 with it
//   projection bias int32, s = s_Wproj · s_hidden
//   cell state      int16, s = 2^(pot − 15) with 2^pot the smallest power of two >= max|c|,
//                   pot clamped to [0, 6] (the legacy quantizer's lower clamp keeps the cell
//                   tanh supported; above 6 the kernel's |c| < 64 limit applies and the cell
//                   saturates)
//   gate pre-activations (layer norm only)  int16, s = max|a|/32767
//
// Degenerate ranges get documented safe choices: a zero range becomes [−1, 1] for int8
// activations and max|a| = 1 for the gate intermediates; an all-zero weight tensor gets scale 1.
// Without projection the hidden quantization is the output-state quantization (the kernel writes
// h straight into the output state). In a stack, layer l+1 takes layer l's output-state
// quantization as its input quantization. lstm_lm: the embedding table is quantized into the first
// layer's input quantization over the whole table's range; the head weight is int8 symmetric and
// its bias int32 at s_output · s_head.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/io/model_file.h"
#include "lowbit/runtime/lstm.h"

namespace lowbit::runtime {

// Ranges of a float model over calibration data. lstm: x is float [steps, batch, n_input];
// lstm_lm: tokens [steps] run as one stream (batch 1). Throws on empty data.
std::vector<LstmLayerRanges> calibrate_lstm(const LstmModel& float_model, const float* x, int64_t steps, int64_t batch);
std::vector<LstmLayerRanges> calibrate_lstm_lm(const LstmModel& float_model, const int32_t* tokens, int64_t steps);

// The integer model file. `report`, when given, receives one line per quantized tensor
// (name, min, max, scale, zero point).
io::ModelFile quantize_lstm(const LstmModel& float_model, const std::vector<LstmLayerRanges>& ranges,
                            std::vector<std::string>* report = nullptr);

// A float model with random weights (uniform ±1/√(n_input + n_output) for the matrices, small
// biases and peepholes, layer-norm coefficients around 1), for tests and benchmarks.
io::ModelFile random_float_lstm(LstmKind kind, const std::vector<LstmLayerSpec>& layers, int64_t vocab,
                                uint64_t seed);

}  // namespace lowbit::runtime
