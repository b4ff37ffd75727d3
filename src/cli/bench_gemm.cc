// `lowbit bench gemm`: times, in one run and on the same shapes, the float GEMM (oneDNN
// sgemm), our int8 GEMM (packed weights), oneDNN's int8 GEMM (the peer) and our packed ±1
// GEMM. Every implementation computes C[M,N] = A[M,K] · B[N,K]^T; one multiply-accumulate
// counts as 2 ops for all of them, binary included, so ops_per_second compares MAC rates.
#include <dnnl.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "lowbit/core/aligned.h"
#include "lowbit/core/cpu.h"
#include "lowbit/core/error.h"
#include "lowbit/core/tensor.h"
#include "lowbit/core/threading.h"
#include "lowbit/kernels/bgemm.h"
#include "lowbit/kernels/bitpack.h"
#include "lowbit/kernels/igemm.h"
#include "lowbit/kernels/sgemm.h"

namespace lowbit::cli {
namespace {

struct GemmShape {
  int64_t m, n, k;
};

std::vector<GemmShape> parse_shapes(const std::string& text) {
  std::vector<GemmShape> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    long long m = 0, n = 0, k = 0;
    char tail = 0;
    if (std::sscanf(item.c_str(), "%lldx%lldx%lld%c", &m, &n, &k, &tail) != 3 || m < 1 || n < 1 || k < 1)
      fail("--shapes: '", item, "' is not a shape MxNxK with positive sizes (e.g. 256x4096x4096)");
    out.push_back({m, n, k});
    pos = comma + 1;
  }
  return out;
}

// Median of repeated runs after warm-up: at least `min_runs`, until `min_seconds` have passed.
double time_median(const std::function<void()>& fn, int min_runs, double min_seconds) {
  using clock = std::chrono::steady_clock;
  fn();  // warm-up: page faults, JIT, caches
  fn();
  std::vector<double> t;
  const auto start = clock::now();
  while (static_cast<int>(t.size()) < min_runs ||
         std::chrono::duration<double>(clock::now() - start).count() < min_seconds) {
    const auto t0 = clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    if (t.size() >= 1000) break;
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Result {
  std::string impl;
  GemmShape s;
  int threads;
  double seconds;
  std::string detail;
  double ops() const { return 2.0 * s.m * s.n * s.k / seconds; }
};

std::vector<Result> bench_shape(const GemmShape& s, int threads, int min_runs, double min_seconds) {
  std::mt19937 rng(1234);
  std::vector<Result> out;
  const auto M = s.m, N = s.n, K = s.k;

  {  // float GEMM through oneDNN
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    auto a = make_aligned<float>(M * K), b = make_aligned<float>(N * K), c = make_aligned<float>(M * N);
    for (int64_t i = 0; i < M * K; ++i) a[i] = u(rng);
    for (int64_t i = 0; i < N * K; ++i) b[i] = u(rng);
    const double sec = time_median([&] { kernels::sgemm(false, true, M, N, K, 1.f, a.get(), K, b.get(), K, 0.f, c.get(), N); },
                                   min_runs, min_seconds);
    out.push_back({"f32", s, threads, sec, "dnnl_sgemm"});
  }
  {  // int8: ours (weights packed ahead of time) and oneDNN's
    std::uniform_int_distribution<int> u(-128, 127);
    std::vector<int8_t> a(M * K), b(N * K);
    std::vector<uint8_t> au(M * K);
    for (auto& v : a) v = static_cast<int8_t>(u(rng));
    for (auto& v : b) v = static_cast<int8_t>(u(rng));
    for (int64_t i = 0; i < M * K; ++i) au[i] = static_cast<uint8_t>(a[i] + 128);
    std::vector<int32_t> c(M * N);
    const auto packed = kernels::PackedWeightsI8::pack(b, N, K, K);
    double sec;
    std::string name;
    if (M == 1) {
      sec = time_median([&] { kernels::igemv_s32(a, packed, c); }, min_runs, min_seconds);
      name = kernels::igemv_kernel_name();
    } else {
      sec = time_median([&] { kernels::igemm_s32(a, M, K, packed, c, N); }, min_runs, min_seconds);
      name = kernels::igemm_kernel_name();
    }
    out.push_back({"int8", s, threads, sec, name});

    // The peer: oneDNN's int8 GEMM, row-major, B as [N,K] (transposed). Both of its entry
    // points are timed and the faster one is reported, so the comparison is against its best.
    kernels::onednn_set_num_threads(threads);
    const int32_t co = 0;
    const double s8 = time_median(
        [&] {
          dnnl_gemm_s8s8s32('N', 'T', 'F', M, N, K, 1.f, a.data(), K, 0, b.data(), K, 0, 0.f, c.data(), N, &co);
        },
        min_runs, min_seconds);
    const double u8 = time_median(
        [&] {
          dnnl_gemm_u8s8s32('N', 'T', 'F', M, N, K, 1.f, au.data(), K, 0, b.data(), K, 0, 0.f, c.data(), N, &co);
        },
        min_runs, min_seconds);
    out.push_back({"onednn_s8", s, threads, std::min(s8, u8), s8 <= u8 ? "dnnl_gemm_s8s8s32" : "dnnl_gemm_u8s8s32"});
  }
  {  // packed ±1 GEMM on bits packed ahead of time (a binary layer's input arrives packed)
    const int64_t wpr = packed_words_per_row(K);
    auto a = make_aligned<uint64_t>(M * wpr), b = make_aligned<uint64_t>(N * wpr);
    std::vector<float> af(K);
    std::normal_distribution<float> g;
    for (int64_t r = 0; r < M; ++r) {
      for (auto& v : af) v = g(rng);
      kernels::pack_signs(af.data(), 1, K, K, {a.get() + r * wpr, static_cast<std::size_t>(wpr)});
    }
    for (int64_t r = 0; r < N; ++r) {
      for (auto& v : af) v = g(rng);
      kernels::pack_signs(af.data(), 1, K, K, {b.get() + r * wpr, static_cast<std::size_t>(wpr)});
    }
    std::vector<int32_t> c(M * N);
    const kernels::BitMatrix A{{a.get(), static_cast<std::size_t>(M * wpr)}, M, K, wpr};
    const kernels::BitMatrix B{{b.get(), static_cast<std::size_t>(N * wpr)}, N, K, wpr};
    const double sec = time_median([&] { kernels::bgemm_s32(A, B, c, N); }, min_runs, min_seconds);
    out.push_back({"binary", s, threads, sec, kernels::bgemm_kernel_name()});
  }
  return out;
}

}  // namespace

void add_bench_gemm(CLI::App& bench) {
  auto* cmd = bench.add_subcommand("gemm", "Time float, int8 (ours and oneDNN's) and packed ±1 GEMM on the same shapes");
  struct Options {
    std::string shapes = "256x4096x4096,1x4096x4096,64x1024x1024,3136x256x2304";
    int min_runs = 5;
    double min_seconds = 0.5;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  cmd->add_option("--shapes", opt->shapes, "Comma-separated MxNxK shapes (K in elements, bits for binary)")
      ->capture_default_str();
  cmd->add_option("--min-runs", opt->min_runs, "Timed runs per measurement at least")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--min-time", opt->min_seconds, "Seconds per measurement at least")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", opt->json, "Print one JSON object with a `results` array");
  cmd->callback([opt] {
    const auto shapes = parse_shapes(opt->shapes);
    const int threads = num_threads();
    std::vector<Result> all;
    if (!opt->json)
      std::printf("GEMM C[M,N] = A[M,K]·B[N,K]^T, %d thread%s, median of >= %d runs; GOPS = 2·M·N·K / s\n\n", threads,
                  threads == 1 ? "" : "s", opt->min_runs);
    for (const auto& s : shapes) {
      auto rs = bench_shape(s, threads, opt->min_runs, opt->min_seconds);
      if (!opt->json) {
        std::printf("%lld x %lld x %lld\n", static_cast<long long>(s.m), static_cast<long long>(s.n),
                    static_cast<long long>(s.k));
        auto find = [&](const char* impl) -> const Result& {
          for (const auto& r : rs)
            if (r.impl == impl) return r;
          fail("missing result ", impl);
        };
        for (const auto& r : rs)
          std::printf("  %-10s %10.1f GOPS  %9.3f ms  (%s)\n", r.impl.c_str(), r.ops() / 1e9, r.seconds * 1e3,
                      r.detail.c_str());
        std::printf("  binary/f32 %.1fx   binary/int8 %.2fx   int8/onednn_s8 %.2fx\n\n",
                    find("binary").ops() / find("f32").ops(), find("binary").ops() / find("int8").ops(),
                    find("int8").ops() / find("onednn_s8").ops());
        std::fflush(stdout);
      }
      all.insert(all.end(), rs.begin(), rs.end());
    }
    if (opt->json) {
      nlohmann::json j;
      j["benchmark"] = "gemm";
      j["threads"] = threads;
      j["cpu"] = cpu::brand();
      j["max_isa"] = cpu::isa_name(cpu::max_isa());
      j["results"] = nlohmann::json::array();
      for (const auto& r : all)
        j["results"].push_back({{"impl", r.impl},
                                {"m", r.s.m},
                                {"n", r.s.n},
                                {"k", r.s.k},
                                {"threads", r.threads},
                                {"seconds", r.seconds},
                                {"ops_per_second", r.ops()},
                                {"kernel", r.detail}});
      std::printf("%s\n", j.dump(2).c_str());
    }
  });
}

}  // namespace lowbit::cli
