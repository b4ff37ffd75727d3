// Portable int8 GEMM / GEMV variants: plain loops over the packed layout, for CPUs without
// AVX2 and as the baseline every vector variant is tested against (besides ref::).
#include <cstdint>

#include "kernels/cpu/igemm_kernels.h"

namespace lowbit::kernels::igemm_detail {

void pack_s16_scalar(const int8_t* a, int64_t rows, int64_t k, int64_t lda, void* dst, int64_t kp) {
  auto* d = static_cast<int16_t*>(dst);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < k; ++c) d[r * kp + c] = a[r * lda + c];
    for (int64_t c = k; c < kp; ++c) d[r * kp + c] = 0;
  }
}

namespace {

// Dot product of one packed A row with channel `ch` of a packed block of width w. Products are
// summed as uint32 so that the wrap-around of very deep sums is defined, as in hardware.
int32_t dot(const int16_t* a, const int8_t* b, int64_t kp, int64_t w, int64_t ch) {
  uint32_t acc = 0;
  for (int64_t g = 0; g < kp / 4; ++g) {
    const int8_t* bg = b + (g * w + ch) * 4;
    for (int i = 0; i < 4; ++i) acc += static_cast<uint32_t>(int32_t{a[g * 4 + i]} * int32_t{bg[i]});
  }
  return static_cast<int32_t>(acc);
}

std::size_t elem_bytes(Out o) { return o == Out::s32 ? 4 : (o == Out::s16 ? 2 : 1); }

}  // namespace

void block_scalar(const BlockArgs& p) {
  const auto* a = static_cast<const int16_t*>(p.a);
  int32_t acc[kBlock];
  const std::size_t esz = elem_bytes(p.ep->out);
  for (int64_t r = 0; r < p.rows; ++r) {
    for (int64_t ch = 0; ch < p.valid; ++ch) acc[ch] = dot(a + r * p.kp, p.b, p.kp, p.width, ch);
    store_row_scalar(acc, p.valid, p.col0, *p.ep, static_cast<uint8_t*>(p.c) + static_cast<std::size_t>(r * p.ldc) * esz);
  }
}

void gemv_scalar(const GemvArgs& p) {
  const auto* x = static_cast<const int16_t*>(p.x);
  int32_t acc[kBlock];
  const std::size_t esz = elem_bytes(p.ep->out);
  for (int64_t blk = p.block0; blk < p.block1; ++blk) {
    const int64_t w = block_width(p.panels, blk), col0 = blk * kBlock;
    const int64_t valid = p.n - col0 < kBlock ? p.n - col0 : kBlock;
    const int8_t* b = block_ptr(p.b, blk, p.kp);
    for (int64_t ch = 0; ch < valid; ++ch) acc[ch] = dot(x, b, p.kp, w, ch);
    store_row_scalar(acc, valid, col0, *p.ep, static_cast<uint8_t*>(p.y) + static_cast<std::size_t>(col0) * esz);
  }
}

}  // namespace lowbit::kernels::igemm_detail
