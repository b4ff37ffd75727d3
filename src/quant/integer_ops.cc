// Integer building blocks of the integer-only LSTM; see quant/integer_ops.h. The fixed-point
// algorithms follow the published definitions of gemmlowp's fixedpoint.h (exp on [−1/4, 0) by a
// Taylor polynomial around −1/8 and a barrel shifter of exp(−2^k) constants, Newton–Raphson
// reciprocals with the 48/17 − 32/17·d start) with every format written as an explicit count of
// integer bits.
#include "lowbit/quant/integer_ops.h"

#include <limits>

#include "lowbit/core/error.h"

namespace lowbit::quant::iops {

int16_t saturating_shl16(int16_t x, int e) {
  const int32_t threshold = (1 << (15 - e)) - 1;
  if (x > threshold) return std::numeric_limits<int16_t>::max();
  if (x < -threshold) return std::numeric_limits<int16_t>::min();
  return wrap16(static_cast<int32_t>(x) * (1 << e));
}

int32_t saturating_shl32(int32_t x, int e) {
  const int32_t threshold = static_cast<int32_t>((int64_t{1} << (31 - e)) - 1);
  if (x > threshold) return std::numeric_limits<int32_t>::max();
  if (x < -threshold) return std::numeric_limits<int32_t>::min();
  return shift_left_wrapping(x, e);
}

namespace {

inline int16_t rdpot16(int16_t x, int e) { return static_cast<int16_t>(rounding_divide_by_pot(x, e)); }

// exp(a) for a in [−1/4, 0), Q0.15 in and out.
int16_t exp_quarter_interval(int16_t a) {
  const int16_t constant_term = q31_to_q15(1895147668);  // exp(−1/8)
  const int16_t one_third = q31_to_q15(715827883);
  const int16_t one_eighth = q31_to_q15(1 << 28);
  const int16_t x = wrap16(a + one_eighth);
  const int16_t x2 = srdhm16(x, x);
  const int16_t x3 = srdhm16(x2, x);
  const int16_t x4 = srdhm16(x2, x2);
  const int16_t x4_over_4 = rdpot16(x4, 2);
  const int16_t poly = rdpot16(wrap16(srdhm16(wrap16(x4_over_4 + x3), one_third) + x2), 1);
  return sat16(static_cast<int32_t>(constant_term) + srdhm16(constant_term, wrap16(x + poly)));
}

struct Barrel {
  int exponent;
  int32_t q31;  // exp(−2^exponent) in Q0.31
};
constexpr Barrel kBarrel[] = {{-2, 1672461947}, {-1, 1302514674}, {0, 790015084}, {1, 290630308},
                              {2, 39332535},    {3, 720401},      {4, 242}};

// The shared Newton–Raphson iteration: x ≈ 1 / half_denominator in Q2.13.
int16_t reciprocal_q2_13(int16_t half_denominator) {
  const int16_t c48_17 = q31_to_q15(1515870810);
  const int16_t cm32_17 = q31_to_q15(-1010580540);
  const int16_t one_q2 = 1 << 13;
  int16_t x = wrap16(c48_17 + srdhm16(half_denominator, cm32_17));
  for (int i = 0; i < 3; ++i) {
    const int16_t hdx = srdhm16(half_denominator, x);
    const int16_t one_minus = wrap16(one_q2 - hdx);
    x = wrap16(x + saturating_shl16(srdhm16(x, one_minus), 2));
  }
  return x;
}

// (a + b) / 2 rounded half away from zero, computed in 32 bits.
int16_t rounding_half_sum16(int16_t a, int16_t b) {
  const int32_t sum = static_cast<int32_t>(a) + b;
  return static_cast<int16_t>((sum + (sum >= 0 ? 1 : -1)) / 2);
}

}  // namespace

int16_t exp_on_negative_values(int16_t a, int integer_bits) {
  LOWBIT_CHECK(integer_bits >= 0 && integer_bits <= 7, "exp_on_negative_values: integer_bits ", integer_bits,
               " (expected 0..7)");
  const int k = integer_bits;
  const int frac = 15 - k;
  const int16_t one_quarter = static_cast<int16_t>(1 << (frac - 2));
  const int16_t mask = static_cast<int16_t>(one_quarter - 1);
  const int16_t a_mod_minus_quarter = wrap16((a & mask) - one_quarter);
  const int16_t rescaled = k == 0 ? a_mod_minus_quarter : saturating_shl16(a_mod_minus_quarter, k);
  int16_t result = exp_quarter_interval(rescaled);
  const int16_t remainder = wrap16(a_mod_minus_quarter - a);
  for (const Barrel& b : kBarrel) {
    if (k > b.exponent) {
      const int shift = frac + b.exponent;
      if (remainder & (1 << shift)) result = srdhm16(result, q31_to_q15(b.q31));
    }
  }
  if (k > 5) {
    const int16_t clamp = q31_to_q15(-(1 << (36 - k)));  // −32
    if (a < clamp) result = 0;
  }
  if (a == 0) result = std::numeric_limits<int16_t>::max();
  return result;
}

int16_t one_over_one_plus_x(int16_t a) {
  const int16_t x = reciprocal_q2_13(rounding_half_sum16(a, std::numeric_limits<int16_t>::max()));
  // x / 2 read as Q1.14, then to Q0.15.
  return saturating_shl16(x, 1);
}

int16_t one_minus_x_over_one_plus_x(int16_t a) {
  const int16_t x = reciprocal_q2_13(rounding_half_sum16(a, std::numeric_limits<int16_t>::max()));
  return saturating_shl16(wrap16(x - (1 << 13)), 2);
}

int16_t logistic(int16_t a, int integer_bits) {
  if (a == 0) return q31_to_q15(1 << 30);  // 0.5
  const int16_t abs_a = a > 0 ? a : wrap16(-static_cast<int32_t>(a));
  const int16_t pos = one_over_one_plus_x(exp_on_negative_values(wrap16(-static_cast<int32_t>(abs_a)), integer_bits));
  return a > 0 ? pos : wrap16(std::numeric_limits<int16_t>::max() - pos);
}

int16_t tanh(int16_t a, int integer_bits) {
  LOWBIT_CHECK(integer_bits >= 0 && integer_bits <= 6, "integer tanh: ", integer_bits,
               " integer bits (supported 0..6; for the LSTM cell this means a cell scale of 2^-15 .. 2^-9)");
  if (a == 0) return 0;
  const int16_t n = a < 0 ? a : wrap16(-static_cast<int32_t>(a));
  // exp(2n): the same raw value read with one more integer bit.
  const int16_t t = one_minus_x_over_one_plus_x(exp_on_negative_values(n, integer_bits + 1));
  return a < 0 ? wrap16(-static_cast<int32_t>(t)) : t;
}

// apply_sigmoid and apply_tanh (the vectorized array forms) are in integer_ops_vec.cc.

QuantizedMultiplier inv_sqrt_multiplier(int32_t input, int reverse_shift) {
  LOWBIT_CHECK(input >= 0, "inv_sqrt_multiplier: negative input ", input);
  if (input <= 1) return {std::numeric_limits<int32_t>::max(), 0};
  int shift = 11;
  while (input >= (1 << 29)) {
    input /= 4;
    ++shift;
  }
  const int max_left_shift_bits = __builtin_clz(static_cast<uint32_t>(input)) - 1;
  const int left_shift_bit_pairs = max_left_shift_bits / 2 - 1;
  shift -= left_shift_bit_pairs;
  input <<= 2 * left_shift_bit_pairs;
  // Q3.28 Newton–Raphson for 1/√input on the normalised input.
  const int32_t fp_input = input >> 1;
  const int32_t half_input = rounding_divide_by_pot(fp_input, 1);
  const int32_t half_three = (1 << 28) + (1 << 27);
  int32_t x = 1 << 28;
  for (int i = 0; i < 5; ++i) {
    const int32_t x3 = saturating_shl32(srdhm(srdhm(x, x), x), 6);
    const int32_t diff = static_cast<int32_t>(static_cast<uint32_t>(srdhm(half_three, x)) -
                                              static_cast<uint32_t>(srdhm(half_input, x3)));
    x = saturating_shl32(diff, 3);
  }
  x = srdhm(x, 1518500250);  // · √2/2
  if (shift < 0) {
    x = shift_left_wrapping(x, -shift);
    shift = 0;
  }
  return {x, shift * reverse_shift};
}

void layer_norm(const int16_t* in, const int16_t* weight, const int32_t* bias, int32_t ln_multiplier, int ln_shift,
                int32_t variance_limit, int64_t n_batch, int64_t n, int16_t* out) {
  constexpr int32_t kTwoTo20 = 1 << 20;
  for (int64_t b = 0; b < n_batch; ++b) {
    const int16_t* v = in + b * n;
    int16_t* o = out + b * n;
    int64_t sum = 0, sum_sq = 0;
    for (int64_t j = 0; j < n; ++j) {
      const int32_t x = v[j];
      sum += x;
      sum_sq += x * x;
    }
    const auto mean = static_cast<int32_t>(sum * 1024 / n);
    const auto inv_n = static_cast<int32_t>(kTwoTo20 / n);  // truncating on purpose
    const int64_t variance = sum_sq * inv_n - static_cast<int64_t>(mean) * mean;
    auto variance2 = static_cast<int32_t>(variance / kTwoTo20);
    if (variance2 < 1) variance2 = variance_limit;
    const QuantizedMultiplier inv = inv_sqrt_multiplier(variance2, -1);
    for (int64_t j = 0; j < n; ++j) {
      const int32_t shifted = wrap_mul32(1024, v[j]) - mean;
      const int32_t rescaled = multiply_by_quantized_multiplier(shifted, inv.multiplier, inv.shift);
      const int64_t t = wrap_add32(wrap_mul32(rescaled, weight[j]), bias[j]);  // 32-bit, as the portable kernel
      const auto u = static_cast<int32_t>((t > 0 ? t + 512 : t - 512) / 1024);
      o[j] = sat16(multiply_by_quantized_multiplier(u, ln_multiplier, ln_shift + 12));
    }
  }
}

void cwise_mul_shift(const int16_t* a, const int16_t* b, int64_t count, int shift, int16_t* out) {
  for (int64_t i = 0; i < count; ++i)
    out[i] = wrap16(rounding_divide_by_pot(static_cast<int32_t>(a[i]) * b[i], shift));
}

// cwise_mul_to_int8 (vectorized) is in integer_ops_vec.cc.

void cwise_add_sat(const int16_t* a, const int16_t* b, int64_t count, int16_t* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = sat16(static_cast<int32_t>(a[i]) + b[i]);
}

void sub1(const int16_t* in, int64_t count, int16_t* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = wrap16(32767 - in[i]);
}

void clip16(int16_t* v, int64_t count, int16_t clip) {
  for (int64_t i = 0; i < count; ++i) {
    if (v[i] > clip) v[i] = clip;
    if (v[i] < -clip) v[i] = static_cast<int16_t>(-clip);
  }
}

void clip8(int8_t* v, int64_t count, int8_t clip) {
  for (int64_t i = 0; i < count; ++i) {
    if (v[i] > clip) v[i] = clip;
    if (v[i] < -clip) v[i] = static_cast<int8_t>(-clip);
  }
}

namespace {
template <typename T>
void matmul_accumulate_impl(const int8_t* x, int64_t n_batch, int64_t n_in, const int8_t* w, int64_t n_out,
                            const int32_t* bias, int32_t multiplier, int shift, int32_t out_zp, T* out) {
  for (int64_t b = 0; b < n_batch; ++b) {
    for (int64_t r = 0; r < n_out; ++r) {
      int32_t acc = bias ? bias[r] : 0;
      for (int64_t k = 0; k < n_in; ++k) acc = wrap_add32(acc, static_cast<int32_t>(x[b * n_in + k]) * w[r * n_in + k]);
      int32_t v = multiply_by_quantized_multiplier(acc, multiplier, shift) + out_zp + out[b * n_out + r];
      v = saturate(v, std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
      out[b * n_out + r] = static_cast<T>(v);
    }
  }
}
}  // namespace

void matmul_accumulate_ref(const int8_t* x, int64_t n_batch, int64_t n_in, const int8_t* w, int64_t n_out,
                           const int32_t* bias, int32_t multiplier, int shift, int32_t out_zp, int16_t* out) {
  matmul_accumulate_impl(x, n_batch, n_in, w, n_out, bias, multiplier, shift, out_zp, out);
}
void matmul_accumulate_ref(const int8_t* x, int64_t n_batch, int64_t n_in, const int8_t* w, int64_t n_out,
                           const int32_t* bias, int32_t multiplier, int shift, int32_t out_zp, int8_t* out) {
  matmul_accumulate_impl(x, n_batch, n_in, w, n_out, bias, multiplier, shift, out_zp, out);
}

void peephole_accumulate(const int16_t* p, int64_t n, const int16_t* c, int64_t n_batch, int64_t c_stride,
                         int32_t multiplier, int shift, int16_t* out, int64_t out_stride) {
  for (int64_t b = 0; b < n_batch; ++b)
    for (int64_t j = 0; j < n; ++j) {
      const int32_t prod = multiply_by_quantized_multiplier(static_cast<int32_t>(p[j]) * c[b * c_stride + j],
                                                            multiplier, shift);
      out[b * out_stride + j] = sat16(prod + out[b * out_stride + j]);
    }
}

}  // namespace lowbit::quant::iops
