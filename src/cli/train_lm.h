// `lowbit train` for recipes with "task": "language_model" (nn/lm.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace lowbit::cli {

struct LmTrainCli {
  std::string recipe, out;
  std::optional<std::string> data;
  std::optional<int64_t> epochs, stop_after, max_windows;
  std::optional<uint64_t> seed;
  bool resume = false;
};

void run_language_model_training(const LmTrainCli& o);

}  // namespace lowbit::cli
