// int8 GEMM / GEMV against oneDNN's integer GEMM, measured in the same process.
//
// Weights are packed ahead of time (once per model); A is taken as given, so any packing of A
// is timed. Ops = 2·M·N·K. Besides one benchmark per implementation, the Ratio benchmarks time
// ours and both oneDNN entry points (s8s8s32 and u8s8s32 with B transposed) alternately in one
// loop and report ours / (the faster oneDNN), so the ratio is not skewed by drift between runs
// (the machine may be shared).
//
// Arguments: M, N, K, threads. The time column of BM_Igemm_Ratio covers all three
// implementations; read its counters.
#include <benchmark/benchmark.h>
#include <dnnl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/kernels/igemm.h"
#include "lowbit/kernels/sgemm.h"

namespace {

using lowbit::kernels::PackedWeightsI8;

struct Data {
  int64_t m, n, k;
  std::vector<int8_t> a, b;
  std::vector<uint8_t> a_u8;
  std::vector<int32_t> c;
  PackedWeightsI8 packed;

  Data(int64_t m_, int64_t n_, int64_t k_) : m(m_), n(n_), k(k_) {
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> v(-128, 127);
    a.resize(static_cast<std::size_t>(m * k));
    b.resize(static_cast<std::size_t>(n * k));
    for (auto& x : a) x = static_cast<int8_t>(v(rng));
    for (auto& x : b) x = static_cast<int8_t>(v(rng));
    a_u8.resize(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) a_u8[i] = static_cast<uint8_t>(a[i] + 128);
    c.resize(static_cast<std::size_t>(m * n));
    packed = PackedWeightsI8::pack(b, n, k, k);
  }

  void ours() {
    if (m == 1)
      lowbit::kernels::igemv_s32(a, packed, c);
    else
      lowbit::kernels::igemm_s32(a, m, k, packed, c, n);
  }
  // Row-major C[M,N] = A[M,K] · B[N,K]^T.
  void onednn_s8s8() {
    const int32_t co = 0;
    if (dnnl_gemm_s8s8s32('N', 'T', 'F', m, n, k, 1.0f, a.data(), k, 0, b.data(), k, 0, 0.0f, c.data(), n, &co) !=
        dnnl_success)
      lowbit::fail("dnnl_gemm_s8s8s32 failed");
  }
  void onednn_u8s8() {
    const int32_t co = 0;
    if (dnnl_gemm_u8s8s32('N', 'T', 'F', m, n, k, 1.0f, a_u8.data(), k, 0, b.data(), k, 0, 0.0f, c.data(), n, &co) !=
        dnnl_success)
      lowbit::fail("dnnl_gemm_u8s8s32 failed");
  }
};

void set_threads(int t) {
  lowbit::set_num_threads(t);
  lowbit::kernels::onednn_set_num_threads(t);
}

void report(benchmark::State& state, const Data& d) {
  state.counters["GOPS"] = benchmark::Counter(2e-9 * static_cast<double>(d.m * d.n * d.k),
                                              benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Igemm(benchmark::State& state) {
  Data d(state.range(0), state.range(1), state.range(2));
  set_threads(static_cast<int>(state.range(3)));
  state.SetLabel(d.m == 1 ? lowbit::kernels::igemv_kernel_name() : lowbit::kernels::igemm_kernel_name());
  for (auto _ : state) {
    d.ours();
    benchmark::DoNotOptimize(d.c.data());
  }
  report(state, d);
}

void BM_Igemm_OneDnnS8S8(benchmark::State& state) {
  Data d(state.range(0), state.range(1), state.range(2));
  set_threads(static_cast<int>(state.range(3)));
  for (auto _ : state) {
    d.onednn_s8s8();
    benchmark::DoNotOptimize(d.c.data());
  }
  report(state, d);
}

void BM_Igemm_OneDnnU8S8(benchmark::State& state) {
  Data d(state.range(0), state.range(1), state.range(2));
  set_threads(static_cast<int>(state.range(3)));
  for (auto _ : state) {
    d.onednn_u8s8();
    benchmark::DoNotOptimize(d.c.data());
  }
  report(state, d);
}

// Requantizing epilogue to int8 (per-channel), to show the fused epilogue is nearly free.
void BM_Igemm_RequantS8(benchmark::State& state) {
  Data d(state.range(0), state.range(1), state.range(2));
  set_threads(static_cast<int>(state.range(3)));
  std::vector<int32_t> bias(static_cast<std::size_t>(d.n), 1000), mult(static_cast<std::size_t>(d.n), 1 << 30),
      shift(static_cast<std::size_t>(d.n), -12);
  lowbit::kernels::Requantize rq;
  rq.bias = bias;
  rq.multiplier = mult;
  rq.shift = shift;
  std::vector<int8_t> out(static_cast<std::size_t>(d.m * d.n));
  for (auto _ : state) {
    if (d.m == 1)
      lowbit::kernels::igemv_requant_s8(d.a, d.packed, rq, out);
    else
      lowbit::kernels::igemm_requant_s8(d.a, d.m, d.k, d.packed, rq, out, d.n);
    benchmark::DoNotOptimize(out.data());
  }
  report(state, d);
}

// Ours vs the faster oneDNN entry point. Each benchmark iteration runs every implementation
// for a chunk of calls (about 20 ms) and times all but the first call of the chunk: that call
// pays for what the previous implementation left behind (its data in the caches, and on two
// threads the other runtime's workers still spinning on the cores).
void BM_Igemm_Ratio(benchmark::State& state) {
  Data d(state.range(0), state.range(1), state.range(2));
  set_threads(static_cast<int>(state.range(3)));
  using clock = std::chrono::steady_clock;
  auto time_chunk = [](auto&& fn, int reps) {
    fn();
    const auto t0 = clock::now();
    for (int r = 0; r < reps; ++r) fn();
    return std::chrono::duration<double>(clock::now() - t0).count();
  };
  const double once = time_chunk([&] { d.ours(); }, 1);
  const int reps = std::max(2, static_cast<int>(0.02 / std::max(once, 1e-7)));
  double t_ours = 0, t_s8 = 0, t_u8 = 0;
  for (auto _ : state) {
    t_ours += time_chunk([&] { d.ours(); }, reps);
    t_s8 += time_chunk([&] { d.onednn_s8s8(); }, reps);
    t_u8 += time_chunk([&] { d.onednn_u8s8(); }, reps);
    benchmark::DoNotOptimize(d.c.data());
  }
  const double ops = 2.0 * static_cast<double>(d.m * d.n * d.k) * reps * static_cast<double>(state.iterations());
  state.counters["ours_GOPS"] = ops / t_ours * 1e-9;
  state.counters["s8s8_GOPS"] = ops / t_s8 * 1e-9;
  state.counters["u8s8_GOPS"] = ops / t_u8 * 1e-9;
  state.counters["ratio"] = std::min(t_s8, t_u8) / t_ours;
  state.SetLabel(d.m == 1 ? lowbit::kernels::igemv_kernel_name() : lowbit::kernels::igemm_kernel_name());
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int t : {1, 2}) {
    b->Args({256, 4096, 4096, t});
    b->Args({1, 4096, 4096, t});
    b->Args({1, 1024, 1024, t});  // weights fit in L2 (recurrent step)
    b->Args({64, 1024, 1024, t});
    b->Args({3136, 256, 2304, t});
  }
  b->ArgNames({"M", "N", "K", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

// Batch-1 GEMVs repeated over the same weights (an LSTM's recurrent step), with the alternating
// forward/backward sweeps of igemv_s32 against forward sweeps only (the direction flipped back
// after every call). For weights larger than L2 the alternating sweeps read part of them from L2.
// Arguments: N, K, forward_only (one thread); counter weight_GB: GB of weights read per second.
void BM_IgemvSweeps(benchmark::State& state) {
  set_threads(1);
  Data d(1, state.range(0), state.range(1));
  const bool forward_only = state.range(2) != 0;
  for (auto _ : state) {
    lowbit::kernels::igemv_s32(d.a, d.packed, d.c);
    if (forward_only) (void)d.packed.next_sweep_reversed();
    benchmark::DoNotOptimize(d.c.data());
  }
  state.counters["weight_GB"] = benchmark::Counter(static_cast<double>(d.packed.bytes()) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(forward_only ? "forward sweeps only" : "alternating sweeps");
}

BENCHMARK(BM_IgemvSweeps)
    ->ArgNames({"N", "K", "forward_only"})
    ->Args({4096, 1024, 0})
    ->Args({4096, 1024, 1})
    ->Args({4096, 512, 0})
    ->Args({4096, 512, 1})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK(BM_Igemm)->Apply(shapes);
BENCHMARK(BM_Igemm_OneDnnS8S8)->Apply(shapes);
BENCHMARK(BM_Igemm_OneDnnU8S8)->Apply(shapes);
BENCHMARK(BM_Igemm_RequantS8)->Apply(shapes);
BENCHMARK(BM_Igemm_Ratio)->Apply(shapes);

}  // namespace
