// AVX2 int8 GEMM / GEMV. Exact arithmetic as in the AVX-512BW variant: operands sign-extended
// to int16 and multiplied with vpmaddwd (vpmaddubsw would saturate). A ymm holds 4 channels x
// 4 K as int16; a 16-channel panel group is 4 ymm. With 16 ymm registers the tile is 2 rows x
// 16 channels (8 accumulators).
#include "lowbit/core/target.h"

#if LOWBIT_X86

#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/igemm_kernels.h"

namespace lowbit::kernels::igemm_detail {
namespace {

constexpr int kMr = 2;

LOWBIT_TARGET_AVX2 static inline __m256i bcast8(const int16_t* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return _mm256_set1_epi64x(v);
}

// Bit-exact multiply_by_quantized_multiplier on 8 lanes, then clamp and zero point; see
// igemm_avx512.h for why one add and a logical shift of the 64-bit product implement srdhm.
LOWBIT_TARGET_AVX2 static inline __m256i requant8(__m256i x, __m256i mult, __m256i ls, __m256i rs, __m256i lo,
                                                  __m256i hi, __m256i zp) {
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i nudge = _mm256_set1_epi64x(int64_t{1} << 30);
  x = _mm256_sllv_epi32(x, ls);
  __m256i even = _mm256_add_epi64(_mm256_mul_epi32(x, mult), nudge);
  __m256i odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(mult, 32)), nudge);
  even = _mm256_srli_epi64(even, 31);
  odd = _mm256_slli_epi64(odd, 1);
  const __m256i h = _mm256_blend_epi32(even, odd, 0xAA);
  const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, rs), one);
  const __m256i rem = _mm256_and_si256(h, mask);
  const __m256i thr = _mm256_add_epi32(_mm256_srai_epi32(mask, 1), _mm256_srli_epi32(h, 31));
  __m256i q = _mm256_srav_epi32(h, rs);
  q = _mm256_add_epi32(q, _mm256_and_si256(_mm256_cmpgt_epi32(rem, thr), one));
  q = _mm256_min_epi32(_mm256_max_epi32(q, lo), hi);
  return _mm256_add_epi32(q, zp);
}

// Epilogue for `rows` rows of 16 sums (row stride 64 in tile) of channels col0 .. col0+valid−1.
// AVX2 has no byte-masked store, so results go through a small buffer for partial panels.
LOWBIT_TARGET_AVX2 static inline void store_panel(const int32_t* tile, int64_t rows, int64_t valid, int64_t col0,
                                                  const Epilogue& ep, void* out, int64_t ldc) {
  alignas(32) int32_t res[16];
  const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ep.bias + col0));
  const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ep.bias + col0 + 8));
  for (int64_t r = 0; r < rows; ++r) {
    __m256i v0 = _mm256_add_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(tile + r * kBlock)), b0);
    __m256i v1 = _mm256_add_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(tile + r * kBlock + 8)), b1);
    if (ep.out != Out::s32) {
      const __m256i lo = _mm256_set1_epi32(ep.lo), hi = _mm256_set1_epi32(ep.hi), zp = _mm256_set1_epi32(ep.zero_point);
      for (int h = 0; h < 2; ++h) {
        const int64_t ch = col0 + 8 * h;
        const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ep.mult + ch));
        const __m256i ls = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ep.lshift + ch));
        const __m256i rs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ep.rshift + ch));
        if (h == 0)
          v0 = requant8(v0, m, ls, rs, lo, hi, zp);
        else
          v1 = requant8(v1, m, ls, rs, lo, hi, zp);
      }
    }
    if (ep.out == Out::s32 && valid == 16) {
      auto* c = static_cast<int32_t*>(out) + r * ldc;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), v0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 8), v1);
      continue;
    }
    _mm256_store_si256(reinterpret_cast<__m256i*>(res), v0);
    _mm256_store_si256(reinterpret_cast<__m256i*>(res + 8), v1);
    for (int64_t j = 0; j < valid; ++j) {
      switch (ep.out) {
        case Out::s32: static_cast<int32_t*>(out)[r * ldc + j] = res[j]; break;
        case Out::s8: static_cast<int8_t*>(out)[r * ldc + j] = static_cast<int8_t>(res[j]); break;
        case Out::s16: static_cast<int16_t*>(out)[r * ldc + j] = static_cast<int16_t>(res[j]); break;
      }
    }
  }
}

// Sums the channel pairs of four accumulators (4 channels x 2 partial sums each) into 16
// channel sums in order.
LOWBIT_TARGET_AVX2 static inline void fold_store(__m256i a0, __m256i a1, __m256i a2, __m256i a3, int32_t* out) {
  // hadd gives [c0 c1 c4 c5 | c2 c3 c6 c7]; the 64-bit permute restores channel order.
  const __m256i s01 = _mm256_permute4x64_epi64(_mm256_hadd_epi32(a0, a1), 0xD8);
  const __m256i s23 = _mm256_permute4x64_epi64(_mm256_hadd_epi32(a2, a3), 0xD8);
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), s01);
  _mm256_store_si256(reinterpret_cast<__m256i*>(out + 8), s23);
}

// MR rows x one 16-channel panel; `bstride` is the block's bytes per group of 4 K.
template <int MR>
LOWBIT_TARGET_AVX2 void tile_avx2(const int16_t* a, int64_t kp, const int8_t* b, int64_t bstride, int64_t groups,
                                  int32_t* tile) {
  __m256i acc[MR][4];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) acc[r][q] = _mm256_setzero_si256();
  for (int64_t g = 0; g < groups; ++g) {
    __m256i av[MR];
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) av[r] = bcast8(a + r * kp + 4 * g);
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const __m256i bq = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(b + 16 * q)));
#pragma GCC unroll 4
      for (int r = 0; r < MR; ++r) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(bq, av[r]));
    }
    b += bstride;
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r) fold_store(acc[r][0], acc[r][1], acc[r][2], acc[r][3], tile + r * kBlock);
}

}  // namespace

LOWBIT_TARGET_AVX2 void pack_s16_avx2(const int8_t* a, int64_t rows, int64_t k, int64_t lda, void* dst, int64_t kp) {
  auto* d = static_cast<int16_t*>(dst);
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* src = a + r * lda;
    int16_t* out = d + r * kp;
    int64_t c = 0;
    for (; c + 16 <= k; c += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + c),
                          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + c))));
    for (; c < k; ++c) out[c] = src[c];
    for (; c < kp; ++c) out[c] = 0;
  }
}

LOWBIT_TARGET_AVX2 void block_avx2(const BlockArgs& p) {
  alignas(32) int32_t tile[kMr * kBlock];
  const auto* a = static_cast<const int16_t*>(p.a);
  const int64_t groups = p.kp / 4, bstride = p.width * 4;
  const std::size_t osz = p.ep->out == Out::s32 ? 4 : (p.ep->out == Out::s16 ? 2 : 1);
  // Panel-outer: the panel's B stream is reused by every row pair of the block from L1/L2.
  for (int64_t j = 0; j * kPanel < p.valid; ++j) {
    const int64_t valid = p.valid - j * kPanel < kPanel ? p.valid - j * kPanel : kPanel;
    for (int64_t r0 = 0; r0 < p.rows; r0 += kMr) {
      const int64_t mr = p.rows - r0 < kMr ? p.rows - r0 : kMr;
      const int16_t* ap = a + r0 * p.kp;
      if (mr == 2)
        tile_avx2<2>(ap, p.kp, p.b + j * 64, bstride, groups, tile);
      else
        tile_avx2<1>(ap, p.kp, p.b + j * 64, bstride, groups, tile);
      store_panel(tile, mr, valid, p.col0 + j * kPanel, *p.ep,
                  static_cast<uint8_t*>(p.c) + static_cast<std::size_t>(r0 * p.ldc + j * kPanel) * osz, p.ldc);
    }
  }
}

LOWBIT_TARGET_AVX2 void gemv_avx2(const GemvArgs& p) {
  alignas(32) int32_t sums[kBlock];
  const auto* x = static_cast<const int16_t*>(p.x);
  const int64_t groups = p.kp / 4;
  const std::size_t osz = p.ep->out == Out::s32 ? 4 : (p.ep->out == Out::s16 ? 2 : 1);
  for (int64_t i = p.block0; i < p.block1; ++i) {
    const int64_t blk = gemv_block_at(p, i);
    const int64_t w = block_width(p.panels, blk), col0 = blk * kBlock;
    const int64_t valid = p.n - col0 < kBlock ? p.n - col0 : kBlock;
    const int8_t* b = block_ptr(p.b, blk, p.kp);
    for (int64_t j = 0; j * kPanel < valid; ++j) {
      tile_avx2<1>(x, p.kp, b + j * 64, w * 4, groups, sums);
      store_panel(sums, 1, valid - j * kPanel < kPanel ? valid - j * kPanel : kPanel, col0 + j * kPanel, *p.ep,
                  static_cast<uint8_t*>(p.y) + static_cast<std::size_t>(col0 + j * kPanel) * osz, 0);
    }
  }
}

}  // namespace lowbit::kernels::igemm_detail

#endif  // LOWBIT_X86
