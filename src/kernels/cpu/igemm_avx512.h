// AVX-512 (F/BW/VL) helpers shared by the AVX-512 int8 kernels: the vectorised
// requantization (bit-exact to quant::multiply_by_quantized_multiplier) and the tile store.
// Only included by files whose functions carry a LOWBIT_TARGET_AVX512* attribute.
#pragma once

#include <immintrin.h>

#include <cstdint>

// GCC 12's AVX-512 intrinsic headers build their undefined pass-through operands from
// self-initialised variables, which -Wmaybe-uninitialized reports once inlined (GCC bug
// 105593); the values are never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/cpu/igemm_kernels.h"
#include "lowbit/core/target.h"

namespace lowbit::kernels::igemm_detail {
namespace avx512 {

// multiply_by_quantized_multiplier for 16 lanes, then clamp to [lo, hi] and add the zero point.
//
// srdhm(x, M0) is (x·M0 + 2^30 [+ 1 − 2^31 when negative]) / 2^31 truncated toward zero. For
// a negative product t = x·M0 + 1 − 2^30 the truncating division equals floor((t + 2^31 − 1)
// / 2^31) = floor((x·M0 + 2^30) / 2^31), which is also the expression for a non-negative
// product, so one add and one shift of the 64-bit product serve both signs. The overflow case
// of srdhm needs M0 = INT32_MIN, which validation rules out (M0 >= 0). The quotient fits in
// int32, so bits 31..62 of the 64-bit sum are the result: a logical shift suffices.
LOWBIT_TARGET_AVX512 static inline __m512i requant16(__m512i x, __m512i mult, __m512i ls, __m512i rs, __m512i lo,
                                                     __m512i hi, __m512i zp) {
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i nudge = _mm512_set1_epi64(int64_t{1} << 30);
  x = _mm512_sllv_epi32(x, ls);  // wraps like shift_left_wrapping
  __m512i even = _mm512_add_epi64(_mm512_mul_epi32(x, mult), nudge);
  __m512i odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(mult, 32)), nudge);
  even = _mm512_srli_epi64(even, 31);  // result in the low half of each 64-bit lane
  odd = _mm512_slli_epi64(odd, 1);     // result in the high half
  const __m512i h = _mm512_mask_blend_epi32(0xAAAA, even, odd);
  // rounding_divide_by_pot(h, rs): round half away from zero.
  const __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, rs), one);
  const __m512i rem = _mm512_and_si512(h, mask);
  const __m512i thr = _mm512_add_epi32(_mm512_srai_epi32(mask, 1), _mm512_srli_epi32(h, 31));
  __m512i q = _mm512_srav_epi32(h, rs);
  q = _mm512_mask_add_epi32(q, _mm512_cmpgt_epi32_mask(rem, thr), q, one);
  q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
  return _mm512_add_epi32(q, zp);
}

// Applies the epilogue to `rows` rows of int32 sums (row stride 64 in `tile`) for channels
// [col0, col0 + valid) and stores them at `out` (row stride ldc elements). Stores are masked,
// so nothing outside the valid columns is touched.
LOWBIT_TARGET_AVX512 static inline void store_tile(const int32_t* tile, int64_t rows, int64_t valid, int64_t col0,
                                                   const Epilogue& ep, void* out, int64_t ldc) {
  for (int64_t j = 0; j * kPanel < valid; ++j) {
    const int64_t cnt = valid - j * kPanel < kPanel ? valid - j * kPanel : kPanel;
    const __mmask16 m = static_cast<__mmask16>(cnt == kPanel ? 0xFFFFu : (1u << cnt) - 1u);
    const int64_t ch = col0 + j * kPanel;
    const __m512i bias = _mm512_loadu_si512(ep.bias + ch);
    if (ep.out == Out::s32) {
      auto* c = static_cast<int32_t*>(out) + j * kPanel;
      for (int64_t r = 0; r < rows; ++r)
        _mm512_mask_storeu_epi32(c + r * ldc, m, _mm512_add_epi32(_mm512_loadu_si512(tile + r * kBlock + j * kPanel), bias));
      continue;
    }
    const __m512i mult = _mm512_loadu_si512(ep.mult + ch), ls = _mm512_loadu_si512(ep.lshift + ch),
                  rs = _mm512_loadu_si512(ep.rshift + ch);
    const __m512i lo = _mm512_set1_epi32(ep.lo), hi = _mm512_set1_epi32(ep.hi), zp = _mm512_set1_epi32(ep.zero_point);
    for (int64_t r = 0; r < rows; ++r) {
      const __m512i x = _mm512_add_epi32(_mm512_loadu_si512(tile + r * kBlock + j * kPanel), bias);
      const __m512i q = requant16(x, mult, ls, rs, lo, hi, zp);
      if (ep.out == Out::s8)
        _mm_mask_storeu_epi8(static_cast<int8_t*>(out) + r * ldc + j * kPanel, m, _mm512_cvtepi32_epi8(q));
      else
        _mm256_mask_storeu_epi16(static_cast<int16_t*>(out) + r * ldc + j * kPanel, m, _mm512_cvtepi32_epi16(q));
    }
  }
}

}  // namespace avx512
}  // namespace lowbit::kernels::igemm_detail
