// `lowbit train --recipe FILE --out DIR`: trains a network from a recipe (nn/trainer.h) with a
// progress bar on a terminal, plain per-epoch lines otherwise, and writes run.json,
// metrics.jsonl, best.lbm and checkpoint.lbm into DIR. Command-line values override the
// recipe's, and the overridden recipe is what run.json and the model files record.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "cli/cli.h"
#include "cli/train_lm.h"
#include "cli/recipe_overrides.h"
#include "lowbit/core/error.h"
#include "lowbit/nn/memn2n.h"
#include "lowbit/nn/lm.h"
#include "lowbit/nn/trainer.h"

namespace lowbit::cli {
namespace {

struct TrainCliOptions {
  std::string recipe, out;
  std::optional<std::string> data;
  std::optional<int64_t> epochs, stop_after, max_windows;
  std::optional<uint64_t> seed;
  bool resume = false;
  std::optional<std::string> task;
  std::optional<int> runs, int_bits;
  bool verbose = false;
};

std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  return buf;
}

void run(const TrainCliOptions& o) {
  const bool memn2n = nn::memn2n::is_memn2n_recipe(o.recipe);
  LOWBIT_CHECK(memn2n || (!o.task && !o.runs && !o.int_bits),
               "--task, --runs and --int-bits apply to MemN2N (bAbI) recipes only");
  if (nn::recipe_task(o.recipe) == "language_model") {
    run_language_model_training({o.recipe, o.out, o.data, o.epochs, o.stop_after, o.max_windows, o.seed, o.resume});
    return;
  }
  if (memn2n) {
    LOWBIT_CHECK(!o.stop_after && !o.max_windows, "--stop-after and --max-windows are not supported for MemN2N recipes");
    run_memn2n_train(
        Memn2nTrainArgs{o.recipe, o.out, o.data, o.task, o.epochs, o.seed, o.runs, o.int_bits, o.verbose, o.resume});
    return;
  }
  LOWBIT_CHECK(!o.max_windows, "--max-windows applies to language-model recipes only");
  nn::Recipe recipe = nn::load_recipe(o.recipe);
  std::string cmd = apply_common_overrides(recipe, o.recipe, o.out, o.data, o.epochs, o.seed);
  if (o.resume) cmd += " --resume";

  nn::TrainOptions topt;
  topt.out_dir = o.out;
  topt.resume = o.resume;
  topt.stop_after = o.stop_after.value_or(0);
  topt.command_line = cmd;

  const bool tty = isatty(STDOUT_FILENO) != 0;
  nn::ProgressSink sink;
  sink.on_start = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  if (tty) {
    sink.on_batch = [&recipe](int64_t epoch, int64_t b, int64_t nb, double loss, double err, double secs) {
      // Redraw a few times a second at most: the terminal is slower than a small batch.
      static double last = -1;
      if (b + 1 != nb && secs - last < 0.2 && b != 0) return;
      last = b + 1 == nb ? -1 : secs;
      const int width = 24;
      const int filled = static_cast<int>(width * (b + 1) / nb);
      const double eta = secs / static_cast<double>(b + 1) * static_cast<double>(nb - b - 1);
      std::printf("\repoch %lld/%lld [%s%s] %3lld%% loss %.4f err %5.2f%% ETA %s   ",
                  static_cast<long long>(epoch + 1), static_cast<long long>(recipe.training.epochs),
                  std::string(static_cast<std::size_t>(filled), '#').c_str(),
                  std::string(static_cast<std::size_t>(width - filled), '.').c_str(),
                  static_cast<long long>(100 * (b + 1) / nb), loss, 100.0 * err, clock_text(eta).c_str());
      std::fflush(stdout);
    };
  }
  sink.on_epoch = [tty](const nn::EpochMetrics& m, int64_t epochs) {
    if (tty) std::printf("\r\033[K");
    std::printf("epoch %lld/%lld  loss %.4f  train %.2f%%  valid %.2f%%  test %.2f%%  lr %.3g  %.1fs%s\n",
                static_cast<long long>(m.epoch), static_cast<long long>(epochs), m.train_loss, 100.0 * m.train_error,
                100.0 * m.valid_error, 100.0 * m.test_error, m.lr, m.seconds, m.best ? "  (best)" : "");
    std::fflush(stdout);
  };

  const nn::TrainResult r = nn::train(recipe, topt, sink);
  if (r.best_epoch > 0)
    std::printf("best: epoch %lld, validation error %.2f%%, test error %.2f%%; %.1f s; model %s/best.lbm\n",
                static_cast<long long>(r.best_epoch), 100.0 * r.best_valid_error, 100.0 * r.best_test_error, r.seconds,
                o.out.c_str());
  else
    std::printf("nothing to do: the checkpoint already holds all %lld epochs\n",
                static_cast<long long>(recipe.training.epochs));
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainCliOptions>();
  CLI::App* cmd = app.add_subcommand("train", "Train a network from a recipe (JSON): metrics, best model, checkpoints");
  cmd->add_option("--recipe", o->recipe, "Recipe file (see recipes/ and docs/training.md)")->required();
  cmd->add_option("--out", o->out, "Output folder: run.json, metrics.jsonl, best.lbm, checkpoint.lbm")->required();
  cmd->add_option("--data", o->data, "Dataset folder (overrides the recipe's data.path)");
  cmd->add_option("--epochs", o->epochs, "Number of epochs (overrides training.epochs; also sets the LR schedule)");
  cmd->add_option("--seed", o->seed, "Random seed (overrides training.seed)");
  cmd->add_option("--stop-after", o->stop_after,
                  "Stop once this many epochs of the schedule are done (resume later with --resume)");
  cmd->add_option("--max-windows", o->max_windows,
                  "Language models: train on only the first N BPTT windows of each epoch (timing runs)");
  cmd->add_flag("--resume", o->resume,
                "Continue from OUT/checkpoint.lbm (bAbI recipes: keep the runs that finished, train the rest)");
  cmd->add_option("--task", o->task, "bAbI recipes: task 1..20, a list such as 1,2,16-20, all (each separately) or joint");
  cmd->add_option("--runs", o->runs, "bAbI recipes: independent runs per task (seeds seed, seed+1, ...)");
  cmd->add_option("--int-bits", o->int_bits, "bAbI quantized recipes: integer bits I of the Q(I.F) formats");
  cmd->add_flag("--verbose", o->verbose, "bAbI recipes: one line per epoch");
  cmd->callback([o] { run(*o); });
}

}  // namespace lowbit::cli
