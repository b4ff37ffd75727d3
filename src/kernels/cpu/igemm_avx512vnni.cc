// AVX-512 VNNI int8 GEMM / GEMV: vpdpbusd multiplies 4 unsigned bytes of A by 4 signed bytes
// of B and adds the 4 products to an int32 lane. A is packed as a + 128 (u8) and the driver
// folds −128·Σ_k B[n,k] into the bias, so the results equal the s8 x s8 sums exactly.
//
// GEMM register tile: 6 rows x 64 channels = 24 zmm accumulators, 4 zmm of B (one 16-channel
// panel each, 256 contiguous bytes per group of 4 K) and one broadcast of 4 A bytes per row
// loaded straight from memory (vpbroadcastd m32 is a pure load). Per group: 24 vpdpbusd
// against 10 loads, so the tile is bound by the dot-product ports, not by loads.
#include "lowbit/core/target.h"

#if LOWBIT_X86

#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/igemm_avx512.h"
#include "kernels/cpu/igemm_kernels.h"

namespace lowbit::kernels::igemm_detail {
namespace {

constexpr int kMr = 6;
// B is streamed from L2 (its 64-channel block is shared by all row tiles of an A block); the
// hardware prefetchers alone leave the tile waiting on it now and then. Prefetching 12 groups
// (3 KiB of a full block) ahead into L1 measured a few percent faster than none, 4, or 32.
constexpr int64_t kPrefetchGroups = 12;

LOWBIT_TARGET_AVX512_VNNI static inline __m512i bcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// rows x (16·NP) tile over `groups` groups of 4 K; sums go to tile[r·64 + c].
template <int MR, int NP>
LOWBIT_TARGET_AVX512_VNNI void tile_vnni(const uint8_t* a, int64_t kp, const int8_t* b, int64_t groups,
                                         int32_t* tile) {
  __m512i acc[MR][NP];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_setzero_si512();
  const uint8_t* ar[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) ar[r] = a + r * kp;
  constexpr int64_t kStride = NP * 64;  // bytes of B per group of 4 K
  for (int64_t g = 0; g < groups; ++g) {
    __m512i bv[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) {
      _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchGroups * kStride + j * 64), _MM_HINT_T0);
      bv[j] = _mm512_load_si512(b + j * 64);
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512i av = bcast4(ar[r] + 4 * g);
#pragma GCC unroll 4
      for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, bv[j]);
    }
    b += kStride;
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) _mm512_store_si512(tile + r * kBlock + j * kPanel, acc[r][j]);
}

template <int MR>
LOWBIT_TARGET_AVX512_VNNI void tile_vnni_np(int np, const uint8_t* a, int64_t kp, const int8_t* b, int64_t groups,
                                            int32_t* tile) {
  switch (np) {
    case 1: tile_vnni<MR, 1>(a, kp, b, groups, tile); break;
    case 2: tile_vnni<MR, 2>(a, kp, b, groups, tile); break;
    case 3: tile_vnni<MR, 3>(a, kp, b, groups, tile); break;
    default: tile_vnni<MR, 4>(a, kp, b, groups, tile); break;
  }
}

// One full 64-channel block: a single linear stream of 256 bytes per group of 4 K. Four groups
// are in flight (16 independent accumulators) to cover the vpdpbusd latency. No software
// prefetch: the L2 streamer follows the linear stream, and with the alternating sweeps
// (GemvArgs::reverse) an 8 KiB-ahead prefetch into L1 made the 4096x1024 GEMV 5-7 % slower
// and the 4096x512 one 14 % slower (BM_IgemvSweeps).
LOWBIT_TARGET_AVX512_VNNI void gemv_block64(const uint8_t* x, const int8_t* b, int64_t groups, int32_t* sums) {
  __m512i acc[4][4];
#pragma GCC unroll 4
  for (int u = 0; u < 4; ++u)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[u][j] = _mm512_setzero_si512();
  int64_t g = 0;
  for (; g + 4 <= groups; g += 4) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {
      const __m512i xv = bcast4(x + 4 * (g + u));
      const int8_t* bg = b + (g + u) * 256;
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        acc[u][j] = _mm512_dpbusd_epi32(acc[u][j], xv, _mm512_load_si512(bg + 64 * j));
      }
    }
  }
  for (; g < groups; ++g) {
    const __m512i xv = bcast4(x + 4 * g);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[0][j] = _mm512_dpbusd_epi32(acc[0][j], xv, _mm512_load_si512(b + g * 256 + 64 * j));
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j)
    _mm512_store_si512(sums + j * kPanel,
                       _mm512_add_epi32(_mm512_add_epi32(acc[0][j], acc[1][j]), _mm512_add_epi32(acc[2][j], acc[3][j])));
}

}  // namespace

LOWBIT_TARGET_AVX512_VNNI void pack_u8_offset_avx512(const int8_t* a, int64_t rows, int64_t k, int64_t lda, void* dst,
                                                     int64_t kp) {
  // a + 128 as a byte is a ^ 0x80. Depth padding becomes 0x80, i.e. a = 0 (B is zero there too).
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  auto* d = static_cast<uint8_t*>(dst);
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* src = a + r * lda;
    uint8_t* out = d + r * kp;
    for (int64_t c = 0; c < kp; c += 64) {
      const int64_t nin = k - c >= 64 ? 64 : (k > c ? k - c : 0);
      const int64_t nout = kp - c >= 64 ? 64 : kp - c;
      const __mmask64 mask_in = nin == 64 ? ~__mmask64{0} : ((__mmask64{1} << nin) - 1);
      const __mmask64 mask_out = nout == 64 ? ~__mmask64{0} : ((__mmask64{1} << nout) - 1);
      const __m512i v = _mm512_maskz_loadu_epi8(mask_in, src + c);
      _mm512_mask_storeu_epi8(out + c, mask_out, _mm512_xor_si512(v, flip));
    }
  }
}

LOWBIT_TARGET_AVX512_VNNI void block_avx512vnni(const BlockArgs& p) {
  alignas(64) int32_t tile[kMr * kBlock];
  const auto* a = static_cast<const uint8_t*>(p.a);
  const int np = static_cast<int>(p.width / kPanel);
  const int64_t groups = p.kp / 4;
  const std::size_t osz = p.ep->out == Out::s32 ? 4 : (p.ep->out == Out::s16 ? 2 : 1);
  for (int64_t r0 = 0; r0 < p.rows; r0 += kMr) {
    const int64_t mr = p.rows - r0 < kMr ? p.rows - r0 : kMr;
    const uint8_t* ap = a + r0 * p.kp;
    switch (mr) {
      case 1: tile_vnni_np<1>(np, ap, p.kp, p.b, groups, tile); break;
      case 2: tile_vnni_np<2>(np, ap, p.kp, p.b, groups, tile); break;
      case 3: tile_vnni_np<3>(np, ap, p.kp, p.b, groups, tile); break;
      case 4: tile_vnni_np<4>(np, ap, p.kp, p.b, groups, tile); break;
      case 5: tile_vnni_np<5>(np, ap, p.kp, p.b, groups, tile); break;
      default: tile_vnni_np<6>(np, ap, p.kp, p.b, groups, tile); break;
    }
    avx512::store_tile(tile, mr, p.valid, p.col0, *p.ep,
                       static_cast<uint8_t*>(p.c) + static_cast<std::size_t>(r0 * p.ldc) * osz, p.ldc);
  }
}

// GEMV: one 64-channel block at a time.
LOWBIT_TARGET_AVX512_VNNI void gemv_avx512vnni(const GemvArgs& p) {
  alignas(64) int32_t sums[kBlock];
  const auto* x = static_cast<const uint8_t*>(p.x);
  const int64_t groups = p.kp / 4;
  const std::size_t osz = p.ep->out == Out::s32 ? 4 : (p.ep->out == Out::s16 ? 2 : 1);
  for (int64_t i = p.block0; i < p.block1; ++i) {
    const int64_t blk = gemv_block_at(p, i);
    const int64_t w = block_width(p.panels, blk), col0 = blk * kBlock;
    const int64_t valid = p.n - col0 < kBlock ? p.n - col0 : kBlock;
    const int8_t* b = block_ptr(p.b, blk, p.kp);
    if (w == kBlock) {
      gemv_block64(x, b, groups, sums);
    } else {
      // Last, narrower block: reuse the 1-row GEMM tile.
      tile_vnni_np<1>(static_cast<int>(w / kPanel), x, p.kp, b, groups, sums);
    }
    avx512::store_tile(sums, 1, valid, col0, *p.ep, static_cast<uint8_t*>(p.y) + static_cast<std::size_t>(col0) * osz,
                       0);
  }
}

}  // namespace lowbit::kernels::igemm_detail

#endif  // LOWBIT_X86
