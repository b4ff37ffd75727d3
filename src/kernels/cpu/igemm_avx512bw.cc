// AVX-512BW int8 GEMM / GEMV for CPUs without VNNI (Skylake-X class).
//
// vpmaddubsw would be the obvious u8 x s8 instruction, but it saturates its 16-bit pair sums
// (255·127·2 does not fit), so it is not exact. Instead both operands are sign-extended to
// 16 bits and multiplied with vpmaddwd, whose 32-bit pair sums cannot overflow for int8
// inputs. A is packed as int16 once per block; each 64-byte group of a B panel (16 channels x
// 4 K) is widened to two zmm of 8 channels x 4 K. vpmaddwd against 4 broadcast A values leaves
// two partial sums per channel (K pairs 0-1 and 2-3) in adjacent lanes; they are added once
// per tile, after the K loop.
#include "lowbit/core/target.h"

#if LOWBIT_X86

#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/igemm_avx512.h"
#include "kernels/cpu/igemm_kernels.h"

namespace lowbit::kernels::igemm_detail {
namespace {

constexpr int kMr = 3;

LOWBIT_TARGET_AVX512 static inline __m512i bcast8(const int16_t* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return _mm512_set1_epi64(v);
}

// Adds the two partial sums of each channel: lo holds channels 0-7, hi channels 8-15, each as
// lanes (2c, 2c + 1). Returns the 16 channel sums in order.
LOWBIT_TARGET_AVX512 static inline __m512i fold_pairs(__m512i lo, __m512i hi) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  return _mm512_add_epi32(_mm512_permutex2var_epi32(lo, even, hi), _mm512_permutex2var_epi32(lo, odd, hi));
}

template <int MR, int NP>
LOWBIT_TARGET_AVX512 void tile_bw(const int16_t* a, int64_t kp, const int8_t* b, int64_t groups, int32_t* tile) {
  __m512i acc[MR][NP][2];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) acc[r][j][0] = acc[r][j][1] = _mm512_setzero_si512();
  for (int64_t g = 0; g < groups; ++g) {
    __m512i av[MR];
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) av[r] = bcast8(a + r * kp + 4 * g);
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) {
      const __m512i lo = _mm512_cvtepi8_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(b + 64 * j)));
      const __m512i hi = _mm512_cvtepi8_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(b + 64 * j + 32)));
#pragma GCC unroll 4
      for (int r = 0; r < MR; ++r) {
        acc[r][j][0] = _mm512_add_epi32(acc[r][j][0], _mm512_madd_epi16(lo, av[r]));
        acc[r][j][1] = _mm512_add_epi32(acc[r][j][1], _mm512_madd_epi16(hi, av[r]));
      }
    }
    b += NP * 64;
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) _mm512_store_si512(tile + r * kBlock + j * kPanel, fold_pairs(acc[r][j][0], acc[r][j][1]));
}

template <int MR>
LOWBIT_TARGET_AVX512 void tile_bw_np(int np, const int16_t* a, int64_t kp, const int8_t* b, int64_t groups,
                                     int32_t* tile) {
  switch (np) {
    case 1: tile_bw<MR, 1>(a, kp, b, groups, tile); break;
    case 2: tile_bw<MR, 2>(a, kp, b, groups, tile); break;
    case 3: tile_bw<MR, 3>(a, kp, b, groups, tile); break;
    default: tile_bw<MR, 4>(a, kp, b, groups, tile); break;
  }
}

}  // namespace

LOWBIT_TARGET_AVX512 void pack_s16_avx512(const int8_t* a, int64_t rows, int64_t k, int64_t lda, void* dst,
                                          int64_t kp) {
  auto* d = static_cast<int16_t*>(dst);
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* src = a + r * lda;
    int16_t* out = d + r * kp;
    for (int64_t c = 0; c < kp; c += 32) {
      const int64_t nin = k - c >= 32 ? 32 : (k > c ? k - c : 0);
      const int64_t nout = kp - c >= 32 ? 32 : kp - c;
      const __mmask32 mask_in = static_cast<__mmask32>(nin == 32 ? 0xFFFFFFFFu : ((1u << nin) - 1u));
      const __mmask32 mask_out = static_cast<__mmask32>(nout == 32 ? 0xFFFFFFFFu : ((1u << nout) - 1u));
      const __m256i v = _mm256_maskz_loadu_epi8(mask_in, src + c);
      _mm512_mask_storeu_epi16(out + c, mask_out, _mm512_cvtepi8_epi16(v));
    }
  }
}

LOWBIT_TARGET_AVX512 void block_avx512bw(const BlockArgs& p) {
  alignas(64) int32_t tile[kMr * kBlock];
  const auto* a = static_cast<const int16_t*>(p.a);
  const int np = static_cast<int>(p.width / kPanel);
  const int64_t groups = p.kp / 4;
  const std::size_t osz = p.ep->out == Out::s32 ? 4 : (p.ep->out == Out::s16 ? 2 : 1);
  for (int64_t r0 = 0; r0 < p.rows; r0 += kMr) {
    const int64_t mr = p.rows - r0 < kMr ? p.rows - r0 : kMr;
    const int16_t* ap = a + r0 * p.kp;
    switch (mr) {
      case 1: tile_bw_np<1>(np, ap, p.kp, p.b, groups, tile); break;
      case 2: tile_bw_np<2>(np, ap, p.kp, p.b, groups, tile); break;
      default: tile_bw_np<3>(np, ap, p.kp, p.b, groups, tile); break;
    }
    avx512::store_tile(tile, mr, p.valid, p.col0, *p.ep,
                       static_cast<uint8_t*>(p.c) + static_cast<std::size_t>(r0 * p.ldc) * osz, p.ldc);
  }
}

// GEMV: the 1-row tile already keeps 8 independent accumulators per 64-channel block.
LOWBIT_TARGET_AVX512 void gemv_avx512bw(const GemvArgs& p) {
  alignas(64) int32_t sums[kBlock];
  const auto* x = static_cast<const int16_t*>(p.x);
  const int64_t groups = p.kp / 4;
  const std::size_t osz = p.ep->out == Out::s32 ? 4 : (p.ep->out == Out::s16 ? 2 : 1);
  for (int64_t i = p.block0; i < p.block1; ++i) {
    const int64_t blk = gemv_block_at(p, i);
    const int64_t w = block_width(p.panels, blk), col0 = blk * kBlock;
    const int64_t valid = p.n - col0 < kBlock ? p.n - col0 : kBlock;
    tile_bw_np<1>(static_cast<int>(w / kPanel), x, p.kp, block_ptr(p.b, blk, p.kp), groups, sums);
    avx512::store_tile(sums, 1, valid, col0, *p.ep, static_cast<uint8_t*>(p.y) + static_cast<std::size_t>(col0) * osz,
                       0);
  }
}

}  // namespace lowbit::kernels::igemm_detail

#endif  // LOWBIT_X86
