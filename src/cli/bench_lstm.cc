// `lowbit bench lstm`: times our float LSTM step loop against our integer 8x8_16 step loop on
// one layer with input width = hidden width, no projection and random weights; the integer model
// is the float one quantized with random calibration data. Each measurement runs `--steps` steps
// from a fresh state and reports the median seconds of repeated runs.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "lowbit/core/cpu.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/kernels/igemm.h"
#include "lowbit/runtime/lstm.h"
#include "lowbit/runtime/lstm_quantize.h"

namespace lowbit::cli {
namespace {

struct Result {
  std::string impl;
  int64_t hidden, steps, batch;
  int threads;
  double seconds;
  int64_t weight_bytes;
};

template <typename Fn>
double median_seconds(Fn&& fn, double min_seconds) {
  using clock = std::chrono::steady_clock;
  std::vector<double> t;
  const auto start = clock::now();
  do {
    const auto a = clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(clock::now() - a).count());
  } while (t.size() < 3 || (std::chrono::duration<double>(clock::now() - start).count() < min_seconds && t.size() < 1000));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    LOWBIT_CHECK(!item.empty() && item.find_first_not_of("0123456789") == std::string::npos, "--hidden: \"", item,
                 "\" is not a positive integer");
    out.push_back(std::stoll(item));
    LOWBIT_CHECK(out.back() >= 1 && out.back() <= 8192, "--hidden ", out.back(), " (expected 1..8192)");
  }
  LOWBIT_CHECK(!out.empty(), "--hidden needs at least one size");
  return out;
}

std::vector<Result> bench_hidden(int64_t H, int64_t steps, int64_t batch, double min_seconds) {
  runtime::LstmLayerSpec s;
  s.name = "lstm.0";
  s.n_input = s.n_cell = s.n_output = H;
  const runtime::LstmModel f = runtime::LstmModel::from_model_file(
      runtime::random_float_lstm(runtime::LstmKind::lstm, {s}, 0, 42 + static_cast<uint64_t>(H)), "bench-float");
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t calib = 16;
  std::vector<float> xc(static_cast<std::size_t>(calib * batch * H));
  for (auto& v : xc) v = nd(rng);
  const runtime::LstmModel q =
      runtime::LstmModel::from_model_file(runtime::quantize_lstm(f, runtime::calibrate_lstm(f, xc.data(), calib, batch)),
                                          "bench-int8");
  std::vector<float> xf(static_cast<std::size_t>(steps * batch * H)), yf(xf.size());
  for (auto& v : xf) v = nd(rng);
  std::vector<int8_t> xq(xf.size()), yq(xf.size());
  for (std::size_t i = 0; i < xf.size(); ++i)
    xq[i] = static_cast<int8_t>(std::clamp<long>(std::lround(xf[i] / q.input_scale()) + q.input_zero_point(), -128, 127));
  const double tf = median_seconds([&] {
    auto st = f.initial_state(batch);
    f.run_float(xf.data(), steps, st, yf.data());
  }, min_seconds);
  const double tq = median_seconds([&] {
    auto st = q.initial_state(batch);
    q.run_integer(xq.data(), steps, st, yq.data());
  }, min_seconds);
  const int threads = num_threads();
  return {{"f32", H, steps, batch, threads, tf, f.weight_bytes()}, {"int8", H, steps, batch, threads, tq, q.weight_bytes()}};
}

}  // namespace

void add_bench_lstm(CLI::App& bench) {
  auto* cmd = bench.add_subcommand("lstm", "Time our float LSTM and our integer (8x8_16) LSTM step loops");
  struct Options {
    std::string hidden = "256,512,1024";
    int64_t steps = 100, batch = 1;
    double min_seconds = 0.5;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  cmd->add_option("--hidden", opt->hidden, "Comma-separated hidden sizes (input width = hidden)")->capture_default_str();
  cmd->add_option("--steps", opt->steps, "Time steps per run")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--batch", opt->batch, "Parallel sequences")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--min-time", opt->min_seconds, "Seconds per measurement at least")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", opt->json, "Print one JSON object with a `results` array");
  cmd->callback([opt] {
    const auto sizes = parse_list(opt->hidden);
    std::vector<Result> all;
    if (!opt->json)
      std::printf("LSTM step loop, %lld steps, batch %lld, %d thread%s, int8 GEMV kernel %s; median seconds per run\n\n",
                  static_cast<long long>(opt->steps), static_cast<long long>(opt->batch), num_threads(),
                  num_threads() == 1 ? "" : "s", kernels::igemv_kernel_name());
    for (int64_t H : sizes) {
      auto rs = bench_hidden(H, opt->steps, opt->batch, opt->min_seconds);
      if (!opt->json) {
        std::printf("hidden %5lld  f32 %9.3f ms (%6.1f us/step, %lld weight bytes)  int8 %9.3f ms (%6.1f us/step, %lld "
                    "weight bytes)  int8 is %.2fx faster\n",
                    static_cast<long long>(H), rs[0].seconds * 1e3, rs[0].seconds * 1e6 / static_cast<double>(opt->steps),
                    static_cast<long long>(rs[0].weight_bytes), rs[1].seconds * 1e3,
                    rs[1].seconds * 1e6 / static_cast<double>(opt->steps), static_cast<long long>(rs[1].weight_bytes),
                    rs[0].seconds / rs[1].seconds);
        std::fflush(stdout);
      }
      all.insert(all.end(), rs.begin(), rs.end());
    }
    if (opt->json) {
      nlohmann::json j;
      j["benchmark"] = "lstm";
      j["cpu"] = cpu::brand();
      j["max_isa"] = cpu::isa_name(cpu::max_isa());
      j["results"] = nlohmann::json::array();
      for (const auto& r : all)
        j["results"].push_back({{"impl", r.impl}, {"hidden", r.hidden}, {"steps", r.steps}, {"batch", r.batch},
                                {"threads", r.threads}, {"seconds", r.seconds}, {"weight_bytes", r.weight_bytes}});
      std::printf("%s\n", j.dump(2).c_str());
    }
  });
}

}  // namespace lowbit::cli
