// int8 GEMM and batch-1 GEMV: C[M,N] = A[M,K] · B[N,K]^T with int8 operands and int32
// accumulation, and requantizing epilogues to int8 / int16.
//
// A holds activations (row-major, row stride lda). B holds weights, one row per output
// channel, and is packed once into PackedWeightsI8. Fast paths use u8 x s8 dot products
// (VNNI): A is offset by +128 on the fly and the offset is removed exactly with the per-channel
// sums of B that packing records, so results equal the plain s8 x s8 sums bit for bit.
//
// Requantization (TFLite semantics, see quant/fixed_point.h):
//   out[m,n] = clamp(out_zero_point + multiply_by_quantized_multiplier(acc + bias[n],
//                                        multiplier[c], shift[c]), qmin, qmax)
// with c = n for per-channel and c = 0 for per-tensor parameters. An input zero point is
// folded into bias ahead of time (bias[n] −= a_zero_point · Σ_k B[n,k]).
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include "lowbit/core/aligned.h"

namespace lowbit::kernels {

class PackedWeightsI8 {
 public:
  PackedWeightsI8() = default;
  // b: n rows of k int8 values with row stride ldb (>= k). Throws on bad sizes.
  static PackedWeightsI8 pack(std::span<const int8_t> b, int64_t n, int64_t k, int64_t ldb);

  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  // Packed layout: blocks of 64 output channels; the last block holds the remaining channels
  // rounded up to a multiple of 16 (16, 32, 48 or 64). In a block, K is split into groups of 4
  // (zero-padded to a multiple of 4) and each group is stored as [channels of the block][4]:
  // [ceil(n/64)][k_groups()][w][4] with w = 64 except in the last block. One group of 16
  // channels is one 64-byte vector, and one group of a full block is 256 contiguous bytes, so
  // both the GEMM tile (64 channels) and the GEMV read each block as a single linear stream.
  // Block j starts at byte j·256·k_groups(); channels past n and depth past k are zero.
  const int8_t* data() const { return data_.get(); }
  // Σ_k B[n, k] for each output channel n (ceil(n/16)·16 entries, zero past n).
  const int32_t* row_sums() const { return sums_.get(); }
  // −128·Σ_k B[n, k] modulo 2^32 for each output channel (ceil(n/64)·64 entries, zero past n):
  // the correction that u8-offset kernels add to every sum, kept so that products need not
  // rebuild it on every call.
  const int32_t* u8_offset_bias() const { return offset_bias_.get(); }
  int64_t k_groups() const { return (k_ + 3) / 4; }
  int64_t panels() const { return (n_ + 15) / 16; }
  std::size_t bytes() const { return static_cast<std::size_t>(panels() * k_groups() * 64); }
  // Element B[row, col] read back from the packed layout.
  int8_t at(int64_t row, int64_t col) const;
  // The direction of the next GEMV sweep over these weights; each call flips it. GEMVs alternate
  // forward and backward sweeps so that weights larger than L2 are partly read from L2.
  bool next_sweep_reversed() const {
    return std::atomic_ref<uint8_t>(sweep_).fetch_xor(1, std::memory_order_relaxed) != 0;
  }

 private:
  mutable uint8_t sweep_ = 0;
  int64_t n_ = 0, k_ = 0;
  AlignedPtr<int8_t> data_;
  AlignedPtr<int32_t> sums_;
  AlignedPtr<int32_t> offset_bias_;
};

struct Requantize {
  std::span<const int32_t> bias;        // empty (zero) or one per output channel
  std::span<const int32_t> multiplier;  // one (per tensor) or one per output channel; M0 >= 0
  std::span<const int32_t> shift;       // same count as multiplier; in [-31, 30], positive = left
  int32_t out_zero_point = 0;
  int32_t qmin = -128;
  int32_t qmax = 127;
};

// a: m x k with row stride lda (>= k); c: m x n with row stride ldc (>= n).
void igemm_s32(std::span<const int8_t> a, int64_t m, int64_t lda, const PackedWeightsI8& b,
               std::span<int32_t> c, int64_t ldc);
void igemm_requant_s8(std::span<const int8_t> a, int64_t m, int64_t lda, const PackedWeightsI8& b,
                      const Requantize& rq, std::span<int8_t> c, int64_t ldc);
void igemm_requant_s16(std::span<const int8_t> a, int64_t m, int64_t lda, const PackedWeightsI8& b,
                       const Requantize& rq, std::span<int16_t> c, int64_t ldc);

// Batch 1: y[n] = Σ_k x[k] · B[n,k]. x has b.k() elements, y b.n().
void igemv_s32(std::span<const int8_t> x, const PackedWeightsI8& b, std::span<int32_t> y);
void igemv_requant_s8(std::span<const int8_t> x, const PackedWeightsI8& b, const Requantize& rq,
                      std::span<int8_t> y);
void igemv_requant_s16(std::span<const int8_t> x, const PackedWeightsI8& b, const Requantize& rq,
                       std::span<int16_t> y);

const char* igemm_kernel_name();
const char* igemv_kernel_name();

namespace ref {
// Independent scalar references on the unpacked weights b[n, k] (row stride ldb).
void igemm_s32(const int8_t* a, int64_t m, int64_t k, int64_t lda, const int8_t* b, int64_t n, int64_t ldb,
               int32_t* c, int64_t ldc);
// Applies the requantization to one accumulator of output channel `col`.
int32_t requantize(int32_t acc, int64_t col, const Requantize& rq);
}  // namespace ref

}  // namespace lowbit::kernels
