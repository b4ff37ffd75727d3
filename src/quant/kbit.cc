#include "lowbit/quant/kbit.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lowbit/quant/rng.h"
#include "quant/common.h"

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
  for (std::size_t i = 0; i < x.size(); ++i)
    grad_in[i] = (x[i] >= min_v && x[i] <= max_v) ? grad_out[i] : 0.0f;
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
  const double levels = static_cast<double>((1 << bits) - 1);
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = weight_value(weight_code(x[i], clip, levels), clip, levels);
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
  const double levels = static_cast<double>((1 << bits) - 1);
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = act_value(act_code(x[i], clip, levels), clip, levels);
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
