#include "lowbit/quant/fixed_point.h"

#include <cmath>

#include "lowbit/core/error.h"

namespace lowbit::quant {

QuantizedMultiplier quantize_multiplier(double real_multiplier) {
  LOWBIT_CHECK(std::isfinite(real_multiplier) && real_multiplier >= 0.0,
               "quantize_multiplier: multiplier must be finite and >= 0, got ", real_multiplier);
  if (real_multiplier == 0.0) return {};
  int shift = 0;
  const double q = std::frexp(real_multiplier, &shift);  // q in [0.5, 1)
  int64_t q_fixed = static_cast<int64_t>(std::round(q * static_cast<double>(int64_t{1} << 31)));
  if (q_fixed == (int64_t{1} << 31)) {
    q_fixed /= 2;
    ++shift;
  }
  if (shift < -31) return {};
  LOWBIT_CHECK(shift <= 30, "quantize_multiplier: multiplier ", real_multiplier,
               " is too large: it would need a left shift of ", shift,
               " (at most 30), so it must be below about 2^30");
  return {static_cast<int32_t>(q_fixed), shift};
}

}  // namespace lowbit::quant
