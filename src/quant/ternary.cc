#include "lowbit/quant/ternary.h"

#include <cmath>

#include "quant/common.h"

namespace lowbit::quant {

namespace {

// Computes Δ and α of one row (see the header for the rule).
TernaryParams row_params(std::span<const float> row, float factor, bool scaled) {
  if (row.empty()) return {0.0f, scaled ? 0.0f : 1.0f};
  double abs_sum = 0.0;
  for (float v : row) abs_sum += std::fabs(v);
  const float delta = static_cast<float>(factor * (abs_sum / static_cast<double>(row.size())));
  if (!scaled) return {delta, 1.0f};
  double kept = 0.0;
  std::size_t count = 0;
  for (float v : row) {
    if (std::fabs(v) > delta) {
      kept += std::fabs(v);
      ++count;
    }
  }
  return {delta, count ? static_cast<float>(kept / static_cast<double>(count)) : 0.0f};
}

inline int ternary_of(float v, float delta) { return v > delta ? 1 : (v < -delta ? -1 : 0); }

void check_factor(const char* fn, float f) {
  LOWBIT_CHECK(std::isfinite(f) && f >= 0.0f, fn, ": threshold_factor must be finite and >= 0, got ", f);
}

}  // namespace

void ternarize(std::span<const float> x, std::span<float> out, int64_t rows, std::span<TernaryParams> params,
               float threshold_factor, bool scaled) {
  detail::check_size("ternarize", "out", out.size(), x.size());
  const std::size_t cols = detail::check_rows("ternarize", x.size(), rows);
  detail::check_size("ternarize", "params", params.size(), static_cast<std::size_t>(rows));
  check_factor("ternarize", threshold_factor);
  // Infinities would make Δ infinite and α meaningless: weights must be finite here.
  detail::check_finite("ternarize", "x", x);
  for (int64_t r = 0; r < rows; ++r) {
    const std::size_t base = static_cast<std::size_t>(r) * cols;
    const TernaryParams p = row_params(x.subspan(base, cols), threshold_factor, scaled);
    params[static_cast<std::size_t>(r)] = p;
    for (std::size_t j = 0; j < cols; ++j)
      out[base + j] = p.alpha * static_cast<float>(ternary_of(x[base + j], p.delta));
  }
}

void ternarize_codes(std::span<const float> x, std::span<int8_t> codes, int64_t rows,
                     std::span<TernaryParams> params, float threshold_factor) {
  detail::check_size("ternarize_codes", "codes", codes.size(), x.size());
  const std::size_t cols = detail::check_rows("ternarize_codes", x.size(), rows);
  detail::check_size("ternarize_codes", "params", params.size(), static_cast<std::size_t>(rows));
  check_factor("ternarize_codes", threshold_factor);
  detail::check_finite("ternarize_codes", "x", x);
  for (int64_t r = 0; r < rows; ++r) {
    const std::size_t base = static_cast<std::size_t>(r) * cols;
    const TernaryParams p = row_params(x.subspan(base, cols), threshold_factor, true);
    params[static_cast<std::size_t>(r)] = p;
    for (std::size_t j = 0; j < cols; ++j) codes[base + j] = static_cast<int8_t>(ternary_of(x[base + j], p.delta));
  }
}

void ternarize_backward(std::span<const float> x, std::span<const float> grad_out, std::span<float> grad_in,
                        float window) {
  detail::check_size("ternarize_backward", "grad_out", grad_out.size(), x.size());
  detail::check_size("ternarize_backward", "grad_in", grad_in.size(), x.size());
  LOWBIT_CHECK(window >= 0.0f, "ternarize_backward: window must be >= 0, got ", window);
  for (std::size_t i = 0; i < x.size(); ++i) grad_in[i] = std::fabs(x[i]) <= window ? grad_out[i] : 0.0f;
}

}  // namespace lowbit::quant
