// k-bit quantizers of QNN (Hubara et al., qnn.md §3, §3.1, §6, §12): uniform (linear) and
// logarithmic quantization with clipped straight-through gradients, k-bit weights and
// activations with their integer codes, and stochastic gradient quantization.
// Conventions (spans, in place, NaN errors, seeds) as binary.h.
//
// Rounding: every "round" here is to nearest with ties away from zero, as Theano's round() in
// the QNN/BNN code and TFLite's TfLiteRound; computed in double so that a tie is a real tie of
// the float inputs, not an artefact of a float division.
#pragma once

#include <cstdint>
#include <span>

namespace lowbit::quant {

// ---- QNN LinearQuant ----------------------------------------------------------------------
// out = clip(round(x / step) · step, min_v, max_v): a uniform quantizer with step Δ = `step`
// clipped to [min_v, max_v] (qnn.md §3; the paper's "bitwidth" argument acts as the step).
// Requires step > 0 finite and min_v <= max_v. ±inf saturate to min_v / max_v.
void linear_quant(std::span<const float> x, std::span<float> out, float step, float min_v, float max_v);

// Clipped STE (qnn.md §3): grad_in = grad_out · 1{min_v <= x <= max_v}.
void clipped_ste_backward(std::span<const float> x, std::span<const float> grad_out, std::span<float> grad_in,
                          float min_v, float max_v);
inline void linear_quant_backward(std::span<const float> x, std::span<const float> grad_out,
                                  std::span<float> grad_in, float min_v, float max_v) {
  clipped_ste_backward(x, grad_out, grad_in, min_v, max_v);
}

// ---- AP2 and LogQuant ----------------------------------------------------------------------
// AP2(x) = sign(x) · 2^round(log2 |x|), the power of two nearest to x in the log domain, used by
// shift-based batch norm and AdaMax (qnn.md §6). AP2(±0) = ±0, AP2(±inf) = ±inf, NaN -> NaN (the
// scalar form does not throw). No float lies exactly on a log-domain tie (|x| = 2^(n + 1/2) is
// irrational), so the tie rule never matters. |x| >= 2^127.5 gives ±inf (2^128 overflows float).
float ap2(float x);
void ap2(std::span<const float> x, std::span<float> out);

// LogQuant(x) = clip(AP2(x), min_v, max_v) (qnn.md §3); 0 stays 0 (then clipped). Requires
// min_v <= max_v. Backward: the clipped STE above with the same min_v, max_v.
void log_quant(std::span<const float> x, std::span<float> out, float min_v, float max_v);
inline void log_quant_backward(std::span<const float> x, std::span<const float> grad_out,
                               std::span<float> grad_in, float min_v, float max_v) {
  clipped_ste_backward(x, grad_out, grad_in, min_v, max_v);
}

// ---- k-bit weights (symmetric, 2^k levels in [−clip, clip]) ----------------------------------
// Levels v_j = clip · (2j − L) / L, j = 0..L, L = 2^k − 1 (qnn.md §12 item 2, the DoReFa-style
// "mid-rise" grid: the levels are odd multiples of clip / L and do not include 0). The code is
//   j = round((clamp(x, −clip, clip) / clip + 1) / 2 · L),  ties to the larger j,
// the nearest level, a midpoint going to the level above. x = 0 is such a midpoint and goes up,
// so for k = 1 the levels are {−clip, +clip} and the quantizer is sign(x)·clip with sign(0) = +1
// (binarize() when clip = 1; any x < 0, however tiny, goes down). It is evaluated as
// j = (L + 1)/2 + floor(x · L / (2 · clip)), which is exact for float inputs (forming
// x/clip + 1 first would round −1e-30 up to the tie). bits in [1, 8], clip > 0 finite.
// The runtime stores j as an unsigned k-bit code (one bit-plane per bit, qnn.md §3 "Cost");
// the signed odd integer 2j − L is the value in units of clip / L.
void quantize_weights_kbit(std::span<const float> x, std::span<float> out, int bits, float clip = 1.0f);
void weights_kbit_to_codes(std::span<const float> x, std::span<uint8_t> codes, int bits, float clip = 1.0f);
void weights_kbit_from_codes(std::span<const uint8_t> codes, std::span<float> out, int bits, float clip = 1.0f);
// STE through the clamp: grad_in = grad_out · 1{|x| <= clip}.
void quantize_weights_kbit_backward(std::span<const float> x, std::span<const float> grad_out,
                                    std::span<float> grad_in, float clip = 1.0f);

// ---- k-bit activations (unsigned, 2^k levels in [0, clip]) ------------------------------------
// Levels v_j = clip · j / L, j = 0..L, L = 2^k − 1, j = round(clamp(x, 0, clip) / clip · L).
// k = 1 gives {0, clip} with threshold clip/2 (ties up). bits in [1, 8], clip > 0 finite.
void quantize_activations_kbit(std::span<const float> x, std::span<float> out, int bits, float clip = 1.0f);
void activations_kbit_to_codes(std::span<const float> x, std::span<uint8_t> codes, int bits, float clip = 1.0f);
void activations_kbit_from_codes(std::span<const uint8_t> codes, std::span<float> out, int bits,
                                 float clip = 1.0f);
// grad_in = grad_out · 1{0 <= x <= clip}.
void quantize_activations_kbit_backward(std::span<const float> x, std::span<const float> grad_out,
                                        std::span<float> grad_in, float clip = 1.0f);

// ---- stochastic rounding and gradient quantization --------------------------------------------
// out = step · floor(x / step + u), u = uniform01(seed, counter_offset + i): rounds down or up to a multiple of
// step with P(up) = frac(x / step), so E[out] = x. Requires step > 0 finite; ±inf stay ±inf.
void stochastic_round(std::span<const float> x, std::span<float> out, float step, uint64_t seed,
                      uint64_t counter_offset = 0);

// QNN 6-bit gradients, DoReFa-style (qnn.md §3.1):
//   g_q = 2m · [Q_k(g / 2m + 1/2 + N_k) − 1/2],  m = max |g| over the tensor,
// with Q_k rounding onto the 2^k levels j / L of [0, 1] (L = 2^k − 1) and N_k = σ / L,
// σ ~ U[−1/2, 1/2): implemented as j = floor((g / 2m + 1/2) · L + u), u ~ U[0, 1), which is the
// same stochastic rounding (P(up) equals the fractional part) and keeps j in [0, L]. So E[g_q] = g
// and g_q takes 2^k values spaced 2m / L. All-zero g gives 0. Returns m (the per-tensor scale).
// Requires finite g (an infinite gradient has no scale) and bits in [1, 16]. The noise of
// element i is uniform01(seed, i); m needs the whole tensor, so there is no chunked form.
float quantize_gradient(std::span<const float> g, std::span<float> out, int bits, uint64_t seed);

}  // namespace lowbit::quant
