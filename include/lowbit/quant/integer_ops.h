// Integer building blocks of the integer-only LSTM (TensorFlow Lite's 8x8_16 kernel, Li & Alvarez):
// gemmlowp-style 16-bit fixed-point exp / logistic / tanh, integer layer normalisation with its
// inverse-square-root multiplier, and the element-wise operations of one LSTM step. Every
// function is bit-exact to the TFLite reference ("portable") kernels of TensorFlow 2.16, including
// their quirks, which are kept on purpose so that a model gives the same integers here and there:
//
//  * 16-bit fixed-point addition and subtraction wrap (int16 modulo arithmetic); multiplication
//    is srdhm16 (saturating rounding doubling high multiply); format changes are saturating left
//    shifts or rounding right shifts (quant/fixed_point.h).
//  * cwise_mul_shift wraps: (−32768)·(−32768) >> 15 gives −32768, not 32767.
//  * cwise_mul_to_int8 ADDS the output zero point (TF >= 2.10; older versions subtracted it).
//  * layer_norm divides 2^20 by n with integer truncation (exact only for power-of-two n), and
//    its r·w product is 32-bit and wraps as in the portable kernel.
//  * tanh with integer_bits outside 0..6 is rejected (TFLite silently writes nothing).
//
// Formats: "Qm.n" is an int16 with m integer and n = 15 − m fractional bits. Gate
// pre-activations are Q3.12, gate outputs Q0.15 (a sigmoid output lies in [0, 32767]).
#pragma once

#include <cstdint>
#include <span>

#include "lowbit/quant/fixed_point.h"

namespace lowbit::quant::iops {

inline int16_t wrap16(int32_t x) { return static_cast<int16_t>(static_cast<uint16_t>(static_cast<uint32_t>(x))); }
inline int16_t sat16(int32_t x) { return static_cast<int16_t>(x < -32768 ? -32768 : (x > 32767 ? 32767 : x)); }
inline int8_t sat8(int32_t x) { return static_cast<int8_t>(x < -128 ? -128 : (x > 127 ? 127 : x)); }
inline int32_t wrap_add32(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}
inline int32_t wrap_mul32(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b));
}

// x · 2^e (1 <= e <= 15) saturated to int16 (gemmlowp SaturatingRoundingMultiplyByPOT, e > 0).
int16_t saturating_shl16(int16_t x, int e);
// x · 2^e (1 <= e <= 31) saturated to int32.
int32_t saturating_shl32(int32_t x, int e);
// A Q0.31 constant rounded to int16 (gemmlowp's constant initialiser: RDPOT(c, 16)).
inline int16_t q31_to_q15(int32_t c) { return static_cast<int16_t>(rounding_divide_by_pot(c, 16)); }

// exp(a) for a <= 0 given as Qk.(15−k), 0 <= k <= 7; result Q0.15 (exp(0) = 32767). For k > 5,
// inputs below −32 give 0.
int16_t exp_on_negative_values(int16_t a, int integer_bits);
// 1 / (1 + a) and (1 − a) / (1 + a) for a in [0, 1) in Q0.15 (three Newton–Raphson steps in Q2.13).
int16_t one_over_one_plus_x(int16_t a);
int16_t one_minus_x_over_one_plus_x(int16_t a);

// Logistic of a Qk.(15−k) value (the LSTM uses k = 3), result Q0.15.
int16_t logistic(int16_t a, int integer_bits = 3);
// tanh of a Qk.(15−k) value, 0 <= k <= 6 (throws otherwise), result Q0.15.
int16_t tanh(int16_t a, int integer_bits);

// Array forms over n_batch · n values (TFLite ApplySigmoid / ApplyTanh), identical to the element
// functions above. apply_* read a table of every int16 input (filled once, thread-safe, on first
// use); compute_* evaluate the fixed-point algorithm, vectorized with run-time instruction-set
// dispatch, and fill those tables.
void apply_sigmoid(const int16_t* in, int64_t count, int16_t* out);
void apply_tanh(int integer_bits, const int16_t* in, int64_t count, int16_t* out);
void compute_sigmoid(const int16_t* in, int64_t count, int16_t* out);
void compute_tanh(int integer_bits, const int16_t* in, int64_t count, int16_t* out);
// True when compute_* run the hand-vectorized AVX-512BW forms: slower than a table read that
// hits L2, faster than one that misses it (the integer LSTM uses them when its recurrent weights
// alone overflow L2, so that the tables would be evicted on every step).
bool computed_activations_fast();

// TFLite GetInvSqrtQuantizedMultiplierExp: (multiplier, shift) with x·multiplier·2^(shift−31)
// ≈ x / √input, for input >= 0 (input <= 1 gives (INT32_MAX, 0)). reverse_shift is −1 in the LSTM.
QuantizedMultiplier inv_sqrt_multiplier(int32_t input, int reverse_shift);

// Integer layer norm of each of n_batch rows of n int16 values (TFLite ApplyLayerNorm):
// out = sat16(MBQM(((MBQM(1024·v − mean', inv_sqrt(var)) · w[j] + bias[j]) ± 512) / 1024,
//                  ln_multiplier, ln_shift + 12)).
void layer_norm(const int16_t* in, const int16_t* weight, const int32_t* bias, int32_t ln_multiplier,
                int ln_shift, int32_t variance_limit, int64_t n_batch, int64_t n, int16_t* out);

// out[i] = int16(RDPOT(a[i]·b[i], shift)), wrapping (TFLite CwiseMul, shift form).
void cwise_mul_shift(const int16_t* a, const int16_t* b, int64_t count, int shift, int16_t* out);
// out[i] = clamp8(MBQM(a[i]·b[i], multiplier, shift) + zero_point) (TFLite CwiseMul, int8 form).
void cwise_mul_to_int8(const int16_t* a, const int16_t* b, int64_t count, int32_t multiplier, int shift,
                       int32_t zero_point, int8_t* out);
// out[i] = sat16(a[i] + b[i]).
void cwise_add_sat(const int16_t* a, const int16_t* b, int64_t count, int16_t* out);
// out[i] = 32767 − in[i] (CIFG input gate).
void sub1(const int16_t* in, int64_t count, int16_t* out);
// Clamp to [−clip, clip] on the raw integers (clip > 0).
void clip16(int16_t* v, int64_t count, int16_t clip);
void clip8(int8_t* v, int64_t count, int8_t clip);

// TFLite MatrixBatchVectorMultiplyAccumulate (8x8_16 / 8x8_8): for each batch row b and output
// row r, acc = bias[r] + Σ_k x[b,k]·w[r,k] (int32, wrapping), then
// out[b,r] = sat(MBQM(acc, multiplier, shift) + out_zp + out[b,r]). Scalar reference.
void matmul_accumulate_ref(const int8_t* x, int64_t n_batch, int64_t n_in, const int8_t* w, int64_t n_out,
                           const int32_t* bias, int32_t multiplier, int shift, int32_t out_zp, int16_t* out);
void matmul_accumulate_ref(const int8_t* x, int64_t n_batch, int64_t n_in, const int8_t* w, int64_t n_out,
                           const int32_t* bias, int32_t multiplier, int shift, int32_t out_zp, int8_t* out);
// The second half of matmul_accumulate on precomputed sums (out_zp 0, int16 output):
// out[j] = sat16(MBQM(bias[j] + acc[j] (wrapping), multiplier, shift) + out[j]), vectorized.
void rescale_accumulate(const int32_t* acc, const int32_t* bias, int32_t multiplier, int shift, int64_t n,
                        int16_t* out);
// Peephole: out[b,j] = sat16(MBQM(p[j]·c[b,j], multiplier, shift) + out[b,j]), j < n.
void peephole_accumulate(const int16_t* p, int64_t n, const int16_t* c, int64_t n_batch, int64_t c_stride,
                         int32_t multiplier, int shift, int16_t* out, int64_t out_stride);

}  // namespace lowbit::quant::iops
