// Dropout masks from the counter-based hash of quant/rng.h, vectorized.
//
// Element i of a tensor is dropped when uniform01(seed, i) < p, the definition the autograd op
// has always used; these kernels test the equivalent integer condition (the hash's top 24 bits
// below dropout_threshold(p)) so that the hash vectorizes. Chosen at run time for AVX-512, AVX2
// or baseline x86-64, with the same results at every level (the file is compiled without FMA
// contraction, so the accumulating backward rounds like the scalar code).
#pragma once

#include <cstdint>

namespace lowbit::kernels {

// The number of 24-bit draws k with k·2^-24 < p, i.e. element i is dropped when
// (random_bits(seed, i) >> 40) < dropout_threshold(p). p in [0, 1].
uint32_t dropout_threshold(float p);

// For i in [begin, end): out[i] = dropped(i) ? 0 : x[i]·scale.
void dropout_forward(uint64_t seed, float p, float scale, const float* x, int64_t begin, int64_t end, float* out);

// For i in [begin, end): g = dropped(i) ? 0 : go[i]·scale; gi[i] = g, or gi[i] += g when
// `accumulate` (dropped elements then leave gi[i] as it was).
void dropout_backward(uint64_t seed, float p, float scale, const float* go, int64_t begin, int64_t end, float* gi,
                      bool accumulate);

}  // namespace lowbit::kernels
