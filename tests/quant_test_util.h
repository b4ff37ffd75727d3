// Inputs shared by the quantizer tests: awkward sizes and random values salted with the
// special cases every quantizer must get right (signed zeros, ±1, ties at ±0.5, tiny values,
// infinities).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace lowbit::quant::testing {

inline const std::vector<std::size_t> kSizes{1, 7, 13, 64, 257};
inline constexpr float kInf = std::numeric_limits<float>::infinity();

// n values uniform in [-lim, lim]; every third one replaced by a special case.
inline std::vector<float> random_values(std::size_t n, uint32_t seed, float lim) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-lim, lim);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, 1e-30f, -1e-30f, kInf, -kInf, 0.5f, -0.5f};
  for (std::size_t i = 0; i < n; i += 3) v[i] = specials[(i / 3) % 10];
  return v;
}

}  // namespace lowbit::quant::testing
