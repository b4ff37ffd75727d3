// The command-line overrides that every `lowbit train` recipe kind shares (--data, --epochs,
// --seed), applied to the loaded recipe and echoed into the command line recorded with the run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "lowbit/core/error.h"

namespace lowbit::cli {

// Recipe: any recipe type with data.path, training.epochs and training.seed. Returns the
// "lowbit train ..." command line so far.
template <typename Recipe>
std::string apply_common_overrides(Recipe& recipe, const std::string& recipe_path, const std::string& out,
                                   const std::optional<std::string>& data, const std::optional<int64_t>& epochs,
                                   const std::optional<uint64_t>& seed) {
  std::string cmd = "lowbit train --recipe " + recipe_path + " --out " + out;
  if (data) {
    recipe.data.path = *data;
    cmd += " --data " + *data;
  }
  if (epochs) {
    LOWBIT_CHECK(*epochs >= 1, "--epochs ", *epochs, " (expected >= 1)");
    recipe.training.epochs = *epochs;
    cmd += " --epochs " + std::to_string(*epochs);
  }
  if (seed) {
    recipe.training.seed = *seed;
    cmd += " --seed " + std::to_string(*seed);
  }
  return cmd;
}

}  // namespace lowbit::cli
