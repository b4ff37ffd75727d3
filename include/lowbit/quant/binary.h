// Binarization (BNN/QNN, Hubara et al.; Q-MANN binary; XNOR-Net scaling).
//
// Conventions shared by the quant layer:
//   * Buffers are spans of float; `out` must have the size of `x` and may be the same buffer
//     (in place); partially overlapping buffers are not allowed. Size mismatches throw
//     lowbit::Error naming the sizes.
//   * NaN inputs throw lowbit::Error naming the index, before anything is written. Infinities
//     are ordinary large values (sign(+inf) = +1, sign(−inf) = −1).
//   * Backward functions take the forward input x and the upstream gradient g and write the
//     input gradient; `grad_in` may be the same buffer as `grad_out`. They do not check x for
//     NaN (a NaN x simply fails every |x| <= w test and gets gradient 0).
//   * Stochastic functions draw element i's noise from uniform01(seed, counter_offset + i)
//     (rng.h): the result depends on the seed and the element's index only. A caller that splits
//     a tensor into chunks (threads) passes each chunk's start index as counter_offset and gets
//     the same result as one call on the whole tensor.
#pragma once

#include <cstdint>
#include <span>

#include "lowbit/core/tensor.h"

namespace lowbit::quant {

// Sign with sign(0) = +1 (qnn.md §1: the paper and the Theano code; sign(−0.0) = +1 too).
inline float sign_pm1(float x) { return x >= 0.0f ? 1.0f : -1.0f; }

// Hard sigmoid σ(x) = clip((x + 1) / 2, 0, 1), the probability of +1 in stochastic binarization.
inline float hard_sigmoid(float x) {
  const float p = (x + 1.0f) * 0.5f;
  return p < 0.0f ? 0.0f : (p > 1.0f ? 1.0f : p);
}

// Deterministic binarization: out = sign(x) in {−1, +1}.
void binarize(std::span<const float> x, std::span<float> out);
Tensor binarize(const Tensor& x);

// Stochastic binarization: out = +1 with probability hard_sigmoid(x), else −1; the draw for
// element i is uniform01(seed, counter_offset + i) < hard_sigmoid(x[i]). E[out] = clip(x, −1, 1).
void binarize_stochastic(std::span<const float> x, std::span<float> out, uint64_t seed,
                         uint64_t counter_offset = 0);

// Straight-through estimator of sign through hard tanh (qnn.md §1):
// grad_in = grad_out · 1{|x| <= window}. window = 1 is the paper's rule; a wider window is the
// "relaxed hard tanh" of the QNN ImageNet runs (qnn.md §7). Used for both deterministic and
// stochastic binarization, for weights and for activations.
void binarize_backward(std::span<const float> x, std::span<const float> grad_out, std::span<float> grad_in,
                       float window = 1.0f);

// Scaled binarization (XNOR-Net; Q-MANN's binary-weight layers): out = α · sign(x) with
// α = mean |x| computed per row of a [rows, n / rows] view (rows = 1: one α per tensor; rows =
// output channels: one α per output row, axis 0). α is written to `alpha` (size rows). A row of
// zeros gets α = 0 and output 0.
void binarize_scaled(std::span<const float> x, std::span<float> out, int64_t rows, std::span<float> alpha);

// Gradient of out = α(x) · sign(x) with α = mean |x| over the row, using the STE for sign and
// the exact derivative of α (d|x_i|/dx_i = sign(x_i), sign(0) = +1 as in the forward):
//   grad_in_i = α · g_i · 1{|x_i| <= window} + sign(x_i) / n_row · Σ_j g_j · sign(x_j).
// This is what reverse-mode differentiation of the forward gives when sign's derivative is
// replaced by the hard-tanh STE. (α treated as a constant would drop the second term.)
void binarize_scaled_backward(std::span<const float> x, std::span<const float> grad_out, int64_t rows,
                              std::span<float> grad_in, float window = 1.0f);

}  // namespace lowbit::quant
