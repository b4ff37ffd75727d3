// Private interface of the bit-packing row kernels (src/kernels/cpu/bitpack_*.cc).
//
// A row kernel packs `words` full groups of 64 elements into `words` output words; the driver
// in src/kernels/bitpack.cc handles the partial last word and the zero padding, so the vector
// kernels never need a tail.
#pragma once

#include <cstdint>

namespace lowbit::kernels::detail {

using PackF32Fn = void (*)(const float* x, int64_t words, uint64_t* out);
using PackI8Fn = void (*)(const int8_t* x, int64_t words, uint64_t* out);
// bit = (x & mask) != 0: mask 0xff packs non-zeros, 1 << plane packs a bit plane.
using PackU8Fn = void (*)(const uint8_t* x, int64_t words, uint8_t mask, uint64_t* out);

// bit j = (acc[j] >= threshold[j]) XOR (bit j of flip), for `words` full groups of 64.
using PackThresholdFn = void (*)(const int32_t* acc, const int32_t* threshold, const uint64_t* flip, int64_t words,
                                 uint64_t* out);

void pack_f32_scalar(const float* x, int64_t words, uint64_t* out);
void pack_threshold_scalar(const int32_t* acc, const int32_t* threshold, const uint64_t* flip, int64_t words,
                           uint64_t* out);
void pack_i8_scalar(const int8_t* x, int64_t words, uint64_t* out);
void pack_u8_scalar(const uint8_t* x, int64_t words, uint8_t mask, uint64_t* out);
#if defined(__x86_64__)
void pack_f32_avx2(const float* x, int64_t words, uint64_t* out);
void pack_i8_avx2(const int8_t* x, int64_t words, uint64_t* out);
void pack_u8_avx2(const uint8_t* x, int64_t words, uint8_t mask, uint64_t* out);
void pack_f32_avx512(const float* x, int64_t words, uint64_t* out);
void pack_i8_avx512(const int8_t* x, int64_t words, uint64_t* out);
void pack_u8_avx512(const uint8_t* x, int64_t words, uint8_t mask, uint64_t* out);
void pack_threshold_avx512(const int32_t* acc, const int32_t* threshold, const uint64_t* flip, int64_t words,
                           uint64_t* out);
#endif

}  // namespace lowbit::kernels::detail
