// One integer LSTM step against TensorFlow Lite's published kernel test (lstm_eval_test.cc,
// TestOneFullyQuantizedLSTM): batch 2, input 18, cell 10, output 6, layer norm and projection,
// explicit multipliers and folded biases, cell scale 2^-11, quantized cell clip 20480, output
// zero point 50. The inputs, parameters and expected integers are the published test vectors.
#include <gtest/gtest.h>

#include <vector>

#include "lowbit/runtime/lstm_integer.h"
#include "test_util.h"

namespace lowbit::runtime {
namespace {

using I8 = std::vector<int8_t>;

IntegerLstmLayer published_layer() {
  IntegerLstmLayer L;
  L.spec.name = "tflite";
  L.spec.n_input = 18;
  L.spec.n_cell = 10;
  L.spec.n_output = 6;
  L.spec.projection = true;
  L.spec.layer_norm = true;
  const I8 i2i = {18, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6,  1, 2, 3, 4, 5, 6, 5, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 0,
                  8, 2, 3, 4, 3, 6, 1, -2, 3, 4, 5, 6, 1, 2, 3, -4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, -5, 6, 1, 7, 3, 4, -5, 6,
                  8, 2, 3, 4, 5, 6, 3, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6,  1, -2, 2, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 8, 5, -6,
                  8, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6,  1, 2, 3, 4, 3, 6, 1, 2, 6, 4, 5, 6, 1, 2, 3, 4, -5, 6,
                  8, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 1, 2, 3, 14, 5, 6, 1, 2, 3, -4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6};
  const I8 i2f = {1, 2, 3, 4, 5, 6, 5, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 0,    8, 2, 3, 4, 3, 6, 1, -2, 3, 4, 5, 6, 1, 2, 3, -4, 5, 6,
                  1, 2, 3, 4, 5, 6, 1, 2, 3, 4, -5, 6, 1, 7, 3, 4, -5, 6,  8, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6,
                  1, 2, 3, 4, 3, 6, 1, 2, 6, 4, 5, 6, 11, 2, 3, 4, -5, 6,  8, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, -6, 1, 2, 3, 14, 5, 6,
                  1, 2, 3, -4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6,   18, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6,
                  8, 2, 3, 4, 5, 6, 3, 2, 3, 4, 5, 6, 13, 2, 3, 4, 5, 6,   1, -2, 2, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 8, 5, -6};
  const I8 i2c = {1, 2, 3, 4, 5, 6, 5, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 0,    1, 2, 3, 4, 3, 6, 1, 2, 6, 4, 5, 6, 1, 2, 3, 4, -5, 6,
                  8, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 16, 1, 2, 3, 14, 5, 6,  1, 2, 3, -4, 5, 6, 1, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6,
                  18, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6,   8, 2, 3, 4, 5, 6, 3, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6,
                  1, -2, 2, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 8, 5, -6,  8, 2, 3, 4, 3, 6, 1, -2, 3, 4, 5, 6, 1, 2, 3, -4, 5, 6,
                  1, 2, 3, 4, 5, 6, 1, 2, 3, 4, -5, 6, 1, 7, 3, 4, -5, 6,  8, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6};
  const I8 i2o = {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, -5, 6, 1, 7, 3, 4, -5, 6,  8, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, -1, 2, 3, 4, 5, 6,
                  1, 2, 3, 4, 3, 6, 1, 2, 6, 4, 5, 6, 1, 2, 3, 4, -5, 6,   8, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 1, 2, 3, 14, 5, 6,
                  18, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, -6, 1, 2, 3, 4, 5, 6,  8, 2, 3, 4, 5, 6, 3, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6,
                  1, 2, 3, 4, 5, 6, 5, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 0,    8, 2, 3, 4, 3, 6, 1, -2, 3, 4, 5, 6, 1, 2, 3, -4, 5, 6,
                  1, 2, 3, -4, 5, 6, 1, 2, 3, 4, 5, 6, -1, 2, 3, 4, 5, 6,  1, -2, 2, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 8, 5, -6};
  const I8 r_a = {1, 2, 3, 4, 7, 3, 4, -5, 6, 3, 8, 2, 3, 4, 5, 6, 1, 2, 3, 4, 1, 2, 3, 4, 7, 3, 4, -5, 6, 3,
                  8, 2, 3, 4, 5, 6, 1, 2, 3, 4, 6, 4, 5, 6, 1, 2, 3, 4, -5, 6, 6, 4, 5, 6, 1, 2, 3, 4, -5, 6};
  const I8 r2o = {1, 2, 3, 4, 7, 3, 4, -5, 6, 3, 8, 2, 3, 4, 5, 6, 1, 2, 3, 4, 6, 4, 5, 6, 1, 2, 3, 4, -5, 6,
                  1, 2, 3, 4, 7, 3, 4, -5, 6, 3, 8, 2, 3, 4, 5, 6, 1, 2, 3, 4, 6, 4, 5, 6, 1, 2, 3, 4, -5, 6};
  const std::vector<int16_t> ln[4] = {{8, 2, 3, 4, 5, 6, 1, 2, 3, 4},
                                      {1, 2, 3, 4, 7, 3, 4, -5, 6, 3},
                                      {6, 4, 5, 6, 1, 2, 3, 4, -5, 6},
                                      {16, 4, 5, 6, 1, 1, 3, 4, -5, 6}};
  const std::vector<int32_t> gate_bias = {16, 4, 5, 6, 1, 1, 3, 4, -5, 6};
  const I8* wx[4] = {&i2i, &i2f, &i2c, &i2o};
  const I8* wh[4] = {&r_a, &r_a, &r_a, &r2o};
  const quant::QuantizedMultiplier mx[4] = {{1808677632, -1}, {1845996800, -3}, {1648385408, -2}, {1328153600, -1}};
  const quant::QuantizedMultiplier mh[4] = {{1078887680, -1}, {1477412736, -2}, {1185544192, -1}, {1479582592, -1}};
  const quant::QuantizedMultiplier mln[4] = {{2011617664, -11}, {1968024960, -13}, {1097334528, -12}, {1837163008, -12}};
  const int32_t guard[4] = {1, 2, 2, 1};
  const int32_t bx[4] = {-15, 152, 165, 159}, bh[4] = {315, 315, 1165, 915};
  for (int g = 0; g < 4; ++g) {
    IntegerLstmGate& G = L.g[g];
    G.wx = *wx[g];
    G.wh = *wh[g];
    G.mx = mx[g];
    G.mh = mh[g];
    G.mln = mln[g];
    G.ln_guard = guard[g];
    G.ln_w = ln[g];
    G.ln_bias = gate_bias;
    G.bias_x.assign(10, bx[g]);
    G.bias_h.assign(10, bh[g]);
  }
  L.proj = {8, 2, 3, 4, 5, 6, 1, 2, 3, 4, 6, 4, 5, 6, 1, 2, 3, 4, -5, 6, 1, 2, 3, 4, 7, 3, 4, -5, 6, 3,
            8, 2, 3, 4, 5, 6, 1, 2, 3, 4, 6, 4, 5, 6, 1, 2, 3, 4, -5, 6, 1, 2, 3, 4, 7, 3, 4, -5, 6, 3};
  L.proj_bias.assign(6, 115);
  L.mproj = {1105682560, -8};
  L.mhidden = {0, 0};
  L.hidden = {1.0f, 0};
  L.h = {1.0f, 50};
  L.cell_scale = -11;
  L.cell_clip = 20480;
  L.proj_clip = 0;
  L.pack();
  return L;
}

TEST(RuntimeLstmTflite, OneStepMatchesPublishedKernelVector) {
  const IntegerLstmLayer L = published_layer();
  const I8 x = {8, 2, 3, 4, 5, 6, 1, -2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, -3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6};
  const std::vector<int16_t> cell0 = {16, 4, 5, 6, 1, 1, 3, 4, -5, 6, 1, 14, 5, 6, 1, 1, 3, 4, -5, 6};
  const std::vector<int16_t> expected_cell = {7, 1, 3, 2, 0, 1, 0, 2, -2, 4, 1, 6, 4, 3, 0, 1, 0, 2, -2, 4};
  for (bool reference : {true, false}) {
    lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
      I8 h(12, 0);  // the published test starts from output-state codes 0
      std::vector<int16_t> c = cell0;
      IntegerLstmScratch s;
      integer_lstm_step(L, x.data(), 2, h.data(), c.data(), reference, s);
      EXPECT_EQ(c, expected_cell) << (reference ? "reference" : "fast");
      EXPECT_EQ(h, I8(12, 50)) << (reference ? "reference" : "fast");
    });
  }
}

}  // namespace
}  // namespace lowbit::runtime

namespace lowbit::runtime {
namespace {

// A layer whose matrices are all zero: every gate pre-activation is 0 unless a peephole adds to it.
IntegerLstmLayer zero_layer(int64_t I, int64_t C, int64_t P, bool cifg, bool peephole) {
  IntegerLstmLayer L;
  L.spec = {"pin", I, C, P, cifg, peephole, /*projection=*/true, /*layer_norm=*/false, 0.0f, 0.0f};
  for (int g = cifg ? 1 : 0; g < 4; ++g) {
    IntegerLstmGate& G = L.g[g];
    G.wx.assign(static_cast<std::size_t>(C * I), 0);
    G.wh.assign(static_cast<std::size_t>(C * P), 0);
    G.bias_x.assign(static_cast<std::size_t>(C), 0);
    G.bias_h.assign(static_cast<std::size_t>(C), 0);
    G.mx = G.mh = G.mp = {1 << 30, 0};
    if (peephole && g != 2) G.peep.assign(static_cast<std::size_t>(C), 0);
  }
  L.proj.assign(static_cast<std::size_t>(P * C), 0);
  L.proj_bias.assign(static_cast<std::size_t>(P), 0);
  L.mproj = {1 << 30, -1};  // 0.25
  L.mhidden = {1 << 30, -15};
  L.cell_scale = -11;
  return L;
}

TEST(RuntimeLstmTflite, HiddenZeroPointSignsOfTensorFlow216) {
  // o = σ(0) = 16384, c = 0, tanh(c) = 0. With a projection, TF 2.16.2's and LiteRT 1.4.0's kernel
  // quantizes the hidden value with the zero point subtracted: MBQM(0) − zp_hidden = −5 (measured
  // on converted models, tests/data/litert/). The projection's folded bias adds
  // +zp_hidden · rowsum(W) = 50, so acc = 50 + (−5)·10 = 0 and y = MBQM(0, 0.25) + zp_output = 3:
  // the two zero-point terms cancel. (Adding the zero point to the hidden value would give 28.)
  IntegerLstmLayer L = zero_layer(1, 1, 1, false, false);
  L.hidden = {0.01f, 5};
  L.h = {0.02f, 3};
  L.proj = {10};
  L.proj_bias = {0 + 5 * 10};  // what the loader folds: b + zp_hidden · rowsum
  L.pack();
  for (bool reference : {true, false}) {
    int8_t x = 0, h = 3;
    int16_t c = 0;
    IntegerLstmScratch s;
    integer_lstm_step(L, &x, 1, &h, &c, reference, s);
    EXPECT_EQ(c, 0);
    EXPECT_EQ(h, 3) << (reference ? "reference" : "fast");
  }
}

TEST(RuntimeLstmTflite, PeepholeCoversNOutputCellsWithRowStrideNOutput) {
  // CIFG, C = 2, P = 1, batch 2, every cell 1000, forget peephole weights 32767 with multiplier
  // 1/2: where a peephole term lands the forget gate saturates (σ(32767) = 32756) and the cell
  // keeps 1000; elsewhere f = σ(0) = 16384 halves it. The input gate is 1 − f and g = tanh(0) = 0.
  // TFLite's kernel adds n_output = 1 peephole term per batch row with row stride 1: row 0 reads
  // and writes cell 0, row 1 reads cell 1 and writes gate element 1 (row 0's cell 1). So row 0
  // keeps [1000, 1000] and row 1 is halved to [500, 500].
  IntegerLstmLayer L = zero_layer(1, 2, 1, true, true);
  L.g[1].peep = {32767, 32767};
  L.hidden = {0.01f, 0};
  L.h = {0.01f, 0};
  L.pack();
  for (bool reference : {true, false}) {
    const int8_t x[2] = {0, 0};
    int8_t h[2] = {0, 0};
    std::vector<int16_t> c = {1000, 1000, 1000, 1000};
    IntegerLstmScratch s;
    integer_lstm_step(L, x, 2, h, c.data(), reference, s);
    EXPECT_EQ(c, (std::vector<int16_t>{1000, 1000, 500, 500})) << (reference ? "reference" : "fast");
  }
}

}  // namespace
}  // namespace lowbit::runtime
