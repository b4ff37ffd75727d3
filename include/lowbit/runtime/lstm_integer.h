// The precomputed parameters of one integer (8x8_16) LSTM layer and its step, as TFLite's
// Prepare and LstmStepInteger8x8_16 define them. LstmModel (runtime/lstm.h) builds these from a
// model file; they are public so that the step can be checked against TFLite's published kernel
// vectors, which give the multipliers and folded biases directly.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/kernels/igemm.h"
#include "lowbit/quant/fixed_point.h"
#include "lowbit/runtime/lstm.h"

namespace lowbit::runtime {

struct LstmQuant {
  float scale = 0.0f;
  int32_t zero_point = 0;
};

// Gate index: 0 input, 1 forget, 2 cell, 3 output.
struct IntegerLstmGate {
  std::vector<int8_t> wx, wh;           // input→gate [C, I], recurrent→gate [C, P]
  std::vector<int32_t> bias_x, bias_h;  // folded biases of the two matmuls [C]
  quant::QuantizedMultiplier mx, mh;    // their rescales to the gate (Q3.12 or the gate scale)
  quant::QuantizedMultiplier mp;        // peephole (peephole layers, gates 0, 1, 3)
  std::vector<int16_t> peep;            // [C]
  quant::QuantizedMultiplier mln;       // layer norm (the step adds 12 to its shift)
  int32_t ln_guard = 1;                 // variance guard
  std::vector<int16_t> ln_w;            // [C]
  std::vector<int32_t> ln_bias;         // [C], added inside the layer norm
};

struct IntegerLstmLayer {
  LstmLayerSpec spec;
  std::vector<int> gates;  // set by pack()
  IntegerLstmGate g[4];
  std::vector<int8_t> proj;        // [P, C]
  std::vector<int32_t> proj_bias;  // folded [P]
  quant::QuantizedMultiplier mproj, mhidden;
  LstmQuant x, h, hidden;  // int8 input, output state, hidden (o·tanh(c)) quantization
  float cell_scale_real = 0.0f;
  int cell_scale = -15;    // log2 of the cell scale, −15..−9
  int16_t cell_clip = 0;   // quantized, 0 = none
  int8_t proj_clip = 0;
  kernels::PackedWeightsI8 wx_all, wh_all, proj_packed;  // set by pack()

  // Concatenates and packs the gate matrices for the fast path; call after filling the weights.
  void pack();
};

struct IntegerLstmScratch {
  std::vector<int16_t> gate[4], tmp, tanh_c;
  std::vector<int8_t> hidden;
  std::vector<int32_t> accx, acch, accp;
};

// One time step for B batch rows: x int8 [B, I], h int8 [B, P] (updated), c int16 [B, C]
// (updated). `reference` selects the scalar path. `accx`, when given (fast path only), holds the
// raw int32 sums W_x·x of this step's rows, [B, G·C] in the order of `wx_all`, computed ahead for
// many steps at once by one GEMM (the input does not depend on the recurrence); x is then not read.
void integer_lstm_step(const IntegerLstmLayer& layer, const int8_t* x, int64_t B, int8_t* h, int16_t* c,
                       bool reference, IntegerLstmScratch& scratch, const int32_t* accx = nullptr);

}  // namespace lowbit::runtime
