// Trained language model -> float lstm_lm model file (see runtime/export_lm.h).
#include "lowbit/runtime/export_lm.h"

#include <nlohmann/json.hpp>

#include "lowbit/core/error.h"

namespace lowbit::runtime {
namespace {

using json = nlohmann::ordered_json;

io::Array as_array(const float* p, const Shape& shape) {
  return io::Array::from<float>(shape, std::span<const float>(p, static_cast<std::size_t>(shape_numel(shape))));
}

}  // namespace

io::ModelFile export_lstm_lm(const nn::LanguageModel& model, const std::string& training_json) {
  const nn::LmSpec& s = model.spec();
  io::ModelFile f;
  json layers = json::array();
  f.add("embedding", as_array(model.effective_value("embedding").data<float>(), {s.vocab_size, s.embedding_dim}));
  int64_t in = s.embedding_dim;
  static const char* kGate[4] = {"input", "forget", "cell", "output"};
  for (std::size_t l = 0; l < s.layers.size(); ++l) {
    const nn::LmLayerSpec& ls = s.layers[l];
    LOWBIT_CHECK(ls.type == "lstm", "export: layer ", l, " is a ", ls.type,
                 " layer; only LSTM language models have a model-file kind (lstm_lm)");
    const std::string name = "lstm." + std::to_string(l), pre = name + ".";
    const int64_t C = ls.units, P = ls.projection > 0 ? ls.projection : C;
    // Stack slot of each TFLite gate (input, forget, cell, output); -1 where CIFG has none.
    const int slot[4] = {ls.cifg ? -1 : 0, ls.cifg ? 0 : 1, ls.cifg ? 1 : 2, ls.cifg ? 2 : 3};
    const int peep_slot[4] = {ls.cifg ? -1 : 0, ls.cifg ? 0 : 1, -1, ls.cifg ? 1 : 2};
    const Tensor wx = model.effective_value(pre + "w_x"), wh = model.effective_value(pre + "w_h");
    const Tensor b = model.effective_value(pre + "bias");
    for (int g = 0; g < 4; ++g)
      if (slot[g] >= 0)
        f.add(pre + "input_to_" + kGate[g] + "_weights", as_array(wx.data<float>() + slot[g] * C * in, {C, in}));
    for (int g = 0; g < 4; ++g)
      if (slot[g] >= 0)
        f.add(pre + "recurrent_to_" + kGate[g] + "_weights", as_array(wh.data<float>() + slot[g] * C * P, {C, P}));
    if (ls.peephole) {
      const Tensor p = model.effective_value(pre + "peephole");
      for (int g = 0; g < 4; ++g)
        if (peep_slot[g] >= 0)
          f.add(pre + "cell_to_" + kGate[g] + "_weights", as_array(p.data<float>() + peep_slot[g] * C, {C}));
    }
    for (int g = 0; g < 4; ++g)
      if (slot[g] >= 0) f.add(pre + kGate[g] + "_gate_bias", as_array(b.data<float>() + slot[g] * C, {C}));
    if (ls.projection > 0) {
      f.add(pre + "projection_weights", as_array(model.effective_value(pre + "proj_w").data<float>(), {P, C}));
      f.add(pre + "projection_bias", as_array(model.effective_value(pre + "proj_b").data<float>(), {P}));
    }
    if (ls.layer_norm) {
      const Tensor n = model.effective_value(pre + "ln");
      for (int g = 0; g < 4; ++g)
        if (slot[g] >= 0)
          f.add(pre + kGate[g] + "_layer_norm_coefficients", as_array(n.data<float>() + slot[g] * C, {C}));
    }
    layers.push_back({{"type", "lstm"},
                      {"name", name},
                      {"n_input", in},
                      {"n_cell", C},
                      {"n_output", P},
                      {"cifg", ls.cifg},
                      {"peephole", ls.peephole},
                      {"projection", ls.projection > 0},
                      {"layer_norm", ls.layer_norm},
                      {"cell_clip", ls.cell_clip},
                      {"proj_clip", ls.proj_clip}});
    in = P;
  }
  f.add("head.weight", as_array(model.effective_value("head.weight").data<float>(), {s.vocab_size, in}));
  f.add("head.bias", as_array(model.effective_value("head.bias").data<float>(), {s.vocab_size}));

  json meta = {{"model",
                {{"kind", "lstm_lm"},
                 {"precision", "float"},
                 {"layers", layers},
                 {"vocab_size", s.vocab_size},
                 {"embedding_dim", s.embedding_dim}}}};
  if (s.weight_bits > 0 || s.activation_bits > 0) {
    json q = {{"weight_bits", s.weight_bits}, {"activation_bits", s.activation_bits}};
    std::string note;
    if (s.weight_bits > 0)
      note = "input, recurrent and projection weights are the " + std::to_string(s.weight_bits) +
             "-bit values of the training graph (per tensor, levels on [-max|W|, max|W|]), stored as float";
    if (s.activation_bits > 0)
      note += std::string(note.empty() ? "" : "; ") + "training quantized the recurrent state h_t to " +
              std::to_string(s.activation_bits) + " bits on [-1, 1], which this float model does not do";
    q["note"] = note;
    meta["qnn"] = q;
  }
  if (!training_json.empty()) meta["training"] = json::parse(training_json);
  f.metadata = meta.dump();
  return f;
}

}  // namespace lowbit::runtime
