#include "lowbit/quant/kbit.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lowbit/core/cpu.h"
#include "lowbit/core/target.h"
#include "lowbit/quant/rng.h"
#include "quant/common.h"

#if LOWBIT_X86
#include <immintrin.h>
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() values, which
// -Wmaybe-uninitialized reports once inlined (GCC bug 105593); the values are never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace lowbit::quant {

using detail::check_no_nan;
using detail::check_size;
using detail::round_away;

namespace {

void check_range(const char* fn, float min_v, float max_v) {
  LOWBIT_CHECK(!std::isnan(min_v) && !std::isnan(max_v) && min_v <= max_v, fn, ": expected min_v <= max_v, got [",
               min_v, ", ", max_v, "]");
}

void check_bits(const char* fn, int bits, int max_bits) {
  LOWBIT_CHECK(bits >= 1 && bits <= max_bits, fn, ": bits must be in [1, ", max_bits, "], got ", bits);
}

void check_positive(const char* fn, const char* what, float v) {
  LOWBIT_CHECK(std::isfinite(v) && v > 0.0f, fn, ": ", what, " must be finite and > 0, got ", v);
}

double clampd(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Code j of a symmetric k-bit weight (see the header): j = (L + 1)/2 + floor(x·L / 2clip),
// clamped. x·L is exact in double and the one division is correctly rounded, so an exact
// midpoint gives an exact integer and nothing else can round onto one.
inline int weight_code(float x, double clip, double levels) {
  const double y = std::floor(clampd(x, -clip, clip) * levels / (2.0 * clip));
  return static_cast<int>(clampd((levels + 1.0) * 0.5 + y, 0.0, levels));
}
inline float weight_value(int j, double clip, double levels) {
  return static_cast<float>(clip * (2.0 * j - levels) / levels);
}
// j = round(x·L / clip) (ties up); x·L exact, one rounding in the division, as above.
inline int act_code(float x, double clip, double levels) {
  return static_cast<int>(round_away(clampd(x, 0.0, clip) * levels / clip));
}
inline float act_value(int j, double clip, double levels) { return static_cast<float>(clip * j / levels); }

// The element loops below run over every latent weight of every k-bit layer at every training
// step. The AVX-512 forms do the same IEEE double operations in the same order on 8 lanes (the
// clamps as max/min, floor and the half-away rounding as roundscale, compare and masked add), so
// every level gives the same floats (tested); the file is compiled without FMA contraction.
#define LB_INLINE inline __attribute__((always_inline))

LB_INLINE void ste_loop(const float* __restrict x, const float* __restrict g, float* __restrict gi, std::size_t n,
                        float lo, float hi) {
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i];
    const int inside = static_cast<int>(v >= lo) & static_cast<int>(v <= hi);
    gi[i] = inside ? g[i] : 0.0f;
  }
}

using ValuesFn = void (*)(const float*, float*, std::size_t, double, double);
using SteFn = void (*)(const float*, const float*, float*, std::size_t, float, float);

void weights_base(const float* x, float* out, std::size_t n, double clip, double levels) {
  for (std::size_t i = 0; i < n; ++i) out[i] = weight_value(weight_code(x[i], clip, levels), clip, levels);
}
void acts_base(const float* x, float* out, std::size_t n, double clip, double levels) {
  for (std::size_t i = 0; i < n; ++i) out[i] = act_value(act_code(x[i], clip, levels), clip, levels);
}
void ste_base(const float* x, const float* g, float* gi, std::size_t n, float lo, float hi) {
  ste_loop(x, g, gi, n, lo, hi);
}
#if LOWBIT_X86
LOWBIT_TARGET_AVX2 void ste_avx2(const float* x, const float* g, float* gi, std::size_t n, float lo, float hi) {
  ste_loop(x, g, gi, n, lo, hi);
}
LOWBIT_TARGET_AVX512 void ste_avx512(const float* x, const float* g, float* gi, std::size_t n, float lo, float hi) {
  ste_loop(x, g, gi, n, lo, hi);
}
// weight_value(weight_code(x)): the code is (L + 1)/2 + floor(clamp(x)·L / 2clip), an integer
// in double, clamped to [0, L]; its value is read from a table of weight_value(j) for every j.
LOWBIT_TARGET_AVX512 void weights_avx512(const float* x, float* out, std::size_t n, double clip, double levels) {
  float value[256];
  const int top = static_cast<int>(levels);
  for (int j = 0; j <= top; ++j) value[j] = weight_value(j, clip, levels);
  const __m512d c = _mm512_set1_pd(clip), nc = _mm512_set1_pd(-clip), l = _mm512_set1_pd(levels);
  const __m512d two_c = _mm512_set1_pd(2.0 * clip), mid = _mm512_set1_pd((levels + 1.0) * 0.5);
  const __m512d zero = _mm512_setzero_pd();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512d xd = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
    const __m512d xc = _mm512_min_pd(_mm512_max_pd(xd, nc), c);
    const __m512d y = _mm512_roundscale_pd(_mm512_div_pd(_mm512_mul_pd(xc, l), two_c),
                                           _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __m512d j = _mm512_min_pd(_mm512_max_pd(_mm512_add_pd(mid, y), zero), l);
    _mm256_storeu_ps(out + i, _mm256_i32gather_ps(value, _mm512_cvttpd_epi32(j), 4));
  }
  weights_base(x + i, out + i, n - i, clip, levels);
}
// act_value(act_code(x)): j = round half away (clamp(x, 0, clip)·L / clip) of a value >= 0, as
// trunc plus one where the remainder is >= 1/2; + 0 turns a −0 code into +0 as the int code does.
LOWBIT_TARGET_AVX512 void acts_avx512(const float* x, float* out, std::size_t n, double clip, double levels) {
  const __m512d c = _mm512_set1_pd(clip), l = _mm512_set1_pd(levels);
  const __m512d zero = _mm512_setzero_pd(), half = _mm512_set1_pd(0.5), one = _mm512_set1_pd(1.0);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512d xd = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
    const __m512d xc = _mm512_min_pd(_mm512_max_pd(xd, zero), c);
    const __m512d v = _mm512_div_pd(_mm512_mul_pd(xc, l), c);
    const __m512d t = _mm512_roundscale_pd(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask8 up = _mm512_cmp_pd_mask(_mm512_sub_pd(v, t), half, _CMP_GE_OQ);
    const __m512d j = _mm512_add_pd(_mm512_mask_add_pd(t, up, t, one), zero);
    _mm256_storeu_ps(out + i, _mm512_cvtpd_ps(_mm512_div_pd(_mm512_mul_pd(c, j), l)));
  }
  acts_base(x + i, out + i, n - i, clip, levels);
}
#endif

ValuesFn weights_fn() {
#if LOWBIT_X86
  if (cpu::usable_features() & cpu::kAvx512) return weights_avx512;
#endif
  return weights_base;
}
ValuesFn acts_fn() {
#if LOWBIT_X86
  if (cpu::usable_features() & cpu::kAvx512) return acts_avx512;
#endif
  return acts_base;
}
SteFn ste_fn() {
#if LOWBIT_X86
  const uint32_t f = cpu::usable_features();
  if (f & cpu::kAvx512) return ste_avx512;
  if (f & cpu::kAvx2) return ste_avx2;
#endif
  return ste_base;
}

}  // namespace

void linear_quant(std::span<const float> x, std::span<float> out, float step, float min_v, float max_v) {
  check_size("linear_quant", "out", out.size(), x.size());
  check_positive("linear_quant", "step", step);
  check_range("linear_quant", min_v, max_v);
  check_no_nan("linear_quant", x);
  for (std::size_t i = 0; i < x.size(); ++i) {
    double q = round_away(static_cast<double>(x[i]) / step) * step;
    out[i] = static_cast<float>(clampd(q, min_v, max_v));
  }
}

void clipped_ste_backward(std::span<const float> x, std::span<const float> grad_out, std::span<float> grad_in,
                          float min_v, float max_v) {
  check_size("clipped_ste_backward", "grad_out", grad_out.size(), x.size());
  check_size("clipped_ste_backward", "grad_in", grad_in.size(), x.size());
  check_range("clipped_ste_backward", min_v, max_v);
  ste_fn()(x.data(), grad_out.data(), grad_in.data(), x.size(), min_v, max_v);
}

float ap2(float x) {
  if (x == 0.0f || !std::isfinite(x)) return x;
  int e = 0;
  const float m = std::frexp(std::fabs(x), &e);  // |x| = m · 2^e, m in [0.5, 1)
  // round(log2|x|) = e + round(log2 m), log2 m in [−1, 0): it is e when log2 m >= −1/2, i.e.
  // m >= 2^-1/2, else e − 1. The comparison is exact: no float equals 2^-1/2.
  const int k = static_cast<double>(m) >= 0.70710678118654752440 ? e : e - 1;
  return std::copysign(std::ldexp(1.0f, k), x);
}

void ap2(std::span<const float> x, std::span<float> out) {
  check_size("ap2", "out", out.size(), x.size());
  check_no_nan("ap2", x);
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = ap2(x[i]);
}

void log_quant(std::span<const float> x, std::span<float> out, float min_v, float max_v) {
  check_size("log_quant", "out", out.size(), x.size());
  check_range("log_quant", min_v, max_v);
  check_no_nan("log_quant", x);
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = std::clamp(ap2(x[i]), min_v, max_v);
}

void quantize_weights_kbit(std::span<const float> x, std::span<float> out, int bits, float clip) {
  check_size("quantize_weights_kbit", "out", out.size(), x.size());
  check_bits("quantize_weights_kbit", bits, 8);
  check_positive("quantize_weights_kbit", "clip", clip);
  check_no_nan("quantize_weights_kbit", x);
  weights_fn()(x.data(), out.data(), x.size(), clip, static_cast<double>((1 << bits) - 1));
}

void weights_kbit_to_codes(std::span<const float> x, std::span<uint8_t> codes, int bits, float clip) {
  check_size("weights_kbit_to_codes", "codes", codes.size(), x.size());
  check_bits("weights_kbit_to_codes", bits, 8);
  check_positive("weights_kbit_to_codes", "clip", clip);
  check_no_nan("weights_kbit_to_codes", x);
  const double levels = static_cast<double>((1 << bits) - 1);
  for (std::size_t i = 0; i < x.size(); ++i) codes[i] = static_cast<uint8_t>(weight_code(x[i], clip, levels));
}

void weights_kbit_from_codes(std::span<const uint8_t> codes, std::span<float> out, int bits, float clip) {
  check_size("weights_kbit_from_codes", "out", out.size(), codes.size());
  check_bits("weights_kbit_from_codes", bits, 8);
  check_positive("weights_kbit_from_codes", "clip", clip);
  const int levels = (1 << bits) - 1;
  for (std::size_t i = 0; i < codes.size(); ++i) {
    LOWBIT_CHECK(codes[i] <= levels, "weights_kbit_from_codes: code[", i, "] = ", int(codes[i]),
                 " is out of range for ", bits, " bits (expected 0..", levels, ")");
    out[i] = weight_value(codes[i], clip, levels);
  }
}

void quantize_weights_kbit_backward(std::span<const float> x, std::span<const float> grad_out,
                                    std::span<float> grad_in, float clip) {
  check_positive("quantize_weights_kbit_backward", "clip", clip);
  clipped_ste_backward(x, grad_out, grad_in, -clip, clip);
}

void quantize_activations_kbit(std::span<const float> x, std::span<float> out, int bits, float clip) {
  check_size("quantize_activations_kbit", "out", out.size(), x.size());
  check_bits("quantize_activations_kbit", bits, 8);
  check_positive("quantize_activations_kbit", "clip", clip);
  check_no_nan("quantize_activations_kbit", x);
  acts_fn()(x.data(), out.data(), x.size(), clip, static_cast<double>((1 << bits) - 1));
}

void activations_kbit_to_codes(std::span<const float> x, std::span<uint8_t> codes, int bits, float clip) {
  check_size("activations_kbit_to_codes", "codes", codes.size(), x.size());
  check_bits("activations_kbit_to_codes", bits, 8);
  check_positive("activations_kbit_to_codes", "clip", clip);
  check_no_nan("activations_kbit_to_codes", x);
  const double levels = static_cast<double>((1 << bits) - 1);
  for (std::size_t i = 0; i < x.size(); ++i) codes[i] = static_cast<uint8_t>(act_code(x[i], clip, levels));
}

void activations_kbit_from_codes(std::span<const uint8_t> codes, std::span<float> out, int bits, float clip) {
  check_size("activations_kbit_from_codes", "out", out.size(), codes.size());
  check_bits("activations_kbit_from_codes", bits, 8);
  check_positive("activations_kbit_from_codes", "clip", clip);
  const int levels = (1 << bits) - 1;
  for (std::size_t i = 0; i < codes.size(); ++i) {
    LOWBIT_CHECK(codes[i] <= levels, "activations_kbit_from_codes: code[", i, "] = ", int(codes[i]),
                 " is out of range for ", bits, " bits (expected 0..", levels, ")");
    out[i] = act_value(codes[i], clip, levels);
  }
}

void quantize_activations_kbit_backward(std::span<const float> x, std::span<const float> grad_out,
                                        std::span<float> grad_in, float clip) {
  check_positive("quantize_activations_kbit_backward", "clip", clip);
  clipped_ste_backward(x, grad_out, grad_in, 0.0f, clip);
}

void stochastic_round(std::span<const float> x, std::span<float> out, float step, uint64_t seed,
                      uint64_t counter_offset) {
  check_size("stochastic_round", "out", out.size(), x.size());
  check_positive("stochastic_round", "step", step);
  check_no_nan("stochastic_round", x);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double y = static_cast<double>(x[i]) / step;
    out[i] = static_cast<float>(std::floor(y + uniform01(seed, counter_offset + i)) * step);
  }
}

float quantize_gradient(std::span<const float> g, std::span<float> out, int bits, uint64_t seed) {
  check_size("quantize_gradient", "out", out.size(), g.size());
  check_bits("quantize_gradient", bits, 16);
  detail::check_finite("quantize_gradient", "g", g);
  float m = 0.0f;
  for (float v : g) m = std::max(m, std::fabs(v));
  if (m == 0.0f) {
    std::fill(out.begin(), out.end(), 0.0f);
    return 0.0f;
  }
  const double levels = static_cast<double>((1 << bits) - 1);
  const double two_m = 2.0 * static_cast<double>(m);
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double v = static_cast<double>(g[i]) / two_m + 0.5;  // in [0, 1]
    const double j = clampd(std::floor(v * levels + uniform01(seed, i)), 0.0, levels);
    out[i] = static_cast<float>(two_m * (j / levels - 0.5));
  }
  return m;
}

}  // namespace lowbit::quant
