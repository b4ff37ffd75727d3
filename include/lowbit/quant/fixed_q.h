// Sign-magnitude fixed point Q(I.F), the "conventional" quantizer of Q-MANN (Park et al.,
// qmann.md §4): one sign bit, I integer bits and F fraction bits (n = 1 + I + F). Values are
// multiples of 2^-F with magnitude at most (2^(I+F) − 1) / 2^F; the range is symmetric (sign-
// magnitude has no extra negative code):
//   q(x) = sign(x) · min(R(|x| · 2^F), 2^(I+F) − 1) / 2^F
// with R = floor (truncation toward zero, the Q-MANN code's default) or R = round to nearest
// with ties away from zero. The binary case I + F = 0 is special (Q-MANN): q(x) = +1 if
// x >= 0 else −1 (so q(0) = +1, and 0 is not representable).
// Conventions (spans, in place, NaN errors) as binary.h; ±inf saturate.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace lowbit::quant {

enum class FixedRounding : uint8_t {
  truncate,  // toward zero (Q-MANN default)
  nearest,   // to nearest, ties away from zero
};

struct FixedFormat {
  int int_bits = 0;   // I >= 0
  int frac_bits = 7;  // F >= 0; I + F <= 23 so that every level is exact in float
  int total_bits() const { return 1 + int_bits + frac_bits; }
  bool is_binary() const { return int_bits + frac_bits == 0; }
  // Largest magnitude, (2^(I+F) − 1) / 2^F (1 for the binary format).
  double max_value() const;
  std::string str() const;  // "Q2.5"
};

// Throws lowbit::Error unless I >= 0, F >= 0 and I + F <= 23.
void check_format(const FixedFormat& f, const char* fn);

// Scalar forward (no NaN check: NaN gives NaN).
float fixed_quantize(float x, FixedFormat f, FixedRounding r = FixedRounding::truncate);
void fixed_quantize(std::span<const float> x, std::span<float> out, FixedFormat f,
                    FixedRounding r = FixedRounding::truncate);

// Straight-through backward. With clip_mask = false (the Q-MANN code) grad_in = grad_out
// everywhere, saturation included. With clip_mask = true, grad_in = grad_out · 1{|x| <= max}
// where max = (2^(I+F) − 1)/2^F, or 1 for the binary format (hard-tanh window, as BNN).
void fixed_quantize_backward(std::span<const float> x, std::span<const float> grad_out, std::span<float> grad_in,
                             FixedFormat f, bool clip_mask = false);

// Integer codes for the runtime: code = q(x) · 2^F, an integer in [−(2^(I+F) − 1), 2^(I+F) − 1]
// stored in two's complement (the binary format stores ±1). int8 needs I + F <= 7, int16
// I + F <= 15; otherwise these throw.
void fixed_to_codes(std::span<const float> x, std::span<int8_t> codes, FixedFormat f,
                    FixedRounding r = FixedRounding::truncate);
void fixed_to_codes(std::span<const float> x, std::span<int16_t> codes, FixedFormat f,
                    FixedRounding r = FixedRounding::truncate);
// value = code / 2^F; codes outside the format's range throw (a binary code must be ±1).
void fixed_from_codes(std::span<const int8_t> codes, std::span<float> out, FixedFormat f);
void fixed_from_codes(std::span<const int16_t> codes, std::span<float> out, FixedFormat f);

}  // namespace lowbit::quant
