// The `lowbit` command-line program.
//
// Each command lives in its own file and registers itself on the application through one
// add_*_command function; main.cc creates the application, adds the global options and
// every command, parses, and turns errors into one line on stderr.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace lowbit::cli {

// Options accepted before or after any command. They are applied (thread count, instruction
// set cap) after parsing and before the command runs.
struct GlobalOptions {
  std::optional<int> threads;          // --threads N
  std::optional<std::string> max_isa;  // --max-isa LEVEL
};

void add_global_options(CLI::App& app);
const GlobalOptions& global_options();

// Where the current thread count and instruction-set cap come from, for `lowbit info`:
// the command-line option, the environment variable, or the default.
std::string threads_source();
std::string max_isa_source();

// Commands, one file each.
void add_info_command(CLI::App& app);   // info.cc
void add_bench_commands(CLI::App& app); // bench.cc
void add_bench_gemm(CLI::App& bench);   // bench_gemm.cc: `lowbit bench gemm`
void add_eval_command(CLI::App& app);   // eval.cc
// eval_lm.cc: `lowbit eval` on an LSTM model file; returns false (doing nothing else) when the
// file is not an LSTM model.
bool eval_lm_if_lstm(const std::string& model_path, const std::string& data, bool as_json, int64_t limit);
void add_train_command(CLI::App& app);  // train.cc
void add_export_command(CLI::App& app); // export.cc
void add_energy_command(CLI::App& app); // energy.cc
void add_run_command(CLI::App& app);    // run.cc
void add_quantize_command(CLI::App& app); // quantize.cc
void add_bench_lstm(CLI::App& bench);   // bench_lstm.cc: `lowbit bench lstm`

// MemN2N (bAbI) commands, reached from train/export/eval when the recipe or model is a MemN2N.
struct Memn2nTrainArgs {
  std::string recipe, out;
  std::optional<std::string> data, task;
  std::optional<int64_t> epochs;
  std::optional<uint64_t> seed;
  std::optional<int> runs, int_bits;
  bool verbose = false;
  bool resume = false;  // keep the runs already finished in OUT (their run.json and best.lbm)
};
void run_memn2n_train(const Memn2nTrainArgs& args);  // train_memn2n.cc
// eval_babi.cc
bool is_memn2n_run(const std::string& path);         // a training folder or .lbm of a MemN2N
bool is_memn2n_model_file(const std::string& path);  // an exported MemN2N model file
void run_memn2n_export(const std::string& run, const std::string& out, const std::optional<std::string>& data,
                       bool compare, bool as_json);
void run_memn2n_eval(const std::string& model, const std::string& data, const std::optional<std::string>& task,
                     int64_t limit, bool as_json);
void add_explain_command(CLI::App& app);

}  // namespace lowbit::cli
