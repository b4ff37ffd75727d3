// The energy model: the 45 nm table and its derived entries, tally pricing, the counter
// registry as the shared library fills it, and the counts of the feedforward and LSTM counters
// on small model files, checked against counts worked out by hand below.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/energy/energy.h"
#include "lowbit/energy/ops.h"
#include "lowbit/io/model_file.h"
#include "lowbit/runtime/network.h"

namespace lowbit::energy {
namespace {

constexpr Arith I = Arith::integer;
constexpr Arith F = Arith::floating;

double pj(OpKind k, Arith a, int bits) { return op_energy_pj(k, a, bits); }

TEST(EnergyTable, PublishedEntries) {
  EXPECT_DOUBLE_EQ(pj(OpKind::add, I, 8), 0.03);
  EXPECT_DOUBLE_EQ(pj(OpKind::add, I, 16), 0.05);
  EXPECT_DOUBLE_EQ(pj(OpKind::add, I, 32), 0.1);
  EXPECT_DOUBLE_EQ(pj(OpKind::add, F, 16), 0.4);
  EXPECT_DOUBLE_EQ(pj(OpKind::add, F, 32), 0.9);
  EXPECT_DOUBLE_EQ(pj(OpKind::multiply, I, 8), 0.2);
  EXPECT_DOUBLE_EQ(pj(OpKind::multiply, I, 32), 3.1);
  EXPECT_DOUBLE_EQ(pj(OpKind::multiply, F, 16), 1.1);
  EXPECT_DOUBLE_EQ(pj(OpKind::multiply, F, 32), 3.7);
  EXPECT_EQ(op_price(OpKind::multiply, F, 32).basis, "Horowitz 45 nm");
  // The derived-from-paper ratios of qmann.md §12: an 8-bit MAC against an fp32 MAC is 20x.
  EXPECT_NEAR((pj(OpKind::multiply, F, 32) + pj(OpKind::add, F, 32)) /
                  (pj(OpKind::multiply, I, 8) + pj(OpKind::add, I, 8)),
              20.0, 0.01);
}

TEST(EnergyTable, DerivedEntries) {
  // 16 bits is the geometric middle of 8 and 32: the power law gives the geometric mean.
  EXPECT_NEAR(pj(OpKind::multiply, I, 16), std::sqrt(0.2 * 3.1), 1e-12);
  EXPECT_NE(op_price(OpKind::multiply, I, 16).basis, "Horowitz 45 nm");
  EXPECT_NEAR(pj(OpKind::multiply, I, 64), 3.1 * 4, 1e-12);   // width² from 32 bits
  EXPECT_NEAR(pj(OpKind::multiply, I, 4), 0.2 / 4, 1e-12);    // width² from 8 bits
  EXPECT_NEAR(pj(OpKind::multiply, F, 64), 3.7 * 4, 1e-12);
  EXPECT_NEAR(pj(OpKind::add, I, 64), 0.2, 1e-12);            // width from 32 bits
  EXPECT_NEAR(pj(OpKind::add, I, 1), 0.03 / 8, 1e-12);        // one full-adder bit
  EXPECT_NEAR(pj(OpKind::add, F, 8), 0.2, 1e-12);
  EXPECT_NEAR(pj(OpKind::add, I, 12), 0.03 * std::pow(1.5, std::log(0.05 / 0.03) / std::log(2.0)), 1e-12);
  // Gates: half a full-adder bit each.
  EXPECT_NEAR(pj(OpKind::bitwise, I, 64), 64 * 0.03 / 16, 1e-12);
  EXPECT_NEAR(pj(OpKind::bitwise, I, 1), 0.03 / 16, 1e-12);
  // Popcount trees priced per full-adder bit (0.03 / 8 below 8 bits):
  // 64 bits: 32·1 + 16·2 + 8·3 + 4·4 + 2·5 + 1·6 = 120 bits; 8 bits: 4·1 + 2·2 + 1·3 = 11;
  // 5 bits: (1+1), (1+1), then 2+2, then 3+1: 7 bits in 4 adds.
  EXPECT_NEAR(pj(OpKind::popcount, I, 64), 120 * 0.03 / 8, 1e-12);
  EXPECT_NEAR(pj(OpKind::popcount, I, 8), 11 * 0.03 / 8, 1e-12);
  EXPECT_NEAR(pj(OpKind::popcount, I, 5), 7 * 0.03 / 8, 1e-12);
  EXPECT_DOUBLE_EQ(pj(OpKind::popcount, I, 1), 0.0);
  // Comparisons are subtractions.
  EXPECT_DOUBLE_EQ(pj(OpKind::compare, I, 32), 0.1);
  EXPECT_DOUBLE_EQ(pj(OpKind::compare, F, 32), 0.1);
  EXPECT_DOUBLE_EQ(pj(OpKind::compare, I, 16), 0.05);
  // exp: fp32 = 7 multiplies + 7 adds (degree 5) + an 8-bit exponent add; fp16 = 5 + 5 + 5-bit.
  EXPECT_NEAR(pj(OpKind::exp, F, 32), 7 * 3.7 + 7 * 0.9 + 0.03, 1e-9);
  EXPECT_NEAR(pj(OpKind::exp, F, 16), 5 * 1.1 + 5 * 0.4 + 5 * 0.03 / 8, 1e-9);
  // Fixed-point exp at 16 bits: 10 multiplies, 9 adds, 12 bitwise, 6 compares.
  EXPECT_NEAR(pj(OpKind::exp, I, 16), 10 * std::sqrt(0.62) + 9 * 0.05 + 12 * 16 * 0.03 / 16 + 6 * 0.05, 1e-9);
}

TEST(EnergyTable, RejectsWhatItCannotPrice) {
  EXPECT_THROW(op_price(OpKind::add, I, 0), Error);
  EXPECT_THROW(op_price(OpKind::add, I, 65), Error);
  EXPECT_THROW(op_price(OpKind::bitwise, F, 32), Error);
  EXPECT_THROW(op_price(OpKind::popcount, F, 32), Error);
  try {
    op_price(OpKind::multiply, F, 80);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("80 bits"), std::string::npos) << e.what();
  }
}

TEST(EnergyTable, PrintedTable) {
  const std::string t = format_table();
  EXPECT_NE(t.find("Horowitz 45 nm"), std::string::npos);
  EXPECT_NE(t.find("adder tree of 63"), std::string::npos);
  EXPECT_NE(t.find("exp        fp       32      32.23"), std::string::npos) << t;
}

TEST(EnergyTable, OpKindNames) {
  EXPECT_EQ(op_kind_name(OpKind::add), "add");
  EXPECT_EQ(op_kind_name(OpKind::multiply), "multiply");
  EXPECT_EQ(op_kind_name(OpKind::bitwise), "bitwise");
  EXPECT_EQ(op_kind_name(OpKind::popcount), "popcount");
  EXPECT_EQ(op_kind_name(OpKind::exp), "exp");
  EXPECT_EQ(op_kind_name(OpKind::compare), "compare");
  EXPECT_EQ(arith_name(I), "int");
  EXPECT_EQ(arith_name(F), "fp");
}

TEST(EnergyPricing, TallyAndReport) {
  OpTally m, f;
  m.mac(I, 8, 32, 1000, "a");                // 1000 · (0.2 + 0.1) = 300
  m.add(OpKind::popcount, I, 64, 10, "b");   // 10 · 0.45 = 4.5
  m.add(OpKind::add, I, 32, 5, "a");         // merged with a's adds: 1005 · 0.1
  m.add(OpKind::add, I, 32, 0, "c");         // nothing
  ASSERT_EQ(m.entries().size(), 3u);
  EXPECT_NEAR(price(m), 1000 * 0.2 + 1005 * 0.1 + 10 * 0.45, 1e-9);
  f.mac(F, 32, 32, 1000, "a");
  EXPECT_NEAR(price(f), 1000 * 4.6, 1e-9);

  const EnergyReport r = price_report("test", m, f, 3);
  EXPECT_NEAR(r.energy_pj, 3 * price(m), 1e-9);
  EXPECT_NEAR(r.float_energy_pj, 3 * 4600.0, 1e-9);
  EXPECT_NEAR(r.gain, 4600.0 / price(m), 1e-12);
  ASSERT_EQ(r.model_ops.size(), 3u);
  EXPECT_EQ(r.model_ops[0].count, 3000u);
  EXPECT_EQ(r.model_ops[0].where, "a");
  // Summaries merge parts: one line per (kind, arith, bits).
  OpTally two;
  two.add(OpKind::add, I, 32, 4, "x");
  two.add(OpKind::add, I, 32, 6, "y");
  const EnergyReport s = price_report("test", two, f);
  ASSERT_EQ(s.model_by_op.size(), 1u);
  EXPECT_EQ(s.model_by_op[0].count, 10u);
  EXPECT_NEAR(s.model_by_op[0].pj, 1.0, 1e-12);
  // The popcount's derivation is named among the assumptions; the published adds are not.
  const auto& a = r.assumptions;
  EXPECT_TRUE(std::any_of(a.begin(), a.end(), [](const std::string& x) { return x.find("adder tree") != std::string::npos; }));
  EXPECT_EQ(a.size(), 1u);
  const std::string text = format_report(r);
  EXPECT_NE(text.find("gain"), std::string::npos);
  EXPECT_NE(text.find("adder tree"), std::string::npos);
  EXPECT_THROW(price_report("test", m, f, 0), Error);
  EXPECT_THROW(price_report("test", OpTally{}, f), Error);
}

// The counters live in the shared library and register themselves when it loads.
TEST(EnergyCounters, RegisteredInTheLibrary) {
  const auto kinds = registered_kinds();
  for (const char* k : {"feedforward", "lstm", "lstm_lm"}) {
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), k), kinds.end()) << k;
    EXPECT_TRUE(counter_registry().count(k)) << k << " not in the registry seen from the test program";
  }
  EXPECT_NE(inference_unit("lstm").find("time step"), std::string::npos);
}

TEST(EnergyCounters, UnknownKindIsAnError) {
  io::ModelFile f;
  f.metadata = R"({"model": {"kind": "hopfield"}})";
  try {
    energy_report(f);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("no energy counter for model kind \"hopfield\""), std::string::npos) << w;
    EXPECT_NE(w.find("feedforward"), std::string::npos) << w;
  }
  f.metadata = R"({"dataset": "mnist"})";
  EXPECT_THROW(energy_report(f), Error);
  f.metadata = R"({"model": {"layers": []}})";
  EXPECT_THROW(energy_report(f), Error);
}

uint64_t count_of(const std::vector<OpLine>& lines, const std::string& where, OpKind k, Arith a, int bits) {
  uint64_t n = 0;
  for (const auto& l : lines)
    if (l.where == where && l.kind == k && l.arith == a && l.bits == bits) n += l.count;
  return n;
}
uint64_t total_of(const std::vector<OpLine>& lines, OpKind k, Arith a, int bits) {
  uint64_t n = 0;
  for (const auto& l : lines)
    if (l.kind == k && l.arith == a && l.bits == bits) n += l.count;
  return n;
}

// A four-layer network with every path of the feedforward counter:
//   0: conv2d on 6x6x1 pixel codes, 3 channels, 3x3, pad 1, max-pool 2/2, sign  -> 3x3x3 bits
//   1: conv2d on bits, 4 channels, 3x3, pad 1, kbit 2                            -> 3x3x4 codes
//   2: dense on codes, 36 -> 5, sign (no padding, no pool: the fused threshold)  -> 5 bits
//   3: dense on bits, 5 -> 4, affine                                             -> 4 logits
io::ModelFile small_feedforward() {
  using namespace runtime;
  Network net(InputSpec{6, 6, 1, InputLayout::hwc, 2.0 / 255, -1.0});
  auto pm1 = [](int64_t n) {
    std::vector<int8_t> w(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) w[i] = (i * 7 + i / 3) % 3 == 0 ? -1 : 1;
    return w;
  };
  Conv2dSpec c0;
  c0.out_channels = 3;
  c0.kernel_h = c0.kernel_w = 3;
  c0.stride = 1;
  c0.pad = 1;
  c0.weight = {1, -2, 3, 0, 1, 1, -1, 2, 1, 2, 2, 0, -3, 1, 1, 0, 1, -1, 1, 1, 1, 1, -1, 1, 1, 1, 1};
  c0.pool = MaxPool{2, 2};
  c0.epilogue = SignEpilogue{{10, -20, 0}, {0, 1, 0}};
  c0.input_zero2 = 255;
  net.add_conv2d(c0);
  Conv2dSpec c1;
  c1.out_channels = 4;
  c1.kernel_h = c1.kernel_w = 3;
  c1.stride = 1;
  c1.pad = 1;
  c1.weight = pm1(4 * 27);
  c1.epilogue = KbitEpilogue{2, {-5, 0, 5, -3, 0, 3, -1, 0, 1, -9, 0, 9}, {0, 0, 1, 0}};
  net.add_conv2d(c1);
  std::vector<int8_t> w2(5 * 36);
  for (std::size_t i = 0; i < w2.size(); ++i) w2[i] = static_cast<int8_t>(static_cast<int>(i % 5) - 2);
  net.add_dense(DenseSpec{5, w2, SignEpilogue{{0, 1, 2, 3, 4}, {}}, 0});
  net.add_dense(DenseSpec{4, pm1(20), AffineEpilogue{{0.5f, 0.25f, 1.0f, 2.0f}, {0, 1, 0, -1}}, 0});
  return net.to_model_file();
}

TEST(EnergyCounters, FeedforwardCountsByHand) {
  const EnergyReport r = energy_report(small_feedforward());
  EXPECT_EQ(r.kind, "feedforward");
  const auto& m = r.model_ops;
  // Layer 0: 6x6 positions x 3 channels = 108 accumulators of K = 9 taps: 972 int8 MACs, plus
  // one correction add each; 3x3x3 = 27 pooled values: 27·3 pool comparisons + 27 sign ones.
  EXPECT_EQ(count_of(m, "layers.0", OpKind::multiply, I, 8), 972u);
  EXPECT_EQ(count_of(m, "layers.0", OpKind::add, I, 32), 972u + 108u);
  EXPECT_EQ(count_of(m, "layers.0", OpKind::compare, I, 32), 81u + 27u);
  // Layer 1: 3x3 positions x 4 channels = 36 accumulators, K = 27 bits = one 64-bit word:
  // 36 xnor, 36 popcount, 36 adds, 36 padding corrections; kbit 2 = 2 comparisons each.
  EXPECT_EQ(count_of(m, "layers.1", OpKind::bitwise, I, 64), 36u);
  EXPECT_EQ(count_of(m, "layers.1", OpKind::popcount, I, 64), 36u);
  EXPECT_EQ(count_of(m, "layers.1", OpKind::add, I, 32), 72u);
  EXPECT_EQ(count_of(m, "layers.1", OpKind::compare, I, 32), 72u);
  // Layer 2: 5 x 36 int8 MACs, no correction (fused sign), 5 comparisons.
  EXPECT_EQ(count_of(m, "layers.2", OpKind::multiply, I, 8), 180u);
  EXPECT_EQ(count_of(m, "layers.2", OpKind::add, I, 32), 180u);
  EXPECT_EQ(count_of(m, "layers.2", OpKind::compare, I, 32), 5u);
  // Layer 3: 4 outputs of one word; affine: 4 fp32 multiplies and adds; argmax 3 comparisons.
  EXPECT_EQ(count_of(m, "layers.3", OpKind::bitwise, I, 64), 4u);
  EXPECT_EQ(count_of(m, "layers.3", OpKind::popcount, I, 64), 4u);
  EXPECT_EQ(count_of(m, "layers.3", OpKind::add, I, 32), 4u);
  EXPECT_EQ(count_of(m, "layers.3", OpKind::multiply, F, 32), 4u);
  EXPECT_EQ(count_of(m, "layers.3", OpKind::add, F, 32), 4u);
  EXPECT_EQ(count_of(m, "argmax", OpKind::compare, F, 32), 3u);
  EXPECT_EQ(m.size(), 16u);  // nothing else

  // fp32 reference: MACs 972 + 36·27 + 180 + 20 = 2144; batch norm / affine multiply and add
  // per value 27 + 36 + 5 + 4 = 72; activations 27 + 36 + 5 = 68 and pooling 81 comparisons,
  // argmax 3.
  const auto& f = r.float_ops;
  EXPECT_EQ(total_of(f, OpKind::multiply, F, 32), 2144u + 72u);
  EXPECT_EQ(total_of(f, OpKind::add, F, 32), 2144u + 72u);
  EXPECT_EQ(total_of(f, OpKind::compare, F, 32), 68u + 81u + 3u);
  // Lines: multiply, add, compare for layers 0-2; multiply, add for layer 3; argmax.
  EXPECT_EQ(f.size(), 3u * 3u + 2u + 1u);
  const double model_pj = 1152 * 0.2 + (1080 + 72 + 180 + 4) * 0.1 + (108 + 72 + 5) * 0.1 + 40 * 0.12 + 40 * 0.45 +
                          4 * 3.7 + 4 * 0.9 + 3 * 0.1;
  const double float_pj = 2216 * (3.7 + 0.9) + 152 * 0.1;
  EXPECT_NEAR(r.energy_pj, model_pj, 1e-6);
  EXPECT_NEAR(r.float_energy_pj, float_pj, 1e-6);
  EXPECT_NEAR(r.gain, float_pj / model_pj, 1e-9);
}

TEST(EnergyCounters, FeedforwardRejectsABrokenFile) {
  io::ModelFile f = small_feedforward();
  f.tensors.pop_back();  // the last layer's bias
  EXPECT_THROW(energy_report(f), Error);
}

// A hand-written LSTM model file following the contract: zero-valued tensors of the right
// types and shapes, and the metadata.
struct LstmLayerDesc {
  std::string name;
  int64_t in, cell, out;
  bool cifg, peephole, projection, layer_norm;
  double cell_clip, proj_clip;
};

void add_lstm_layer(io::ModelFile& f, const LstmLayerDesc& d, bool integer, std::string& layers_json) {
  using io::ElemType;
  const ElemType w8 = integer ? ElemType::I8 : ElemType::F32, w16 = integer ? ElemType::I16 : ElemType::F32,
                 w32 = integer ? ElemType::I32 : ElemType::F32;
  const std::string p = d.name + ".";
  std::vector<std::string> gates = {"forget", "cell", "output"};
  if (!d.cifg) gates.insert(gates.begin(), "input");
  for (const auto& g : gates) {
    f.add(p + "input_to_" + g + "_weights", io::Array::zeros(w8, {d.cell, d.in}));
    f.add(p + "recurrent_to_" + g + "_weights", io::Array::zeros(w8, {d.cell, d.out}));
    f.add(p + g + "_gate_bias", io::Array::zeros(w32, {d.cell}));
    if (d.peephole && g != "cell") f.add(p + "cell_to_" + g + "_weights", io::Array::zeros(w16, {d.cell}));
    if (d.layer_norm) f.add(p + g + "_layer_norm_coefficients", io::Array::zeros(w16, {d.cell}));
  }
  if (d.projection) {
    f.add(p + "projection_weights", io::Array::zeros(w8, {d.out, d.cell}));
    f.add(p + "projection_bias", io::Array::zeros(w32, {d.out}));
  }
  auto b = [](bool x) { return x ? "true" : "false"; };
  if (!layers_json.empty()) layers_json += ", ";
  layers_json += detail::cat(R"({"type": "lstm", "name": ")", d.name, R"(", "n_input": )", d.in, R"(, "n_cell": )",
                             d.cell, R"(, "n_output": )", d.out, R"(, "cifg": )", b(d.cifg), R"(, "peephole": )",
                             b(d.peephole), R"(, "projection": )", b(d.projection), R"(, "layer_norm": )",
                             b(d.layer_norm), R"(, "cell_clip": )", d.cell_clip, R"(, "proj_clip": )", d.proj_clip,
                             R"(, "quantization": {}})");
}

// Integer lstm, one layer: I = 3, C = 4, P = 2; peephole, layer norm, projection with bias,
// cell clip.
io::ModelFile small_integer_lstm() {
  io::ModelFile f;
  std::string layers;
  add_lstm_layer(f, {"lstm.0", 3, 4, 2, false, true, true, true, 0.5, 0.0}, true, layers);
  f.metadata = R"({"model": {"kind": "lstm", "precision": "integer", "layers": [)" + layers + "]}}";
  return f;
}

TEST(EnergyCounters, IntegerLstmCountsByHand) {
  const EnergyReport r = energy_report(small_integer_lstm());
  const auto& m = r.model_ops;
  // 4 gates x 4 cells = 16 gate values.
  // Input matmul: 16 x 3 = 48 int8 MACs; per gate value bias + accumulate + rounding = 3 adds,
  // 1 requantizing multiply, 2 saturating comparisons.
  EXPECT_EQ(count_of(m, "lstm.0 input matmul", OpKind::multiply, I, 8), 48u);
  EXPECT_EQ(count_of(m, "lstm.0 input matmul", OpKind::add, I, 32), 48u + 48u);
  EXPECT_EQ(count_of(m, "lstm.0 input matmul", OpKind::multiply, I, 32), 16u);
  EXPECT_EQ(count_of(m, "lstm.0 input matmul", OpKind::compare, I, 32), 32u);
  // Recurrent matmul: 16 x 2 = 32 MACs.
  EXPECT_EQ(count_of(m, "lstm.0 recurrent matmul", OpKind::multiply, I, 8), 32u);
  EXPECT_EQ(count_of(m, "lstm.0 recurrent matmul", OpKind::add, I, 32), 32u + 48u);
  // Peephole on 3 gates x 4 = 12 values: int16 multiply, requantize, accumulate, saturate.
  EXPECT_EQ(count_of(m, "lstm.0 peephole", OpKind::multiply, I, 16), 12u);
  EXPECT_EQ(count_of(m, "lstm.0 peephole", OpKind::multiply, I, 32), 12u);
  EXPECT_EQ(count_of(m, "lstm.0 peephole", OpKind::add, I, 32), 24u);
  EXPECT_EQ(count_of(m, "lstm.0 peephole", OpKind::compare, I, 32), 24u);
  // Layer norm: per value 1 int16 + 3 int32 multiplies, 4 int64 + 3 int32 adds, 3 compares;
  // per gate row 13 multiplies, 5 adds, 2 compares.
  EXPECT_EQ(count_of(m, "lstm.0 layer norm", OpKind::multiply, I, 16), 16u);
  EXPECT_EQ(count_of(m, "lstm.0 layer norm", OpKind::multiply, I, 32), 48u + 52u);
  EXPECT_EQ(count_of(m, "lstm.0 layer norm", OpKind::add, I, 64), 64u);
  EXPECT_EQ(count_of(m, "lstm.0 layer norm", OpKind::add, I, 32), 48u + 20u);
  EXPECT_EQ(count_of(m, "lstm.0 layer norm", OpKind::compare, I, 32), 48u + 8u);
  // Gate activations: 12 sigmoids and 4 tanh: 16 int16 exps; multiplies 7 each; adds 10 per
  // sigmoid and 11 per tanh; 3 compares and 2 selects each.
  EXPECT_EQ(count_of(m, "lstm.0 gate activations", OpKind::exp, I, 16), 16u);
  EXPECT_EQ(count_of(m, "lstm.0 gate activations", OpKind::multiply, I, 16), 112u);
  EXPECT_EQ(count_of(m, "lstm.0 gate activations", OpKind::add, I, 16), 120u + 44u);
  EXPECT_EQ(count_of(m, "lstm.0 gate activations", OpKind::compare, I, 16), 48u);
  EXPECT_EQ(count_of(m, "lstm.0 gate activations", OpKind::bitwise, I, 16), 32u);
  // Cell: 2 int16 multiplies, 3 adds, saturation and clip (2 + 2 compares) per cell.
  EXPECT_EQ(count_of(m, "lstm.0 cell update", OpKind::multiply, I, 16), 8u);
  EXPECT_EQ(count_of(m, "lstm.0 cell update", OpKind::add, I, 32), 12u);
  EXPECT_EQ(count_of(m, "lstm.0 cell update", OpKind::compare, I, 32), 16u);
  // Hidden: 4 tanh, 4 int16 multiplies, requantize (4 int32 multiplies, 4 adds), 4 zero-point
  // adds, 8 saturating compares.
  EXPECT_EQ(count_of(m, "lstm.0 hidden", OpKind::exp, I, 16), 4u);
  EXPECT_EQ(count_of(m, "lstm.0 hidden", OpKind::multiply, I, 16), 28u + 4u);
  EXPECT_EQ(count_of(m, "lstm.0 hidden", OpKind::multiply, I, 32), 4u);
  EXPECT_EQ(count_of(m, "lstm.0 hidden", OpKind::add, I, 32), 8u);
  EXPECT_EQ(count_of(m, "lstm.0 hidden", OpKind::compare, I, 32), 8u);
  // Projection: 2 x 4 = 8 MACs; per output bias, zero point, rounding adds, requantize,
  // saturate.
  EXPECT_EQ(count_of(m, "lstm.0 projection", OpKind::multiply, I, 8), 8u);
  EXPECT_EQ(count_of(m, "lstm.0 projection", OpKind::add, I, 32), 8u + 6u);
  EXPECT_EQ(count_of(m, "lstm.0 projection", OpKind::multiply, I, 32), 2u);
  EXPECT_EQ(count_of(m, "lstm.0 projection", OpKind::compare, I, 32), 4u);

  // fp32 reference: MACs 48 + 32 + 12 (peephole) + 8 (projection) = 100; bias adds 16 + 2;
  // layer norm 48 + 52 multiplies, 64 + 20 adds; gate activations 12·7 + 4·8 multiplies,
  // 12·8 + 4·9 adds, 16 exps; cell 8 multiplies, 4 adds, 8 clip compares; hidden 4 exps,
  // 4·8 + 4 multiplies, 4·9 adds.
  const auto& f = r.float_ops;
  EXPECT_EQ(total_of(f, OpKind::multiply, F, 32), 100u + 100u + 116u + 8u + 36u);
  EXPECT_EQ(total_of(f, OpKind::add, F, 32), 100u + 18u + 84u + 132u + 4u + 36u);
  EXPECT_EQ(total_of(f, OpKind::exp, F, 32), 20u);
  EXPECT_EQ(total_of(f, OpKind::compare, F, 32), 8u);
  EXPECT_GT(r.gain, 1.0);

  // Per time step: --steps multiplies every count, the gain stays.
  const EnergyReport r5 = energy_report(small_integer_lstm(), 5);
  EXPECT_EQ(count_of(r5.model_ops, "lstm.0 input matmul", OpKind::multiply, I, 8), 5u * 48u);
  EXPECT_NEAR(r5.energy_pj, 5 * r.energy_pj, 1e-9 * r5.energy_pj);
  EXPECT_NEAR(r5.gain, r.gain, 1e-12);
}

TEST(EnergyCounters, CifgLanguageModelCountsByHand) {
  // lstm_lm, V = 7, E = 3, one CIFG layer with C = P = 5.
  for (const bool integer : {false, true}) {
    SCOPED_TRACE(integer ? "integer" : "float");
    io::ModelFile f;
    f.add("embedding", io::Array::zeros(integer ? io::ElemType::I8 : io::ElemType::F32, {7, 3}));
    std::string layers;
    add_lstm_layer(f, {"lstm.0", 3, 5, 5, true, false, false, false, 0.0, 0.0}, integer, layers);
    f.add("head.weight", io::Array::zeros(integer ? io::ElemType::I8 : io::ElemType::F32, {7, 5}));
    f.add("head.bias", io::Array::zeros(integer ? io::ElemType::I32 : io::ElemType::F32, {7}));
    f.metadata = detail::cat(R"({"model": {"kind": "lstm_lm", "precision": ")", integer ? "integer" : "float",
                             R"(", "vocab_size": 7, "embedding_dim": 3, "layers": [)", layers, "]}}");
    const EnergyReport r = energy_report(f);
    EXPECT_EQ(r.kind, "lstm_lm");
    const auto& fl = r.float_ops;
    // 3 gates x 5 cells: 45 + 75 MACs, 15 bias adds; 10 sigmoids (exp, 7 mul, 8 add) and 5
    // tanh (exp, 8 mul, 9 add); CIFG 5 adds; cell 10 multiplies, 5 adds; hidden 5 tanh and 5
    // multiplies; head 35 MACs and 7 bias adds.
    EXPECT_EQ(total_of(fl, OpKind::multiply, F, 32), 120u + 110u + 10u + 45u + 35u);
    EXPECT_EQ(total_of(fl, OpKind::add, F, 32), 120u + 15u + 125u + 10u + 45u + 42u);
    EXPECT_EQ(total_of(fl, OpKind::exp, F, 32), 20u);
    if (!integer) {
      EXPECT_DOUBLE_EQ(r.energy_pj, r.float_energy_pj);
      EXPECT_DOUBLE_EQ(r.gain, 1.0);
    } else {
      EXPECT_EQ(count_of(r.model_ops, "head", OpKind::multiply, I, 8), 35u);
      EXPECT_EQ(count_of(r.model_ops, "head", OpKind::add, I, 32), 42u);
      EXPECT_EQ(count_of(r.model_ops, "head", OpKind::multiply, F, 32), 7u);
      EXPECT_EQ(count_of(r.model_ops, "lstm.0 cell update", OpKind::add, I, 16), 5u);  // 1 - f
      EXPECT_EQ(count_of(r.model_ops, "lstm.0 gate activations", OpKind::exp, I, 16), 15u);
      EXPECT_GT(r.gain, 1.0);
    }
  }
}

TEST(EnergyCounters, LstmRejectsInconsistentFiles) {
  io::ModelFile f = small_integer_lstm();
  // A float weight in an integer model.
  io::ModelFile g;
  std::string layers;
  add_lstm_layer(g, {"lstm.0", 3, 4, 2, false, true, true, true, 0.5, 0.0}, false, layers);
  g.metadata = R"({"model": {"kind": "lstm", "precision": "integer", "layers": [)" + layers + "]}}";
  EXPECT_THROW(energy_report(g), Error);
  // No precision.
  io::ModelFile h = small_integer_lstm();
  h.metadata = R"({"model": {"kind": "lstm", "layers": []}})";
  EXPECT_THROW(energy_report(h), Error);
  // A missing gate tensor names it.
  f.tensors.erase(f.tensors.begin());
  try {
    energy_report(f);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lstm.0.input_to_input_weights"), std::string::npos) << e.what();
  }
}

// Writes the model files the command-line checks (tests/energy_cli.sh) use, into
// $LOWBIT_ENERGY_FIXTURE_DIR; skipped when that is not set.
TEST(EnergyCli, WriteFixture) {
  const char* env = std::getenv("LOWBIT_ENERGY_FIXTURE_DIR");
  if (env == nullptr) GTEST_SKIP() << "LOWBIT_ENERGY_FIXTURE_DIR is not set";
  const std::filesystem::path dir(env);
  std::filesystem::create_directories(dir);
  io::save((dir / "lstm.lbm").string(), small_integer_lstm());
  io::save((dir / "feedforward.lbm").string(), small_feedforward());
  io::ModelFile u;
  u.metadata = R"({"model": {"kind": "hopfield"}})";
  io::save((dir / "unknown.lbm").string(), u);
}

}  // namespace
}  // namespace lowbit::energy
