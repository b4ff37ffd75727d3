#include "lowbit/quant/affine.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "quant/common.h"

namespace lowbit::quant {

using detail::check_size;

namespace {

void check_qrange(const char* fn, QRange r) {
  LOWBIT_CHECK(r.qmin < r.qmax, fn, ": integer range [", r.qmin, ", ", r.qmax, "] is empty (expected qmin < qmax)");
}

void check_params(const char* fn, const QuantParams& p) {
  LOWBIT_CHECK(std::isfinite(p.scale) && p.scale > 0.0f, fn, ": scale must be finite and > 0, got ", p.scale);
  LOWBIT_CHECK(p.qmin <= p.qmax, fn, ": integer range [", p.qmin, ", ", p.qmax, "] is empty");
  LOWBIT_CHECK(p.zero_point >= p.qmin && p.zero_point <= p.qmax, fn, ": zero point ", p.zero_point,
               " lies outside [", p.qmin, ", ", p.qmax, "]");
}

template <typename Int>
void check_fits(const char* fn, const QuantParams& p) {
  constexpr int64_t lo = std::numeric_limits<Int>::min(), hi = std::numeric_limits<Int>::max();
  LOWBIT_CHECK(p.qmin >= lo && p.qmax <= hi, fn, ": integer range [", p.qmin, ", ", p.qmax,
               "] does not fit the output type [", lo, ", ", hi, "]");
}

// The TFLite rule: float division, round half away from zero, add the zero point, saturate.
// The clamp is done in double so that huge quotients (and ±inf) never reach an int conversion.
inline int32_t quantize_one(float x, const QuantParams& p) {
  const float ratio = x / p.scale;
  const double q = std::round(static_cast<double>(ratio)) + p.zero_point;
  return static_cast<int32_t>(std::clamp(q, static_cast<double>(p.qmin), static_cast<double>(p.qmax)));
}

template <typename Int>
void quantize_impl(const char* fn, std::span<const float> x, const QuantParams& p, std::span<Int> q) {
  check_size(fn, "q", q.size(), x.size());
  check_params(fn, p);
  check_fits<Int>(fn, p);
  detail::check_no_nan(fn, x);
  for (std::size_t i = 0; i < x.size(); ++i) q[i] = static_cast<Int>(quantize_one(x[i], p));
}

template <typename Int>
void dequantize_impl(const char* fn, std::span<const Int> q, const QuantParams& p, std::span<float> out) {
  check_size(fn, "out", out.size(), q.size());
  check_params(fn, p);
  for (std::size_t i = 0; i < q.size(); ++i) out[i] = dequantize_value(q[i], p);
}

std::size_t channel_size(const char* fn, std::size_t n, std::size_t channels) {
  LOWBIT_CHECK(channels >= 1, fn, ": expected at least one channel's parameters");
  return detail::check_rows(fn, n, static_cast<long long>(channels));
}

template <typename Int>
void quantize_pc_impl(const char* fn, std::span<const float> x, std::span<const QuantParams> params,
                      std::span<Int> q) {
  check_size(fn, "q", q.size(), x.size());
  const std::size_t inner = channel_size(fn, x.size(), params.size());
  for (std::size_t c = 0; c < params.size(); ++c)
    quantize_impl(fn, x.subspan(c * inner, inner), params[c], q.subspan(c * inner, inner));
}

template <typename Int>
void dequantize_pc_impl(const char* fn, std::span<const Int> q, std::span<const QuantParams> params,
                        std::span<float> out) {
  check_size(fn, "out", out.size(), q.size());
  const std::size_t inner = channel_size(fn, q.size(), params.size());
  for (std::size_t c = 0; c < params.size(); ++c)
    dequantize_impl(fn, q.subspan(c * inner, inner), params[c], out.subspan(c * inner, inner));
}

std::span<const float> f32_span(const Tensor& t, const char* fn) {
  LOWBIT_CHECK(t.defined() && t.dtype() == DType::f32 && t.is_contiguous(), fn,
               ": expected a contiguous f32 tensor, got ", t.defined() ? t.describe() : std::string("an empty tensor"));
  return {t.data<float>(), static_cast<std::size_t>(t.numel())};
}

template <typename Int>
std::span<Int> int_span(Tensor& t) {
  return {t.data<Int>(), static_cast<std::size_t>(t.numel())};
}

}  // namespace

QuantParams choose_asymmetric(float min, float max, QRange r) {
  check_qrange("choose_asymmetric", r);
  LOWBIT_CHECK(std::isfinite(min) && std::isfinite(max) && min <= max, "choose_asymmetric: expected a finite range ",
               "with min <= max, got [", min, ", ", max, "]");
  // 0 must be representable (zero padding, ReLU zeros): extend the range to include it.
  min = std::min(min, 0.0f);
  max = std::max(max, 0.0f);
  if (max - min < kMinQuantRange) {  // zero-range policy (header)
    const float centre = 0.5f * (min + max);
    min = centre - 0.5f * kMinQuantRange;
    max = centre + 0.5f * kMinQuantRange;
  }
  const float qmin_f = static_cast<float>(r.qmin), qmax_f = static_cast<float>(r.qmax);
  const float scale = (max - min) / (qmax_f - qmin_f);
  const float zp_from_min = qmin_f - min / scale;
  int32_t zp;
  if (zp_from_min < qmin_f) {
    zp = r.qmin;
  } else if (zp_from_min > qmax_f) {
    zp = r.qmax;
  } else {
    zp = static_cast<int32_t>(std::round(zp_from_min));
  }
  return {scale, zp, r.qmin, r.qmax};
}

QuantParams choose_asymmetric(std::span<const float> x, QRange r) {
  LOWBIT_CHECK(!x.empty(), "choose_asymmetric: no values to take a range from");
  detail::check_finite("choose_asymmetric", "x", x);
  const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  return choose_asymmetric(*lo, *hi, r);
}

QuantParams choose_symmetric(float max_abs, QRange r) {
  check_qrange("choose_symmetric", r);
  LOWBIT_CHECK(r.qmin <= 0 && r.qmax > 0, "choose_symmetric: integer range [", r.qmin, ", ", r.qmax,
               "] must contain 0 and a positive value");
  LOWBIT_CHECK(std::isfinite(max_abs) && max_abs >= 0.0f, "choose_symmetric: max_abs must be finite and >= 0, got ",
               max_abs);
  max_abs = std::max(max_abs, 0.5f * kMinQuantRange);  // zero-range policy: range [−m, m] >= kMinQuantRange
  return {max_abs / static_cast<float>(r.qmax), 0, r.qmin, r.qmax};
}

QuantParams choose_symmetric(std::span<const float> x, QRange r) {
  LOWBIT_CHECK(!x.empty(), "choose_symmetric: no values to take a range from");
  detail::check_finite("choose_symmetric", "x", x);
  float m = 0.0f;
  for (float v : x) m = std::max(m, std::fabs(v));
  return choose_symmetric(m, r);
}

std::vector<QuantParams> choose_asymmetric_per_channel(std::span<const float> x, int64_t channels, QRange r) {
  const std::size_t inner = detail::check_rows("choose_asymmetric_per_channel", x.size(), channels);
  std::vector<QuantParams> out;
  for (int64_t c = 0; c < channels; ++c) out.push_back(choose_asymmetric(x.subspan(c * inner, inner), r));
  return out;
}

std::vector<QuantParams> choose_symmetric_per_channel(std::span<const float> x, int64_t channels, QRange r) {
  const std::size_t inner = detail::check_rows("choose_symmetric_per_channel", x.size(), channels);
  std::vector<QuantParams> out;
  for (int64_t c = 0; c < channels; ++c) out.push_back(choose_symmetric(x.subspan(c * inner, inner), r));
  return out;
}

QuantParams choose_power_of_two(float max_abs, int bits, int min_pot, int max_pot) {
  LOWBIT_CHECK(bits == 8 || bits == 16, "choose_power_of_two: bits must be 8 or 16, got ", bits);
  LOWBIT_CHECK(std::isfinite(max_abs) && max_abs >= 0.0f, "choose_power_of_two: max_abs must be finite and >= 0, got ",
               max_abs);
  LOWBIT_CHECK(min_pot <= max_pot, "choose_power_of_two: min_pot ", min_pot, " > max_pot ", max_pot);
  int pot = min_pot;
  if (max_abs > std::ldexp(1.0f, min_pot)) {
    int e = 0;
    const float m = std::frexp(max_abs, &e);  // max_abs = m · 2^e, m in [0.5, 1)
    pot = m == 0.5f ? e - 1 : e;              // smallest pot with 2^pot >= max_abs
  }
  LOWBIT_CHECK(pot <= max_pot, "choose_power_of_two: range ", max_abs, " needs 2^", pot, ", above the limit 2^",
               max_pot);
  const int32_t half = int32_t{1} << (bits - 1);
  return {std::ldexp(1.0f, pot - (bits - 1)), 0, -half, half - 1};
}

int power_of_two_exponent(float scale) {
  LOWBIT_CHECK(std::isfinite(scale) && scale > 0.0f, "power_of_two_exponent: scale must be finite and > 0, got ",
               scale);
  const double l = std::log2(static_cast<double>(scale));
  const double n = std::round(l);
  LOWBIT_CHECK(std::fabs(l - n) <= 1e-3, "power_of_two_exponent: scale ", scale, " is not a power of two (log2 = ",
               l, ")");
  return static_cast<int>(n);
}

int32_t quantize_value(float x, const QuantParams& p) {
  LOWBIT_CHECK(!std::isnan(x), "quantize_value: input is NaN (expected a number)");
  return quantize_one(x, p);
}

void quantize(std::span<const float> x, const QuantParams& p, std::span<int8_t> q) { quantize_impl("quantize", x, p, q); }
void quantize(std::span<const float> x, const QuantParams& p, std::span<uint8_t> q) { quantize_impl("quantize", x, p, q); }
void quantize(std::span<const float> x, const QuantParams& p, std::span<int16_t> q) { quantize_impl("quantize", x, p, q); }
void quantize(std::span<const float> x, const QuantParams& p, std::span<int32_t> q) { quantize_impl("quantize", x, p, q); }

void dequantize(std::span<const int8_t> q, const QuantParams& p, std::span<float> out) {
  dequantize_impl("dequantize", q, p, out);
}
void dequantize(std::span<const uint8_t> q, const QuantParams& p, std::span<float> out) {
  dequantize_impl("dequantize", q, p, out);
}
void dequantize(std::span<const int16_t> q, const QuantParams& p, std::span<float> out) {
  dequantize_impl("dequantize", q, p, out);
}
void dequantize(std::span<const int32_t> q, const QuantParams& p, std::span<float> out) {
  dequantize_impl("dequantize", q, p, out);
}

void quantize_per_channel(std::span<const float> x, std::span<const QuantParams> params, std::span<int8_t> q) {
  quantize_pc_impl("quantize_per_channel", x, params, q);
}
void quantize_per_channel(std::span<const float> x, std::span<const QuantParams> params, std::span<int16_t> q) {
  quantize_pc_impl("quantize_per_channel", x, params, q);
}
void dequantize_per_channel(std::span<const int8_t> q, std::span<const QuantParams> params, std::span<float> out) {
  dequantize_pc_impl("dequantize_per_channel", q, params, out);
}
void dequantize_per_channel(std::span<const int16_t> q, std::span<const QuantParams> params, std::span<float> out) {
  dequantize_pc_impl("dequantize_per_channel", q, params, out);
}

Tensor quantize(const Tensor& x, const QuantParams& p, DType out) {
  std::span<const float> in = f32_span(x, "quantize");
  Tensor t = Tensor::zeros(x.shape(), out);
  switch (out) {
    case DType::i8: quantize(in, p, int_span<int8_t>(t)); break;
    case DType::u8: quantize(in, p, int_span<uint8_t>(t)); break;
    case DType::i16: quantize(in, p, int_span<int16_t>(t)); break;
    case DType::i32: quantize(in, p, int_span<int32_t>(t)); break;
    default: fail("quantize: output dtype ", dtype_name(out), " is not an integer type (expected i8, u8, i16 or i32)");
  }
  return t;
}

Tensor quantize_per_channel(const Tensor& x, std::span<const QuantParams> params, DType out) {
  std::span<const float> in = f32_span(x, "quantize_per_channel");
  LOWBIT_CHECK(x.dim() >= 1 && x.size(0) == static_cast<int64_t>(params.size()), "quantize_per_channel: ",
               params.size(), " channel parameters for tensor ", x.describe(), " (expected one per row of dim 0)");
  Tensor t = Tensor::zeros(x.shape(), out);
  switch (out) {
    case DType::i8: quantize_per_channel(in, params, int_span<int8_t>(t)); break;
    case DType::i16: quantize_per_channel(in, params, int_span<int16_t>(t)); break;
    default: fail("quantize_per_channel: output dtype ", dtype_name(out), " is not supported (expected i8 or i16)");
  }
  return t;
}

Tensor dequantize(const Tensor& q, const QuantParams& p) {
  LOWBIT_CHECK(q.defined() && q.is_contiguous(), "dequantize: expected a contiguous tensor");
  Tensor t = Tensor::zeros(q.shape(), DType::f32);
  std::span<float> out(t.data<float>(), static_cast<std::size_t>(t.numel()));
  const std::size_t n = static_cast<std::size_t>(q.numel());
  switch (q.dtype()) {
    case DType::i8: dequantize(std::span<const int8_t>(q.data<int8_t>(), n), p, out); break;
    case DType::u8: dequantize(std::span<const uint8_t>(q.data<uint8_t>(), n), p, out); break;
    case DType::i16: dequantize(std::span<const int16_t>(q.data<int16_t>(), n), p, out); break;
    case DType::i32: dequantize(std::span<const int32_t>(q.data<int32_t>(), n), p, out); break;
    default: fail("dequantize: input dtype ", dtype_name(q.dtype()), " is not an integer type");
  }
  return t;
}

void fake_quantize(std::span<const float> x, const QuantParams& p, std::span<float> out) {
  check_size("fake_quantize", "out", out.size(), x.size());
  check_params("fake_quantize", p);
  detail::check_no_nan("fake_quantize", x);
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = dequantize_value(quantize_one(x[i], p), p);
}

void fake_quantize_backward(std::span<const float> x, std::span<const float> grad_out, const QuantParams& p,
                            std::span<float> grad_in) {
  check_size("fake_quantize_backward", "grad_out", grad_out.size(), x.size());
  check_size("fake_quantize_backward", "grad_in", grad_in.size(), x.size());
  check_params("fake_quantize_backward", p);
  const float lo = p.real_min(), hi = p.real_max();
  for (std::size_t i = 0; i < x.size(); ++i) grad_in[i] = (x[i] >= lo && x[i] <= hi) ? grad_out[i] : 0.0f;
}

void fake_quantize_per_channel(std::span<const float> x, std::span<const QuantParams> params,
                               std::span<float> out) {
  check_size("fake_quantize_per_channel", "out", out.size(), x.size());
  const std::size_t inner = channel_size("fake_quantize_per_channel", x.size(), params.size());
  for (std::size_t c = 0; c < params.size(); ++c)
    fake_quantize(x.subspan(c * inner, inner), params[c], out.subspan(c * inner, inner));
}

void fake_quantize_per_channel_backward(std::span<const float> x, std::span<const float> grad_out,
                                        std::span<const QuantParams> params, std::span<float> grad_in) {
  check_size("fake_quantize_per_channel_backward", "grad_out", grad_out.size(), x.size());
  check_size("fake_quantize_per_channel_backward", "grad_in", grad_in.size(), x.size());
  const std::size_t inner = channel_size("fake_quantize_per_channel_backward", x.size(), params.size());
  for (std::size_t c = 0; c < params.size(); ++c)
    fake_quantize_backward(x.subspan(c * inner, inner), grad_out.subspan(c * inner, inner), params[c],
                           grad_in.subspan(c * inner, inner));
}

}  // namespace lowbit::quant
