// Language-model export from the command line (runtime/export_lm.h does the conversion).
#include "cli/export_lm.h"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "lowbit/nn/lm.h"
#include "lowbit/runtime/export_lm.h"

namespace lowbit::cli {

void export_language_model(const std::string& run, const std::string& out, bool as_json) {
  using json = nlohmann::ordered_json;
  const nn::TrainedLm t = nn::load_trained_lm(run);
  const json training = {{"recipe", t.recipe.name},
                         {"epoch", t.epoch},
                         {"valid_perplexity", t.valid_perplexity},
                         {"test_perplexity", t.test_perplexity},
                         {"seed", t.recipe.training.seed}};
  const io::ModelFile f = runtime::export_lstm_lm(*t.model, training.dump());
  io::save(out, f);
  const auto bytes = static_cast<int64_t>(std::filesystem::file_size(out));
  if (as_json) {
    std::cout << json{{"model", out},          {"source", run},
                      {"kind", "lstm_lm"},      {"epoch", t.epoch},
                      {"valid_perplexity", t.valid_perplexity}, {"test_perplexity", t.test_perplexity},
                      {"tensors", f.tensors.size()}, {"model_bytes", bytes}}
                     .dump(2)
              << '\n';
    return;
  }
  std::printf("exported %s (epoch %lld of %s, validation perplexity %.2f, test %.2f) to %s: lstm_lm, float, %zu "
              "tensors, %lld bytes\n",
              run.c_str(), static_cast<long long>(t.epoch), t.recipe.name.c_str(), t.valid_perplexity,
              t.test_perplexity, out.c_str(), f.tensors.size(), static_cast<long long>(bytes));
}

}  // namespace lowbit::cli
