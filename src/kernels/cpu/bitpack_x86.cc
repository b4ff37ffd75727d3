// Vector bit packing: one compare per 8 (AVX2, f32), 16 (AVX-512, f32) or 32/64 (i8/u8)
// elements, whose lane mask is the packed bits in order (element j -> bit j).
#include "kernels/cpu/bgemm_bitpack.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "lowbit/core/target.h"

namespace lowbit::kernels::detail {

// x >= 0 with an ordered compare: -0.0f counts as +1 (it compares equal to zero) and NaN as
// -1, exactly like the scalar `x >= 0.0f`.
LOWBIT_TARGET_AVX2 void pack_f32_avx2(const float* x, int64_t words, uint64_t* out) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t w = 0; w < words; ++w) {
    uint64_t bits = 0;
    for (int g = 0; g < 8; ++g) {
      const __m256 v = _mm256_loadu_ps(x + w * 64 + g * 8);
      const uint32_t m = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GE_OQ)));
      bits |= static_cast<uint64_t>(m) << (g * 8);
    }
    out[w] = bits;
  }
}

// movemask takes the sign bit: a non-negative int8 has it clear, so the bits are inverted.
LOWBIT_TARGET_AVX2 void pack_i8_avx2(const int8_t* x, int64_t words, uint64_t* out) {
  for (int64_t w = 0; w < words; ++w) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + w * 64));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + w * 64 + 32));
    const uint64_t neg = static_cast<uint32_t>(_mm256_movemask_epi8(lo)) |
                         (static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(hi))) << 32);
    out[w] = ~neg;
  }
}

LOWBIT_TARGET_AVX2 void pack_u8_avx2(const uint8_t* x, int64_t words, uint8_t mask, uint64_t* out) {
  const __m256i m = _mm256_set1_epi8(static_cast<char>(mask));
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t w = 0; w < words; ++w) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + w * 64));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + w * 64 + 32));
    // (x & mask) == 0 per byte, then inverted.
    const __m256i zl = _mm256_cmpeq_epi8(_mm256_and_si256(lo, m), zero);
    const __m256i zh = _mm256_cmpeq_epi8(_mm256_and_si256(hi, m), zero);
    const uint64_t z = static_cast<uint32_t>(_mm256_movemask_epi8(zl)) |
                       (static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(zh))) << 32);
    out[w] = ~z;
  }
}

LOWBIT_TARGET_AVX512 void pack_f32_avx512(const float* x, int64_t words, uint64_t* out) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t w = 0; w < words; ++w) {
    const float* p = x + w * 64;
    const uint64_t b0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p), zero, _CMP_GE_OQ);
    const uint64_t b1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 16), zero, _CMP_GE_OQ);
    const uint64_t b2 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 32), zero, _CMP_GE_OQ);
    const uint64_t b3 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 48), zero, _CMP_GE_OQ);
    out[w] = b0 | (b1 << 16) | (b2 << 32) | (b3 << 48);
  }
}

LOWBIT_TARGET_AVX512 void pack_i8_avx512(const int8_t* x, int64_t words, uint64_t* out) {
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t w = 0; w < words; ++w)
    out[w] = _mm512_cmpge_epi8_mask(_mm512_loadu_si512(x + w * 64), zero);
}

LOWBIT_TARGET_AVX512 void pack_u8_avx512(const uint8_t* x, int64_t words, uint8_t mask, uint64_t* out) {
  const __m512i m = _mm512_set1_epi8(static_cast<char>(mask));
  for (int64_t w = 0; w < words; ++w) out[w] = _mm512_test_epi8_mask(_mm512_loadu_si512(x + w * 64), m);
}

// Four 16-lane compares give one 64-bit word of lane masks, in element order.
LOWBIT_TARGET_AVX512 void pack_threshold_avx512(const int32_t* acc, const int32_t* threshold, const uint64_t* flip,
                                                int64_t words, uint64_t* out) {
  for (int64_t w = 0; w < words; ++w) {
    const int32_t* a = acc + w * 64;
    const int32_t* t = threshold + w * 64;
    uint64_t bits = 0;
    for (int q = 0; q < 4; ++q) {
      const __mmask16 m = _mm512_cmpge_epi32_mask(_mm512_loadu_si512(a + 16 * q), _mm512_loadu_si512(t + 16 * q));
      bits |= static_cast<uint64_t>(m) << (16 * q);
    }
    out[w] = bits ^ flip[w];
  }
}

}  // namespace lowbit::kernels::detail
#endif
