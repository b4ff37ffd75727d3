// Packed ±1 GEMM: C[M,N] = A[M,K] · B[N,K]^T with ±1 semantics on packed bits, int32
// accumulation (dot = K − 2·popcount(a XOR b)), and fused epilogues:
//
//   bgemm_s32        C[m,n] = dot
//   bgemm_f32        C[m,n] = dot · scale[n] + bias[n]          (scale/bias may be empty: 1 and 0)
//   bgemm_threshold  out bit (m,n) = (dot >= threshold[n]) XOR flip[n]
//                    written as a packed [M, N] bit matrix: the next binary layer's input.
//                    This is how batch norm followed by sign folds at inference
//                    (see fold_bn_sign).
//
// All take the layout of bitpack.h. Each validates its views and output sizes and throws
// lowbit::Error on a mismatch (A.k != B.k, short output, bad leading dimension, ...).
// Work is split over lowbit::num_threads() threads.
#pragma once

#include <cstdint>
#include <span>

#include "lowbit/core/aligned.h"
#include "lowbit/core/tensor.h"
#include "lowbit/kernels/bitpack.h"

namespace lowbit::kernels {

// B rearranged once into the panel layout of the kernel that runs now, for a B used by many
// calls (an inference layer's weights): calls given it skip packing B's panels. A call that
// runs a kernel with another layout (bgemm_force_variant, a lower ISA cap set later) packs as
// usual; the results are the same either way. Empty (no panels) when the kernel packs nothing.
struct BgemmPackedB {
  AlignedPtr<uint64_t> panels;
  int nr = 0;
  bool pair_xor = false;
  int64_t n = 0, k = 0;
};
BgemmPackedB bgemm_pack_b(const BitMatrix& b);

void bgemm_s32(const BitMatrix& a, const BitMatrix& b, std::span<int32_t> c, int64_t ldc);
// `packed`, when given, must have been made from this same b.
void bgemm_f32(const BitMatrix& a, const BitMatrix& b, std::span<const float> scale,
               std::span<const float> bias, std::span<float> c, int64_t ldc, const BgemmPackedB* packed = nullptr);
// `out` holds M rows of packed_words_per_row(N) words (64-byte aligned); its padding bits are
// written as zero. flip may be empty (no channel flipped); else flip[n] is 0 or 1.
void bgemm_threshold(const BitMatrix& a, const BitMatrix& b, std::span<const int32_t> threshold,
                     std::span<const uint8_t> flip, std::span<uint64_t> out, const BgemmPackedB* packed = nullptr);

// Tensor forms: a b1[M,K], b b1[N,K] -> i32[M,N].
Tensor bgemm(const Tensor& a, const Tensor& b);

// Batch norm + sign folded into an integer threshold: for y = alpha·dot + beta,
// (y >= 0) == ((dot >= threshold) XOR flip) for every integer dot.
struct SignThreshold {
  int32_t threshold;
  uint8_t flip;
};
SignThreshold fold_bn_sign(double alpha, double beta);

// Name of the variant that runs now (for `lowbit info`, tests and benchmarks).
const char* bgemm_kernel_name();

namespace ref {
// Independent scalar references: unpack to ±1 integers and multiply.
void bgemm_s32(const BitMatrix& a, const BitMatrix& b, std::span<int32_t> c, int64_t ldc);
void bgemm_f32(const BitMatrix& a, const BitMatrix& b, std::span<const float> scale,
               std::span<const float> bias, std::span<float> c, int64_t ldc);
void bgemm_threshold(const BitMatrix& a, const BitMatrix& b, std::span<const int32_t> threshold,
                     std::span<const uint8_t> flip, std::span<uint64_t> out);
}  // namespace ref

}  // namespace lowbit::kernels
