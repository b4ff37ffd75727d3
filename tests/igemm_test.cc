// int8 GEMM / GEMV: every runnable variant against the scalar references, bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/core/dispatch.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/kernels/igemm.h"
#include "lowbit/quant/fixed_point.h"
#include "test_util.h"

namespace lowbit::kernels {
namespace {

using lowbit::testing::awkward_sizes;
using lowbit::testing::for_each_isa;

// Random int8 values with the extremes −128 and 127 much more frequent than uniform, so that
// the ±128 offset arithmetic and saturating paths are exercised.
std::vector<int8_t> random_i8(std::size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> v(-128, 127), pick(0, 15);
  std::vector<int8_t> out(count);
  for (auto& x : out) {
    const int p = pick(rng);
    x = static_cast<int8_t>(p == 0 ? -128 : (p == 1 ? 127 : v(rng)));
  }
  return out;
}

class ThreadCount {
 public:
  explicit ThreadCount(int n) : saved_(num_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(saved_); }

 private:
  int saved_;
};

struct Problem {
  int64_t m, n, k, lda, ldb, ldc;
  std::vector<int8_t> a, b;
  std::vector<int32_t> ref;  // m x n, row stride n
};

Problem make_problem(int64_t m, int64_t n, int64_t k, int64_t pad, uint32_t seed) {
  Problem p{m, n, k, k + pad, k + 2 * pad, n + pad, {}, {}, {}};
  p.a = random_i8(static_cast<std::size_t>(std::max<int64_t>(m * p.lda, 1)), seed);
  p.b = random_i8(static_cast<std::size_t>(std::max<int64_t>(n * p.ldb, 1)), seed * 7 + 1);
  p.ref.assign(static_cast<std::size_t>(m * n), 0);
  ref::igemm_s32(p.a.data(), m, k, p.lda, p.b.data(), n, p.ldb, p.ref.data(), n);
  return p;
}

// (m, n, k) triples covering every awkward size in each position, kept small enough that the
// references stay cheap under sanitizers.
std::vector<std::array<int64_t, 3>> shape_cases() {
  const auto& s = awkward_sizes();
  const auto sz = static_cast<int64_t>(s.size());
  std::vector<std::array<int64_t, 3>> out;
  for (int64_t i = 0; i < sz; ++i) {
    const int64_t m = s[static_cast<std::size_t>(i)];
    const int64_t n = s[static_cast<std::size_t>((i * 5 + 3) % sz)];
    const int64_t k = s[static_cast<std::size_t>((i * 11 + 7) % sz)];
    out.push_back({std::min<int64_t>(m, 129), n, k});
    out.push_back({s[static_cast<std::size_t>((i * 3 + 1) % sz)] % 40 + 1, std::min<int64_t>(m, 257),
                   s[static_cast<std::size_t>((i * 7 + 2) % sz)]});
  }
  // Large enough to run on two threads, split over N and over M (with several M blocks).
  out.push_back({16, 513, 600});
  out.push_back({600, 17, 2000});
  out.push_back({97, 129, 1031});
  return out;
}

template <typename T>
void expect_untouched_padding(const std::vector<T>& c, int64_t m, int64_t n, int64_t ldc, T sentinel) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = n; j < ldc; ++j)
      ASSERT_EQ(c[static_cast<std::size_t>(i * ldc + j)], sentinel) << "wrote outside C at (" << i << ", " << j << ")";
}

TEST(IgemmPack, AtRoundTripAndRowSums) {
  for (int64_t n : {1, 15, 16, 17, 63, 64, 65, 129}) {
    for (int64_t k : {1, 3, 4, 5, 64, 67}) {
      const int64_t ldb = k + 3;
      const auto b = random_i8(static_cast<std::size_t>(n * ldb), static_cast<uint32_t>(n * 100 + k));
      const PackedWeightsI8 p = PackedWeightsI8::pack(b, n, k, ldb);
      ASSERT_EQ(p.n(), n);
      ASSERT_EQ(p.k(), k);
      ASSERT_EQ(p.bytes(), static_cast<std::size_t>(((n + 15) / 16) * ((k + 3) / 4) * 64));
      for (int64_t r = 0; r < n; ++r) {
        int32_t sum = 0;
        for (int64_t c = 0; c < k; ++c) {
          ASSERT_EQ(p.at(r, c), b[static_cast<std::size_t>(r * ldb + c)]) << "n=" << n << " k=" << k << " at " << r << "," << c;
          sum += b[static_cast<std::size_t>(r * ldb + c)];
        }
        ASSERT_EQ(p.row_sums()[r], sum);
      }
      for (int64_t r = n; r < (n + 15) / 16 * 16; ++r) ASSERT_EQ(p.row_sums()[r], 0);
      // Padding must be zero: the fast kernels rely on it.
      int64_t nonzero = 0;
      for (std::size_t i = 0; i < p.bytes(); ++i) nonzero += p.data()[i] != 0;
      int64_t expected = 0;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) expected += b[static_cast<std::size_t>(r * ldb + c)] != 0;
      ASSERT_EQ(nonzero, expected);
      EXPECT_THROW((void)p.at(n, 0), Error);
      EXPECT_THROW((void)p.at(0, k), Error);
      EXPECT_THROW((void)p.at(-1, 0), Error);
    }
  }
}

TEST(Igemm, S32MatchesReferenceOnAwkwardShapes) {
  const auto cases = shape_cases();
  std::vector<Problem> problems;
  uint32_t seed = 1;
  for (const auto& [m, n, k] : cases) {
    problems.push_back(make_problem(m, n, k, static_cast<int64_t>(seed % 3) * 5, seed));
    ++seed;
  }
  for (int threads : {1, 2}) {
    ThreadCount tc(threads);
    for_each_isa([&](cpu::IsaLevel) {
      for (const Problem& p : problems) {
        SCOPED_TRACE(::testing::Message() << "threads=" << threads << " m=" << p.m << " n=" << p.n << " k=" << p.k
                                          << " kernel=" << igemm_kernel_name());
        const PackedWeightsI8 w = PackedWeightsI8::pack(p.b, p.n, p.k, p.ldb);
        constexpr int32_t kSentinel = 0x5a5a5a5a;
        std::vector<int32_t> c(static_cast<std::size_t>(p.m * p.ldc), kSentinel);
        igemm_s32(p.a, p.m, p.lda, w, c, p.ldc);
        for (int64_t i = 0; i < p.m; ++i)
          for (int64_t j = 0; j < p.n; ++j)
            ASSERT_EQ(c[static_cast<std::size_t>(i * p.ldc + j)], p.ref[static_cast<std::size_t>(i * p.n + j)])
                << "at (" << i << ", " << j << ")";
        expect_untouched_padding(c, p.m, p.n, p.ldc, kSentinel);
      }
    });
  }
}

TEST(Igemm, ExtremeOperandsDeepK) {
  // All −128 times −128 (and −128 times 127) with deep K: the largest sums the int32
  // accumulators see, and the largest offset corrections.
  for (int64_t k : {1031, 4099}) {
    for (int8_t bv : {int8_t{-128}, int8_t{127}}) {
      const int64_t m = 7, n = 33;
      std::vector<int8_t> a(static_cast<std::size_t>(m * k), -128), b(static_cast<std::size_t>(n * k), bv);
      const PackedWeightsI8 w = PackedWeightsI8::pack(b, n, k, k);
      for_each_isa([&](cpu::IsaLevel) {
        std::vector<int32_t> c(static_cast<std::size_t>(m * n));
        igemm_s32(a, m, k, w, c, n);
        for (int32_t v : c) ASSERT_EQ(v, -128 * int32_t{bv} * static_cast<int32_t>(k)) << igemm_kernel_name();
        std::vector<int32_t> y(static_cast<std::size_t>(n));
        igemv_s32(std::span<const int8_t>(a.data(), static_cast<std::size_t>(k)), w, y);
        for (int32_t v : y) ASSERT_EQ(v, -128 * int32_t{bv} * static_cast<int32_t>(k)) << igemv_kernel_name();
      });
    }
  }
}

// Requantization parameters for n channels: mostly realistic scales (outputs spread over the
// range), plus extreme multipliers and shifts that exercise wrap-around and saturation.
struct RqParams {
  std::vector<int32_t> bias, mult, shift;
  Requantize rq;
};

RqParams make_rq(int64_t n, int64_t k, bool per_channel, bool with_bias, int32_t tmin, int32_t tmax, uint32_t seed) {
  std::mt19937 rng(seed);
  RqParams p;
  const int64_t count = per_channel ? n : 1;
  std::uniform_real_distribution<double> expo(-6.0, 3.0);
  std::uniform_int_distribution<int> kind(0, 9), shift(-31, 30);
  std::uniform_int_distribution<int32_t> m0(0, std::numeric_limits<int32_t>::max());
  const double typical = 1.0 / (std::sqrt(static_cast<double>(std::max<int64_t>(k, 1))) * 128.0 * 128.0);
  for (int64_t i = 0; i < count; ++i) {
    const int kd = kind(rng);
    if (kd < 6) {
      const quant::QuantizedMultiplier q = quant::quantize_multiplier(typical * (tmax - tmin) * std::pow(2.0, expo(rng)));
      p.mult.push_back(q.multiplier);
      p.shift.push_back(std::clamp(q.shift, -31, 30));
    } else if (kd == 6) {
      p.mult.push_back(std::numeric_limits<int32_t>::max());
      p.shift.push_back(rng() % 2 ? 30 : -31);
    } else if (kd == 7) {
      p.mult.push_back(0);
      p.shift.push_back(shift(rng));
    } else {
      p.mult.push_back(m0(rng));
      p.shift.push_back(shift(rng));
    }
  }
  if (with_bias) {
    std::uniform_int_distribution<int32_t> small(-100000, 100000);
    std::uniform_int_distribution<int32_t> any(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
    for (int64_t i = 0; i < n; ++i) p.bias.push_back(kind(rng) == 0 ? any(rng) : small(rng));
  }
  std::uniform_int_distribution<int32_t> zp(tmin, tmax);
  p.rq.out_zero_point = zp(rng);
  const int32_t q0 = zp(rng), q1 = zp(rng);
  // Half the time the full type range, otherwise a narrower clamp (fused activation).
  p.rq.qmin = kind(rng) < 5 ? tmin : std::min(q0, q1);
  p.rq.qmax = kind(rng) < 5 ? tmax : std::max(q0, q1);
  p.rq.bias = p.bias;
  p.rq.multiplier = p.mult;
  p.rq.shift = p.shift;
  return p;
}

template <typename T>
void check_requant_gemm(const Problem& p, const PackedWeightsI8& w, const RqParams& rp) {
  constexpr T kSentinel = 0x55;
  std::vector<T> c(static_cast<std::size_t>(p.m * p.ldc), kSentinel);
  if constexpr (sizeof(T) == 1)
    igemm_requant_s8(p.a, p.m, p.lda, w, rp.rq, c, p.ldc);
  else
    igemm_requant_s16(p.a, p.m, p.lda, w, rp.rq, c, p.ldc);
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.n; ++j) {
      const int32_t want = ref::requantize(p.ref[static_cast<std::size_t>(i * p.n + j)], j, rp.rq);
      ASSERT_EQ(int32_t{c[static_cast<std::size_t>(i * p.ldc + j)]}, want)
          << "at (" << i << ", " << j << ") acc=" << p.ref[static_cast<std::size_t>(i * p.n + j)]
          << " mult=" << rp.rq.multiplier[rp.rq.multiplier.size() == 1 ? 0 : static_cast<std::size_t>(j)]
          << " shift=" << rp.rq.shift[rp.rq.shift.size() == 1 ? 0 : static_cast<std::size_t>(j)];
    }
  expect_untouched_padding(c, p.m, p.n, p.ldc, kSentinel);
}

TEST(Igemm, RequantizeMatchesReference) {
  const std::vector<std::array<int64_t, 3>> shapes{{1, 1, 1},   {3, 17, 5},    {13, 64, 64},   {17, 65, 31},
                                                   {33, 129, 97}, {7, 257, 513}, {64, 200, 300}, {16, 513, 600}};
  std::vector<Problem> problems;
  uint32_t seed = 100;
  for (const auto& [m, n, k] : shapes) problems.push_back(make_problem(m, n, k, 3, seed++));
  for (int threads : {1, 2}) {
    ThreadCount tc(threads);
    for_each_isa([&](cpu::IsaLevel) {
      uint32_t s = 1000;
      for (const Problem& p : problems) {
        const PackedWeightsI8 w = PackedWeightsI8::pack(p.b, p.n, p.k, p.ldb);
        for (bool per_channel : {false, true})
          for (bool bias : {false, true}) {
            SCOPED_TRACE(::testing::Message() << "threads=" << threads << " m=" << p.m << " n=" << p.n << " k=" << p.k
                                              << " per_channel=" << per_channel << " bias=" << bias
                                              << " kernel=" << igemm_kernel_name());
            const RqParams r8 = make_rq(p.n, p.k, per_channel, bias, -128, 127, s++);
            check_requant_gemm<int8_t>(p, w, r8);
            const RqParams r16 = make_rq(p.n, p.k, per_channel, bias, -32768, 32767, s++);
            check_requant_gemm<int16_t>(p, w, r16);
          }
      }
    });
  }
}

TEST(Igemm, SaturatesToQminQmax) {
  const Problem p = make_problem(5, 40, 64, 0, 7);
  const PackedWeightsI8 w = PackedWeightsI8::pack(p.b, p.n, p.k, p.ldb);
  std::vector<int32_t> mult{std::numeric_limits<int32_t>::max()}, shift{30};
  Requantize rq;
  rq.multiplier = mult;
  rq.shift = shift;
  rq.qmin = -5;
  rq.qmax = 9;
  rq.out_zero_point = 2;
  for_each_isa([&](cpu::IsaLevel) {
    std::vector<int8_t> c(static_cast<std::size_t>(p.m * p.n));
    igemm_requant_s8(p.a, p.m, p.lda, w, rq, c, p.n);
    int saturated = 0;
    for (std::size_t i = 0; i < c.size(); ++i) {
      ASSERT_EQ(c[i], ref::requantize(p.ref[i], static_cast<int64_t>(i) % p.n, rq));
      ASSERT_TRUE(c[i] >= -5 && c[i] <= 9);
      saturated += c[i] == -5 || c[i] == 9;
    }
    EXPECT_GT(saturated, static_cast<int>(c.size()) / 2);
  });
}

// The accumulators are all zero (x = 0), so each channel's output is the requantized bias:
// a cross product of edge values for bias, multiplier and shift, including ties and values
// one away from the rounding boundaries, checked through GEMV and GEMM on every variant.
TEST(Igemm, RequantizeEdgeValues) {
  const int32_t kMin = std::numeric_limits<int32_t>::min(), kMax = std::numeric_limits<int32_t>::max();
  const std::vector<int32_t> biases{kMin, kMin + 1, -(1 << 30) - 1, -(1 << 30), -(1 << 30) + 1, -3, -1, 0, 1, 3,
                                    (1 << 30) - 1, 1 << 30, kMax - 1, kMax, 12345677, -7654321};
  const std::vector<int32_t> mults{0, 1, 2, 3, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, kMax, 1518500250};
  const std::vector<int32_t> shifts{-31, -30, -17, -2, -1, 0, 1, 2, 29, 30};
  std::vector<int32_t> bias, mult, shift;
  for (int32_t b : biases)
    for (int32_t m : mults)
      for (int32_t s : shifts) {
        bias.push_back(b);
        mult.push_back(m);
        shift.push_back(s);
      }
  const auto n = static_cast<int64_t>(bias.size());
  const int64_t k = 5;
  const std::vector<int8_t> x(static_cast<std::size_t>(3 * k), 0);
  const auto b = random_i8(static_cast<std::size_t>(n * k), 77);
  const PackedWeightsI8 w = PackedWeightsI8::pack(b, n, k, k);
  for (int32_t zp : {0, -100, 77}) {
    Requantize rq;
    rq.bias = bias;
    rq.multiplier = mult;
    rq.shift = shift;
    rq.out_zero_point = zp;
    rq.qmin = -32768;
    rq.qmax = 32767;
    Requantize rq8 = rq;
    rq8.qmin = -128;
    rq8.qmax = 127;
    for_each_isa([&](cpu::IsaLevel) {
      std::vector<int16_t> y(static_cast<std::size_t>(n)), c(static_cast<std::size_t>(3 * n));
      std::vector<int8_t> y8(static_cast<std::size_t>(n));
      igemv_requant_s16(std::span<const int8_t>(x.data(), k), w, rq, y);
      igemm_requant_s16(x, 3, k, w, rq, c, n);
      igemv_requant_s8(std::span<const int8_t>(x.data(), k), w, rq8, y8);
      for (int64_t j = 0; j < n; ++j) {
        const auto jj = static_cast<std::size_t>(j);
        const int32_t want = ref::requantize(0, j, rq);
        ASSERT_EQ(int32_t{y[jj]}, want) << igemv_kernel_name() << " bias=" << bias[jj] << " mult=" << mult[jj]
                                        << " shift=" << shift[jj] << " zp=" << zp;
        for (int r = 0; r < 3; ++r) ASSERT_EQ(int32_t{c[static_cast<std::size_t>(r * n + j)]}, want) << igemm_kernel_name();
        ASSERT_EQ(int32_t{y8[jj]}, ref::requantize(0, j, rq8)) << igemv_kernel_name();
      }
    });
  }
}

TEST(Igemv, MatchesGemmAtBatchOne) {
  std::vector<std::array<int64_t, 2>> shapes;
  const auto& s = awkward_sizes();
  for (std::size_t i = 0; i < s.size(); ++i) shapes.push_back({s[i], s[(i * 5 + 4) % s.size()]});
  shapes.push_back({1031, 1031});  // over the threshold for two threads
  shapes.push_back({4096, 512});
  uint32_t seed = 500;
  for (const auto& [n, k] : shapes) {
    const Problem p = make_problem(1, n, k, 0, seed++);
    const PackedWeightsI8 w = PackedWeightsI8::pack(p.b, n, k, p.ldb);
    const RqParams r8 = make_rq(n, k, true, true, -128, 127, seed++);
    const RqParams r16 = make_rq(n, k, false, true, -32768, 32767, seed++);
    for (int threads : {1, 2}) {
      ThreadCount tc(threads);
      for_each_isa([&](cpu::IsaLevel) {
        SCOPED_TRACE(::testing::Message() << "threads=" << threads << " n=" << n << " k=" << k
                                          << " kernel=" << igemv_kernel_name());
        std::vector<int32_t> y(static_cast<std::size_t>(n)), c(static_cast<std::size_t>(n));
        igemv_s32(p.a, w, y);
        igemm_s32(p.a, 1, k, w, c, n);
        for (int64_t j = 0; j < n; ++j) {
          ASSERT_EQ(y[static_cast<std::size_t>(j)], p.ref[static_cast<std::size_t>(j)]) << "channel " << j;
          ASSERT_EQ(c[static_cast<std::size_t>(j)], y[static_cast<std::size_t>(j)]) << "channel " << j;
        }
        std::vector<int8_t> y8(static_cast<std::size_t>(n)), c8(static_cast<std::size_t>(n));
        igemv_requant_s8(p.a, w, r8.rq, y8);
        igemm_requant_s8(p.a, 1, k, w, r8.rq, c8, n);
        std::vector<int16_t> y16(static_cast<std::size_t>(n)), c16(static_cast<std::size_t>(n));
        igemv_requant_s16(p.a, w, r16.rq, y16);
        igemm_requant_s16(p.a, 1, k, w, r16.rq, c16, n);
        for (int64_t j = 0; j < n; ++j) {
          const auto jj = static_cast<std::size_t>(j);
          ASSERT_EQ(int32_t{y8[jj]}, ref::requantize(p.ref[jj], j, r8.rq)) << "channel " << j;
          ASSERT_EQ(c8[jj], y8[jj]) << "channel " << j;
          ASSERT_EQ(int32_t{y16[jj]}, ref::requantize(p.ref[jj], j, r16.rq)) << "channel " << j;
          ASSERT_EQ(c16[jj], y16[jj]) << "channel " << j;
        }
      });
    }
  }
}

// GEMVs alternate forward and backward sweeps over the weight blocks; both directions, with a
// narrower last block and on two threads (each sweeping its own range), give the same sums.
TEST(Igemv, ForwardAndBackwardSweepsAgree) {
  for (const auto& [n, k] : std::vector<std::array<int64_t, 2>>{{1000, 300}, {4096, 1024}, {80, 5}}) {
    const Problem p = make_problem(1, n, k, 0, static_cast<uint32_t>(n + k));
    const PackedWeightsI8 w = PackedWeightsI8::pack(p.b, n, k, p.ldb);
    for (int threads : {1, 2}) {
      ThreadCount tc(threads);
      for_each_isa([&](cpu::IsaLevel) {
        for (int call = 0; call < 4; ++call) {
          SCOPED_TRACE(::testing::Message() << "threads=" << threads << " n=" << n << " call=" << call
                                            << " kernel=" << igemv_kernel_name());
          std::vector<int32_t> y(static_cast<std::size_t>(n), -1);
          igemv_s32(p.a, w, y);
          ASSERT_EQ(y, p.ref);
        }
      });
    }
    // Each product flips the direction of the next one.
    const bool first = w.next_sweep_reversed();
    EXPECT_NE(w.next_sweep_reversed(), first);
    EXPECT_EQ(w.next_sweep_reversed(), first);
  }
}

TEST(Igemm, ZeroSizesAreLegal) {
  const std::vector<int8_t> none;
  std::vector<int32_t> c(8, 7);
  // m = 0: nothing written.
  const auto b = random_i8(12, 3);
  const PackedWeightsI8 w = PackedWeightsI8::pack(b, 3, 4, 4);
  EXPECT_NO_THROW(igemm_s32(none, 0, 4, w, c, 3));
  EXPECT_EQ(c[0], 7);
  // n = 0.
  const PackedWeightsI8 empty_n = PackedWeightsI8::pack(none, 0, 4, 4);
  const auto a = random_i8(8, 4);
  EXPECT_NO_THROW(igemm_s32(a, 2, 4, empty_n, std::span<int32_t>(), 0));
  std::vector<int32_t> y0;
  EXPECT_NO_THROW(igemv_s32(std::span<const int8_t>(a.data(), 4), empty_n, y0));
  // k = 0: every sum is empty, so outputs are 0 (s32) or the requantized bias.
  const PackedWeightsI8 empty_k = PackedWeightsI8::pack(none, 3, 0, 0);
  for_each_isa([&](cpu::IsaLevel) {
    std::vector<int32_t> c2(6, 7);
    igemm_s32(none, 2, 0, empty_k, c2, 3);
    for (int32_t v : c2) EXPECT_EQ(v, 0);
    std::vector<int32_t> bias{1000, -1000, 5}, mult{1 << 30}, shift{-1};
    Requantize rq;
    rq.bias = bias;
    rq.multiplier = mult;
    rq.shift = shift;
    std::vector<int8_t> y(3);
    igemv_requant_s8(none, empty_k, rq, y);
    EXPECT_EQ(y[0], 127);
    EXPECT_EQ(y[1], -128);
    EXPECT_EQ(y[2], ref::requantize(0, 2, rq));
  });
  // Default-constructed weights are 0 x 0.
  const PackedWeightsI8 def;
  EXPECT_NO_THROW(igemm_s32(none, 5, 0, def, std::span<int32_t>(), 0));
}

TEST(Igemm, KernelNamesFollowTheCap) {
  for_each_isa([&](cpu::IsaLevel level) {
    const std::string g = igemm_kernel_name(), v = igemv_kernel_name();
    EXPECT_EQ(g.rfind("igemm_", 0), 0u) << g;
    EXPECT_EQ(v.rfind("igemv_", 0), 0u) << v;
    if (level == cpu::IsaLevel::scalar) {
      EXPECT_EQ(g, "igemm_scalar");
      EXPECT_EQ(v, "igemv_scalar");
    } else {
      EXPECT_NE(g, "igemm_scalar");
      EXPECT_NE(v, "igemv_scalar");
    }
    if (level == cpu::IsaLevel::avx2) {
      EXPECT_NE(g.find("avx2"), std::string::npos) << g;
    }
    if (level == cpu::IsaLevel::avx512) {
      EXPECT_NE(g.find("avx512bw"), std::string::npos) << g;
    }
  });
}

TEST(Igemm, TablesAreRegisteredForInfo) {
  bool gemm = false, gemv = false;
  for (const KernelChoice& c : kernel_choices()) {
    if (c.op == "igemm") {
      gemm = true;
      EXPECT_EQ(c.available.back(), "igemm_scalar");
    }
    if (c.op == "igemv") {
      gemv = true;
      EXPECT_EQ(c.available.back(), "igemv_scalar");
    }
  }
  EXPECT_TRUE(gemm);
  EXPECT_TRUE(gemv);
}

// Expects lowbit::Error whose message contains `needle`.
template <typename F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected lowbit::Error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Igemm, RejectsBadArguments) {
  const int64_t m = 3, n = 5, k = 6;
  const auto a = random_i8(static_cast<std::size_t>(m * k), 1);
  const auto b = random_i8(static_cast<std::size_t>(n * k), 2);
  const PackedWeightsI8 w = PackedWeightsI8::pack(b, n, k, k);
  std::vector<int32_t> c(static_cast<std::size_t>(m * n));
  std::vector<int8_t> c8(static_cast<std::size_t>(m * n));
  std::vector<int16_t> c16(static_cast<std::size_t>(m * n));

  // Packing.
  expect_error([&] { (void)PackedWeightsI8::pack(b, -1, k, k); }, "n = -1");
  expect_error([&] { (void)PackedWeightsI8::pack(b, n, -2, k); }, "k = -2");
  expect_error([&] { (void)PackedWeightsI8::pack(b, n, k, k - 1); }, "ldb = 5");
  expect_error([&] { (void)PackedWeightsI8::pack(std::span<const int8_t>(b.data(), b.size() - 1), n, k, k); },
               "expected at least 30");
  expect_error([&] { (void)PackedWeightsI8::pack(b, 2, k, k + 20); }, "expected at least 32");

  // Shapes and spans.
  expect_error([&] { igemm_s32(a, -1, k, w, c, n); }, "m = -1");
  expect_error([&] { igemm_s32(a, m, k - 1, w, c, n); }, "lda = 5");
  expect_error([&] { igemm_s32(a, m, k, w, c, n - 1); }, "ldc = 4");
  expect_error([&] { igemm_s32(std::span<const int8_t>(a.data(), a.size() - 1), m, k, w, c, n); },
               "expected at least 18");
  expect_error([&] { igemm_s32(a, m, k + 1, w, c, n); }, "expected at least 20");  // (m−1)·lda + k
  expect_error([&] { igemm_s32(a, m, k, w, std::span<int32_t>(c.data(), c.size() - 1), n); }, "expected at least 15");
  expect_error([&] { igemm_s32(a, m, k, w, c, n + 2); }, "expected at least 19");
  expect_error([&] { igemm_s32(a, int64_t{1} << 62, int64_t{1} << 40, w, c, n); }, "does not fit");
  const auto a_wide = random_i8(2 * 7 + k, 9);
  EXPECT_NO_THROW(igemm_s32(a_wide, m, 7, w, c, n));  // exactly (m − 1)·lda + k elements

  // GEMV sizes.
  std::vector<int32_t> y(static_cast<std::size_t>(n));
  expect_error([&] { igemv_s32(std::span<const int8_t>(a.data(), k - 1), w, y); }, "expected k = 6");
  expect_error([&] { igemv_s32(std::span<const int8_t>(a.data(), k + 1), w, y); }, "x has 7");
  expect_error([&] { igemv_s32(std::span<const int8_t>(a.data(), k), w, std::span<int32_t>(y.data(), n - 1)); },
               "y has 4");

  // Requantization parameters.
  std::vector<int32_t> one{1 << 30}, zero_shift{0}, five(5, 1 << 30), five_shift(5, 0), two{1, 2}, bias4(4, 0);
  auto rq_ok = [&] {
    Requantize r;
    r.multiplier = one;
    r.shift = zero_shift;
    return r;
  };
  {
    Requantize r = rq_ok();
    r.multiplier = two;
    r.shift = two;
    expect_error([&] { igemm_requant_s8(a, m, k, w, r, c8, n); }, "multiplier has 2");
  }
  {
    Requantize r = rq_ok();
    r.multiplier = five;
    expect_error([&] { igemm_requant_s8(a, m, k, w, r, c8, n); }, "shift has 1");
    r.shift = five_shift;
    EXPECT_NO_THROW(igemm_requant_s8(a, m, k, w, r, c8, n));
  }
  {
    Requantize r = rq_ok();
    r.bias = bias4;
    expect_error([&] { igemm_requant_s16(a, m, k, w, r, c16, n); }, "bias has 4");
  }
  for (int32_t bad_shift : {-32, 31}) {
    std::vector<int32_t> s{bad_shift};
    Requantize r = rq_ok();
    r.shift = s;
    expect_error([&] { igemm_requant_s8(a, m, k, w, r, c8, n); }, "shift[0] = " + std::to_string(bad_shift));
    expect_error([&] { igemv_requant_s16(std::span<const int8_t>(a.data(), k), w, r, c16); }, "outside [-31, 30]");
  }
  {
    std::vector<int32_t> neg{-1};
    Requantize r = rq_ok();
    r.multiplier = neg;
    expect_error([&] { igemm_requant_s8(a, m, k, w, r, c8, n); }, "multiplier[0] = -1");
  }
  {
    Requantize r = rq_ok();
    r.qmin = 5;
    r.qmax = 4;
    expect_error([&] { igemm_requant_s8(a, m, k, w, r, c8, n); }, "qmin = 5");
    r.qmin = -129;
    r.qmax = 0;
    expect_error([&] { igemm_requant_s8(a, m, k, w, r, c8, n); }, "int8 range");
    EXPECT_NO_THROW(igemm_requant_s16(a, m, k, w, r, c16, n));
    r.qmin = -32768;
    r.qmax = 32768;
    expect_error([&] { igemm_requant_s16(a, m, k, w, r, c16, n); }, "int16 range");
    r.qmax = 32767;
    r.out_zero_point = 40000;
    expect_error([&] { igemm_requant_s16(a, m, k, w, r, c16, n); }, "out_zero_point = 40000");
  }
}

}  // namespace
}  // namespace lowbit::kernels
