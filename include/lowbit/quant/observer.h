// Calibration observers: they watch float tensors during calibration (or quantization-aware
// training) and turn the range they saw into QuantParams (affine.h).
//
//   MinMaxObserver              running global min and max, the statistic TFLite's post-training
//                               calibration uses (integer_lstm.md §7: no averaging, no percentiles)
//   MovingAverageMinMaxObserver the first batch sets min/max, later batches move them by
//                               min ← min + c·(batch_min − min) (same for max), c = averaging
//                               constant (0.01 by default), as in QAT frameworks
//   PerChannelMinMaxObserver    running min/max per channel (axis 0 of a [C, ...] tensor)
//
// NaNs are skipped (as TFLite's calibration logger does); a batch with no non-NaN value leaves
// the observer unchanged. ±inf throw lowbit::Error: an infinite range has no usable scale.
// Asking an observer that has seen nothing for parameters throws. Degenerate ranges (a constant
// tensor, all zeros) follow affine.h's zero-range policy, so the scale is never 0 or NaN.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "lowbit/quant/affine.h"

namespace lowbit::quant {

class MinMaxObserver {
 public:
  void update(std::span<const float> x);
  void reset() { seen_ = false; }
  bool empty() const { return !seen_; }
  float min() const;
  float max() const;
  QuantParams asymmetric(QRange r = kInt8) const;
  QuantParams symmetric(QRange r = kInt8Narrow) const;  // from max(|min|, |max|)
  QuantParams power_of_two(int bits = 16, int min_pot = 0, int max_pot = 10) const;

 private:
  bool seen_ = false;
  float min_ = 0.0f, max_ = 0.0f;
};

class MovingAverageMinMaxObserver {
 public:
  explicit MovingAverageMinMaxObserver(float averaging_constant = 0.01f);
  void update(std::span<const float> x);
  void reset() { seen_ = false; }
  bool empty() const { return !seen_; }
  float min() const;
  float max() const;
  QuantParams asymmetric(QRange r = kInt8) const;
  QuantParams symmetric(QRange r = kInt8Narrow) const;

 private:
  float c_;
  bool seen_ = false;
  float min_ = 0.0f, max_ = 0.0f;
};

class PerChannelMinMaxObserver {
 public:
  explicit PerChannelMinMaxObserver(int64_t channels);
  // x is a [channels, n / channels] view; n must be a multiple of channels.
  void update(std::span<const float> x);
  int64_t channels() const { return static_cast<int64_t>(min_.size()); }
  bool empty() const;  // true until every channel has seen a value
  float min(int64_t c) const;
  float max(int64_t c) const;
  std::vector<QuantParams> asymmetric(QRange r = kInt8) const;
  std::vector<QuantParams> symmetric(QRange r = kInt8Narrow) const;

 private:
  std::vector<float> min_, max_;
  std::vector<uint8_t> seen_;
};

}  // namespace lowbit::quant
