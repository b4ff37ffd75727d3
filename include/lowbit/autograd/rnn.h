// Recurrent ops over whole sequences: embedding lookup, LSTM, GRU and a tanh RNN.
//
// Each recurrent op is one fused autograd node over a sequence x[T, B, in] (time-major): the
// forward pass runs the T steps and keeps what the backward pass needs, the backward pass is
// back-propagation through time over the same T steps. The input-side products of all T steps
// are one GEMM ([T·B, in] · Wᵀ), the recurrent products one GEMM per step, and the weight
// gradients again one GEMM each over all steps (kernels::sgemm throughout).
//
// The initial state (h0, c0) is an argument and may require a gradient; the final state comes
// back as plain tensors (no gradient): truncated BPTT carries it into the next window detached.
//
// Weights are stacked by gate along the first dimension so that one GEMM serves every gate:
//   LSTM:  gates (i, f, g, o), or (f, g, o) with CIFG; g is the cell candidate (TFLite's "cell")
//   GRU:   gates (r, z, n)
// The exporter splits the stacks into TFLite's per-gate tensors (docs/formats.md, lstm_lm).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "lowbit/autograd/ops.h"
#include "lowbit/autograd/var.h"

namespace lowbit::autograd {

// Rows of table[V, E] picked by ids (each in [0, V)): [ids.size(), E]. The backward pass adds
// each output row's gradient into its table row only, so its cost is O(ids · E), not O(V · E).
Var embedding(const Var& table, std::span<const int32_t> ids);

// ---- LSTM -------------------------------------------------------------------------------------
// One step, for each batch row (σ = logistic, ⊙ = elementwise, C cells, P outputs):
//   a_G = W_G·x_t + R_G·h_{t−1} (+ p_G ⊙ c for G in {i, f, o} with peephole: c_{t−1} for i, f
//         and the new c_t for o)
//   layer norm: a_G ← ln_G ⊙ (a_G − mean(a_G)) / std(a_G) + b_G  (over the C cells; variance
//         E[a²] − mean², 1e−8 in its place when it is 0); without it a_G ← a_G + b_G
//   i = σ(a_i) (CIFG: i = 1 − f), f = σ(a_f), g = tanh(a_g), o = σ(a_o)
//   c_t = clip(f ⊙ c_{t−1} + i ⊙ g, ±cell_clip)            (cell_clip 0: no clipping)
//   m_t = o ⊙ tanh(c_t)
//   h_t = clip(W_proj·m_t + b_proj, ±proj_clip) with projection, else m_t
//   h_t = Q(h_t) when an output quantizer is set (QNN: the state is k-bit; straight-through
//         gradient), and that quantized h_t is both the output and the next step's state.
// This is TFLite's float LSTM (LN over the cells before the bias), so an exported model runs
// the same function in the runtime.
struct LstmConfig {
  bool cifg = false, peephole = false, projection = false, layer_norm = false;
  float cell_clip = 0.0f, proj_clip = 0.0f;
  std::optional<Quantizer> output_quant;
  int gates() const { return cifg ? 3 : 4; }
};

struct LstmWeights {
  Var w_x;       // [G·C, I]
  Var w_h;       // [G·C, P]
  Var bias;      // [G·C]
  Var peephole;  // [Gp·C]: (i, f, o), or (f, o) with CIFG; peephole only
  Var proj_w;    // [P, C]; projection only
  Var proj_b;    // [P]; optional with projection
  Var ln;        // [G·C] layer-norm coefficients; layer norm only
};

struct RnnState {
  Tensor h, c;  // [B, P] and [B, C] (c undefined for GRU and RNN)
};

// x [T, B, I] -> y [T, B, P]. h0 [B, P] and c0 [B, C] may be undefined (zeros). T >= 1.
// `final_state`, if given, receives h_T and c_T.
Var lstm(const Var& x, const Var& h0, const Var& c0, const LstmWeights& w, const LstmConfig& cfg,
         RnnState* final_state = nullptr);

// ---- GRU --------------------------------------------------------------------------------------
// PyTorch's formulation (H units):
//   r = σ(W_r·x + b_xr + R_r·h + b_hr), z = σ(W_z·x + b_xz + R_z·h + b_hz)
//   n = tanh(W_n·x + b_xn + r ⊙ (R_n·h + b_hn)),  h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
// then h_t = Q(h_t) with an output quantizer. w_x [3H, I], w_h [3H, H], b_x, b_h [3H].
struct GruWeights {
  Var w_x, w_h, b_x, b_h;
};
Var gru(const Var& x, const Var& h0, const GruWeights& w, const std::optional<Quantizer>& output_quant = std::nullopt,
        RnnState* final_state = nullptr);

// ---- vanilla RNN ------------------------------------------------------------------------------
// h_t = Q(tanh(W·x_t + R·h_{t−1} + b)); w_x [H, I], w_h [H, H], b [H].
struct RnnWeights {
  Var w_x, w_h, b;
};
Var rnn_tanh(const Var& x, const Var& h0, const RnnWeights& w,
             const std::optional<Quantizer>& output_quant = std::nullopt, RnnState* final_state = nullptr);

}  // namespace lowbit::autograd
