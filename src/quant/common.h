// Argument checks shared by the quantizers (private to src/quant).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "lowbit/core/error.h"

namespace lowbit::quant::detail {

// Throws unless a buffer has the expected number of elements.
inline void check_size(const char* fn, const char* what, std::size_t got, std::size_t want) {
  LOWBIT_CHECK(got == want, fn, ": ", what, " has ", got, " elements, expected ", want);
}

// NaN policy of the quant layer: a NaN input is an error (it means training has diverged or
// a buffer was never written), reported with its index before any output is written.
// Infinities are ordinary values: they saturate like any large value.
inline void check_no_nan(const char* fn, std::span<const float> x) {
  int bad = 0;  // an int OR of quiet compares, which vectorizes
  for (float v : x) bad |= static_cast<int>(v != v);
  if (!bad) return;
  for (std::size_t i = 0; i < x.size(); ++i)
    LOWBIT_CHECK(!std::isnan(x[i]), fn, ": input[", i, "] is NaN (expected a number; NaN inputs are rejected)");
}

// Inputs and gradients that must be finite (used where an infinity has no meaningful result).
inline void check_finite(const char* fn, const char* what, std::span<const float> x) {
  bool bad = false;
  for (float v : x) bad |= !std::isfinite(v);
  if (!bad) return;
  for (std::size_t i = 0; i < x.size(); ++i)
    LOWBIT_CHECK(std::isfinite(x[i]), fn, ": ", what, "[", i, "] is ", x[i], " (expected a finite value)");
}

// Rows of a [rows, cols] view of n elements.
inline std::size_t check_rows(const char* fn, std::size_t n, long long rows) {
  LOWBIT_CHECK(rows >= 1, fn, ": rows must be >= 1, got ", rows);
  LOWBIT_CHECK(n % static_cast<std::size_t>(rows) == 0, fn, ": ", n, " elements do not split into ", rows,
               " rows of equal length");
  return n / static_cast<std::size_t>(rows);
}

// Round half away from zero (std::round), the rounding used by TFLite (TfLiteRound) and by
// Theano's round() in the BNN/QNN code.
// Without a libm call (baseline x86-64 has no rounding instruction): split |v| into its integer
// part t and fraction a − t (both exact) and round the fraction; from 2^52 on every double is an
// integer.
inline double round_away(double v) {
  const double a = std::fabs(v);
  if (!(a < 4503599627370496.0)) return v;  // integers, infinities and NaN
  const auto t = static_cast<double>(static_cast<int64_t>(a));
  return std::copysign(a - t >= 0.5 ? t + 1.0 : t, v);  // keeps −0 for −0.3, as std::round
}

}  // namespace lowbit::quant::detail
