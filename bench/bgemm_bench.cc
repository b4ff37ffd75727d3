// Packed ±1 GEMM against the float and int8 GEMMs of a tuned library, same shapes, same run.
//
// Every benchmark reports `ops` as a rate: 2·M·N·K operations per call (one multiply and one
// add per MAC; for the binary GEMM a MAC is one bit), so the ratio of two `ops` columns at the
// same shape is the speedup. Arguments: M, N, K (K in elements = bits), threads.
//
//   lowbit_bench --benchmark_filter='256/4096/4096'
#include <benchmark/benchmark.h>
#include <dnnl.h>

#include <random>
#include <vector>

#include "kernels/cpu/bgemm_common.h"
#include "lowbit/core/aligned.h"
#include "lowbit/core/threading.h"
#include "lowbit/kernels/bgemm.h"
#include "lowbit/kernels/bitpack.h"
#include "lowbit/kernels/sgemm.h"

namespace {

using lowbit::AlignedPtr;
using lowbit::kernels::BitMatrix;

struct PackedOperand {
  AlignedPtr<uint64_t> words;
  BitMatrix view;
};

PackedOperand random_bits(int64_t rows, int64_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> x(static_cast<std::size_t>(rows * k));
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  PackedOperand p;
  const int64_t wpr = lowbit::packed_words_per_row(k);
  p.words = lowbit::make_aligned<uint64_t>(static_cast<std::size_t>(rows * wpr));
  std::span<uint64_t> out(p.words.get(), static_cast<std::size_t>(rows * wpr));
  lowbit::kernels::pack_signs(x.data(), rows, k, k, out);
  p.view = BitMatrix{out, rows, k, 0};
  return p;
}

void set_ops(benchmark::State& state, int64_t m, int64_t n, int64_t k) {
  state.counters["ops"] = benchmark::Counter(2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k),
                                             benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void BM_bgemm_s32(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  lowbit::set_num_threads(static_cast<int>(state.range(3)));
  const PackedOperand a = random_bits(m, k, 1), b = random_bits(n, k, 2);
  std::vector<int32_t> c(static_cast<std::size_t>(m * n));
  for (auto _ : state) {
    lowbit::kernels::bgemm_s32(a.view, b.view, c, n);
    benchmark::DoNotOptimize(c.data());
  }
  set_ops(state, m, n, k);
  state.SetLabel(lowbit::kernels::bgemm_kernel_name());
}

// The epilogue of a binary layer feeding another: threshold and pack the output bits.
void BM_bgemm_threshold(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  lowbit::set_num_threads(static_cast<int>(state.range(3)));
  const PackedOperand a = random_bits(m, k, 1), b = random_bits(n, k, 2);
  std::vector<int32_t> thr(static_cast<std::size_t>(n), 0);
  std::vector<uint8_t> flip(static_cast<std::size_t>(n), 0);
  for (int64_t j = 0; j < n; j += 3) flip[static_cast<std::size_t>(j)] = 1;
  const int64_t ldo = lowbit::packed_words_per_row(n);
  AlignedPtr<uint64_t> out = lowbit::make_aligned<uint64_t>(static_cast<std::size_t>(m * ldo));
  for (auto _ : state) {
    lowbit::kernels::bgemm_threshold(a.view, b.view, thr, flip, {out.get(), static_cast<std::size_t>(m * ldo)});
    benchmark::DoNotOptimize(out.get());
  }
  set_ops(state, m, n, k);
  state.SetLabel(lowbit::kernels::bgemm_kernel_name());
}

// oneDNN sgemm: C[M,N] = A[M,K] · B[N,K]^T, the same layout as the binary GEMM.
void BM_sgemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  lowbit::set_num_threads(static_cast<int>(state.range(3)));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(n * k)), c(static_cast<std::size_t>(m * n));
  for (auto& v : a) v = u(rng);
  for (auto& v : b) v = u(rng);
  for (auto _ : state) {
    lowbit::kernels::sgemm(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  set_ops(state, m, n, k);
}

// oneDNN u8 x s8 -> s32 GEMM (VNNI where the CPU has it): the int8 reference point.
void BM_onednn_u8s8s32(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  lowbit::kernels::onednn_set_num_threads(static_cast<int>(state.range(3)));
  std::mt19937 rng(4);
  std::vector<uint8_t> a(static_cast<std::size_t>(m * k));
  std::vector<int8_t> b(static_cast<std::size_t>(n * k));
  std::vector<int32_t> c(static_cast<std::size_t>(m * n));
  for (auto& v : a) v = static_cast<uint8_t>(rng());
  for (auto& v : b) v = static_cast<int8_t>(rng());
  const int32_t co = 0;
  for (auto _ : state) {
    const dnnl_status_t st = dnnl_gemm_u8s8s32('N', 'T', 'F', m, n, k, 1.0f, a.data(), k, 0, b.data(), k, 0, 0.0f,
                                               c.data(), n, &co);
    if (st != dnnl_success) state.SkipWithError("dnnl_gemm_u8s8s32 failed");
    benchmark::DoNotOptimize(c.data());
  }
  set_ops(state, m, n, k);
}

// Each variant this CPU can run, forced by name, at the headline shape on one thread.
void BM_bgemm_variant(benchmark::State& state, const std::string& name) {
  lowbit::kernels::detail::bgemm_force_variant(name);
  BM_bgemm_s32(state);
  lowbit::kernels::detail::bgemm_force_variant("");
}

const bool kVariantsRegistered = [] {
  for (const std::string& name : lowbit::kernels::detail::bgemm_runnable_variants())
    benchmark::RegisterBenchmark(("BM_bgemm_variant/" + name).c_str(), BM_bgemm_variant, name)
        ->Args({256, 4096, 4096, 1})
        ->ArgNames({"M", "N", "K", "threads"})
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  return true;
}();

void Shapes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) {
    b->Args({256, 4096, 4096, threads});  // the headline shape
    b->Args({1, 4096, 4096, threads});    // batch 1 (GEMV-like)
    b->Args({3136, 256, 2304, threads});  // 3x3 conv, 56x56x256 -> 256 as im2col GEMM
  }
  b->ArgNames({"M", "N", "K", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_bgemm_s32)->Apply(Shapes);
BENCHMARK(BM_bgemm_threshold)->Args({256, 4096, 4096, 1})->Args({3136, 256, 2304, 1})->ArgNames({"M", "N", "K", "threads"})
    ->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sgemm)->Args({256, 4096, 4096, 1})->Args({256, 4096, 4096, 2})->Args({1, 4096, 4096, 1})
    ->Args({3136, 256, 2304, 1})->ArgNames({"M", "N", "K", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_onednn_u8s8s32)->Args({256, 4096, 4096, 1})->Args({256, 4096, 4096, 2})
    ->ArgNames({"M", "N", "K", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
