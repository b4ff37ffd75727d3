// AVX2 packed ±1 GEMM micro-kernel: 2 rows of A x one 8-column panel of B (two ymm of four
// 64-bit lanes, one output per lane). AVX2 has no vector popcount, so each XOR is counted by
// nibble lookup (two VPSHUFB into a 16-entry table) into byte counters; every 31 words, before
// a byte (31 x 8 = 248) could overflow, VPSADBW folds the 8 byte counters of each lane into
// its 64-bit total. 16 ymm registers hold 4 byte counters, 4 totals, 2 panel vectors and the
// constants, which is why the tile has 2 rows.
#include <algorithm>

#include "kernels/cpu/bgemm_common.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "lowbit/core/target.h"

namespace lowbit::kernels::detail {
namespace {

constexpr int kNR = 8;

LOWBIT_TARGET_AVX2 static inline __m256i popcnt_bytes(__m256i x, __m256i lut, __m256i low4) {
  const __m256i lo = _mm256_and_si256(x, low4);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low4);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

LOWBIT_TARGET_AVX2 static inline __m256i nibble_lut() {
  return _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3,
                          3, 4);
}

template <int R>
LOWBIT_TARGET_AVX2 static inline void tile(const BgemmArgs& p, const uint64_t* panel, int64_t m, int64_t c0,
                                           int64_t n_end) {
  const __m256i lut = nibble_lut(), low4 = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
  __m256i lo[R], hi[R];
  for (int i = 0; i < R; ++i) lo[i] = hi[i] = zero;
  const uint64_t* a = p.a + m * p.lda;
  const int64_t lda = p.lda;
  for (int64_t w0 = 0; w0 < p.kw; w0 += 31) {
    const int64_t w1 = std::min<int64_t>(p.kw, w0 + 31);
    __m256i lo8[R], hi8[R];
    for (int i = 0; i < R; ++i) lo8[i] = hi8[i] = zero;
    for (int64_t w = w0; w < w1; ++w) {
      const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(panel + w * kNR));
      const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(panel + w * kNR + 4));
      for (int i = 0; i < R; ++i) {
        const __m256i ai = _mm256_set1_epi64x(static_cast<long long>(a[i * lda + w]));
        lo8[i] = _mm256_add_epi8(lo8[i], popcnt_bytes(_mm256_xor_si256(b0, ai), lut, low4));
        hi8[i] = _mm256_add_epi8(hi8[i], popcnt_bytes(_mm256_xor_si256(b1, ai), lut, low4));
      }
    }
    for (int i = 0; i < R; ++i) {
      lo[i] = _mm256_add_epi64(lo[i], _mm256_sad_epu8(lo8[i], zero));
      hi[i] = _mm256_add_epi64(hi[i], _mm256_sad_epu8(hi8[i], zero));
    }
  }
  // The epilogue is a small fraction of a tile (K words of work per output), so the portable
  // per-element epilogue keeps this fallback short.
  for (int i = 0; i < R; ++i) {
    alignas(32) int64_t pops[kNR];
    _mm256_store_si256(reinterpret_cast<__m256i*>(pops), lo[i]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(pops + 4), hi[i]);
    const int64_t cols = std::min<int64_t>(kNR, n_end - c0);
    for (int64_t j = 0; j < cols; ++j) bgemm_store_one(p, m + i, c0 + j, static_cast<int32_t>(p.k - 2 * pops[j]));
  }
}

LOWBIT_TARGET_AVX2 void tile_any(const BgemmArgs& p, const uint64_t* panel, const uint64_t*, int64_t m, int rows,
                                 int64_t c0, int64_t n_end) {
  if (rows == 2)
    tile<2>(p, panel, m, c0, n_end);
  else
    tile<1>(p, panel, m, c0, n_end);
}

LOWBIT_TARGET_AVX2 void few_rows(const BgemmArgs& p, int64_t m, int rows, int64_t n0, int64_t n1) {
  const __m256i lut = nibble_lut(), low4 = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
  for (int i = 0; i < rows; ++i) {
    const uint64_t* a = p.a + (m + i) * p.lda;
    for (int64_t n = n0; n < n1; ++n) {
      const uint64_t* b = p.b + n * p.ldb;
      __m256i acc = zero;
      for (int64_t w = 0; w < p.kw; w += 4) {
        const __m256i x = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(a + w)),
                                           _mm256_load_si256(reinterpret_cast<const __m256i*>(b + w)));
        acc = _mm256_add_epi64(acc, _mm256_sad_epu8(popcnt_bytes(x, lut, low4), zero));
      }
      alignas(32) int64_t lanes[4];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
      const int64_t pop = lanes[0] + lanes[1] + lanes[2] + lanes[3];
      bgemm_store_one(p, m + i, n, static_cast<int32_t>(p.k - 2 * pop));
    }
  }
}

}  // namespace

const BgemmMicro kBgemmMicroAvx2Lut{2, kNR, false, tile_any, few_rows};

void bgemm_avx2_lut(const BgemmArgs& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  bgemm_blocked(kBgemmMicroAvx2Lut, p, m0, m1, n0, n1);
}

}  // namespace lowbit::kernels::detail
#endif
