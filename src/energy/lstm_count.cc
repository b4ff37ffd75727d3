// Operation counters of the LSTM models (kinds "lstm" and "lstm_lm"; metadata and tensors as
// in docs/formats.md, the LSTM model-file layout). They read the metadata and check the tensor
// shapes only; they do not run the model.
//
// One inference is one time step of one sequence (one batch row) through every layer; for
// lstm_lm it is one token: the embedding lookup (no arithmetic), every layer, and the vocabulary
// head. `lowbit energy --steps T` counts T of them.
//
// Per layer and step, with I inputs, C cells, P outputs and G gates (3 with CIFG, else 4):
//
// integer precision (TFLite's 8x8_16 scheme):
//   input and recurrent matmuls  G·C·(I + P) int8 multiplies, as many int32 adds; per gate
//                                value and matmul: bias add, requantize (int32 multiply +
//                                rounding add), accumulate into the int16 gate, saturate (2
//                                comparisons). Zero points are folded into the biases at load.
//   peephole                     per peephole value: int16 multiply, requantize, accumulate,
//                                saturate
//   layer norm                   per gate value: 1 int16 multiply (square), 3 int32 multiplies
//                                (normalise, coefficient, requantize), 4 int64 adds, 3 int32
//                                adds, 3 comparisons; per gate row: 13 int32 multiplies, 5 adds,
//                                2 comparisons (mean, variance, inverse square root by Newton)
//   gate activations             int16 fixed-point sigmoid (input, forget, output) and tanh
//                                (cell gate), each one int16 fixed-point exp plus the reciprocal
//                                by three Newton steps and the sign handling: 7 int16
//                                multiplies, 10 adds (tanh 11), 3 comparisons, 2 selects
//   CIFG                         input gate = 1 − forget: one int16 add per cell
//   cell                         f·c and i·g: int16 multiplies with a rounding add each; their
//                                sum: int32 add and saturation; cell clip: 2 comparisons
//   hidden                       tanh(c) (int16), o·tanh(c): int16 multiply, requantize to int8
//                                (int32 multiply, rounding add, zero-point add, 2 comparisons)
//   projection                   P·C int8 multiplies and int32 adds; per output: bias add,
//                                requantize, zero-point add, saturate; projection clip: 2 more
//   lm head                      V·P int8 multiplies and int32 adds, V int32 bias adds, V fp32
//                                multiplies (the logits' scale)
//
// float precision and the fp32 reference of an integer model: the same network in fp32:
// G·C·(I + P) multiplies and adds, a bias add per gate value, peephole multiply-add, layer
// norm (per value 3 multiplies, 4 adds; per row 13 multiplies, 5 adds), sigmoid = exp + 7
// multiplies + 8 adds, tanh = exp + 8 multiplies + 9 adds, cell 2 multiplies + 1 add, clips
// 2 comparisons, hidden multiply, projection multiply-adds and bias, head multiply-adds and
// bias. A float model's own count is this reference, so its gain is 1.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/energy/energy.h"
#include "lowbit/io/model_file.h"

namespace lowbit::energy {

namespace {

using json = nlohmann::json;
using u64 = uint64_t;

constexpr Arith I = Arith::integer;
constexpr Arith F = Arith::floating;

int64_t geti(const json& o, const char* key, const std::string& where) {
  LOWBIT_CHECK(o.is_object() && o.contains(key) && o[key].is_number_integer() && o[key].get<int64_t>() >= 1 &&
                   o[key].get<int64_t>() <= (int64_t{1} << 24),
               where, ": missing or implausible integer \"", key, "\"");
  return o[key].get<int64_t>();
}

bool getb(const json& o, const char* key, const std::string& where) {
  if (!o.contains(key)) return false;
  LOWBIT_CHECK(o[key].is_boolean(), where, ": \"", key, "\" must be true or false");
  return o[key].get<bool>();
}

double getclip(const json& o, const char* key, const std::string& where) {
  if (!o.contains(key) || o[key].is_null()) return 0;
  LOWBIT_CHECK(o[key].is_number() && o[key].get<double>() >= 0, where, ": \"", key, "\" must be a number >= 0");
  return o[key].get<double>();
}

void check_tensor(const io::ModelFile& file, const std::string& name, const Shape& shape, io::ElemType type) {
  LOWBIT_CHECK(file.contains(name), "lstm model has no tensor '", name, "'");
  const io::Array& a = file.get(name);
  LOWBIT_CHECK(a.shape() == shape && a.type() == type, "lstm model: tensor '", name, "' is ",
               io::elem_type_name(a.type()), " ", shape_str(a.shape()), " (expected ", io::elem_type_name(type), " ",
               shape_str(shape), ")");
}

// Fixed-point sigmoid / tanh on int16 (gemmlowp's logistic and tanh): one int16 exp, the
// reciprocal by Newton steps, and the sign handling.
void fixed_sigmoid(OpTally& t, u64 n, const std::string& where, bool tanh) {
  t.add(OpKind::exp, I, 16, n, where);
  t.add(OpKind::multiply, I, 16, 7 * n, where);
  t.add(OpKind::add, I, 16, (tanh ? 11 : 10) * n, where);
  t.add(OpKind::compare, I, 16, 3 * n, where);
  t.add(OpKind::bitwise, I, 16, 2 * n, where);
}

void float_sigmoid(OpTally& t, u64 n, const std::string& where, bool tanh) {
  t.add(OpKind::exp, F, 32, n, where);
  t.add(OpKind::multiply, F, 32, (tanh ? 8 : 7) * n, where);
  t.add(OpKind::add, F, 32, (tanh ? 9 : 8) * n, where);
}

// Integer requantization of n int32 values to int8/int16: multiply by the quantized multiplier
// (an int32 multiply) and the rounding shift (an add).
void requantize(OpTally& t, u64 n, const std::string& where) {
  t.add(OpKind::multiply, I, 32, n, where);
  t.add(OpKind::add, I, 32, n, where);
}
void saturate(OpTally& t, u64 n, const std::string& where) { t.add(OpKind::compare, I, 32, 2 * n, where); }

struct LayerShape {
  std::string name;
  int64_t n_input, n_cell, n_output;
  bool cifg, peephole, projection, layer_norm, has_projection_bias;
  double cell_clip, proj_clip;
};

void count_layer_integer(const LayerShape& L, OpTally& t) {
  const u64 in = L.n_input, c = L.n_cell, p = L.n_output, g = L.cifg ? 3 : 4;
  const std::string& n = L.name;
  // Matmuls into the int16 gates.
  const std::string wi = n + " input matmul", wr = n + " recurrent matmul";
  t.mac(I, 8, 32, g * c * in, wi);
  t.mac(I, 8, 32, g * c * p, wr);
  for (const std::string& w : {wi, wr}) {
    t.add(OpKind::add, I, 32, 2 * g * c, w);  // bias, accumulate into the gate
    requantize(t, g * c, w);
    saturate(t, g * c, w);
  }
  if (L.peephole) {
    const u64 v = (L.cifg ? 2 : 3) * c;
    const std::string w = n + " peephole";
    t.add(OpKind::multiply, I, 16, v, w);
    requantize(t, v, w);
    t.add(OpKind::add, I, 32, v, w);
    saturate(t, v, w);
  }
  if (L.layer_norm) {
    const std::string w = n + " layer norm";
    const u64 v = g * c;
    t.add(OpKind::multiply, I, 16, v, w);
    t.add(OpKind::multiply, I, 32, 3 * v, w);
    t.add(OpKind::add, I, 64, 4 * v, w);
    t.add(OpKind::add, I, 32, 3 * v, w);
    t.add(OpKind::compare, I, 32, 3 * v, w);
    t.add(OpKind::multiply, I, 32, 13 * g, w);
    t.add(OpKind::add, I, 32, 5 * g, w);
    t.add(OpKind::compare, I, 32, 2 * g, w);
  }
  const std::string wa = n + " gate activations";
  fixed_sigmoid(t, (g - 1) * c, wa, false);
  fixed_sigmoid(t, c, wa, true);
  const std::string wc = n + " cell update";
  if (L.cifg) t.add(OpKind::add, I, 16, c, wc);
  t.add(OpKind::multiply, I, 16, 2 * c, wc);
  t.add(OpKind::add, I, 32, 3 * c, wc);  // two rounding adds, the sum
  saturate(t, c, wc);
  if (L.cell_clip > 0) saturate(t, c, wc);
  const std::string wh = n + " hidden";
  fixed_sigmoid(t, c, wh, true);
  t.add(OpKind::multiply, I, 16, c, wh);
  requantize(t, c, wh);
  t.add(OpKind::add, I, 32, c, wh);  // zero point
  saturate(t, c, wh);
  if (L.projection) {
    const std::string w = n + " projection";
    t.mac(I, 8, 32, p * c, w);
    t.add(OpKind::add, I, 32, 2 * p, w);  // bias, zero point
    requantize(t, p, w);
    saturate(t, p, w);
    if (L.proj_clip > 0) saturate(t, p, w);
  }
}

void count_layer_float(const LayerShape& L, OpTally& t) {
  const u64 in = L.n_input, c = L.n_cell, p = L.n_output, g = L.cifg ? 3 : 4;
  const std::string& n = L.name;
  t.mac(F, 32, 32, g * c * in, n + " input matmul");
  t.mac(F, 32, 32, g * c * p, n + " recurrent matmul");
  t.add(OpKind::add, F, 32, g * c, n + " input matmul");  // bias
  if (L.peephole) t.mac(F, 32, 32, (L.cifg ? 2 : 3) * c, n + " peephole");
  if (L.layer_norm) {
    const std::string w = n + " layer norm";
    t.add(OpKind::multiply, F, 32, 3 * g * c + 13 * g, w);
    t.add(OpKind::add, F, 32, 4 * g * c + 5 * g, w);
  }
  const std::string wa = n + " gate activations";
  float_sigmoid(t, (g - 1) * c, wa, false);
  float_sigmoid(t, c, wa, true);
  const std::string wc = n + " cell update";
  if (L.cifg) t.add(OpKind::add, F, 32, c, wc);
  t.add(OpKind::multiply, F, 32, 2 * c, wc);
  t.add(OpKind::add, F, 32, c, wc);
  if (L.cell_clip > 0) t.add(OpKind::compare, F, 32, 2 * c, wc);
  const std::string wh = n + " hidden";
  float_sigmoid(t, c, wh, true);
  t.add(OpKind::multiply, F, 32, c, wh);
  if (L.projection) {
    const std::string w = n + " projection";
    t.mac(F, 32, 32, p * c, w);
    if (L.has_projection_bias) t.add(OpKind::add, F, 32, p, w);
    if (L.proj_clip > 0) t.add(OpKind::compare, F, 32, 2 * p, w);
  }
}

void count_lstm(const io::ModelFile& file, OpTally& m, OpTally& f, bool lm) {
  const json meta = json::parse(file.metadata, nullptr, false);
  LOWBIT_CHECK(!meta.is_discarded() && meta.is_object() && meta.contains("model") && meta["model"].is_object(),
               "lstm model: metadata has no \"model\" object");
  const json& model = meta["model"];
  LOWBIT_CHECK(model.contains("precision") && model["precision"].is_string(),
               "lstm model: metadata has no \"precision\" (expected \"float\" or \"integer\")");
  const std::string precision = model["precision"].get<std::string>();
  LOWBIT_CHECK(precision == "float" || precision == "integer", "lstm model: precision \"", precision,
               "\" (expected \"float\" or \"integer\")");
  const bool integer = precision == "integer";
  const io::ElemType w8 = integer ? io::ElemType::I8 : io::ElemType::F32;
  const io::ElemType w16 = integer ? io::ElemType::I16 : io::ElemType::F32;
  const io::ElemType w32 = integer ? io::ElemType::I32 : io::ElemType::F32;
  LOWBIT_CHECK(model.contains("layers") && model["layers"].is_array() && !model["layers"].empty(),
               "lstm model: metadata has no non-empty \"layers\" array");
  int64_t vocab = 0, embed = 0;
  if (lm) {
    vocab = geti(model, "vocab_size", "lstm_lm model");
    embed = geti(model, "embedding_dim", "lstm_lm model");
    check_tensor(file, "embedding", {vocab, embed}, w8);  // integer models store int8 input codes
  }
  std::vector<LayerShape> shapes;
  int64_t prev_out = lm ? embed : 0;
  for (std::size_t i = 0; i < model["layers"].size(); ++i) {
    const json& e = model["layers"][i];
    const std::string where = "lstm model: layer " + std::to_string(i);
    LOWBIT_CHECK(e.is_object() && e.contains("name") && e["name"].is_string(), where, ": missing string \"name\"");
    LayerShape L;
    L.name = e["name"].get<std::string>();
    L.n_input = geti(e, "n_input", where);
    L.n_cell = geti(e, "n_cell", where);
    L.n_output = geti(e, "n_output", where);
    L.cifg = getb(e, "cifg", where);
    L.peephole = getb(e, "peephole", where);
    L.projection = getb(e, "projection", where);
    L.layer_norm = getb(e, "layer_norm", where);
    L.cell_clip = getclip(e, "cell_clip", where);
    L.proj_clip = getclip(e, "proj_clip", where);
    LOWBIT_CHECK(L.projection || L.n_output == L.n_cell, where, ": n_output ", L.n_output, " differs from n_cell ",
                 L.n_cell, " without a projection");
    LOWBIT_CHECK(prev_out == 0 || L.n_input == prev_out, where, ": n_input ", L.n_input, " but the ",
                 i == 0 ? "embedding gives " : "previous layer gives ", prev_out);
    prev_out = L.n_output;
    // The tensors the counts rely on.
    const std::string p = L.name + ".";
    const int64_t C = L.n_cell;
    std::vector<std::string> gates = {"forget", "cell", "output"};
    if (!L.cifg) gates.insert(gates.begin(), "input");
    for (const auto& g : gates) {
      check_tensor(file, p + "input_to_" + g + "_weights", {C, L.n_input}, w8);
      check_tensor(file, p + "recurrent_to_" + g + "_weights", {C, L.n_output}, w8);
      check_tensor(file, p + g + "_gate_bias", {C}, w32);
      if (L.layer_norm) check_tensor(file, p + g + "_layer_norm_coefficients", {C}, w16);
      if (L.peephole && g != "cell") check_tensor(file, p + "cell_to_" + g + "_weights", {C}, w16);
    }
    if (L.projection) check_tensor(file, p + "projection_weights", {L.n_output, C}, w8);
    L.has_projection_bias = L.projection && file.contains(p + "projection_bias");
    if (L.has_projection_bias) check_tensor(file, p + "projection_bias", {L.n_output}, w32);
    shapes.push_back(L);
  }
  if (lm) {
    check_tensor(file, "head.weight", {vocab, prev_out}, w8);
    check_tensor(file, "head.bias", {vocab}, w32);
  }
  for (const LayerShape& L : shapes) {
    count_layer_float(L, f);
    if (integer) count_layer_integer(L, m);
  }
  if (lm) {
    const u64 v = static_cast<u64>(vocab), p = static_cast<u64>(prev_out);
    f.mac(F, 32, 32, v * p, "head");
    f.add(OpKind::add, F, 32, v, "head");
    if (integer) {
      m.mac(I, 8, 32, v * p, "head");
      m.add(OpKind::add, I, 32, v, "head");
      m.add(OpKind::multiply, F, 32, v, "head");
    }
  }
  if (!integer) m = f;
}

const bool registered = [] {
  register_inference_unit("lstm", "one time step of one sequence through every layer");
  register_inference_unit("lstm_lm", "one token: embedding lookup, every layer, vocabulary head");
  register_counter("lstm", [](const io::ModelFile& file, OpTally& m, OpTally& f) { count_lstm(file, m, f, false); });
  return register_counter("lstm_lm",
                          [](const io::ModelFile& file, OpTally& m, OpTally& f) { count_lstm(file, m, f, true); });
}();

}  // namespace

}  // namespace lowbit::energy
