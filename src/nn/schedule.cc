#include "lowbit/nn/schedule.h"

#include <algorithm>
#include <cmath>

#include "lowbit/core/error.h"
#include "lowbit/quant/kbit.h"

namespace lowbit::nn {
namespace {
void check_rate(const char* who, const char* name, float v) {
  LOWBIT_CHECK(std::isfinite(v) && v > 0.0f, who, ": ", name, " must be finite and > 0, got ", v);
}
}  // namespace

LrSchedule LrSchedule::constant(float lr) {
  LOWBIT_CHECK(std::isfinite(lr) && lr >= 0.0f, "LrSchedule::constant: lr must be finite and >= 0, got ", lr);
  LrSchedule s;
  s.kind_ = Kind::constant;
  s.start_ = lr;
  return s;
}

LrSchedule LrSchedule::exponential(float lr_start, float lr_end, int64_t epochs) {
  check_rate("LrSchedule::exponential", "lr_start", lr_start);
  check_rate("LrSchedule::exponential", "lr_end", lr_end);
  LOWBIT_CHECK(epochs >= 1, "LrSchedule::exponential: epochs must be >= 1, got ", epochs);
  LrSchedule s;
  s.kind_ = Kind::exponential;
  s.start_ = lr_start;
  s.end_ = lr_end;
  s.period_ = epochs;
  return s;
}

LrSchedule LrSchedule::step(float lr_start, float factor, int64_t every) {
  LOWBIT_CHECK(std::isfinite(lr_start) && lr_start >= 0.0f, "LrSchedule::step: lr_start must be finite and >= 0, got ",
               lr_start);
  check_rate("LrSchedule::step", "factor", factor);
  LOWBIT_CHECK(every >= 1, "LrSchedule::step: every must be >= 1 epoch, got ", every);
  LrSchedule s;
  s.kind_ = Kind::step;
  s.start_ = lr_start;
  s.factor_ = factor;
  s.period_ = every;
  return s;
}

float LrSchedule::lr(int64_t epoch) const {
  LOWBIT_CHECK(epoch >= 0, "LrSchedule::lr: epoch must be >= 0, got ", epoch);
  double r = start_;
  switch (kind_) {
    case Kind::constant: break;
    case Kind::exponential: {
      // start·(end/start)^(e/E), the closed form of start·λ^e.
      const double e = static_cast<double>(std::min(epoch, period_));
      r = start_ * std::pow(end_ / start_, e / static_cast<double>(period_));
      break;
    }
    case Kind::step: r = start_ * std::pow(factor_, static_cast<double>(epoch / period_)); break;
  }
  const auto f = static_cast<float>(r);
  return pow2_ ? quant::ap2(f) : f;
}

float glorot_lr_scale(int64_t fan_in, int64_t fan_out) {
  LOWBIT_CHECK(fan_in >= 1 && fan_out >= 1, "glorot_lr_scale: fan_in and fan_out must be >= 1, got ", fan_in, " and ",
               fan_out);
  return static_cast<float>(1.0 / std::sqrt(1.5 / static_cast<double>(fan_in + fan_out)));
}

float glorot_lr_scale_pow2(int64_t fan_in, int64_t fan_out) { return quant::ap2(glorot_lr_scale(fan_in, fan_out)); }

bool BestTracker::record(int64_t epoch, double valid_error, double test_error) {
  history_.push_back({epoch, valid_error, test_error});
  // Strictly lower only: on a tie the earlier epoch stays best. NaN compares false.
  if (!std::isnan(valid_error) && (best_ < 0 || valid_error < history_[best_].valid_error)) {
    best_ = static_cast<int64_t>(history_.size()) - 1;
    return true;
  }
  return false;
}

const BestTracker::Entry& BestTracker::best() const {
  LOWBIT_CHECK(best_ >= 0, "BestTracker::best: no epoch with a validation error has been recorded");
  return history_[best_];
}

}  // namespace lowbit::nn
