#include "lowbit/quant/fixed_q.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "quant/common.h"

namespace lowbit::quant {

double FixedFormat::max_value() const {
  if (is_binary()) return 1.0;
  return std::ldexp(std::ldexp(1.0, int_bits + frac_bits) - 1.0, -frac_bits);
}

std::string FixedFormat::str() const { return lowbit::detail::cat("Q", int_bits, ".", frac_bits); }

void check_format(const FixedFormat& f, const char* fn) {
  LOWBIT_CHECK(f.int_bits >= 0 && f.frac_bits >= 0 && f.int_bits + f.frac_bits <= 23, fn, ": fixed-point format ",
               f.str(), " is invalid (expected I >= 0, F >= 0, I + F <= 23)");
}

namespace {

// 2^k and 2^−k for 0 <= k <= 23 (check_format's range), exact; multiplying by them is exact in
// double for every float input, so they stand in for std::ldexp in the per-element loops.
struct Pow2 {
  double up[24], down[24];
  constexpr Pow2() : up(), down() {
    double v = 1.0;
    for (int k = 0; k < 24; ++k, v *= 2.0) {
      up[k] = v;
      down[k] = 1.0 / v;
    }
  }
};
constexpr Pow2 kPow2;

// The signed integer code q(x) · 2^F (see the header); exact in double.
inline double fixed_code(float x, const FixedFormat& f, FixedRounding r) {
  if (f.is_binary()) return x >= 0.0f ? 1.0 : -1.0;
  const bool tabled = f.int_bits >= 0 && f.frac_bits >= 0 && f.int_bits + f.frac_bits <= 23;
  const double top = (tabled ? kPow2.up[f.int_bits + f.frac_bits] : std::ldexp(1.0, f.int_bits + f.frac_bits)) - 1.0;
  const double scaled = std::fabs(static_cast<double>(x)) *
                        (tabled ? kPow2.up[f.frac_bits] : std::ldexp(1.0, f.frac_bits));  // exact
  double mag = r == FixedRounding::truncate ? std::floor(scaled) : std::floor(scaled + 0.5);
  if (mag > top) mag = top;  // also catches +inf
  return x < 0.0f ? -mag : mag;
}

template <typename Int>
void to_codes(const char* fn, std::span<const float> x, std::span<Int> codes, FixedFormat f, FixedRounding r,
              int max_magnitude_bits) {
  detail::check_size(fn, "codes", codes.size(), x.size());
  check_format(f, fn);
  LOWBIT_CHECK(f.int_bits + f.frac_bits <= max_magnitude_bits, fn, ": format ", f.str(), " needs ",
               f.total_bits(), " bits, more than the ", max_magnitude_bits + 1, "-bit code type holds");
  detail::check_no_nan(fn, x);
  for (std::size_t i = 0; i < x.size(); ++i) codes[i] = static_cast<Int>(fixed_code(x[i], f, r));
}

template <typename Int>
void from_codes(const char* fn, std::span<const Int> codes, std::span<float> out, FixedFormat f,
                int max_magnitude_bits) {
  detail::check_size(fn, "out", out.size(), codes.size());
  check_format(f, fn);
  LOWBIT_CHECK(f.int_bits + f.frac_bits <= max_magnitude_bits, fn, ": format ", f.str(), " needs ",
               f.total_bits(), " bits, more than the ", max_magnitude_bits + 1, "-bit code type holds");
  const int top = f.is_binary() ? 1 : (1 << (f.int_bits + f.frac_bits)) - 1;
  for (std::size_t i = 0; i < codes.size(); ++i) {
    const int c = codes[i];
    const bool ok = f.is_binary() ? (c == 1 || c == -1) : (c >= -top && c <= top);
    LOWBIT_CHECK(ok, fn, ": code[", i, "] = ", c, " is outside format ", f.str(), " (expected ",
                 f.is_binary() ? std::string("+1 or -1") : lowbit::detail::cat(-top, "..", top), ")");
    out[i] = f.is_binary() ? static_cast<float>(c) : std::ldexp(static_cast<float>(c), -f.frac_bits);
  }
}

}  // namespace

float fixed_quantize(float x, FixedFormat f, FixedRounding r) {
  if (std::isnan(x)) return x;
  const double c = fixed_code(x, f, r);
  if (f.is_binary()) return static_cast<float>(c);
  return static_cast<float>(f.frac_bits >= 0 && f.frac_bits <= 23 ? c * kPow2.down[f.frac_bits]
                                                                  : std::ldexp(c, -f.frac_bits));
}

void fixed_quantize(std::span<const float> x, std::span<float> out, FixedFormat f, FixedRounding r) {
  detail::check_size("fixed_quantize", "out", out.size(), x.size());
  check_format(f, "fixed_quantize");
  detail::check_no_nan("fixed_quantize", x);
  if (f.is_binary()) {
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] >= 0.0f ? 1.0f : -1.0f;
    return;
  }
  // fixed_code and the scaling back, branch-free in float so that the loop vectorizes with plain
  // SSE2 (no NaN here). Exact: |x|·2^F is exact (or +inf); top <= 2^23 − 1 is an integer, so
  // clamping before the floor gives the same code, and below 2^23 the int conversion is the
  // floor (a + 0.5 is exact below 2^22; from 2^23 the clamp decides). code·2^−F is exact.
  const auto top = static_cast<float>(kPow2.up[f.int_bits + f.frac_bits] - 1.0);
  const auto up = static_cast<float>(kPow2.up[f.frac_bits]), down = static_cast<float>(kPow2.down[f.frac_bits]);
  const float half = r == FixedRounding::truncate ? 0.0f : 0.5f;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float a = std::min(std::fabs(x[i]) * up + half, top);
    const float v = static_cast<float>(static_cast<int32_t>(a)) * down;
    out[i] = x[i] < 0.0f ? -v : v;
  }
}

void fixed_quantize_backward(std::span<const float> x, std::span<const float> grad_out, std::span<float> grad_in,
                             FixedFormat f, bool clip_mask) {
  detail::check_size("fixed_quantize_backward", "grad_out", grad_out.size(), x.size());
  detail::check_size("fixed_quantize_backward", "grad_in", grad_in.size(), x.size());
  check_format(f, "fixed_quantize_backward");
  if (!clip_mask) {
    for (std::size_t i = 0; i < x.size(); ++i) grad_in[i] = grad_out[i];
    return;
  }
  const double top = f.max_value();
  for (std::size_t i = 0; i < x.size(); ++i)
    grad_in[i] = std::fabs(static_cast<double>(x[i])) <= top ? grad_out[i] : 0.0f;
}

void fixed_to_codes(std::span<const float> x, std::span<int8_t> codes, FixedFormat f, FixedRounding r) {
  to_codes("fixed_to_codes", x, codes, f, r, 7);
}
void fixed_to_codes(std::span<const float> x, std::span<int16_t> codes, FixedFormat f, FixedRounding r) {
  to_codes("fixed_to_codes", x, codes, f, r, 15);
}
void fixed_from_codes(std::span<const int8_t> codes, std::span<float> out, FixedFormat f) {
  from_codes("fixed_from_codes", codes, out, f, 7);
}
void fixed_from_codes(std::span<const int16_t> codes, std::span<float> out, FixedFormat f) {
  from_codes("fixed_from_codes", codes, out, f, 15);
}

}  // namespace lowbit::quant
