// Ternary quantization (Ternary Weight Networks, Li, Zhang & Liu 2016), the {−1, 0, +1} case
// that sits between binary and k-bit. Conventions (spans, in place, NaN errors) as binary.h.
//
// Rule, per row of a [rows, n / rows] view (rows = 1: per tensor; rows = output channels):
//   Δ = threshold_factor · mean |x|                     (TWN's approximation, factor 0.7)
//   t_i = +1 if x_i > Δ, −1 if x_i < −Δ, else 0         (|x_i| == Δ maps to 0)
//   α = mean of |x_i| over {i : t_i ≠ 0}                (TWN's optimal scale given Δ; 0 if none)
//   out_i = α · t_i   (or t_i alone when scaled = false)
#pragma once

#include <cstdint>
#include <limits>
#include <span>

namespace lowbit::quant {

struct TernaryParams {
  float delta = 0.0f;  // threshold Δ
  float alpha = 0.0f;  // scale α (1 when unscaled)
};

// Writes out and one TernaryParams per row into `params` (size rows).
void ternarize(std::span<const float> x, std::span<float> out, int64_t rows, std::span<TernaryParams> params,
               float threshold_factor = 0.7f, bool scaled = true);

// Integer codes {−1, 0, +1} for the runtime, with the same rule; params as ternarize.
void ternarize_codes(std::span<const float> x, std::span<int8_t> codes, int64_t rows,
                     std::span<TernaryParams> params, float threshold_factor = 0.7f);

// Straight-through backward, TWN style: Δ and α are treated as constants and the gradient goes
// straight to the latent weight: grad_in = grad_out · 1{|x| <= window}; the default window
// (infinity) passes everything. Use window = 1 with latent weights clipped to [−1, 1].
void ternarize_backward(std::span<const float> x, std::span<const float> grad_out, std::span<float> grad_in,
                        float window = std::numeric_limits<float>::infinity());

}  // namespace lowbit::quant
