// int8 GEMM / GEMV driver: argument checks, weight packing, epilogue preparation, cache
// blocking and threading. The arithmetic lives in src/kernels/cpu/igemm_*.cc.
#include "lowbit/kernels/igemm.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/cpu/igemm_kernels.h"
#include "lowbit/core/dispatch.h"
#include "lowbit/core/error.h"
#include "lowbit/core/target.h"
#include "lowbit/core/threading.h"
#include "lowbit/quant/fixed_point.h"

namespace lowbit::kernels {

using igemm_detail::AFormat;
using igemm_detail::BlockArgs;
using igemm_detail::Epilogue;
using igemm_detail::GemmKernel;
using igemm_detail::GemvArgs;
using igemm_detail::GemvKernel;
using igemm_detail::kBlock;
using igemm_detail::kPanel;
using igemm_detail::Out;

namespace {

// ---- kernel tables -----------------------------------------------------------------------

constexpr KernelVariant<GemmKernel> kGemmVariants[] = {
#if LOWBIT_X86
    {"igemm_avx512vnni_6x64", cpu::kAvx512 | cpu::kAvx512Vnni,
     {AFormat::u8_offset, 6, &igemm_detail::pack_u8_offset_avx512, &igemm_detail::block_avx512vnni}},
    {"igemm_avx512bw_3x64", cpu::kAvx512,
     {AFormat::s16, 3, &igemm_detail::pack_s16_avx512, &igemm_detail::block_avx512bw}},
    {"igemm_avx2_2x16", cpu::kAvx2, {AFormat::s16, 2, &igemm_detail::pack_s16_avx2, &igemm_detail::block_avx2}},
#endif
    {"igemm_scalar", cpu::kNone, {AFormat::s16, 1, &igemm_detail::pack_s16_scalar, &igemm_detail::block_scalar}},
};

constexpr KernelVariant<GemvKernel> kGemvVariants[] = {
#if LOWBIT_X86
    {"igemv_avx512vnni_64", cpu::kAvx512 | cpu::kAvx512Vnni,
     {AFormat::u8_offset, &igemm_detail::pack_u8_offset_avx512, &igemm_detail::gemv_avx512vnni}},
    {"igemv_avx512bw_64", cpu::kAvx512, {AFormat::s16, &igemm_detail::pack_s16_avx512, &igemm_detail::gemv_avx512bw}},
    {"igemv_avx2_16", cpu::kAvx2, {AFormat::s16, &igemm_detail::pack_s16_avx2, &igemm_detail::gemv_avx2}},
#endif
    {"igemv_scalar", cpu::kNone, {AFormat::s16, &igemm_detail::pack_s16_scalar, &igemm_detail::gemv_scalar}},
};

const KernelTable<GemmKernel>& gemm_table() {
  static const KernelTable<GemmKernel> t("igemm", kGemmVariants);
  return t;
}
const KernelTable<GemvKernel>& gemv_table() {
  static const KernelTable<GemvKernel> t("igemv", kGemvVariants);
  return t;
}
// Construct both tables at load time so that `lowbit info` lists them before first use.
[[maybe_unused]] const bool kTablesRegistered = (gemm_table(), gemv_table(), true);

// ---- argument checks ---------------------------------------------------------------------

// Elements a rows x cols matrix with row stride ld spans: (rows − 1)·ld + cols, or 0 if empty.
int64_t span_needed(const char* fn, const char* what, int64_t rows, int64_t cols, int64_t ld) {
  if (rows == 0 || cols == 0) return 0;
  int64_t prod = 0, total = 0;
  if (__builtin_mul_overflow(rows - 1, ld, &prod) || __builtin_add_overflow(prod, cols, &total))
    fail(fn, ": ", what, " of ", rows, " x ", cols, " with row stride ", ld, " does not fit in memory");
  return total;
}

struct TypeRange {
  const char* name;
  int32_t lo, hi;
};
constexpr TypeRange kS8{"int8", -128, 127};
constexpr TypeRange kS16{"int16", -32768, 32767};

void check_requant(const char* fn, const Requantize& rq, int64_t n, const TypeRange& t) {
  const auto nm = static_cast<int64_t>(rq.multiplier.size()), ns = static_cast<int64_t>(rq.shift.size());
  const auto nb = static_cast<int64_t>(rq.bias.size());
  LOWBIT_CHECK(nm == 1 || nm == n, fn, ": multiplier has ", nm, " entries, expected 1 (per tensor) or ", n,
               " (per channel)");
  LOWBIT_CHECK(ns == nm, fn, ": shift has ", ns, " entries, expected as many as multiplier (", nm, ")");
  LOWBIT_CHECK(nb == 0 || nb == n, fn, ": bias has ", nb, " entries, expected 0 or ", n);
  for (int64_t i = 0; i < nm; ++i) {
    LOWBIT_CHECK(rq.multiplier[i] >= 0, fn, ": multiplier[", i, "] = ", rq.multiplier[i], " is negative, expected >= 0");
    LOWBIT_CHECK(rq.shift[i] >= -31 && rq.shift[i] <= 30, fn, ": shift[", i, "] = ", rq.shift[i],
                 " is outside [-31, 30]");
  }
  LOWBIT_CHECK(rq.qmin <= rq.qmax, fn, ": qmin = ", rq.qmin, " is greater than qmax = ", rq.qmax);
  LOWBIT_CHECK(rq.qmin >= t.lo && rq.qmax <= t.hi, fn, ": [qmin, qmax] = [", rq.qmin, ", ", rq.qmax,
               "] is outside the ", t.name, " range [", t.lo, ", ", t.hi, "]");
  LOWBIT_CHECK(rq.out_zero_point >= t.lo && rq.out_zero_point <= t.hi, fn, ": out_zero_point = ", rq.out_zero_point,
               " is outside the ", t.name, " range [", t.lo, ", ", t.hi, "]");
}

void check_gemm(const char* fn, std::size_t a_size, int64_t m, int64_t lda, const PackedWeightsI8& b,
                std::size_t c_size, int64_t ldc) {
  const int64_t n = b.n(), k = b.k();
  LOWBIT_CHECK(m >= 0, fn, ": m = ", m, " is negative");
  LOWBIT_CHECK(lda >= k, fn, ": lda = ", lda, " is less than k = ", k);
  LOWBIT_CHECK(ldc >= n, fn, ": ldc = ", ldc, " is less than n = ", n);
  const int64_t need_a = span_needed(fn, "A", m, k, lda), need_c = span_needed(fn, "C", m, n, ldc);
  LOWBIT_CHECK(static_cast<int64_t>(a_size) >= need_a, fn, ": A has ", a_size, " elements, expected at least ", need_a,
               " for m = ", m, ", k = ", k, ", lda = ", lda);
  LOWBIT_CHECK(static_cast<int64_t>(c_size) >= need_c, fn, ": C has ", c_size, " elements, expected at least ", need_c,
               " for m = ", m, ", n = ", n, ", ldc = ", ldc);
}

void check_gemv(const char* fn, std::size_t x_size, const PackedWeightsI8& b, std::size_t y_size) {
  LOWBIT_CHECK(static_cast<int64_t>(x_size) == b.k(), fn, ": x has ", x_size, " elements, expected k = ", b.k());
  LOWBIT_CHECK(static_cast<int64_t>(y_size) >= b.n(), fn, ": y has ", y_size, " elements, expected at least n = ",
               b.n());
}

// ---- per-call scratch --------------------------------------------------------------------

// Grow-only, 64-byte aligned scratch owned by the calling thread: packed A blocks and epilogue
// tables are rebuilt per call, and batch-1 callers (recurrent steps) must not pay an
// allocation each time.
class Scratch {
 public:
  void* get(std::size_t bytes) {
    if (bytes > cap_) {
      cap_ = std::max<std::size_t>(bytes, 2 * cap_);
      buf_ = make_aligned<uint8_t>(cap_);
    }
    return buf_.get();
  }

 private:
  AlignedPtr<uint8_t> buf_;
  std::size_t cap_ = 0;
};

thread_local Scratch t_pack_scratch;
thread_local Scratch t_epilogue_scratch;

int32_t wrap32(int64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(v))); }

// Builds the per-channel epilogue tables in the calling thread's scratch.
Epilogue make_epilogue(const PackedWeightsI8& b, Out out, const Requantize* rq, bool offset_a) {
  const int64_t n = b.n(), padded = (n + kBlock - 1) / kBlock * kBlock;
  const int64_t tables = out == Out::s32 ? 1 : 4;
  const bool user_bias = rq != nullptr && !rq->bias.empty();
  if (out == Out::s32 && offset_a && !user_bias) {
    // The common raw-sum product (the integer LSTM's gate sums): nothing to build per call.
    Epilogue ep;
    ep.out = out;
    ep.bias = b.u8_offset_bias();
    return ep;
  }
  auto* base = static_cast<int32_t*>(t_epilogue_scratch.get(static_cast<std::size_t>(tables * padded) * 4));
  std::memset(base, 0, static_cast<std::size_t>(tables * padded) * 4);
  Epilogue ep;
  ep.out = out;
  int32_t* bias = base;
  const int32_t* offset = b.u8_offset_bias();
  for (int64_t c = 0; c < n; ++c) {
    const int64_t user = user_bias ? rq->bias[c] : 0;
    // The u8 kernels compute Σ (a + 128)·b = Σ a·b + 128·Σ b; subtracting 128·Σ b here makes
    // the result exact (all sums modulo 2^32, as the int32 hardware accumulators wrap).
    bias[c] = wrap32(user + (offset_a ? int64_t{offset[c]} : 0));
  }
  ep.bias = bias;
  if (out != Out::s32) {
    int32_t* mult = base + padded;
    int32_t* ls = base + 2 * padded;
    int32_t* rs = base + 3 * padded;
    const bool per_channel = rq->multiplier.size() != 1;
    for (int64_t c = 0; c < n; ++c) {
      const std::size_t i = per_channel ? static_cast<std::size_t>(c) : 0;
      mult[c] = rq->multiplier[i];
      ls[c] = std::max(rq->shift[i], 0);
      rs[c] = std::max(-rq->shift[i], 0);
    }
    ep.mult = mult;
    ep.lshift = ls;
    ep.rshift = rs;
    ep.lo = rq->qmin - rq->out_zero_point;
    ep.hi = rq->qmax - rq->out_zero_point;
    ep.zero_point = rq->out_zero_point;
  }
  return ep;
}

std::size_t out_bytes(Out o) { return o == Out::s32 ? 4 : (o == Out::s16 ? 2 : 1); }

// Packed A bytes kept per M block. When the task's share of B is small enough to stay in the
// 2 MiB L2 next to A, a small A block is best (B is re-read from L2 for every A block); when B
// has to be streamed from L3, a large A block makes fewer passes over it.
constexpr int64_t kSmallABlock = 256 << 10, kLargeABlock = 1 << 20, kL2ResidentB = 1 << 20;
// Below this many multiply-adds a GEMM runs on the calling thread only.
constexpr int64_t kParallelMacs = int64_t{1} << 22;

void run_gemm(const int8_t* a, int64_t m, int64_t lda, const PackedWeightsI8& b, Out out, const Requantize* rq,
              void* c, int64_t ldc) {
  const int64_t n = b.n(), k = b.k();
  if (m == 0 || n == 0) return;
  const GemmKernel& kern = gemm_table().select().fn;
  const Epilogue ep = make_epilogue(b, out, rq, kern.a_format == AFormat::u8_offset);
  const int64_t kp = b.k_groups() * 4;
  const int64_t panels = b.panels(), blocks = (n + kBlock - 1) / kBlock;
  const int64_t esz = igemm_detail::a_elem_bytes(kern.a_format);
  const int64_t mr = kern.mr;
  const int64_t row_bytes = std::max<int64_t>(kp * esz, 1);
  const std::size_t osz = out_bytes(out);

  // Work split: each task owns a rectangle of rows x blocks. Splitting N keeps every thread on
  // its own weights (each packs the shared A rows into its own L2); splitting M is used when
  // there are too few column blocks to go round.
  int64_t mn = 0, macs = 0;
  const bool huge = __builtin_mul_overflow(m, n, &mn) || __builtin_mul_overflow(mn, std::max<int64_t>(k, 1), &macs);
  const int64_t threads = (!huge && macs < kParallelMacs) ? 1 : num_threads();
  const bool split_n = blocks >= 4 * threads || m < 4 * mr * threads;
  const int64_t tasks = std::max<int64_t>(1, std::min(threads, split_n ? blocks : (m + mr - 1) / mr));

  auto task = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int64_t r0 = 0, r1 = m, b0 = 0, b1 = blocks;
      if (split_n) {
        b0 = blocks * t / tasks;
        b1 = blocks * (t + 1) / tasks;
      } else {
        const int64_t tiles = (m + mr - 1) / mr;
        r0 = std::min(m, tiles * t / tasks * mr);
        r1 = std::min(m, tiles * (t + 1) / tasks * mr);
      }
      if (r0 >= r1 || b0 >= b1) continue;
      const int64_t a_budget = (b1 - b0) * kBlock * kp <= kL2ResidentB ? kSmallABlock : kLargeABlock;
      const int64_t mc = std::max<int64_t>(mr, a_budget / row_bytes / mr * mr);
      void* apack = t_pack_scratch.get(static_cast<std::size_t>(std::min(mc, r1 - r0) * row_bytes));
      for (int64_t i0 = r0; i0 < r1; i0 += mc) {
        const int64_t rows = std::min(mc, r1 - i0);
        kern.pack_a(a + i0 * lda, rows, k, lda, apack, kp);
        for (int64_t blk = b0; blk < b1; ++blk) {
          BlockArgs args;
          args.a = apack;
          args.rows = rows;
          args.kp = kp;
          args.b = igemm_detail::block_ptr(b.data(), blk, kp);
          args.width = igemm_detail::block_width(panels, blk);
          args.col0 = blk * kBlock;
          args.valid = std::min(kBlock, n - args.col0);
          args.c = static_cast<uint8_t*>(c) + static_cast<std::size_t>(i0 * ldc + args.col0) * osz;
          args.ldc = ldc;
          args.ep = &ep;
          kern.block(args);
        }
      }
    }
  };
  if (tasks == 1)
    task(0, 1);
  else
    parallel_for(0, tasks, 1, task);
}

// Bytes of weights below which a GEMV stays on the calling thread: waking a worker costs a few
// microseconds, as long as streaming this much from L2.
constexpr int64_t kParallelGemvBytes = 256 << 10;

void run_gemv(const int8_t* x, const PackedWeightsI8& b, Out out, const Requantize* rq, void* y) {
  const int64_t n = b.n(), k = b.k();
  if (n == 0) return;
  const GemvKernel& kern = gemv_table().select().fn;
  const Epilogue ep = make_epilogue(b, out, rq, kern.a_format == AFormat::u8_offset);
  const int64_t kp = b.k_groups() * 4;
  const int64_t esz = igemm_detail::a_elem_bytes(kern.a_format);
  void* xpack = t_pack_scratch.get(static_cast<std::size_t>(std::max<int64_t>(kp * esz, 1)));
  kern.pack_x(x, 1, k, k, xpack, kp);
  GemvArgs args;
  args.x = xpack;
  args.kp = kp;
  args.b = b.data();
  args.n = n;
  args.panels = b.panels();
  args.y = y;
  args.ep = &ep;
  args.reverse = b.next_sweep_reversed();
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const int64_t bytes = static_cast<int64_t>(b.bytes());
  if (num_threads() == 1 || blocks < 2 || bytes < kParallelGemvBytes) {
    args.block0 = 0;
    args.block1 = blocks;
    kern.run(args);
    return;
  }
  parallel_for(0, blocks, 1, [&](int64_t lo, int64_t hi) {
    GemvArgs part = args;
    part.block0 = lo;
    part.block1 = hi;
    kern.run(part);
  });
}

}  // namespace

// ---- packing -----------------------------------------------------------------------------

PackedWeightsI8 PackedWeightsI8::pack(std::span<const int8_t> b, int64_t n, int64_t k, int64_t ldb) {
  const char* fn = "PackedWeightsI8::pack";
  LOWBIT_CHECK(n >= 0 && k >= 0, fn, ": negative dimension (n = ", n, ", k = ", k, ")");
  LOWBIT_CHECK(ldb >= k, fn, ": ldb = ", ldb, " is less than k = ", k);
  const int64_t need = span_needed(fn, "B", n, k, ldb);
  LOWBIT_CHECK(static_cast<int64_t>(b.size()) >= need, fn, ": B has ", b.size(), " elements, expected at least ", need,
               " for n = ", n, ", k = ", k, ", ldb = ", ldb);
  PackedWeightsI8 p;
  p.n_ = n;
  p.k_ = k;
  const int64_t kg = p.k_groups(), panels = p.panels(), kp = kg * 4;
  p.data_ = make_aligned<int8_t>(std::max<std::size_t>(p.bytes(), 1));
  p.sums_ = make_aligned<int32_t>(static_cast<std::size_t>(std::max<int64_t>(panels * kPanel, 1)));
  for (int64_t row = 0; row < n; ++row) {
    const int64_t blk = row / kBlock, w = igemm_detail::block_width(panels, blk), ch = row % kBlock;
    int8_t* dst = p.data_.get() + blk * kBlock * kp + ch * 4;
    const int8_t* src = b.data() + row * ldb;
    int64_t sum = 0;
    for (int64_t col = 0; col < k; ++col) {
      dst[(col / 4) * w * 4 + col % 4] = src[col];
      sum += src[col];
    }
    p.sums_[row] = wrap32(sum);  // only used modulo 2^32, like the accumulators
  }
  p.offset_bias_ = make_aligned<int32_t>(static_cast<std::size_t>(std::max<int64_t>((n + kBlock - 1) / kBlock * kBlock, 1)));
  for (int64_t row = 0; row < n; ++row) p.offset_bias_[row] = wrap32(int64_t{-128} * p.sums_[row]);
  return p;
}

int8_t PackedWeightsI8::at(int64_t row, int64_t col) const {
  LOWBIT_CHECK(row >= 0 && row < n_ && col >= 0 && col < k_, "PackedWeightsI8::at: (", row, ", ", col,
               ") is outside the ", n_, " x ", k_, " weights");
  const int64_t panels = this->panels(), kp = k_groups() * 4;
  const int64_t blk = row / kBlock, w = igemm_detail::block_width(panels, blk);
  return data_[blk * kBlock * kp + (col / 4) * w * 4 + (row % kBlock) * 4 + col % 4];
}

// ---- public entry points -----------------------------------------------------------------

void igemm_s32(std::span<const int8_t> a, int64_t m, int64_t lda, const PackedWeightsI8& b, std::span<int32_t> c,
               int64_t ldc) {
  check_gemm("igemm_s32", a.size(), m, lda, b, c.size(), ldc);
  run_gemm(a.data(), m, lda, b, Out::s32, nullptr, c.data(), ldc);
}

void igemm_requant_s8(std::span<const int8_t> a, int64_t m, int64_t lda, const PackedWeightsI8& b,
                      const Requantize& rq, std::span<int8_t> c, int64_t ldc) {
  check_gemm("igemm_requant_s8", a.size(), m, lda, b, c.size(), ldc);
  check_requant("igemm_requant_s8", rq, b.n(), kS8);
  run_gemm(a.data(), m, lda, b, Out::s8, &rq, c.data(), ldc);
}

void igemm_requant_s16(std::span<const int8_t> a, int64_t m, int64_t lda, const PackedWeightsI8& b,
                       const Requantize& rq, std::span<int16_t> c, int64_t ldc) {
  check_gemm("igemm_requant_s16", a.size(), m, lda, b, c.size(), ldc);
  check_requant("igemm_requant_s16", rq, b.n(), kS16);
  run_gemm(a.data(), m, lda, b, Out::s16, &rq, c.data(), ldc);
}

void igemv_s32(std::span<const int8_t> x, const PackedWeightsI8& b, std::span<int32_t> y) {
  check_gemv("igemv_s32", x.size(), b, y.size());
  run_gemv(x.data(), b, Out::s32, nullptr, y.data());
}

void igemv_requant_s8(std::span<const int8_t> x, const PackedWeightsI8& b, const Requantize& rq,
                      std::span<int8_t> y) {
  check_gemv("igemv_requant_s8", x.size(), b, y.size());
  check_requant("igemv_requant_s8", rq, b.n(), kS8);
  run_gemv(x.data(), b, Out::s8, &rq, y.data());
}

void igemv_requant_s16(std::span<const int8_t> x, const PackedWeightsI8& b, const Requantize& rq,
                       std::span<int16_t> y) {
  check_gemv("igemv_requant_s16", x.size(), b, y.size());
  check_requant("igemv_requant_s16", rq, b.n(), kS16);
  run_gemv(x.data(), b, Out::s16, &rq, y.data());
}

const char* igemm_kernel_name() { return gemm_table().select().name; }
const char* igemv_kernel_name() { return gemv_table().select().name; }

// ---- references --------------------------------------------------------------------------

namespace ref {

void igemm_s32(const int8_t* a, int64_t m, int64_t k, int64_t lda, const int8_t* b, int64_t n, int64_t ldb,
               int32_t* c, int64_t ldc) {
  LOWBIT_CHECK(m >= 0 && n >= 0 && k >= 0, "ref::igemm_s32: negative dimension");
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += int64_t{a[i * lda + p]} * int64_t{b[j * ldb + p]};
      c[i * ldc + j] = wrap32(acc);  // int32 accumulation wraps modulo 2^32
    }
}

int32_t requantize(int32_t acc, int64_t col, const Requantize& rq) {
  const int32_t bias = rq.bias.empty() ? 0 : rq.bias[static_cast<std::size_t>(col)];
  const std::size_t i = rq.multiplier.size() == 1 ? 0 : static_cast<std::size_t>(col);
  const int32_t scaled = quant::multiply_by_quantized_multiplier(wrap32(int64_t{acc} + bias), rq.multiplier[i],
                                                                 rq.shift[i]);
  const int64_t v = int64_t{scaled} + rq.out_zero_point;
  return static_cast<int32_t>(std::clamp<int64_t>(v, rq.qmin, rq.qmax));
}

}  // namespace ref

// ---- shared scalar epilogue (used by the scalar kernels and vector tails) -------------------

namespace igemm_detail {

int32_t epilogue_scalar(int32_t acc, int64_t ch, const Epilogue& ep) {
  const int32_t x = wrap32(int64_t{acc} + ep.bias[ch]);
  if (ep.out == Out::s32) return x;
  const int32_t scaled = quant::multiply_by_quantized_multiplier(x, ep.mult[ch], ep.lshift[ch] - ep.rshift[ch]);
  return quant::saturate(scaled, ep.lo, ep.hi) + ep.zero_point;
}

void store_row_scalar(const int32_t* acc, int64_t count, int64_t col0, const Epilogue& ep, void* out_row) {
  for (int64_t j = 0; j < count; ++j) {
    const int32_t v = epilogue_scalar(acc[j], col0 + j, ep);
    switch (ep.out) {
      case Out::s32: static_cast<int32_t*>(out_row)[j] = v; break;
      case Out::s8: static_cast<int8_t*>(out_row)[j] = static_cast<int8_t>(v); break;
      case Out::s16: static_cast<int16_t*>(out_row)[j] = static_cast<int16_t>(v); break;
    }
  }
}

}  // namespace igemm_detail

}  // namespace lowbit::kernels
