// Affine (scale, zero point) quantization to int8 / uint8 / int16, as TFLite defines it
// (integer_lstm.md §2, §7): real ≈ scale · (q − zero_point).
//
//   asymmetric   range extended to include 0; scale = (max − min) / (qmax − qmin);
//                zero_point = round(qmin − min / scale) clamped to [qmin, qmax] — the "nudge"
//                that makes 0.0 exactly representable (TFLite GetAsymmetricQuantizationParams,
//                float arithmetic as there)
//   symmetric    zero_point = 0, scale = max|x| / qmax; TFLite weights use int8 narrow range
//                [−127, 127], int16 peephole / layer-norm weights [−32767, 32767]
//   power of two int16 cell state: scale = 2^(pot − 15), 2^pot the smallest power of two
//                >= max|x| (with pot >= min_pot, 0 by default as the legacy TFLite quantizer)
//
//   quantize     q = clamp(round(x / scale) + zero_point, qmin, qmax), the division in float and
//                round half away from zero (TfLiteRound), as TFLite's reference Quantize
//   dequantize   x = scale · (q − zero_point)
//   fake quant   dequantize(quantize(x)); backward passes the gradient where x lies inside
//                [scale·(qmin − zp), scale·(qmax − zp)] and zeroes it outside (clipped STE)
//
// Per channel: axis 0 of a [C, ...] tensor, i.e. C equal contiguous blocks, one QuantParams each.
//
// Zero-range policy: a range narrower than kMinQuantRange (after including 0) is widened to
// kMinQuantRange around its centre (still containing 0), so the scale is never 0, subnormal or
// NaN; an all-zero tensor gets a tiny positive scale and quantizes to its zero point. Ranges of
// at least kMinQuantRange give exactly TFLite's parameters. Non-finite or inverted ranges throw.
// NaN inputs to quantize throw (see binary.h for the layer's conventions); ±inf saturate.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "lowbit/core/tensor.h"

namespace lowbit::quant {

struct QRange {
  int32_t qmin;
  int32_t qmax;
};
inline constexpr QRange kInt8{-128, 127};
inline constexpr QRange kInt8Narrow{-127, 127};
inline constexpr QRange kUInt8{0, 255};
inline constexpr QRange kInt16{-32768, 32767};
inline constexpr QRange kInt16Narrow{-32767, 32767};

// Narrowest range (max − min) the choosers accept before widening; TFLite refuses int16
// intermediates narrower than 1e-8 (integer_lstm.md §7), so this is the same threshold.
inline constexpr float kMinQuantRange = 1e-8f;

struct QuantParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
  int32_t qmin = -128;
  int32_t qmax = 127;
  // Real values at the ends of the integer range.
  float real_min() const { return scale * static_cast<float>(qmin - zero_point); }
  float real_max() const { return scale * static_cast<float>(qmax - zero_point); }
};

// ---- choosing parameters -----------------------------------------------------------------
QuantParams choose_asymmetric(float min, float max, QRange r = kInt8);
QuantParams choose_asymmetric(std::span<const float> x, QRange r = kInt8);  // from min/max of x
// zero_point 0; requires qmin <= 0 < qmax. max_abs >= 0.
QuantParams choose_symmetric(float max_abs, QRange r = kInt8Narrow);
QuantParams choose_symmetric(std::span<const float> x, QRange r = kInt8Narrow);  // from max|x|
// Per output channel (axis 0 of a [channels, n / channels] view).
std::vector<QuantParams> choose_asymmetric_per_channel(std::span<const float> x, int64_t channels,
                                                       QRange r = kInt8);
std::vector<QuantParams> choose_symmetric_per_channel(std::span<const float> x, int64_t channels,
                                                      QRange r = kInt8Narrow);
// Power-of-two scale 2^(pot − (bits − 1)), zero point 0, full signed range of `bits` (8 or 16).
// pot = max(min_pot, ceil(log2 max_abs)); throws if pot > max_pot (the LSTM kernel needs the
// cell scale 2^(pot − 15) <= 2^-9, i.e. pot <= 6; TFLite's legacy search stops at 10).
QuantParams choose_power_of_two(float max_abs, int bits = 16, int min_pot = 0, int max_pot = 10);
// The integer log2 of a power-of-two scale, accepting |log2 scale − n| <= 1e-3 as the TFLite
// LSTM kernel does for the cell scale; throws otherwise.
int power_of_two_exponent(float scale);

// ---- quantize / dequantize ---------------------------------------------------------------
// Scalar quantize to an int32 code in [qmin, qmax]; throws on NaN.
int32_t quantize_value(float x, const QuantParams& p);
inline float dequantize_value(int32_t q, const QuantParams& p) {
  return p.scale * static_cast<float>(q - p.zero_point);
}

// The output type must hold [qmin, qmax] (checked).
void quantize(std::span<const float> x, const QuantParams& p, std::span<int8_t> q);
void quantize(std::span<const float> x, const QuantParams& p, std::span<uint8_t> q);
void quantize(std::span<const float> x, const QuantParams& p, std::span<int16_t> q);
void quantize(std::span<const float> x, const QuantParams& p, std::span<int32_t> q);
void dequantize(std::span<const int8_t> q, const QuantParams& p, std::span<float> out);
void dequantize(std::span<const uint8_t> q, const QuantParams& p, std::span<float> out);
void dequantize(std::span<const int16_t> q, const QuantParams& p, std::span<float> out);
void dequantize(std::span<const int32_t> q, const QuantParams& p, std::span<float> out);

// Per channel: params.size() channels over axis 0.
void quantize_per_channel(std::span<const float> x, std::span<const QuantParams> params, std::span<int8_t> q);
void quantize_per_channel(std::span<const float> x, std::span<const QuantParams> params, std::span<int16_t> q);
void dequantize_per_channel(std::span<const int8_t> q, std::span<const QuantParams> params, std::span<float> out);
void dequantize_per_channel(std::span<const int16_t> q, std::span<const QuantParams> params,
                            std::span<float> out);

// Tensor forms: out dtype i8, u8, i16 or i32 for quantize; per-channel over dim 0.
Tensor quantize(const Tensor& x, const QuantParams& p, DType out);
Tensor quantize_per_channel(const Tensor& x, std::span<const QuantParams> params, DType out);
Tensor dequantize(const Tensor& q, const QuantParams& p);

// ---- fake quantization with a straight-through gradient -----------------------------------
void fake_quantize(std::span<const float> x, const QuantParams& p, std::span<float> out);
void fake_quantize_backward(std::span<const float> x, std::span<const float> grad_out, const QuantParams& p,
                            std::span<float> grad_in);
void fake_quantize_per_channel(std::span<const float> x, std::span<const QuantParams> params,
                               std::span<float> out);
void fake_quantize_per_channel_backward(std::span<const float> x, std::span<const float> grad_out,
                                        std::span<const QuantParams> params, std::span<float> grad_in);

}  // namespace lowbit::quant
