// Vectorized exponential for float arrays (softmax over a language model's vocabulary, gates of
// float recurrent layers): Cody–Waite range reduction x = n·ln 2 + r, a degree-6 polynomial for
// e^r on |r| <= ln 2 / 2, and 2^n put into the exponent field. Relative error below 3e−7 (about
// 2 ulp) against std::exp on [−87.3, 88]; inputs are clamped to that range, so very negative
// inputs give about 1.2e−38 instead of 0, inputs above 88 give e^88, and NaN is not propagated.
// Chosen at run time for AVX-512, AVX2 or baseline x86-64, with the same operations (the file
// is compiled without FMA contraction), so every level gives the same bits.
#pragma once

#include <cstdint>

namespace lowbit::kernels {

// out[i] = exp(in[i] + shift). `in` and `out` may be the same array.
void exp_f32(const float* in, float shift, int64_t n, float* out);

}  // namespace lowbit::kernels
