// Export of a trained recurrent language model (nn/lm.h) as a float `lstm_lm` model file
// (docs/formats.md, "LSTM models"): the training parameters split into TFLite's per-gate
// tensors under the names the LSTM runtime and `lowbit quantize` read.
//
// Gate stacks (i, f, g, o) of the training layers become input_to_{input,forget,cell,output}_
// weights [C, I], recurrent_to_*_weights [C, P], *_gate_bias [C], cell_to_*_weights [C],
// *_layer_norm_coefficients [C]; CIFG layers have no input-gate tensors. The embedding is
// `embedding` [V, E], the softmax head `head.weight` [V, P] and `head.bias` [V].
//
// A QNN-trained model (weight_bits > 0) is written with the k-bit weights the training graph
// used, as float values (metadata "qnn"). A model trained with a quantized recurrent state
// (activation_bits > 0) is written all the same, and the metadata says that the float model
// does not quantize the state, so its outputs differ from the training graph's by that rounding.
// Only LSTM layers have a model-file kind; GRU and tanh-RNN models are an error.
#pragma once

#include <string>

#include "lowbit/io/model_file.h"
#include "lowbit/nn/lm.h"

namespace lowbit::runtime {

// `training_json` (a JSON object, or empty) is recorded as metadata "training".
io::ModelFile export_lstm_lm(const nn::LanguageModel& model, const std::string& training_json = "");

}  // namespace lowbit::runtime
