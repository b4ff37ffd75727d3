// Private interface between the int8 GEMM/GEMV driver (src/kernels/igemm.cc) and its
// instruction-set specific micro-kernels (src/kernels/cpu/igemm_*.cc).
//
// The driver is baseline C++: it validates, partitions work over threads, packs A through the
// chosen variant's pack function and calls the variant's block kernel, which computes every
// row of a packed A block against one 64-channel block of packed B over the full depth and
// applies the epilogue while storing. Keeping the whole K loop inside one call means the int32
// accumulators never leave registers before the epilogue, so no partial sums are written out.
#pragma once

#include <cstdint>

#include "lowbit/core/target.h"

namespace lowbit::kernels::igemm_detail {

// Output channels per packed block of B (4 panels of 16, one zmm each per group of 4 K).
inline constexpr int64_t kBlock = 64;
inline constexpr int64_t kPanel = 16;

enum class Out : int { s32 = 0, s8 = 1, s16 = 2 };

// Epilogue parameters expanded per channel over ceil(n / 64) · 64 entries (zero past n), so
// vector code can load whole 16-channel panels without bounds checks.
//   s32:          out = acc + bias                                  (modulo 2^32)
//   s8 / s16:     out = clamp(mbqm(acc + bias, mult, shift), lo, hi) + zero_point
// where lo = qmin − zero_point and hi = qmax − zero_point: clamping before adding the zero
// point equals clamping after it, and cannot overflow int32.
struct Epilogue {
  Out out = Out::s32;
  const int32_t* bias = nullptr;    // user bias (or 0) minus 128·Σ_k B[n,k] for offset-A kernels
  const int32_t* mult = nullptr;    // M0 >= 0
  const int32_t* lshift = nullptr;  // max(shift, 0)
  const int32_t* rshift = nullptr;  // max(−shift, 0)
  int32_t lo = 0, hi = 0, zero_point = 0;
};

// How a variant wants A (and x) packed: rows of kp elements (K rounded up to a multiple of 4,
// padded with a value whose products with the zero-padded B vanish), row stride kp.
enum class AFormat : int {
  u8_offset,  // uint8 a + 128, for u8 x s8 dot products (VNNI)
  s16,        // int16 a, for vpmaddwd
};

inline int64_t a_elem_bytes(AFormat f) { return f == AFormat::u8_offset ? 1 : 2; }

// A packs rows [0, rows) of a (row stride lda, k valid columns) into dst (row stride kp).
using PackFn = void (*)(const int8_t* a, int64_t rows, int64_t k, int64_t lda, void* dst, int64_t kp);

struct BlockArgs {
  const void* a;       // packed A, `rows` rows
  int64_t rows;
  int64_t kp;          // packed depth, multiple of 4
  const int8_t* b;     // packed B block: [kp / 4][width][4]
  int64_t width;       // channels stored in the block: 16, 32, 48 or 64
  int64_t valid;       // channels to write (<= width)
  int64_t col0;        // channel index of the block's first channel
  void* c;             // output element (row 0, col0), typed per ep->out
  int64_t ldc;         // output row stride in elements
  const Epilogue* ep;
};

struct GemmKernel {
  AFormat a_format;
  int mr;  // rows per register tile; the driver blocks M in multiples of it
  PackFn pack_a;
  void (*block)(const BlockArgs&);
};

struct GemvArgs {
  const void* x;           // packed x: kp elements in the variant's AFormat
  int64_t kp;
  const int8_t* b;         // packed B base
  int64_t n;               // output channels
  int64_t panels;          // ceil(n / 16)
  int64_t block0, block1;  // 64-channel blocks to compute
  void* y;                 // output base (channel 0), typed per ep->out
  const Epilogue* ep;
  // Visit the blocks from block1 - 1 down to block0. Callers alternate the direction from one
  // product to the next with the same weights: when B is larger than L2, the blocks read last
  // are still cached when the next sweep starts with them, where a repeated forward sweep would
  // find none of B in L2 (LRU evicts each line just before it is needed again).
  bool reverse = false;
};

// The block visited at position i (block0 <= i < block1) of a sweep.
inline int64_t gemv_block_at(const GemvArgs& p, int64_t i) { return p.reverse ? p.block1 - 1 - (i - p.block0) : i; }

struct GemvKernel {
  AFormat a_format;
  PackFn pack_x;
  void (*run)(const GemvArgs&);
};

// Address of block `blk` of packed B: every block before the last one holds 64 channels.
inline const int8_t* block_ptr(const int8_t* b, int64_t blk, int64_t kp) { return b + blk * kBlock * kp; }
inline int64_t block_width(int64_t panels, int64_t blk) {
  const int64_t rest = panels * kPanel - blk * kBlock;
  return rest < kBlock ? rest : kBlock;
}

// Scalar epilogue for one accumulator of channel `ch`; the reference for the vector versions.
int32_t epilogue_scalar(int32_t acc, int64_t ch, const Epilogue& ep);
// Writes `count` int32 accumulators of one output row (channels col0 .. col0+count−1).
void store_row_scalar(const int32_t* acc, int64_t count, int64_t col0, const Epilogue& ep, void* out_row);

// ---- variants (defined in src/kernels/cpu/igemm_*.cc) ----
void pack_s16_scalar(const int8_t* a, int64_t rows, int64_t k, int64_t lda, void* dst, int64_t kp);
void block_scalar(const BlockArgs& p);
void gemv_scalar(const GemvArgs& p);

#if LOWBIT_X86
void pack_s16_avx2(const int8_t* a, int64_t rows, int64_t k, int64_t lda, void* dst, int64_t kp);
void block_avx2(const BlockArgs& p);
void gemv_avx2(const GemvArgs& p);

void pack_s16_avx512(const int8_t* a, int64_t rows, int64_t k, int64_t lda, void* dst, int64_t kp);
void block_avx512bw(const BlockArgs& p);
void gemv_avx512bw(const GemvArgs& p);

void pack_u8_offset_avx512(const int8_t* a, int64_t rows, int64_t k, int64_t lda, void* dst, int64_t kp);
void block_avx512vnni(const BlockArgs& p);
void gemv_avx512vnni(const GemvArgs& p);
#endif

}  // namespace lowbit::kernels::igemm_detail
