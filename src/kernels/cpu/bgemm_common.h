// Private interface between the packed ±1 GEMM driver (src/kernels/bgemm.cc) and its
// per-ISA micro-kernels (src/kernels/cpu/bgemm_*.cc).
//
// The driver validates, splits the output over threads and hands each thread a rectangle
// [m0, m1) x [n0, n1) of C. A variant computes that rectangle completely, epilogue included,
// so every output is written exactly once and the int32 dot products never travel through
// memory for the f32 and threshold epilogues. n0 is always a multiple of 64, so that two
// threads never share a word of the packed threshold output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit::kernels::detail {

enum class BgemmEpilogue : int { kS32, kF32, kThreshold };

struct BgemmArgs {
  const uint64_t* a = nullptr;  // M rows of lda words
  const uint64_t* b = nullptr;  // N rows of ldb words
  int64_t lda = 0, ldb = 0;
  int64_t m = 0, n = 0, k = 0;
  // Words of K that the kernels walk: packed_words_per_row(k), a multiple of 8. The bits past
  // k are zero in both operands, so they XOR to zero and add nothing to the popcount.
  int64_t kw = 0;

  BgemmEpilogue epilogue = BgemmEpilogue::kS32;
  int32_t* c_s32 = nullptr;
  float* c_f32 = nullptr;
  int64_t ldc = 0;
  const float* scale = nullptr;  // null: 1
  const float* bias = nullptr;   // null: 0
  const int32_t* threshold = nullptr;
  const uint8_t* flip = nullptr;  // null: no channel flipped
  // Threshold output: M rows of ldo words. The driver zeroes it before the kernels run, so a
  // kernel only ever sets bits of the columns it owns.
  uint64_t* out = nullptr;
  int64_t ldo = 0;
  // Optional: all of B already in the panel layout below (panel j holds columns
  // [j·nr, j·nr + nr)), for kernels whose layout is (b_panels_nr, b_panels_pair_xor). The
  // blocking loop then reads its panels there instead of packing them; other kernels pack.
  const uint64_t* b_panels = nullptr;
  int b_panels_nr = 0;
  bool b_panels_pair_xor = false;
};

using BgemmFn = void (*)(const BgemmArgs& args, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

// dot · scale rounded to float on its own. This header is inlined into target-attributed
// kernels where FMA is available and GCC contracts a*b+c by default; the empty asm makes the
// product an opaque value so that it is always rounded before the bias is added.
inline float mul_unfused(float a, float b) {
  float prod = a * b;
#if defined(__GNUC__) && defined(__x86_64__)
  __asm__("" : "+x"(prod));
#endif
  return prod;
}

// Applies the epilogue to one dot product. Baseline code, shared by the portable variant and
// by the tails of the vector variants. Plain multiply then add, never a fused multiply-add,
// so that every variant rounds exactly like the reference.
inline void bgemm_store_one(const BgemmArgs& p, int64_t m, int64_t n, int32_t dot) {
  switch (p.epilogue) {
    case BgemmEpilogue::kS32:
      p.c_s32[m * p.ldc + n] = dot;
      break;
    case BgemmEpilogue::kF32: {
      const float s = p.scale ? p.scale[n] : 1.0f;
      const float b = p.bias ? p.bias[n] : 0.0f;
      p.c_f32[m * p.ldc + n] = mul_unfused(static_cast<float>(dot), s) + b;
      break;
    }
    case BgemmEpilogue::kThreshold: {
      const bool bit = (dot >= p.threshold[n]) != (p.flip != nullptr && p.flip[n] != 0);
      if (bit) p.out[m * p.ldo + (n >> 6)] |= uint64_t{1} << (n & 63);
      break;
    }
  }
}

// Per-thread scratch for packed operand panels, 64-byte aligned, reused across calls so that
// the hot path does not allocate. Contents are undefined on return.
uint64_t* bgemm_scratch(std::size_t words);

// Register-blocked micro-kernels over packed panels of B.
//
// A panel holds `nr` consecutive columns of B interleaved by word: panel[w * nr + j] is word w
// of column j (zero for columns past the end). A vector kernel then loads the words of 8 (zmm)
// or 4 (ymm) columns with one load and broadcasts one 64-bit word of an A row against them, so
// each 64-bit lane accumulates the popcount of exactly one output: no horizontal reduction is
// needed at the end of K, and the lanes map straight onto contiguous output columns.
struct BgemmMicro {
  int mr;  // most rows of A per tile
  int nr;  // columns per packed panel
  // Pair layout (for carry-save kernels): for each pair of words (w, w + 1) the panel holds
  // word w of the nr columns, then (word w XOR word w + 1) of the nr columns, and `a_pair`
  // holds a[w] XOR a[w + 1] for each pair of the tile's rows (kw / 2 words per row).
  bool pair_xor;
  // Computes rows [m, m + rows) (rows <= mr) against one packed panel whose first column is
  // c0, and applies the epilogue to the columns below n_end.
  void (*tile)(const BgemmArgs& p, const uint64_t* panel, const uint64_t* a_pair, int64_t m, int rows, int64_t c0,
               int64_t n_end);
  // Unpacked path for a few rows (GEMV-like shapes), where packing B would cost as much as
  // the product: rows [m, m + rows) (rows <= 4) against columns [n0, n1).
  void (*few_rows)(const BgemmArgs& p, int64_t m, int rows, int64_t n0, int64_t n1);
};

// Packs columns [c0, c0 + nr) of B into one panel (zero columns at or past n_end).
void bgemm_pack_panel(const BgemmArgs& p, int64_t c0, int64_t n_end, int nr, bool pair_xor, uint64_t* panel);

// The micro-kernel layouts of the blocked variants (defined beside their kernels).
#if defined(__x86_64__)
extern const BgemmMicro kBgemmMicroAvx2Lut;
extern const BgemmMicro kBgemmMicroAvx512Lut;
extern const BgemmMicro kBgemmMicroAvx512Vpopcnt;
extern const BgemmMicro kBgemmMicroAvx512Csa;
#endif

// Shared blocking loop: packs panels of B for [n0, n1) in blocks that fit in L2 and walks
// A in tiles of mr rows over them. Rectangles with at most 4 rows use few_rows instead.
void bgemm_blocked(const BgemmMicro& micro, const BgemmArgs& args, int64_t m0, int64_t m1, int64_t n0,
                   int64_t n1);

// Names of the variants this CPU can run, best first (tests and benchmarks).
std::vector<std::string> bgemm_runnable_variants();
// Makes every following bgemm call use the named variant instead of the dispatched one, so
// that tests and benchmarks can reach variants that share an ISA level with a better one;
// an empty name restores dispatch. Throws lowbit::Error for an unknown or unrunnable name.
void bgemm_force_variant(const std::string& name);

// Variants (defined in src/kernels/cpu/bgemm_*.cc).
void bgemm_scalar(const BgemmArgs& args, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
#if defined(__x86_64__)
void bgemm_avx2_lut(const BgemmArgs& args, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
void bgemm_avx512_lut(const BgemmArgs& args, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
void bgemm_avx512_vpopcnt_csa(const BgemmArgs& args, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
void bgemm_avx512_vpopcnt(const BgemmArgs& args, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
#endif

}  // namespace lowbit::kernels::detail
