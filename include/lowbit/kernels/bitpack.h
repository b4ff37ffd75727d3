// Bit packing along K.
//
// A packed matrix of `rows` x `k` bits stores row r in words [r·wpr, (r+1)·wpr), wpr =
// packed_words_per_row(k) (a multiple of 8 words = 512 bits); element j of a row is bit j % 64
// of word j / 64. Every padding bit is 0. For ±1 matrices bit 1 means +1 and bit 0 means −1;
// for 0/1 matrices the bit is the value. Zero padding cannot change a result: the ±1 kernels
// count only the first k bits (dot = k − 2·popcount(a XOR b), and pad bits XOR to 0), and the
// 0/1 kernels count popcount(a AND b).
#pragma once

#include <cstdint>
#include <span>

#include "lowbit/core/tensor.h"

namespace lowbit::kernels {

// Read-only view of a packed bit matrix. words.size() must be >= rows · words_per_row and
// words.data() 64-byte aligned; views are validated by every function that takes one.
struct BitMatrix {
  std::span<const uint64_t> words;
  int64_t rows = 0;
  int64_t k = 0;
  int64_t words_per_row = 0;  // 0 means packed_words_per_row(k)
};

// Throws lowbit::Error naming `what` when the view is inconsistent (negative sizes, too few
// words, words_per_row below the packed width or not a multiple of 8, misaligned data, or
// nonzero padding bits when check_padding is true).
void validate(const BitMatrix& m, const char* what, bool check_padding = false);

// A view of a 2-D b1 tensor.
BitMatrix bit_matrix(const Tensor& bits);

// Signs of a row-major [rows, k] matrix with row stride ld: bit = (x >= 0), so sign(0) = +1.
// `out` must hold rows · packed_words_per_row(k) words, 64-byte aligned.
void pack_signs(const float* x, int64_t rows, int64_t k, int64_t ld, std::span<uint64_t> out);
void pack_signs(const int8_t* x, int64_t rows, int64_t k, int64_t ld, std::span<uint64_t> out);
// 0/1 matrix: bit = (x != 0).
void pack_nonzero(const uint8_t* x, int64_t rows, int64_t k, int64_t ld, std::span<uint64_t> out);
// Bit plane `plane` (0 = least significant) of unsigned 8-bit codes: bit = (x >> plane) & 1.
void pack_bitplane(const uint8_t* x, int64_t rows, int64_t k, int64_t ld, int plane, std::span<uint64_t> out);
// The threshold epilogue on int32 accumulators (batch norm + sign folded, as in
// bgemm_threshold, for accumulators another kernel produced): out bit (r, c) =
// (acc[r·ld + c] >= threshold[c]) XOR flip[c], as `rows` packed rows of `cols` bits. flip is
// empty (no column flipped) or holds 0/1 per column; `out` is 64-byte aligned and its padding
// bits are written as zero.
void pack_thresholds(const int32_t* acc, int64_t rows, int64_t cols, int64_t ld, std::span<const int32_t> threshold,
                     std::span<const uint8_t> flip, std::span<uint64_t> out);
// ±1 floats from packed bits into a row-major [rows, k] matrix with row stride ld.
void unpack_signs(const BitMatrix& bits, float* out, int64_t ld);

// Tensor forms: [..., k] f32 or i8 -> b1 of the same shape; b1 -> f32 of ±1.
Tensor pack_signs(const Tensor& x);
Tensor unpack_signs(const Tensor& bits);

}  // namespace lowbit::kernels
