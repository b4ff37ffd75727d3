// Packed ±1 GEMM: validation, threading, the shared blocking loop, the references and
// fold_bn_sign. The per-ISA micro-kernels live in src/kernels/cpu/bgemm_*.cc.
#include "lowbit/kernels/bgemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/bgemm_common.h"
#include "lowbit/core/aligned.h"
#include "lowbit/core/dispatch.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"

namespace lowbit::kernels {
namespace detail {

uint64_t* bgemm_scratch(std::size_t words) {
  // One buffer per thread: the pool's workers live as long as the process, so the panels are
  // allocated once and then reused by every call.
  thread_local AlignedPtr<uint64_t> buf;
  thread_local std::size_t capacity = 0;
  if (words > capacity) {
    buf = make_aligned<uint64_t>(words);
    capacity = words;
  }
  return buf.get();
}

// Transposes columns [c0, c0 + nr) of B (rows of B) into the word-interleaved panel layout.
// Columns at or past n_end are zero so that the tile kernels never need a column tail.
void bgemm_pack_panel(const BgemmArgs& p, int64_t c0, int64_t n_end, int nr, bool pair_xor, uint64_t* panel) {
  const int64_t valid = std::min<int64_t>(nr, n_end - c0);
  for (int64_t j = 0; j < valid; ++j) {
    const uint64_t* src = p.b + (c0 + j) * p.ldb;
    if (pair_xor) {
      for (int64_t w = 0; w < p.kw; w += 2) {
        panel[w * nr + j] = src[w];
        panel[(w + 1) * nr + j] = src[w] ^ src[w + 1];
      }
    } else {
      for (int64_t w = 0; w < p.kw; ++w) panel[w * nr + j] = src[w];
    }
  }
  for (int64_t j = valid; j < nr; ++j)
    for (int64_t w = 0; w < p.kw; ++w) panel[w * nr + j] = 0;
}

void bgemm_blocked(const BgemmMicro& micro, const BgemmArgs& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (m1 - m0 <= 4) {
    micro.few_rows(p, m0, static_cast<int>(m1 - m0), n0, n1);
    return;
  }
  const int nr = micro.nr;
  const int64_t panel_words = p.kw * nr;
  // Panels of a block stay in L2 (2 MiB per core on current server parts, 1 MiB on Zen 5)
  // while every tile of A rows walks over them; half of L2 leaves room for A and C.
  constexpr int64_t kL2Budget = 512 * 1024;
  const int64_t panels_total = (n1 - n0 + nr - 1) / nr;
  const int64_t panels_per_block =
      std::clamp<int64_t>(kL2Budget / std::max<int64_t>(1, panel_words * 8), 1, panels_total);
  const int64_t half = p.kw / 2;  // kw is a multiple of 8
  const int64_t pair_words = micro.pair_xor ? micro.mr * half : 0;
  // Panels packed ahead of time (a layer's constant weights) are read in place.
  const bool prepacked = p.b_panels != nullptr && p.b_panels_nr == nr && p.b_panels_pair_xor == micro.pair_xor &&
                         n0 % nr == 0;
  const int64_t scratch_panels = prepacked ? 0 : panels_per_block;
  uint64_t* scratch = bgemm_scratch(static_cast<std::size_t>(scratch_panels * panel_words + pair_words));
  uint64_t* a_pair = micro.pair_xor ? scratch + scratch_panels * panel_words : nullptr;
  for (int64_t pb = 0; pb < panels_total; pb += panels_per_block) {
    const int64_t np = std::min(panels_per_block, panels_total - pb);
    const uint64_t* panels = scratch;
    if (prepacked) {
      panels = p.b_panels + (n0 / nr + pb) * panel_words;
    } else {
      for (int64_t q = 0; q < np; ++q)
        bgemm_pack_panel(p, n0 + (pb + q) * nr, n1, nr, micro.pair_xor, scratch + q * panel_words);
    }
    for (int64_t m = m0; m < m1; m += micro.mr) {
      const int rows = static_cast<int>(std::min<int64_t>(micro.mr, m1 - m));
      if (micro.pair_xor) {
        for (int i = 0; i < rows; ++i) {
          const uint64_t* a = p.a + (m + i) * p.lda;
          for (int64_t w2 = 0; w2 < half; ++w2) a_pair[i * half + w2] = a[2 * w2] ^ a[2 * w2 + 1];
        }
      }
      for (int64_t q = 0; q < np; ++q)
        micro.tile(p, panels + q * panel_words, a_pair, m, rows, n0 + (pb + q) * nr, n1);
    }
  }
}

}  // namespace detail

using detail::BgemmArgs;
using detail::BgemmEpilogue;
using detail::BgemmFn;

namespace {

const KernelVariant<BgemmFn> kBgemmVariants[] = {
#if defined(__x86_64__)
    {"bgemm_avx512vpopcnt_csa_6x16", cpu::kAvx512 | cpu::kAvx512Vpopcnt, detail::bgemm_avx512_vpopcnt_csa},
    {"bgemm_avx512vpopcnt_8x16", cpu::kAvx512 | cpu::kAvx512Vpopcnt, detail::bgemm_avx512_vpopcnt},
    {"bgemm_avx512_lut_4x16", cpu::kAvx512, detail::bgemm_avx512_lut},
    {"bgemm_avx2_lut_2x8", cpu::kAvx2, detail::bgemm_avx2_lut},
#endif
    {"bgemm_scalar_2x4", 0, detail::bgemm_scalar},
};
const KernelTable<BgemmFn> kBgemmTable("bgemm", kBgemmVariants);

std::atomic<const KernelVariant<BgemmFn>*> g_forced{nullptr};

const KernelVariant<BgemmFn>& chosen() {
  const KernelVariant<BgemmFn>* forced = g_forced.load(std::memory_order_acquire);
  return forced != nullptr ? *forced : kBgemmTable.select();
}

int64_t effective_wpr(const BitMatrix& m) {
  return m.words_per_row == 0 ? packed_words_per_row(m.k) : m.words_per_row;
}

void check_operands(const BitMatrix& a, const BitMatrix& b, const char* fn) {
  validate(a, "bgemm: A");
  validate(b, "bgemm: B");
  LOWBIT_CHECK(a.k == b.k, fn, ": A has k=", a.k, " bits per row but B has k=", b.k, " (they must match)");
  LOWBIT_CHECK(a.k <= std::numeric_limits<int32_t>::max(), fn, ": k=", a.k,
               " does not fit the int32 dot products (expected k <= 2^31 - 1)");
}

void check_c(int64_t m, int64_t n, std::size_t c_size, int64_t ldc, const char* fn) {
  LOWBIT_CHECK(ldc >= n, fn, ": ldc=", ldc, " is less than N=", n);
  if (m > 0 && n > 0) {
    const int64_t need = (m - 1) * ldc + n;
    LOWBIT_CHECK(static_cast<int64_t>(c_size) >= need, fn, ": C holds ", c_size, " elements but M=", m, ", N=", n,
                 ", ldc=", ldc, " needs ", need);
  }
}

void check_per_channel(std::size_t size, int64_t n, const char* fn, const char* what, bool may_be_empty) {
  if (may_be_empty && size == 0) return;
  LOWBIT_CHECK(static_cast<int64_t>(size) == n, fn, ": ", what, " has ", size, " entries but N=", n,
               may_be_empty ? " (expected N or empty)" : " (expected N)");
}

BgemmArgs make_args(const BitMatrix& a, const BitMatrix& b) {
  BgemmArgs p;
  p.a = a.words.data();
  p.b = b.words.data();
  p.lda = effective_wpr(a);
  p.ldb = effective_wpr(b);
  p.m = a.rows;
  p.n = b.rows;
  p.k = a.k;
  p.kw = packed_words_per_row(a.k);
  return p;
}

// Splits the output over the pool. Column ranges start at multiples of 64 so that threshold
// output words are never shared; wide outputs are split by column (each thread then packs
// only its own panels of B, and they stay in its own L2), tall narrow ones by row.
void run(const BgemmArgs& p) {
  if (p.m == 0 || p.n == 0) return;
  const BgemmFn fn = chosen().fn;
  const int threads = num_threads();
  const int64_t col_units = (p.n + 63) / 64;
  // Below ~2e5 word-ops (a few tens of microseconds on one core) waking the pool costs about
  // as much as it saves.
  const double work = static_cast<double>(p.m) * static_cast<double>(p.n) * static_cast<double>(std::max<int64_t>(p.kw, 1));
  if (threads == 1 || work < 2e5) {
    fn(p, 0, p.m, 0, p.n);
    return;
  }
  if (col_units >= 4 * threads || p.m < 16 * threads) {
    parallel_for(0, col_units, 1, [&](int64_t u0, int64_t u1) { fn(p, 0, p.m, u0 * 64, std::min(p.n, u1 * 64)); });
  } else {
    // Row chunks in multiples of 8 rows keep every tile full except the last.
    const int64_t row_units = (p.m + 7) / 8;
    parallel_for(0, row_units, 1, [&](int64_t r0, int64_t r1) { fn(p, r0 * 8, std::min(p.m, r1 * 8), 0, p.n); });
  }
}

}  // namespace

const char* bgemm_kernel_name() { return chosen().name; }

namespace {
// The panel layout of a blocked variant; null for variants that read B unpacked.
const detail::BgemmMicro* micro_of(BgemmFn fn) {
#if defined(__x86_64__)
  if (fn == detail::bgemm_avx512_vpopcnt_csa) return &detail::kBgemmMicroAvx512Csa;
  if (fn == detail::bgemm_avx512_vpopcnt) return &detail::kBgemmMicroAvx512Vpopcnt;
  if (fn == detail::bgemm_avx512_lut) return &detail::kBgemmMicroAvx512Lut;
  if (fn == detail::bgemm_avx2_lut) return &detail::kBgemmMicroAvx2Lut;
#endif
  (void)fn;
  return nullptr;
}

void use_packed(BgemmArgs& p, const BgemmPackedB* packed, const BitMatrix& b, const char* fn) {
  if (packed == nullptr || !packed->panels) return;
  LOWBIT_CHECK(packed->n == b.rows && packed->k == b.k, fn, ": the packed B is ", packed->n, "x", packed->k,
               " bits but B is ", b.rows, "x", b.k);
  p.b_panels = packed->panels.get();
  p.b_panels_nr = packed->nr;
  p.b_panels_pair_xor = packed->pair_xor;
}
}  // namespace

BgemmPackedB bgemm_pack_b(const BitMatrix& b) {
  validate(b, "bgemm_pack_b: B");
  BgemmPackedB out;
  out.n = b.rows;
  out.k = b.k;
  const detail::BgemmMicro* micro = micro_of(chosen().fn);
  if (micro == nullptr || b.rows == 0) return out;
  BgemmArgs p;
  p.b = b.words.data();
  p.ldb = effective_wpr(b);
  p.n = b.rows;
  p.k = b.k;
  p.kw = packed_words_per_row(b.k);
  const int nr = micro->nr;
  const int64_t panels = (b.rows + nr - 1) / nr, panel_words = p.kw * nr;
  out.panels = make_aligned_uninit<uint64_t>(static_cast<std::size_t>(panels * panel_words));
  for (int64_t j = 0; j < panels; ++j)
    detail::bgemm_pack_panel(p, j * nr, b.rows, nr, micro->pair_xor, out.panels.get() + j * panel_words);
  out.nr = nr;
  out.pair_xor = micro->pair_xor;
  return out;
}

namespace detail {
std::vector<std::string> bgemm_runnable_variants() {
  std::vector<std::string> names;
  for (const auto* v : kBgemmTable.runnable()) names.emplace_back(v->name);
  return names;
}

void bgemm_force_variant(const std::string& name) {
  if (name.empty()) {
    g_forced.store(nullptr, std::memory_order_release);
    return;
  }
  for (const auto* v : kBgemmTable.runnable())
    if (name == v->name) {
      g_forced.store(v, std::memory_order_release);
      return;
    }
  fail("bgemm_force_variant: '", name, "' is not a bgemm variant this CPU can run");
}
}  // namespace detail

void bgemm_s32(const BitMatrix& a, const BitMatrix& b, std::span<int32_t> c, int64_t ldc) {
  check_operands(a, b, "bgemm_s32");
  check_c(a.rows, b.rows, c.size(), ldc, "bgemm_s32");
  BgemmArgs p = make_args(a, b);
  p.epilogue = BgemmEpilogue::kS32;
  p.c_s32 = c.data();
  p.ldc = ldc;
  run(p);
}

void bgemm_f32(const BitMatrix& a, const BitMatrix& b, std::span<const float> scale, std::span<const float> bias,
               std::span<float> c, int64_t ldc, const BgemmPackedB* packed) {
  check_operands(a, b, "bgemm_f32");
  check_c(a.rows, b.rows, c.size(), ldc, "bgemm_f32");
  check_per_channel(scale.size(), b.rows, "bgemm_f32", "scale", true);
  check_per_channel(bias.size(), b.rows, "bgemm_f32", "bias", true);
  BgemmArgs p = make_args(a, b);
  p.epilogue = BgemmEpilogue::kF32;
  p.c_f32 = c.data();
  p.ldc = ldc;
  p.scale = scale.empty() ? nullptr : scale.data();
  p.bias = bias.empty() ? nullptr : bias.data();
  use_packed(p, packed, b, "bgemm_f32");
  run(p);
}

namespace {
void check_threshold_args(const BitMatrix& a, const BitMatrix& b, std::span<const int32_t> threshold,
                          std::span<const uint8_t> flip, std::span<uint64_t> out, const char* fn) {
  check_operands(a, b, fn);
  check_per_channel(threshold.size(), b.rows, fn, "threshold", false);
  check_per_channel(flip.size(), b.rows, fn, "flip", true);
  for (std::size_t i = 0; i < flip.size(); ++i)
    LOWBIT_CHECK(flip[i] <= 1, fn, ": flip[", i, "]=", int{flip[i]}, " (expected 0 or 1)");
  const int64_t need = a.rows * packed_words_per_row(b.rows);
  LOWBIT_CHECK(static_cast<int64_t>(out.size()) >= need, fn, ": out holds ", out.size(), " words but M=", a.rows,
               " rows of N=", b.rows, " bits need ", need);
  LOWBIT_CHECK(need == 0 || is_aligned(out.data()), fn, ": out is not 64-byte aligned");
}
}  // namespace

void bgemm_threshold(const BitMatrix& a, const BitMatrix& b, std::span<const int32_t> threshold,
                     std::span<const uint8_t> flip, std::span<uint64_t> out, const BgemmPackedB* packed) {
  check_threshold_args(a, b, threshold, flip, out, "bgemm_threshold");
  BgemmArgs p = make_args(a, b);
  p.epilogue = BgemmEpilogue::kThreshold;
  p.threshold = threshold.data();
  p.flip = flip.empty() ? nullptr : flip.data();
  p.out = out.data();
  p.ldo = packed_words_per_row(b.rows);
  // Kernels only set bits, so the whole output (padding included) starts at zero. It is
  // 1/32 of the size of an int32 C, a negligible pass.
  std::fill_n(out.data(), a.rows * p.ldo, uint64_t{0});
  use_packed(p, packed, b, "bgemm_threshold");
  run(p);
}

Tensor bgemm(const Tensor& a, const Tensor& b) {
  LOWBIT_CHECK(a.dtype() == DType::b1 && a.dim() == 2, "bgemm: A must be a 2-D b1 tensor, got ", a.describe());
  LOWBIT_CHECK(b.dtype() == DType::b1 && b.dim() == 2, "bgemm: B must be a 2-D b1 tensor, got ", b.describe());
  const BitMatrix am = bit_matrix(a), bm = bit_matrix(b);
  LOWBIT_CHECK(am.k == bm.k, "bgemm: A is ", a.describe(), " and B is ", b.describe(), " (their last dimensions must match)");
  Tensor c = Tensor::zeros({am.rows, bm.rows}, DType::i32);
  bgemm_s32(am, bm, std::span<int32_t>(c.data<int32_t>(), static_cast<std::size_t>(c.numel())), bm.rows);
  return c;
}

SignThreshold fold_bn_sign(double alpha, double beta) {
  LOWBIT_CHECK(std::isfinite(alpha) && std::isfinite(beta), "fold_bn_sign: alpha=", alpha, ", beta=", beta,
               " (expected finite values)");
  constexpr int64_t lo = std::numeric_limits<int32_t>::min(), hi = std::numeric_limits<int32_t>::max();
  // The predicate is evaluated exactly as a caller would (double multiply, then add), and it
  // is monotone in dot because rounding is monotone, so a binary search finds the exact
  // switching point even where -beta/alpha rounds the wrong way.
  auto pred = [&](int64_t d) { return alpha * static_cast<double>(d) + beta >= 0.0; };
  // (dot >= INT32_MIN) is always true: threshold INT32_MIN with flip 0 or 1 encodes the
  // constant predicates (alpha == 0, or a switching point outside the int32 range).
  const SignThreshold always{static_cast<int32_t>(lo), 0}, never{static_cast<int32_t>(lo), 1};
  if (alpha == 0.0) return beta >= 0.0 ? always : never;
  const bool rising = alpha > 0;  // pred goes false -> true as dot grows
  if (pred(lo) == pred(hi)) return pred(lo) ? always : never;
  // Smallest t in (lo, hi] with pred(t) != pred(lo).
  int64_t l = lo, h = hi;
  while (h - l > 1) {
    const int64_t mid = l + (h - l) / 2;
    if (pred(mid) == pred(lo)) l = mid; else h = mid;
  }
  return SignThreshold{static_cast<int32_t>(h), static_cast<uint8_t>(rising ? 0 : 1)};
}

namespace ref {
namespace {
// Row r of a packed matrix as ±1 integers, one element per bit.
std::vector<int> unpack_row(const BitMatrix& m, int64_t r) {
  const int64_t wpr = m.words_per_row == 0 ? packed_words_per_row(m.k) : m.words_per_row;
  std::vector<int> v(static_cast<std::size_t>(m.k));
  for (int64_t j = 0; j < m.k; ++j)
    v[static_cast<std::size_t>(j)] = ((m.words[static_cast<std::size_t>(r * wpr + j / 64)] >> (j % 64)) & 1) ? 1 : -1;
  return v;
}
// All M x N dot products of ±1 vectors, by plain multiplication.
std::vector<int32_t> dots(const BitMatrix& a, const BitMatrix& b) {
  std::vector<std::vector<int>> bu;
  for (int64_t j = 0; j < b.rows; ++j) bu.push_back(unpack_row(b, j));
  std::vector<int32_t> d(static_cast<std::size_t>(a.rows * b.rows));
  for (int64_t i = 0; i < a.rows; ++i) {
    const std::vector<int> ai = unpack_row(a, i);
    for (int64_t j = 0; j < b.rows; ++j) {
      const std::vector<int>& bj = bu[static_cast<std::size_t>(j)];
      int32_t s = 0;
      for (int64_t t = 0; t < a.k; ++t) s += ai[static_cast<std::size_t>(t)] * bj[static_cast<std::size_t>(t)];
      d[static_cast<std::size_t>(i * b.rows + j)] = s;
    }
  }
  return d;
}
}  // namespace

void bgemm_s32(const BitMatrix& a, const BitMatrix& b, std::span<int32_t> c, int64_t ldc) {
  check_operands(a, b, "ref::bgemm_s32");
  check_c(a.rows, b.rows, c.size(), ldc, "ref::bgemm_s32");
  const auto d = dots(a, b);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < b.rows; ++j) c[static_cast<std::size_t>(i * ldc + j)] = d[static_cast<std::size_t>(i * b.rows + j)];
}

void bgemm_f32(const BitMatrix& a, const BitMatrix& b, std::span<const float> scale, std::span<const float> bias,
               std::span<float> c, int64_t ldc) {
  check_operands(a, b, "ref::bgemm_f32");
  check_c(a.rows, b.rows, c.size(), ldc, "ref::bgemm_f32");
  check_per_channel(scale.size(), b.rows, "ref::bgemm_f32", "scale", true);
  check_per_channel(bias.size(), b.rows, "ref::bgemm_f32", "bias", true);
  const auto d = dots(a, b);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < b.rows; ++j) {
      const float s = scale.empty() ? 1.0f : scale[static_cast<std::size_t>(j)];
      const float o = bias.empty() ? 0.0f : bias[static_cast<std::size_t>(j)];
      const float prod = static_cast<float>(d[static_cast<std::size_t>(i * b.rows + j)]) * s;
      c[static_cast<std::size_t>(i * ldc + j)] = prod + o;
    }
}

void bgemm_threshold(const BitMatrix& a, const BitMatrix& b, std::span<const int32_t> threshold,
                     std::span<const uint8_t> flip, std::span<uint64_t> out) {
  check_threshold_args(a, b, threshold, flip, out, "ref::bgemm_threshold");
  const auto d = dots(a, b);
  const int64_t ldo = packed_words_per_row(b.rows);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t w = 0; w < ldo; ++w) {
      uint64_t word = 0;
      for (int64_t t = 0; t < 64 && w * 64 + t < b.rows; ++t) {
        const int64_t j = w * 64 + t;
        const bool ge = d[static_cast<std::size_t>(i * b.rows + j)] >= threshold[static_cast<std::size_t>(j)];
        const bool f = !flip.empty() && flip[static_cast<std::size_t>(j)] != 0;
        if (ge != f) word |= uint64_t{1} << t;
      }
      out[static_cast<std::size_t>(i * ldo + w)] = word;
    }
}
}  // namespace ref

}  // namespace lowbit::kernels
