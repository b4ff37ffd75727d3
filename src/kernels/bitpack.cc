// Bit packing along K: validation, the row drivers and the portable row kernels.
// Vector row kernels are in src/kernels/cpu/bitpack_x86.cc.
#include "lowbit/kernels/bitpack.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/bgemm_bitpack.h"
#include "lowbit/core/aligned.h"
#include "lowbit/core/dispatch.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"

namespace lowbit::kernels {
namespace detail {

void pack_f32_scalar(const float* x, int64_t words, uint64_t* out) {
  for (int64_t w = 0; w < words; ++w) {
    uint64_t bits = 0;
    for (int t = 0; t < 64; ++t) bits |= static_cast<uint64_t>(x[w * 64 + t] >= 0.0f) << t;
    out[w] = bits;
  }
}
void pack_i8_scalar(const int8_t* x, int64_t words, uint64_t* out) {
  for (int64_t w = 0; w < words; ++w) {
    uint64_t bits = 0;
    for (int t = 0; t < 64; ++t) bits |= static_cast<uint64_t>(x[w * 64 + t] >= 0) << t;
    out[w] = bits;
  }
}
void pack_u8_scalar(const uint8_t* x, int64_t words, uint8_t mask, uint64_t* out) {
  for (int64_t w = 0; w < words; ++w) {
    uint64_t bits = 0;
    for (int t = 0; t < 64; ++t) bits |= static_cast<uint64_t>((x[w * 64 + t] & mask) != 0) << t;
    out[w] = bits;
  }
}

void pack_threshold_scalar(const int32_t* acc, const int32_t* threshold, const uint64_t* flip, int64_t words,
                           uint64_t* out) {
  for (int64_t w = 0; w < words; ++w) {
    uint64_t bits = 0;
    for (int t = 0; t < 64; ++t) bits |= static_cast<uint64_t>(acc[w * 64 + t] >= threshold[w * 64 + t]) << t;
    out[w] = bits ^ flip[w];
  }
}

}  // namespace detail

namespace {

using detail::PackF32Fn;
using detail::PackI8Fn;
using detail::PackU8Fn;

const KernelVariant<PackF32Fn> kPackF32[] = {
#if defined(__x86_64__)
    {"pack_signs_f32_avx512", cpu::kAvx512, detail::pack_f32_avx512},
    {"pack_signs_f32_avx2", cpu::kAvx2, detail::pack_f32_avx2},
#endif
    {"pack_signs_f32_scalar", 0, detail::pack_f32_scalar},
};
const KernelVariant<PackI8Fn> kPackI8[] = {
#if defined(__x86_64__)
    {"pack_signs_i8_avx512", cpu::kAvx512, detail::pack_i8_avx512},
    {"pack_signs_i8_avx2", cpu::kAvx2, detail::pack_i8_avx2},
#endif
    {"pack_signs_i8_scalar", 0, detail::pack_i8_scalar},
};
const KernelVariant<PackU8Fn> kPackU8[] = {
#if defined(__x86_64__)
    {"pack_u8_avx512", cpu::kAvx512, detail::pack_u8_avx512},
    {"pack_u8_avx2", cpu::kAvx2, detail::pack_u8_avx2},
#endif
    {"pack_u8_scalar", 0, detail::pack_u8_scalar},
};
const KernelVariant<detail::PackThresholdFn> kPackThreshold[] = {
#if defined(__x86_64__)
    {"pack_threshold_avx512", cpu::kAvx512, detail::pack_threshold_avx512},
#endif
    {"pack_threshold_scalar", 0, detail::pack_threshold_scalar},
};
const KernelTable<PackF32Fn> kPackF32Table("pack_signs_f32", kPackF32);
const KernelTable<detail::PackThresholdFn> kPackThresholdTable("pack_threshold", kPackThreshold);
const KernelTable<PackI8Fn> kPackI8Table("pack_signs_i8", kPackI8);
const KernelTable<PackU8Fn> kPackU8Table("pack_u8", kPackU8);

void check_pack_args(const void* x, int64_t rows, int64_t k, int64_t ld, std::span<uint64_t> out, const char* fn) {
  LOWBIT_CHECK(rows >= 0 && k >= 0, fn, ": rows=", rows, ", k=", k, " (expected non-negative sizes)");
  LOWBIT_CHECK(ld >= k, fn, ": ld=", ld, " is less than k=", k);
  const int64_t need = rows * packed_words_per_row(k);
  LOWBIT_CHECK(static_cast<int64_t>(out.size()) >= need, fn, ": out holds ", out.size(), " words but ", rows,
               " rows of k=", k, " bits need ", need);
  LOWBIT_CHECK(need == 0 || is_aligned(out.data()), fn, ": out is not 64-byte aligned");
  LOWBIT_CHECK(rows * k == 0 || x != nullptr, fn, ": x is null");
}

// Packs rows with `row_fn(x_row, full_words, out_row)` for the full words and `bit(x_row, j)`
// for the partial last word; zero-fills the padding words. Rows are split over the pool when
// there is enough to pack.
template <typename T, typename RowFn, typename BitFn>
void pack_rows(const T* x, int64_t rows, int64_t k, int64_t ld, std::span<uint64_t> out, RowFn row_fn,
               BitFn bit) {
  const int64_t wpr = packed_words_per_row(k);
  if (wpr == 0) return;
  const int64_t full = k / 64, tail = k % 64;
  auto body = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * ld;
      uint64_t* o = out.data() + r * wpr;
      row_fn(xr, full, o);
      int64_t w = full;
      if (tail != 0) {
        uint64_t bits = 0;
        for (int64_t t = 0; t < tail; ++t) bits |= static_cast<uint64_t>(bit(xr[full * 64 + t])) << t;
        o[w++] = bits;
      }
      for (; w < wpr; ++w) o[w] = 0;
    }
  };
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(k, 1));
  parallel_for(0, rows, grain, body);
}

}  // namespace

void validate(const BitMatrix& m, const char* what, bool check_padding) {
  LOWBIT_CHECK(m.rows >= 0, what, ": rows=", m.rows, " (expected >= 0)");
  LOWBIT_CHECK(m.k >= 0, what, ": k=", m.k, " (expected >= 0)");
  const int64_t packed = packed_words_per_row(m.k);
  LOWBIT_CHECK(m.words_per_row >= 0, what, ": words_per_row=", m.words_per_row, " (expected >= 0; 0 means ", packed, ")");
  const int64_t wpr = m.words_per_row == 0 ? packed : m.words_per_row;
  LOWBIT_CHECK(wpr % 8 == 0, what, ": words_per_row=", wpr, " is not a multiple of 8 (rows are padded to 512 bits)");
  LOWBIT_CHECK(wpr >= packed, what, ": words_per_row=", wpr, " is less than the ", packed, " words that k=", m.k,
               " bits need");
  const int64_t need = m.rows * wpr;
  LOWBIT_CHECK(static_cast<int64_t>(m.words.size()) >= need, what, ": ", m.words.size(), " words given but ", m.rows,
               " rows of ", wpr, " words need ", need);
  LOWBIT_CHECK(need == 0 || is_aligned(m.words.data()), what, ": data is not 64-byte aligned");
  if (!check_padding) return;
  for (int64_t r = 0; r < m.rows; ++r) {
    const uint64_t* row = m.words.data() + r * wpr;
    for (int64_t w = m.k / 64; w < wpr; ++w) {
      const int64_t first = w * 64;  // bit index of the word's bit 0
      const uint64_t pad = first >= m.k ? ~uint64_t{0} : ~uint64_t{0} << (m.k - first);
      LOWBIT_CHECK((row[w] & pad) == 0, what, ": row ", r, " has non-zero padding bits in word ", w,
                   " (bits at or past k=", m.k, " must be 0)");
    }
  }
}

BitMatrix bit_matrix(const Tensor& bits) {
  LOWBIT_CHECK(bits.dtype() == DType::b1 && bits.dim() == 2, "bit_matrix: expected a 2-D b1 tensor, got ",
               bits.describe());
  BitMatrix m;
  m.rows = bits.size(0);
  m.k = bits.size(1);
  m.words_per_row = bits.words_per_row();
  m.words = std::span<const uint64_t>(bits.data<uint64_t>(), static_cast<std::size_t>(m.rows * m.words_per_row));
  return m;
}

void pack_signs(const float* x, int64_t rows, int64_t k, int64_t ld, std::span<uint64_t> out) {
  check_pack_args(x, rows, k, ld, out, "pack_signs(f32)");
  const PackF32Fn fn = kPackF32Table.select().fn;
  pack_rows(x, rows, k, ld, out, fn, [](float v) { return v >= 0.0f; });
}

void pack_signs(const int8_t* x, int64_t rows, int64_t k, int64_t ld, std::span<uint64_t> out) {
  check_pack_args(x, rows, k, ld, out, "pack_signs(i8)");
  const PackI8Fn fn = kPackI8Table.select().fn;
  pack_rows(x, rows, k, ld, out, fn, [](int8_t v) { return v >= 0; });
}

void pack_nonzero(const uint8_t* x, int64_t rows, int64_t k, int64_t ld, std::span<uint64_t> out) {
  check_pack_args(x, rows, k, ld, out, "pack_nonzero");
  const PackU8Fn fn = kPackU8Table.select().fn;
  pack_rows(
      x, rows, k, ld, out, [fn](const uint8_t* xr, int64_t words, uint64_t* o) { fn(xr, words, 0xff, o); },
      [](uint8_t v) { return v != 0; });
}

void pack_bitplane(const uint8_t* x, int64_t rows, int64_t k, int64_t ld, int plane, std::span<uint64_t> out) {
  LOWBIT_CHECK(plane >= 0 && plane <= 7, "pack_bitplane: plane=", plane, " (expected 0..7)");
  check_pack_args(x, rows, k, ld, out, "pack_bitplane");
  const PackU8Fn fn = kPackU8Table.select().fn;
  const uint8_t mask = static_cast<uint8_t>(1u << plane);
  pack_rows(
      x, rows, k, ld, out, [fn, mask](const uint8_t* xr, int64_t words, uint64_t* o) { fn(xr, words, mask, o); },
      [mask](uint8_t v) { return (v & mask) != 0; });
}

void pack_thresholds(const int32_t* acc, int64_t rows, int64_t cols, int64_t ld, std::span<const int32_t> threshold,
                     std::span<const uint8_t> flip, std::span<uint64_t> out) {
  const char* fn_name = "pack_thresholds";
  LOWBIT_CHECK(rows >= 0 && cols >= 0, fn_name, ": rows=", rows, ", cols=", cols, " (expected non-negative sizes)");
  LOWBIT_CHECK(ld >= cols, fn_name, ": ld=", ld, " is less than cols=", cols);
  LOWBIT_CHECK(static_cast<int64_t>(threshold.size()) == cols, fn_name, ": ", threshold.size(),
               " thresholds for ", cols, " columns");
  LOWBIT_CHECK(flip.empty() || static_cast<int64_t>(flip.size()) == cols, fn_name, ": ", flip.size(),
               " flips for ", cols, " columns (expected none or one per column)");
  const int64_t wpr = packed_words_per_row(cols);
  LOWBIT_CHECK(static_cast<int64_t>(out.size()) >= rows * wpr, fn_name, ": out holds ", out.size(), " words but ",
               rows, " rows of ", cols, " bits need ", rows * wpr);
  LOWBIT_CHECK(rows * wpr == 0 || is_aligned(out.data()), fn_name, ": out is not 64-byte aligned");
  LOWBIT_CHECK(rows * cols == 0 || acc != nullptr, fn_name, ": acc is null");
  if (rows == 0 || wpr == 0) return;
  // The flips as one bit per column, so a whole word is flipped with one XOR.
  const int64_t full = cols / 64, tail = cols % 64;
  std::vector<uint64_t> flip_bits(static_cast<std::size_t>(full + 1), 0);
  for (int64_t c = 0; c < static_cast<int64_t>(flip.size()); ++c) {
    LOWBIT_CHECK(flip[c] <= 1, fn_name, ": flip[", c, "]=", int{flip[c]}, " (expected 0 or 1)");
    flip_bits[c / 64] |= static_cast<uint64_t>(flip[c]) << (c % 64);
  }
  const detail::PackThresholdFn fn = kPackThresholdTable.select().fn;
  parallel_for(0, rows, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t* a = acc + r * ld;
      uint64_t* o = out.data() + r * wpr;
      fn(a, threshold.data(), flip_bits.data(), full, o);
      int64_t w = full;
      if (tail != 0) {
        uint64_t bits = 0;
        for (int64_t t = 0; t < tail; ++t)
          bits |= static_cast<uint64_t>(a[full * 64 + t] >= threshold[full * 64 + t]) << t;
        o[w++] = bits ^ flip_bits[full];
      }
      for (; w < wpr; ++w) o[w] = 0;
    }
  });
}

void unpack_signs(const BitMatrix& bits, float* out, int64_t ld) {
  validate(bits, "unpack_signs");
  LOWBIT_CHECK(ld >= bits.k, "unpack_signs: ld=", ld, " is less than k=", bits.k);
  LOWBIT_CHECK(bits.rows * bits.k == 0 || out != nullptr, "unpack_signs: out is null");
  const int64_t wpr = bits.words_per_row == 0 ? packed_words_per_row(bits.k) : bits.words_per_row;
  for (int64_t r = 0; r < bits.rows; ++r) {
    const uint64_t* row = bits.words.data() + r * wpr;
    for (int64_t j = 0; j < bits.k; ++j) out[r * ld + j] = ((row[j >> 6] >> (j & 63)) & 1) ? 1.0f : -1.0f;
  }
}

namespace {
int64_t rows_of(const Tensor& t) {
  const int64_t k = t.shape().back();
  return k == 0 ? 0 : t.numel() / k;
}
}  // namespace

Tensor pack_signs(const Tensor& x) {
  LOWBIT_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::i8, "pack_signs: expected an f32 or i8 tensor, got ",
               x.describe());
  LOWBIT_CHECK(x.dim() >= 1, "pack_signs: expected at least one dimension, got ", x.describe());
  LOWBIT_CHECK(x.is_contiguous(), "pack_signs: expected a contiguous tensor, got ", x.describe());
  Tensor out = Tensor::zeros(x.shape(), DType::b1);
  const int64_t k = x.shape().back(), rows = rows_of(x);
  std::span<uint64_t> words(out.data<uint64_t>(), static_cast<std::size_t>(rows * packed_words_per_row(k)));
  if (x.dtype() == DType::f32)
    pack_signs(x.data<float>(), rows, k, k, words);
  else
    pack_signs(x.data<int8_t>(), rows, k, k, words);
  return out;
}

Tensor unpack_signs(const Tensor& bits) {
  LOWBIT_CHECK(bits.dtype() == DType::b1, "unpack_signs: expected a b1 tensor, got ", bits.describe());
  Tensor out = Tensor::zeros(bits.shape(), DType::f32);
  const int64_t k = bits.shape().back(), rows = rows_of(bits);
  BitMatrix m;
  m.rows = rows;
  m.k = k;
  m.words = std::span<const uint64_t>(bits.data<uint64_t>(), static_cast<std::size_t>(rows * packed_words_per_row(k)));
  unpack_signs(m, out.data<float>(), k);
  return out;
}

}  // namespace lowbit::kernels
