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

#include "lowbit/core/tensor.h"
#include "lowbit/kernels/bitpack.h"

namespace lowbit::kernels {

void bgemm_s32(const BitMatrix& a, const BitMatrix& b, std::span<int32_t> c, int64_t ldc);
void bgemm_f32(const BitMatrix& a, const BitMatrix& b, std::span<const float> scale,
               std::span<const float> bias, std::span<float> c, int64_t ldc);
// `out` holds M rows of packed_words_per_row(N) words (64-byte aligned); its padding bits are
// written as zero. flip may be empty (no channel flipped); else flip[n] is 0 or 1.
void bgemm_threshold(const BitMatrix& a, const BitMatrix& b, std::span<const int32_t> threshold,
                     std::span<const uint8_t> flip, std::span<uint64_t> out);

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
