#include "lowbit/quant/binary.h"

#include <cmath>

#include "lowbit/quant/rng.h"
#include "quant/common.h"

namespace lowbit::quant {

using detail::check_no_nan;
using detail::check_size;

void binarize(std::span<const float> x, std::span<float> out) {
  check_size("binarize", "out", out.size(), x.size());
  check_no_nan("binarize", x);
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = sign_pm1(x[i]);
}

namespace {
std::span<const float> f32_span(const Tensor& t, const char* fn) {
  LOWBIT_CHECK(t.defined() && t.dtype() == DType::f32 && t.is_contiguous(), fn,
               ": expected a contiguous f32 tensor, got ", t.defined() ? t.describe() : std::string("an empty tensor"));
  return {t.data<float>(), static_cast<std::size_t>(t.numel())};
}
}  // namespace

Tensor binarize(const Tensor& x) {
  std::span<const float> in = f32_span(x, "binarize");
  Tensor out = Tensor::zeros(x.shape(), DType::f32);
  binarize(in, std::span<float>(out.data<float>(), in.size()));
  return out;
}

void binarize_stochastic(std::span<const float> x, std::span<float> out, uint64_t seed, uint64_t counter_offset) {
  check_size("binarize_stochastic", "out", out.size(), x.size());
  check_no_nan("binarize_stochastic", x);
  for (std::size_t i = 0; i < x.size(); ++i)
    out[i] = uniform01(seed, counter_offset + i) < hard_sigmoid(x[i]) ? 1.0f : -1.0f;
}

void binarize_backward(std::span<const float> x, std::span<const float> grad_out, std::span<float> grad_in,
                       float window) {
  check_size("binarize_backward", "grad_out", grad_out.size(), x.size());
  check_size("binarize_backward", "grad_in", grad_in.size(), x.size());
  LOWBIT_CHECK(window >= 0.0f, "binarize_backward: window must be >= 0, got ", window);
  for (std::size_t i = 0; i < x.size(); ++i) grad_in[i] = std::fabs(x[i]) <= window ? grad_out[i] : 0.0f;
}

void binarize_scaled(std::span<const float> x, std::span<float> out, int64_t rows, std::span<float> alpha) {
  check_size("binarize_scaled", "out", out.size(), x.size());
  const std::size_t cols = detail::check_rows("binarize_scaled", x.size(), rows);
  check_size("binarize_scaled", "alpha", alpha.size(), static_cast<std::size_t>(rows));
  check_no_nan("binarize_scaled", x);
  for (int64_t r = 0; r < rows; ++r) {
    const std::size_t base = static_cast<std::size_t>(r) * cols;
    double sum = 0.0;  // double: the mean of many |w| must not depend on summation order noise
    for (std::size_t j = 0; j < cols; ++j) sum += std::fabs(x[base + j]);
    const float a = cols ? static_cast<float>(sum / static_cast<double>(cols)) : 0.0f;
    alpha[static_cast<std::size_t>(r)] = a;
    for (std::size_t j = 0; j < cols; ++j) out[base + j] = a * sign_pm1(x[base + j]);
  }
}

void binarize_scaled_backward(std::span<const float> x, std::span<const float> grad_out, int64_t rows,
                              std::span<float> grad_in, float window) {
  check_size("binarize_scaled_backward", "grad_out", grad_out.size(), x.size());
  check_size("binarize_scaled_backward", "grad_in", grad_in.size(), x.size());
  LOWBIT_CHECK(window >= 0.0f, "binarize_scaled_backward: window must be >= 0, got ", window);
  const std::size_t cols = detail::check_rows("binarize_scaled_backward", x.size(), rows);
  for (int64_t r = 0; r < rows; ++r) {
    const std::size_t base = static_cast<std::size_t>(r) * cols;
    double abs_sum = 0.0, gs = 0.0;
    for (std::size_t j = 0; j < cols; ++j) {
      abs_sum += std::fabs(x[base + j]);
      gs += static_cast<double>(grad_out[base + j]) * sign_pm1(x[base + j]);
    }
    if (cols == 0) continue;
    const double a = abs_sum / static_cast<double>(cols);
    const double shared = gs / static_cast<double>(cols);
    for (std::size_t j = 0; j < cols; ++j) {
      const float xi = x[base + j];
      const double ste = std::fabs(xi) <= window ? a * grad_out[base + j] : 0.0;
      grad_in[base + j] = static_cast<float>(ste + sign_pm1(xi) * shared);
    }
  }
}

}  // namespace lowbit::quant
