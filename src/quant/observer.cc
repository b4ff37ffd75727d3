#include "lowbit/quant/observer.h"

#include <algorithm>
#include <cmath>

#include "quant/common.h"

namespace lowbit::quant {

namespace {

// Min and max of the non-NaN values of x; false when there are none. Throws on ±inf.
bool batch_range(const char* fn, std::span<const float> x, float& lo, float& hi) {
  bool any = false;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float v = x[i];
    if (std::isnan(v)) continue;
    LOWBIT_CHECK(std::isfinite(v), fn, ": input[", i, "] is ", v, " (expected a finite value; NaNs are skipped)");
    if (!any) {
      lo = hi = v;
      any = true;
    } else {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  return any;
}

float max_abs(float lo, float hi) { return std::max(std::fabs(lo), std::fabs(hi)); }

}  // namespace

void MinMaxObserver::update(std::span<const float> x) {
  float lo = 0.0f, hi = 0.0f;
  if (!batch_range("MinMaxObserver::update", x, lo, hi)) return;
  min_ = seen_ ? std::min(min_, lo) : lo;
  max_ = seen_ ? std::max(max_, hi) : hi;
  seen_ = true;
}

float MinMaxObserver::min() const {
  LOWBIT_CHECK(seen_, "MinMaxObserver: no values observed yet");
  return min_;
}
float MinMaxObserver::max() const {
  LOWBIT_CHECK(seen_, "MinMaxObserver: no values observed yet");
  return max_;
}
QuantParams MinMaxObserver::asymmetric(QRange r) const { return choose_asymmetric(min(), max(), r); }
QuantParams MinMaxObserver::symmetric(QRange r) const { return choose_symmetric(max_abs(min(), max()), r); }
QuantParams MinMaxObserver::power_of_two(int bits, int min_pot, int max_pot) const {
  return choose_power_of_two(max_abs(min(), max()), bits, min_pot, max_pot);
}

MovingAverageMinMaxObserver::MovingAverageMinMaxObserver(float averaging_constant) : c_(averaging_constant) {
  LOWBIT_CHECK(averaging_constant > 0.0f && averaging_constant <= 1.0f,
               "MovingAverageMinMaxObserver: averaging constant must be in (0, 1], got ", averaging_constant);
}

void MovingAverageMinMaxObserver::update(std::span<const float> x) {
  float lo = 0.0f, hi = 0.0f;
  if (!batch_range("MovingAverageMinMaxObserver::update", x, lo, hi)) return;
  if (!seen_) {
    min_ = lo;
    max_ = hi;
    seen_ = true;
    return;
  }
  min_ += c_ * (lo - min_);
  max_ += c_ * (hi - max_);
}

float MovingAverageMinMaxObserver::min() const {
  LOWBIT_CHECK(seen_, "MovingAverageMinMaxObserver: no values observed yet");
  return min_;
}
float MovingAverageMinMaxObserver::max() const {
  LOWBIT_CHECK(seen_, "MovingAverageMinMaxObserver: no values observed yet");
  return max_;
}
QuantParams MovingAverageMinMaxObserver::asymmetric(QRange r) const { return choose_asymmetric(min(), max(), r); }
QuantParams MovingAverageMinMaxObserver::symmetric(QRange r) const {
  return choose_symmetric(max_abs(min(), max()), r);
}

PerChannelMinMaxObserver::PerChannelMinMaxObserver(int64_t channels) {
  LOWBIT_CHECK(channels >= 1, "PerChannelMinMaxObserver: channels must be >= 1, got ", channels);
  min_.assign(static_cast<std::size_t>(channels), 0.0f);
  max_.assign(static_cast<std::size_t>(channels), 0.0f);
  seen_.assign(static_cast<std::size_t>(channels), 0);
}

void PerChannelMinMaxObserver::update(std::span<const float> x) {
  const std::size_t inner = detail::check_rows("PerChannelMinMaxObserver::update", x.size(), channels());
  for (std::size_t c = 0; c < min_.size(); ++c) {
    float lo = 0.0f, hi = 0.0f;
    if (!batch_range("PerChannelMinMaxObserver::update", x.subspan(c * inner, inner), lo, hi)) continue;
    min_[c] = seen_[c] ? std::min(min_[c], lo) : lo;
    max_[c] = seen_[c] ? std::max(max_[c], hi) : hi;
    seen_[c] = 1;
  }
}

bool PerChannelMinMaxObserver::empty() const {
  return std::any_of(seen_.begin(), seen_.end(), [](uint8_t s) { return s == 0; });
}

float PerChannelMinMaxObserver::min(int64_t c) const {
  LOWBIT_CHECK(c >= 0 && c < channels(), "PerChannelMinMaxObserver: channel ", c, " out of range [0, ", channels(), ")");
  LOWBIT_CHECK(seen_[static_cast<std::size_t>(c)], "PerChannelMinMaxObserver: channel ", c, " has no values yet");
  return min_[static_cast<std::size_t>(c)];
}
float PerChannelMinMaxObserver::max(int64_t c) const {
  LOWBIT_CHECK(c >= 0 && c < channels(), "PerChannelMinMaxObserver: channel ", c, " out of range [0, ", channels(), ")");
  LOWBIT_CHECK(seen_[static_cast<std::size_t>(c)], "PerChannelMinMaxObserver: channel ", c, " has no values yet");
  return max_[static_cast<std::size_t>(c)];
}

std::vector<QuantParams> PerChannelMinMaxObserver::asymmetric(QRange r) const {
  std::vector<QuantParams> out;
  for (int64_t c = 0; c < channels(); ++c) out.push_back(choose_asymmetric(min(c), max(c), r));
  return out;
}
std::vector<QuantParams> PerChannelMinMaxObserver::symmetric(QRange r) const {
  std::vector<QuantParams> out;
  for (int64_t c = 0; c < channels(); ++c) out.push_back(choose_symmetric(max_abs(min(c), max(c)), r));
  return out;
}

}  // namespace lowbit::quant
