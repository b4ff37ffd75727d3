// `lowbit bench ...`: micro-benchmarks of the kernels, one subcommand each.
//
// A benchmark adds itself by defining `void add_bench_<name>(CLI::App& bench)` in its own
// file (bench_<name>.cc), declaring it below and listing it in kBenchmarks. The `bench`
// command is only created when at least one benchmark is built in, so the program never
// offers a command that does nothing.
#include <CLI/CLI.hpp>

#include <array>
#include <cstddef>

#include "cli/cli.h"

namespace lowbit::cli {
namespace {

using AddBenchmark = void (*)(CLI::App& bench);

constexpr std::array<AddBenchmark, 2> kBenchmarks{add_bench_gemm, add_bench_lstm};

}  // namespace

void add_bench_commands(CLI::App& app) {
  if (kBenchmarks.empty()) return;
  CLI::App* bench = app.add_subcommand("bench", "Time the kernels on chosen shapes");
  bench->require_subcommand(1);
  for (AddBenchmark add : kBenchmarks) add(*bench);
}

}  // namespace lowbit::cli
