// AVX-512 packed ±1 GEMM micro-kernels.
//
// bgemm_avx512vpopcnt_8x16 (AVX512_VPOPCNTDQ): 8 rows of A x one 16-column panel of B.
// Per 64-bit word of K: two panel loads (16 columns), eight broadcasts of an A word (folded
// into the XOR as an embedded {1to8} broadcast load), then per (row, half-panel) one XOR, one
// VPOPCNTQ and one VPADDQ into a 64-bit lane per output. 16 accumulators stay in zmm for the
// whole of K and each lane is one output, so the end of K needs no horizontal reduction: the
// 16 lanes convert to the 16 int32 dot products of a row segment and go through the fused
// epilogue directly. 3 vector uops per 512 bMAC; on a CPU with two 512-bit vector ports
// (Intel server cores) that is 341 bMAC/cycle, the bound this kernel is built to reach.
// Loads (10 per 16 groups) use the load ports and stay well below 2 per cycle.
//
// bgemm_avx512_lut_4x16 (AVX-512 BW, no VPOPCNTDQ, e.g. Skylake-X): the same tile shape with
// 4 rows, popcount by nibble lookup (VPSHUFB) into byte counters that are folded into 64-bit
// lanes with VPSADBW every 31 words, before a byte (31 x 8 = 248) could overflow.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/bgemm_common.h"

#if defined(__x86_64__)
// GCC 12's unmasked AVX-512 intrinsics start from _mm512_undefined_*() and trip its own
// (un)initialised-use warnings inside immintrin.h; the values are fully overwritten.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "lowbit/core/target.h"

namespace lowbit::kernels::detail {
namespace {

constexpr int kNR = 16;

// Fused epilogue for one row and the 16 columns [c0, c0 + 16) of a panel; `pop_lo`/`pop_hi`
// hold the popcounts of columns c0..c0+7 / c0+8..c0+15 in 64-bit lanes. Columns at or past
// n_end are neither read (per-channel parameters are loaded under a mask) nor written.
LOWBIT_TARGET_AVX512 static inline void epilogue_row16(const BgemmArgs& p, int64_t m, int64_t c0, int64_t n_end,
                                                       __m512i pop_lo, __m512i pop_hi) {
  const int64_t left = n_end - c0;
  const __mmask16 valid = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
  const __m512i pop = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(pop_lo)),
                                         _mm512_cvtepi64_epi32(pop_hi), 1);
  const __m512i dot = _mm512_sub_epi32(_mm512_set1_epi32(static_cast<int32_t>(p.k)), _mm512_add_epi32(pop, pop));
  switch (p.epilogue) {
    case BgemmEpilogue::kS32:
      _mm512_mask_storeu_epi32(p.c_s32 + m * p.ldc + c0, valid, dot);
      break;
    case BgemmEpilogue::kF32: {
      const __m512 s = p.scale ? _mm512_maskz_loadu_ps(valid, p.scale + c0) : _mm512_set1_ps(1.0f);
      const __m512 b = p.bias ? _mm512_maskz_loadu_ps(valid, p.bias + c0) : _mm512_setzero_ps();
      __m512 prod = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), s);
      // Keep the product rounded on its own: a fused multiply-add would round once and
      // differ from the reference (and from the portable variant) in the last bit.
      __asm__("" : "+v"(prod));
      _mm512_mask_storeu_ps(p.c_f32 + m * p.ldc + c0, valid, _mm512_add_ps(prod, b));
      break;
    }
    case BgemmEpilogue::kThreshold: {
      const __m512i t = _mm512_maskz_loadu_epi32(valid, p.threshold + c0);
      __mmask16 bits = _mm512_cmpge_epi32_mask(dot, t);
      if (p.flip) bits ^= _mm_test_epi8_mask(_mm_maskz_loadu_epi8(valid, p.flip + c0), _mm_set1_epi8(1));
      const uint16_t piece = static_cast<uint16_t>(bits & valid);
      // c0 is a multiple of 16, so the 16 bits are one aligned 16-bit piece of a word
      // (little-endian); the driver zeroed the output, and this thread owns the word.
      std::memcpy(reinterpret_cast<char*>(p.out + m * p.ldo) + c0 / 8, &piece, sizeof(piece));
      break;
    }
  }
}

// Horizontal sums of four vectors of 64-bit lanes: returns {Σx, Σy, Σz, Σw} as int64.
LOWBIT_TARGET_AVX512 static inline void reduce4(__m512i x, __m512i y, __m512i z, __m512i w, int64_t out[4]) {
  // Interleave pairs so every step halves the lanes of two sums at once.
  const __m512i xy = _mm512_add_epi64(_mm512_unpacklo_epi64(x, y), _mm512_unpackhi_epi64(x, y));
  const __m512i zw = _mm512_add_epi64(_mm512_unpacklo_epi64(z, w), _mm512_unpackhi_epi64(z, w));
  // 128-bit lanes: {xy0, xy2, zw0, zw2} + {xy1, xy3, zw1, zw3}.
  const __m512i s = _mm512_add_epi64(_mm512_shuffle_i64x2(xy, zw, _MM_SHUFFLE(2, 0, 2, 0)),
                                     _mm512_shuffle_i64x2(xy, zw, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i t = _mm512_add_epi64(s, _mm512_shuffle_i64x2(s, s, _MM_SHUFFLE(2, 3, 0, 1)));
  alignas(64) int64_t lanes[8];
  _mm512_store_si512(lanes, t);
  out[0] = lanes[0];
  out[1] = lanes[1];
  out[2] = lanes[4];
  out[3] = lanes[5];
}

// ---------------------------------------------------------------------------------------
// VPOPCNTDQ

template <int R>
LOWBIT_TARGET_AVX512_VPOPCNT static inline void vp_tile(const BgemmArgs& p, const uint64_t* panel, int64_t m,
                                                        int64_t c0, int64_t n_end) {
  __m512i lo[R], hi[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) lo[i] = hi[i] = _mm512_setzero_si512();
  const uint64_t* a = p.a + m * p.lda;
  const int64_t lda = p.lda;
  for (int64_t w = 0; w < p.kw; ++w) {
    const __m512i b0 = _mm512_load_si512(panel + w * kNR);
    const __m512i b1 = _mm512_load_si512(panel + w * kNR + 8);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m512i ai = _mm512_set1_epi64(static_cast<long long>(a[i * lda + w]));
      lo[i] = _mm512_add_epi64(lo[i], _mm512_popcnt_epi64(_mm512_xor_si512(b0, ai)));
      hi[i] = _mm512_add_epi64(hi[i], _mm512_popcnt_epi64(_mm512_xor_si512(b1, ai)));
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) epilogue_row16(p, m + i, c0, n_end, lo[i], hi[i]);
}

LOWBIT_TARGET_AVX512_VPOPCNT void vp_tile_any(const BgemmArgs& p, const uint64_t* panel, const uint64_t*, int64_t m,
                                              int rows, int64_t c0, int64_t n_end) {
  switch (rows) {
    case 8: vp_tile<8>(p, panel, m, c0, n_end); break;
    case 7: vp_tile<7>(p, panel, m, c0, n_end); break;
    case 6: vp_tile<6>(p, panel, m, c0, n_end); break;
    case 5: vp_tile<5>(p, panel, m, c0, n_end); break;
    case 4: vp_tile<4>(p, panel, m, c0, n_end); break;
    case 3: vp_tile<3>(p, panel, m, c0, n_end); break;
    case 2: vp_tile<2>(p, panel, m, c0, n_end); break;
    default: vp_tile<1>(p, panel, m, c0, n_end); break;
  }
}

// Carry-save accumulation over pairs of words. With x1 = a[w] ^ b[w], x2 = a[w+1] ^ b[w+1]
// and a running "ones" vector o per output, one full adder o + x1 + x2 = o' + 2c needs
//   o' = o ^ x1 ^ x2 = o ^ (a[w] ^ a[w+1]) ^ (b[w] ^ b[w+1])  one VPTERNLOGQ: the two pair
//        XORs are precomputed once per row of A and per column of B (the pair layout);
//   c  = majority(o, x1, x2) = (o ^ o') ? o : x1             one VPTERNLOGQ on o, o', x1,
//        because x1 != x2 exactly where o' differs from o;
// plus the XOR for x1. The carry (weight 2) is counted with VPOPCNTQ + VPADDQ, and the
// final o once at the end of K. That is 5 vector uops per 2 words and output instead of 6.
template <int R>
LOWBIT_TARGET_AVX512_VPOPCNT static inline void csa_tile(const BgemmArgs& p, const uint64_t* panel,
                                                         const uint64_t* a_pair, int64_t m, int64_t c0,
                                                         int64_t n_end) {
  __m512i o0[R], o1[R], c0acc[R], c1acc[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) o0[i] = o1[i] = c0acc[i] = c1acc[i] = _mm512_setzero_si512();
  const uint64_t* a = p.a + m * p.lda;
  const int64_t lda = p.lda, half = p.kw / 2;
  for (int64_t w2 = 0; w2 < half; ++w2) {
    const uint64_t* q = panel + w2 * (2 * kNR);
    const __m512i b0 = _mm512_load_si512(q), b1 = _mm512_load_si512(q + 8);
    const __m512i d0 = _mm512_load_si512(q + 16), d1 = _mm512_load_si512(q + 24);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m512i ai = _mm512_set1_epi64(static_cast<long long>(a[i * lda + 2 * w2]));
      const __m512i di = _mm512_set1_epi64(static_cast<long long>(a_pair[i * half + w2]));
      const __m512i n0 = _mm512_ternarylogic_epi64(o0[i], di, d0, 0x96);
      const __m512i n1 = _mm512_ternarylogic_epi64(o1[i], di, d1, 0x96);
      const __m512i k0 = _mm512_ternarylogic_epi64(o0[i], n0, _mm512_xor_si512(b0, ai), 0xb2);
      const __m512i k1 = _mm512_ternarylogic_epi64(o1[i], n1, _mm512_xor_si512(b1, ai), 0xb2);
      c0acc[i] = _mm512_add_epi64(c0acc[i], _mm512_popcnt_epi64(k0));
      c1acc[i] = _mm512_add_epi64(c1acc[i], _mm512_popcnt_epi64(k1));
      o0[i] = n0;
      o1[i] = n1;
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    const __m512i lo = _mm512_add_epi64(_mm512_popcnt_epi64(o0[i]), _mm512_add_epi64(c0acc[i], c0acc[i]));
    const __m512i hi = _mm512_add_epi64(_mm512_popcnt_epi64(o1[i]), _mm512_add_epi64(c1acc[i], c1acc[i]));
    epilogue_row16(p, m + i, c0, n_end, lo, hi);
  }
}

constexpr int kCsaRows = 6;

LOWBIT_TARGET_AVX512_VPOPCNT void csa_tile_any(const BgemmArgs& p, const uint64_t* panel, const uint64_t* a_pair,
                                               int64_t m, int rows, int64_t c0, int64_t n_end) {
  switch (rows) {
    case 6: csa_tile<6>(p, panel, a_pair, m, c0, n_end); break;
    case 5: csa_tile<5>(p, panel, a_pair, m, c0, n_end); break;
    case 4: csa_tile<4>(p, panel, a_pair, m, c0, n_end); break;
    case 3: csa_tile<3>(p, panel, a_pair, m, c0, n_end); break;
    case 2: csa_tile<2>(p, panel, a_pair, m, c0, n_end); break;
    default: csa_tile<1>(p, panel, a_pair, m, c0, n_end); break;
  }
}

// Unpacked rows x 4 columns: contiguous 512-bit loads along K of both operands, one
// accumulator per output, reduced four at a time.
template <int R>
LOWBIT_TARGET_AVX512_VPOPCNT static inline void vp_rows(const BgemmArgs& p, int64_t m, int64_t n0, int64_t n1) {
  const uint64_t* a[R];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) a[i] = p.a + (m + i) * p.lda;
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) {
    const uint64_t* b = p.b + n * p.ldb;
    const int64_t ldb = p.ldb;
    __m512i acc[R][4];
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_si512();
    for (int64_t w = 0; w < p.kw; w += 8) {
      __m512i bv[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) bv[j] = _mm512_load_si512(b + j * ldb + w);
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        const __m512i av = _mm512_load_si512(a[i] + w);
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(av, bv[j])));
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      int64_t s[4];
      reduce4(acc[i][0], acc[i][1], acc[i][2], acc[i][3], s);
      for (int j = 0; j < 4; ++j) bgemm_store_one(p, m + i, n + j, static_cast<int32_t>(p.k - 2 * s[j]));
    }
  }
  for (; n < n1; ++n) {
    const uint64_t* b = p.b + n * p.ldb;
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      __m512i acc = _mm512_setzero_si512();
      for (int64_t w = 0; w < p.kw; w += 8)
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(a[i] + w), _mm512_load_si512(b + w))));
      bgemm_store_one(p, m + i, n, static_cast<int32_t>(p.k - 2 * _mm512_reduce_add_epi64(acc)));
    }
  }
}

LOWBIT_TARGET_AVX512_VPOPCNT void vp_few_rows(const BgemmArgs& p, int64_t m, int rows, int64_t n0, int64_t n1) {
  switch (rows) {
    case 4: vp_rows<4>(p, m, n0, n1); break;
    case 3: vp_rows<3>(p, m, n0, n1); break;
    case 2: vp_rows<2>(p, m, n0, n1); break;
    case 1: vp_rows<1>(p, m, n0, n1); break;
    default: break;
  }
}

// ---------------------------------------------------------------------------------------
// Nibble-lookup popcount (AVX-512 BW)

// Per-byte popcounts of x (0..8 in each byte).
LOWBIT_TARGET_AVX512 static inline __m512i popcnt_bytes(__m512i x, __m512i lut, __m512i low4) {
  const __m512i lo = _mm512_and_si512(x, low4);
  const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), low4);
  return _mm512_add_epi8(_mm512_shuffle_epi8(lut, lo), _mm512_shuffle_epi8(lut, hi));
}

LOWBIT_TARGET_AVX512 static inline __m512i nibble_lut() {
  return _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4));
}

template <int R>
LOWBIT_TARGET_AVX512 static inline void lut_tile(const BgemmArgs& p, const uint64_t* panel, int64_t m, int64_t c0,
                                                 int64_t n_end) {
  const __m512i lut = nibble_lut(), low4 = _mm512_set1_epi8(0x0f), zero = _mm512_setzero_si512();
  __m512i lo[R], hi[R];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) lo[i] = hi[i] = zero;
  const uint64_t* a = p.a + m * p.lda;
  const int64_t lda = p.lda;
  for (int64_t w0 = 0; w0 < p.kw; w0 += 31) {
    const int64_t w1 = std::min<int64_t>(p.kw, w0 + 31);
    __m512i lo8[R], hi8[R];
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) lo8[i] = hi8[i] = zero;
    for (int64_t w = w0; w < w1; ++w) {
      const __m512i b0 = _mm512_load_si512(panel + w * kNR);
      const __m512i b1 = _mm512_load_si512(panel + w * kNR + 8);
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        const __m512i ai = _mm512_set1_epi64(static_cast<long long>(a[i * lda + w]));
        lo8[i] = _mm512_add_epi8(lo8[i], popcnt_bytes(_mm512_xor_si512(b0, ai), lut, low4));
        hi8[i] = _mm512_add_epi8(hi8[i], popcnt_bytes(_mm512_xor_si512(b1, ai), lut, low4));
      }
    }
    // VPSADBW against zero sums the 8 byte counters of each 64-bit lane: one column each.
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      lo[i] = _mm512_add_epi64(lo[i], _mm512_sad_epu8(lo8[i], zero));
      hi[i] = _mm512_add_epi64(hi[i], _mm512_sad_epu8(hi8[i], zero));
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) epilogue_row16(p, m + i, c0, n_end, lo[i], hi[i]);
}

LOWBIT_TARGET_AVX512 void lut_tile_any(const BgemmArgs& p, const uint64_t* panel, const uint64_t*, int64_t m,
                                       int rows, int64_t c0, int64_t n_end) {
  switch (rows) {
    case 4: lut_tile<4>(p, panel, m, c0, n_end); break;
    case 3: lut_tile<3>(p, panel, m, c0, n_end); break;
    case 2: lut_tile<2>(p, panel, m, c0, n_end); break;
    default: lut_tile<1>(p, panel, m, c0, n_end); break;
  }
}

LOWBIT_TARGET_AVX512 void lut_few_rows(const BgemmArgs& p, int64_t m, int rows, int64_t n0, int64_t n1) {
  const __m512i lut = nibble_lut(), low4 = _mm512_set1_epi8(0x0f), zero = _mm512_setzero_si512();
  for (int i = 0; i < rows; ++i) {
    const uint64_t* a = p.a + (m + i) * p.lda;
    for (int64_t n = n0; n < n1; ++n) {
      const uint64_t* b = p.b + n * p.ldb;
      __m512i acc = zero;
      for (int64_t w = 0; w < p.kw; w += 8) {
        const __m512i x = _mm512_xor_si512(_mm512_load_si512(a + w), _mm512_load_si512(b + w));
        acc = _mm512_add_epi64(acc, _mm512_sad_epu8(popcnt_bytes(x, lut, low4), zero));
      }
      bgemm_store_one(p, m + i, n, static_cast<int32_t>(p.k - 2 * _mm512_reduce_add_epi64(acc)));
    }
  }
}

}  // namespace

const BgemmMicro kBgemmMicroAvx512Vpopcnt{8, kNR, false, vp_tile_any, vp_few_rows};
const BgemmMicro kBgemmMicroAvx512Csa{kCsaRows, kNR, true, csa_tile_any, vp_few_rows};
const BgemmMicro kBgemmMicroAvx512Lut{4, kNR, false, lut_tile_any, lut_few_rows};

void bgemm_avx512_vpopcnt(const BgemmArgs& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  bgemm_blocked(kBgemmMicroAvx512Vpopcnt, p, m0, m1, n0, n1);
}

void bgemm_avx512_vpopcnt_csa(const BgemmArgs& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  bgemm_blocked(kBgemmMicroAvx512Csa, p, m0, m1, n0, n1);
}

void bgemm_avx512_lut(const BgemmArgs& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  bgemm_blocked(kBgemmMicroAvx512Lut, p, m0, m1, n0, n1);
}

}  // namespace lowbit::kernels::detail
#endif
