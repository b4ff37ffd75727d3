// Counter-based random numbers for the stochastic quantizers.
//
// A stochastic quantizer draws element i's noise from hash(seed, i), not from a sequential
// generator, so the result depends only on (seed, index): it is the same whether the elements
// are processed in one loop, in parallel chunks, or in a different order. The hash is the
// SplitMix64 finalizer (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
// 2014) applied to a scrambled seed plus a Weyl sequence: good enough statistics for dithering
// and stochastic rounding; not cryptographic.
//
// Calling a stochastic quantizer twice with the same seed gives the same noise. A training loop
// should derive one seed per step and per tensor, e.g. derive_seed(derive_seed(run_seed, step),
// tensor_id).
#pragma once

#include <cstdint>

namespace lowbit::quant {

// The SplitMix64 output function: a bijection on 64-bit words with good avalanche.
constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// 64 random bits for element `counter` of the stream named by `seed`.
constexpr uint64_t random_bits(uint64_t seed, uint64_t counter) {
  return mix64(mix64(seed) + (counter + 1) * 0x9e3779b97f4a7c15ull);
}

// Uniform float in [0, 1) with 24 random bits (every value is a multiple of 2^-24, so the
// float is exact and 1.0 is never returned).
constexpr float uniform01(uint64_t seed, uint64_t counter) {
  return static_cast<float>(random_bits(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

// A new seed for a sub-stream (a step, a layer, a tensor) of `seed`.
constexpr uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  return mix64(seed ^ mix64(stream + 0x632be59bd9b4e019ull));
}

}  // namespace lowbit::quant
