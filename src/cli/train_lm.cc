// Language-model training from the command line: recipe overrides, a progress bar on a
// terminal, one line per epoch with the perplexities (nn/lm.h writes the files).
#include "cli/train_lm.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "cli/recipe_overrides.h"
#include "lowbit/core/error.h"
#include "lowbit/nn/lm.h"

namespace lowbit::cli {

void run_language_model_training(const LmTrainCli& o) {
  nn::LmRecipe recipe = nn::load_lm_recipe(o.recipe);
  std::string cmd = apply_common_overrides(recipe, o.recipe, o.out, o.data, o.epochs, o.seed);
  if (o.stop_after) cmd += " --stop-after " + std::to_string(*o.stop_after);
  if (o.max_windows) {
    LOWBIT_CHECK(*o.max_windows >= 1, "--max-windows ", *o.max_windows, " (expected >= 1)");
    cmd += " --max-windows " + std::to_string(*o.max_windows);
  }
  if (o.resume) cmd += " --resume";

  nn::LmTrainOptions topt;
  topt.out_dir = o.out;
  topt.resume = o.resume;
  topt.stop_after = o.stop_after.value_or(0);
  topt.max_windows = o.max_windows.value_or(0);
  topt.command_line = cmd;

  const bool tty = isatty(STDOUT_FILENO) != 0;
  nn::LmProgress sink;
  sink.on_start = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  if (tty) {
    sink.on_batch = [&recipe](int64_t epoch, int64_t b, int64_t nb, double loss, double secs) {
      static double last = -1;
      if (b + 1 != nb && secs - last < 0.2 && b != 0) return;
      last = b + 1 == nb ? -1 : secs;
      const int width = 24;
      const int filled = static_cast<int>(width * (b + 1) / nb);
      const double eta = secs / static_cast<double>(b + 1) * static_cast<double>(nb - b - 1);
      const auto s = static_cast<long long>(eta + 0.5);
      std::printf("\repoch %lld/%lld [%s%s] %3lld%% loss %.4f ppl %.1f ETA %lld:%02lld   ",
                  static_cast<long long>(epoch + 1), static_cast<long long>(recipe.training.epochs),
                  std::string(static_cast<std::size_t>(filled), '#').c_str(),
                  std::string(static_cast<std::size_t>(width - filled), '.').c_str(),
                  static_cast<long long>(100 * (b + 1) / nb), loss, std::exp(loss), s / 60, s % 60);
      std::fflush(stdout);
    };
  } else {
    // Logs of long runs: one plain line per tenth of an epoch.
    sink.on_batch = [&recipe](int64_t epoch, int64_t b, int64_t nb, double loss, double secs) {
      if (nb < 10 || (b + 1) % ((nb + 9) / 10) != 0 || b + 1 == nb) return;
      const double eta = secs / static_cast<double>(b + 1) * static_cast<double>(nb - b - 1);
      const auto s = static_cast<long long>(eta + 0.5);
      std::printf("epoch %lld/%lld: %lld/%lld windows, loss %.4f, ppl %.1f, %.0f s, epoch ETA %lld:%02lld\n",
                  static_cast<long long>(epoch + 1), static_cast<long long>(recipe.training.epochs),
                  static_cast<long long>(b + 1), static_cast<long long>(nb), loss, std::exp(loss), secs, s / 60,
                  s % 60);
      std::fflush(stdout);
    };
  }
  sink.on_epoch = [tty](const nn::LmEpochMetrics& m, int64_t epochs) {
    if (tty) std::printf("\r\033[K");
    std::printf("epoch %lld/%lld  loss %.4f  train ppl %.2f  valid ppl %.2f  test ppl %.2f  lr %.4g  %.1fs%s\n",
                static_cast<long long>(m.epoch), static_cast<long long>(epochs), m.train_loss, m.train_perplexity,
                m.valid_perplexity, m.test_perplexity, m.lr, m.seconds, m.best ? "  (best)" : "");
    std::fflush(stdout);
  };
  const nn::LmTrainResult r = nn::train_lm(recipe, topt, sink);
  if (r.best_epoch > 0)
    std::printf("best: epoch %lld, validation perplexity %.2f, test perplexity %.2f; %.1f s; model %s/best.lbm\n",
                static_cast<long long>(r.best_epoch), r.best_valid_perplexity, r.best_test_perplexity, r.seconds,
                o.out.c_str());
  else
    std::printf("nothing to do: the checkpoint already holds all %lld epochs\n",
                static_cast<long long>(recipe.training.epochs));
}

}  // namespace lowbit::cli
